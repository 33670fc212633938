package grpcserver

import (
	"context"
	"sync"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/encoding"
	"google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"
	protoreflect "google.golang.org/protobuf/proto"

	"github.com/certhosting/certhosting/pkg/apierr"
)

// A request body that does not decode (garbage bytes, invalid UTF-8 in a string field) is the
// client's mistake, but grpc-go decodes requests before any interceptor runs and answers a codec
// error with Internal. So the server's codec (requestCodec) never fails to decode a request
// message: it leaves the message empty and remembers the error for that message; the interceptor
// that runs after authentication (decodeErrors) answers InvalidArgument. A call without a valid key
// is refused with Unauthenticated first, whatever its body; the remembered error is dropped when
// the call ends (unaryErrors), so nothing accumulates.

// requestCodec is the proto codec with decoding errors kept aside (see above).
type requestCodec struct {
	encoding.CodecV2
	failed sync.Map // request message (pointer) -> its decoding error
}

func newRequestCodec() *requestCodec {
	return &requestCodec{CodecV2: encoding.GetCodecV2(proto.Name)}
}

// Unmarshal decodes data into v; when that fails for a proto message it resets v, keeps the error
// for decodeErrors, and reports success.
func (c *requestCodec) Unmarshal(data mem.BufferSlice, v any) error {
	err := c.CodecV2.Unmarshal(data, v)
	if m, ok := v.(protoreflect.Message); ok && err != nil {
		protoreflect.Reset(m)
		c.failed.Store(v, err)
		return nil
	}
	return err
}

// take returns, and forgets, the decoding error of request message v.
func (c *requestCodec) take(v any) (error, bool) {
	err, ok := c.failed.LoadAndDelete(v)
	if !ok {
		return nil, false
	}
	return err.(error), true
}

// undecodable is the status of a request whose body did not decode: InvalidArgument, with at most
// a short prefix of the decoder's words (they never quote the body at length).
func undecodable(err error) error {
	return status.Errorf(codes.InvalidArgument, "the request body does not decode as this method's request message: %s", apierr.Truncate(err.Error(), 160, "…"))
}

// decodeErrors answers a unary call whose request did not decode with InvalidArgument.
func (s *Server) decodeErrors(ctx context.Context, req any, _ *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err, ok := s.codec.take(req); ok {
		return nil, undecodable(err)
	}
	return handler(ctx, req)
}

// decodeErrorsStream checks every message a stream's handler receives the same way.
func (s *Server) decodeErrorsStream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	return handler(srv, &decodedStream{ServerStream: ss, codec: s.codec})
}

type decodedStream struct {
	grpc.ServerStream
	codec *requestCodec
}

func (d *decodedStream) RecvMsg(m any) error {
	if err := d.ServerStream.RecvMsg(m); err != nil {
		return err
	}
	if err, ok := d.codec.take(m); ok {
		return undecodable(err)
	}
	return nil
}
