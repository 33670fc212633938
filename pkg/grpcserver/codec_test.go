package grpcserver_test

import (
	"context"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/mem"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
)

// rawCodec sends a request's bytes as they are: what a hostile or broken client puts on the wire.
type rawCodec struct{}

func (rawCodec) Marshal(v any) (mem.BufferSlice, error) {
	return mem.BufferSlice{mem.SliceBuffer(*v.(*[]byte))}, nil
}
func (rawCodec) Unmarshal(data mem.BufferSlice, v any) error {
	*v.(*[]byte) = data.Materialize()
	return nil
}
func (rawCodec) Name() string { return "proto" }

// A body that does not decode is InvalidArgument, never Internal: on a public method (health),
// on an authenticated unary call, and as a stream's request; without a valid key it is
// Unauthenticated first. The server answers well-formed calls afterwards.
func TestUndecodableRequests(t *testing.T) {
	t.Parallel()
	authn, key := newAuth(t)
	srv := grpctest.Start(t, authn, func(s *grpc.Server) { lifecyclev1.RegisterLifecycleServiceServer(s, faulty{}) })
	withKey, noKey := srv.Dial(t, key), srv.Dial(t, "")
	invalidUTF8 := []byte{0x0a, 0x02, 0xff, 0xfe} // field 1, a string of two bytes that are not UTF-8
	garbage := []byte{0xff, 0xff, 0xff, 0xff, 0x0f}
	for _, tc := range []struct {
		name   string
		conn   *grpc.ClientConn
		method string
		body   []byte
		code   codes.Code
	}{
		{"health, invalid UTF-8", noKey, "/grpc.health.v1.Health/Check", invalidUTF8, codes.InvalidArgument},
		{"GetBundle, invalid UTF-8", withKey, lifecyclev1.LifecycleService_GetBundle_FullMethodName, invalidUTF8, codes.InvalidArgument},
		{"GetBundle, garbage", withKey, lifecyclev1.LifecycleService_GetBundle_FullMethodName, garbage, codes.InvalidArgument},
		{"GetBundle, garbage, no key", noKey, lifecyclev1.LifecycleService_GetBundle_FullMethodName, garbage, codes.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var reply []byte
			err := tc.conn.Invoke(context.Background(), tc.method, &tc.body, &reply, grpc.ForceCodecV2(rawCodec{}))
			if status.Code(err) != tc.code {
				t.Errorf("%s = %v, want %s", tc.method, err, tc.code)
			}
		})
	}
	t.Run("WatchEvents, invalid UTF-8", func(t *testing.T) {
		desc := &grpc.StreamDesc{ServerStreams: true}
		cs, err := withKey.NewStream(context.Background(), desc, lifecyclev1.LifecycleService_WatchEvents_FullMethodName, grpc.ForceCodecV2(rawCodec{}))
		if err != nil {
			t.Fatal(err)
		}
		if err := cs.SendMsg(&invalidUTF8); err != nil {
			t.Fatal(err)
		}
		_ = cs.CloseSend()
		var reply []byte
		if err := cs.RecvMsg(&reply); status.Code(err) != codes.InvalidArgument || !strings.Contains(err.Error(), "does not decode") {
			t.Errorf("WatchEvents with an undecodable request = %v, want InvalidArgument", err)
		}
	})
	client := lifecyclev1.NewLifecycleServiceClient(withKey)
	if _, err := client.GetBundle(context.Background(), &lifecyclev1.GetBundleRequest{BundleId: "ok"}); err != nil {
		t.Errorf("a well-formed call afterwards: %v", err)
	}
}
