// Package plugin connects the lifecycle service to CA plug-ins: processes, in any language, that
// serve certhosting.ca.v1.CertificateAuthorityService. Client is a ca.Client that calls a plug-in
// over gRPC; Server serves any ca.Client under that contract, which is how the built-in local CA
// runs as a plug-in (cmd/certhosting-localca-plugin) and how a Go plug-in can be written in a few
// lines.
//
// Between the two: every call carries `authorization: Bearer <token>` (a shared secret the
// plug-in checks in constant time), optionally over TLS with client certificates (mutual TLS), and
// has a deadline. Errors keep the ca contract's meaning: a gRPC error is transient; a verdict is
// in the response.
package plugin

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/backoff"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	cav1 "github.com/certhosting/certhosting/gen/go/certhosting/ca/v1"
	"github.com/certhosting/certhosting/pkg/ca"
)

// DefaultTimeout is the deadline of each call to a plug-in.
const DefaultTimeout = 10 * time.Second

// reconnect paces the client's attempts to reach a plug-in that is down. gRPC's default lets the
// pause grow to 2 minutes, during which every call fails at once even though the plug-in may be
// back (measured: 8 s after a 20 s outage); the lifecycle service already spaces its calls with a
// backoff of its own, so the connection only needs to be there when they come. An attempt every
// few seconds to a plug-in that is down costs nothing worth saving.
var reconnect = backoff.Config{BaseDelay: 250 * time.Millisecond, Multiplier: 1.6, Jitter: 0.2, MaxDelay: 3 * time.Second}

// ClientConfig says how to reach a plug-in.
type ClientConfig struct {
	// Address is the plug-in's host:port.
	Address string
	// Token is the shared secret sent as `authorization: Bearer <token>`.
	Token string
	// TLS, when set, is used for the connection (with Certificates for mutual TLS); nil means
	// plaintext, acceptable on loopback only.
	TLS credentials.TransportCredentials
	// Timeout is the deadline of each call (default DefaultTimeout).
	Timeout time.Duration
	// DialOptions are more options of the connection: the client metrics and tracing.
	DialOptions []grpc.DialOption
}

// Client is a ca.Client that calls a plug-in.
type Client struct {
	conn    *grpc.ClientConn
	rpc     cav1.CertificateAuthorityServiceClient
	timeout time.Duration
}

var _ ca.Client = (*Client)(nil)

// Dial makes the client; the connection is established lazily, so a plug-in that is down at
// start is only a transient error on the first call.
func Dial(cfg ClientConfig) (*Client, error) {
	if cfg.Address == "" {
		return nil, fmt.Errorf("plugin: address is required")
	}
	if cfg.Token == "" {
		return nil, fmt.Errorf("plugin %s: a token is required", cfg.Address)
	}
	creds := cfg.TLS
	if creds == nil {
		creds = insecure.NewCredentials()
	}
	conn, err := grpc.NewClient(cfg.Address, append([]grpc.DialOption{grpc.WithTransportCredentials(creds),
		grpc.WithPerRPCCredentials(tokenCredentials{token: cfg.Token, secure: cfg.TLS != nil}),
		grpc.WithConnectParams(grpc.ConnectParams{Backoff: reconnect, MinConnectTimeout: 5 * time.Second})}, cfg.DialOptions...)...)
	if err != nil {
		return nil, fmt.Errorf("plugin %s: %w", cfg.Address, err)
	}
	timeout := cfg.Timeout
	if timeout <= 0 {
		timeout = DefaultTimeout
	}
	return &Client{conn: conn, rpc: cav1.NewCertificateAuthorityServiceClient(conn), timeout: timeout}, nil
}

// Close closes the connection.
func (c *Client) Close() error { return c.conn.Close() }

type tokenCredentials struct {
	token  string
	secure bool
}

func (t tokenCredentials) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + t.token}, nil
}

func (t tokenCredentials) RequireTransportSecurity() bool { return t.secure }

// transient keeps a plug-in's error an error (the ca contract: try later), carrying the
// Retry-After a plug-in may send as a google.rpc.RetryInfo detail.
func transient(op string, err error) error {
	err = fmt.Errorf("plugin %s: %w", op, err)
	for _, d := range status.Convert(err).Details() {
		if ri, ok := d.(*errdetails.RetryInfo); ok && ri.GetRetryDelay() != nil {
			return &ca.RetryAfterError{After: ri.GetRetryDelay().AsDuration(), Err: err}
		}
	}
	return err
}

// Submit implements ca.Client.
func (c *Client) Submit(ctx context.Context, req ca.Request) (ca.Submission, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	in := &cav1.SubmitRequest{
		ApplicationId: req.ID, Domains: req.Domains, CsrDer: req.CSR, Validation: req.Validation,
		Contact: &cav1.Contact{Name: req.Contact.Name, Email: req.Contact.Email, Phone: req.Contact.Phone},
		Binding: req.Binding, ReplacesPem: string(req.Replaces),
	}
	if o := req.Organization; o != nil {
		in.Organization = &cav1.Organization{LegalName: o.LegalName, Country: o.Country, StateOrProvince: o.StateOrProvince,
			Locality: o.Locality, RegistrationNumber: o.RegistrationNumber}
	}
	if !req.NotAfter.IsZero() {
		in.NotAfter = timestamppb.New(req.NotAfter)
	} else if req.Lifetime > 0 {
		in.Lifetime = durationpb.New(req.Lifetime)
	}
	out, err := c.rpc.Submit(ctx, in)
	if err != nil {
		return ca.Submission{}, transient("submit", err)
	}
	sub := ca.Submission{Ref: out.GetRef()}
	for _, r := range out.GetInstructions() {
		sub.Instructions = append(sub.Instructions, ca.DNSRecord{Name: r.GetName(), Type: r.GetType(), Value: r.GetValue()})
	}
	if sub.Ref == "" {
		return ca.Submission{}, fmt.Errorf("plugin submit: the plug-in returned no ref")
	}
	return sub, nil
}

// Status implements ca.Client.
func (c *Client) Status(ctx context.Context, ref string) (ca.Status, error) {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	out, err := c.rpc.GetStatus(ctx, &cav1.GetStatusRequest{Ref: ref})
	if err != nil {
		return ca.Status{}, transient("status", err)
	}
	switch out.GetState() {
	case cav1.ApplicationState_APPLICATION_STATE_PENDING:
		return ca.Status{State: ca.Pending, RetryAfter: out.GetRetryAfter().AsDuration()}, nil
	case cav1.ApplicationState_APPLICATION_STATE_ISSUED:
		if out.GetCertificateChainPem() == "" {
			// Broken like an unknown state below; as a verdict it would fail the certificate.
			return ca.Status{}, fmt.Errorf("plugin status: the plug-in says issued but returned no certificate chain")
		}
		return ca.Status{State: ca.Issued, ChainPEM: []byte(out.GetCertificateChainPem())}, nil
	case cav1.ApplicationState_APPLICATION_STATE_REJECTED:
		return ca.Status{State: ca.Rejected, Reason: reasonFromProto(out.GetRejectionReason()), Message: out.GetMessage()}, nil
	}
	// A plug-in that answers nonsense is broken, which is transient from our side: it will be
	// fixed and polled again, rather than failing a customer's certificate.
	return ca.Status{}, fmt.Errorf("plugin status: unknown state %v", out.GetState())
}

// Cancel implements ca.Client.
func (c *Client) Cancel(ctx context.Context, ref string) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	if _, err := c.rpc.Cancel(ctx, &cav1.CancelRequest{Ref: ref}); err != nil {
		return transient("cancel", err)
	}
	return nil
}

// Revoke implements ca.Revoker. The plug-in's FAILED_PRECONDITION is the CA's final refusal
// (ca.ErrNotRevocable); anything else is transient.
func (c *Client) Revoke(ctx context.Context, chainPEM []byte, reason ca.RevocationReason) error {
	ctx, cancel := context.WithTimeout(ctx, c.timeout)
	defer cancel()
	_, err := c.rpc.Revoke(ctx, &cav1.RevokeRequest{CertificateChainPem: string(chainPEM), Reason: int32(reason)})
	if status.Code(err) == codes.FailedPrecondition {
		return fmt.Errorf("%w: %s", ca.ErrNotRevocable, status.Convert(err).Message())
	}
	if err != nil {
		return transient("revoke", err)
	}
	return nil
}

var reasons = map[ca.Reason]cav1.RejectionReason{
	ca.ReasonDNS:          cav1.RejectionReason_REJECTION_REASON_DNS,
	ca.ReasonOrganization: cav1.RejectionReason_REJECTION_REASON_ORGANIZATION,
	ca.ReasonCAA:          cav1.RejectionReason_REJECTION_REASON_CAA,
	ca.ReasonPolicy:       cav1.RejectionReason_REJECTION_REASON_POLICY,
}

// reasonToProto maps a rejection reason; one the contract does not name is POLICY ("anything
// else"), since UNSPECIFIED means "not rejected".
func reasonToProto(r ca.Reason) cav1.RejectionReason {
	if p, ok := reasons[r]; ok {
		return p
	}
	return cav1.RejectionReason_REJECTION_REASON_POLICY
}

func reasonFromProto(r cav1.RejectionReason) ca.Reason {
	for k, v := range reasons {
		if v == r {
			return k
		}
	}
	return ca.ReasonPolicy
}

// Server serves a ca.Client as a plug-in.
type Server struct {
	cav1.UnimplementedCertificateAuthorityServiceServer
	ca ca.Client
}

// NewServer wraps c.
func NewServer(c ca.Client) *Server { return &Server{ca: c} }

// Submit implements CertificateAuthorityService.Submit.
func (s *Server) Submit(ctx context.Context, in *cav1.SubmitRequest) (*cav1.SubmitResponse, error) {
	if in.GetApplicationId() == "" {
		return nil, status.Error(codes.InvalidArgument, "application_id: is required (it is the idempotency key)")
	}
	req := ca.Request{
		ID: in.GetApplicationId(), Domains: in.GetDomains(), CSR: in.GetCsrDer(), Validation: in.GetValidation(),
		Contact: ca.Contact{Name: in.GetContact().GetName(), Email: in.GetContact().GetEmail(), Phone: in.GetContact().GetPhone()},
		Binding: in.GetBinding(),
	}
	if in.GetReplacesPem() != "" {
		req.Replaces = []byte(in.GetReplacesPem())
	}
	if o := in.GetOrganization(); o != nil {
		req.Organization = &ca.Organization{LegalName: o.GetLegalName(), Country: o.GetCountry(), StateOrProvince: o.GetStateOrProvince(),
			Locality: o.GetLocality(), RegistrationNumber: o.GetRegistrationNumber()}
	}
	if in.GetNotAfter() != nil {
		req.NotAfter = in.GetNotAfter().AsTime()
	}
	if in.GetLifetime() != nil {
		req.Lifetime = in.GetLifetime().AsDuration()
	}
	sub, err := s.ca.Submit(ctx, req)
	if err != nil {
		return nil, unavailable("submit", err)
	}
	out := &cav1.SubmitResponse{Ref: sub.Ref}
	for _, r := range sub.Instructions {
		out.Instructions = append(out.Instructions, &cav1.DnsRecord{Name: r.Name, Type: r.Type, Value: r.Value})
	}
	return out, nil
}

// GetStatus implements CertificateAuthorityService.GetStatus.
func (s *Server) GetStatus(ctx context.Context, in *cav1.GetStatusRequest) (*cav1.GetStatusResponse, error) {
	st, err := s.ca.Status(ctx, in.GetRef())
	if err != nil {
		return nil, unavailable("status", err)
	}
	switch st.State {
	case ca.Pending:
		out := &cav1.GetStatusResponse{State: cav1.ApplicationState_APPLICATION_STATE_PENDING}
		if st.RetryAfter > 0 {
			out.RetryAfter = durationpb.New(st.RetryAfter)
		}
		return out, nil
	case ca.Issued:
		return &cav1.GetStatusResponse{State: cav1.ApplicationState_APPLICATION_STATE_ISSUED, CertificateChainPem: string(st.ChainPEM)}, nil
	case ca.Rejected:
		return &cav1.GetStatusResponse{State: cav1.ApplicationState_APPLICATION_STATE_REJECTED,
			RejectionReason: reasonToProto(st.Reason), Message: st.Message}, nil
	}
	return nil, status.Errorf(codes.Internal, "status: unknown state %v", st.State)
}

// Cancel implements CertificateAuthorityService.Cancel.
func (s *Server) Cancel(ctx context.Context, in *cav1.CancelRequest) (*cav1.CancelResponse, error) {
	if err := s.ca.Cancel(ctx, in.GetRef()); err != nil {
		return nil, unavailable("cancel", err)
	}
	return &cav1.CancelResponse{}, nil
}

// Revoke implements CertificateAuthorityService.Revoke for a wrapped CA that can revoke
// (ca.Revoker); one that cannot answers FAILED_PRECONDITION.
func (s *Server) Revoke(ctx context.Context, in *cav1.RevokeRequest) (*cav1.RevokeResponse, error) {
	r, ok := s.ca.(ca.Revoker)
	if !ok {
		return nil, status.Error(codes.FailedPrecondition, "this CA does not revoke certificates")
	}
	if in.GetReason() < 0 || in.GetReason() > 10 {
		return nil, status.Errorf(codes.InvalidArgument, "reason: %d is not an RFC 5280 CRLReason code", in.GetReason())
	}
	err := r.Revoke(ctx, []byte(in.GetCertificateChainPem()), ca.RevocationReason(in.GetReason()))
	if errors.Is(err, ca.ErrNotRevocable) {
		return nil, status.Error(codes.FailedPrecondition, err.Error())
	}
	if err != nil {
		return nil, unavailable("revoke", err)
	}
	return &cav1.RevokeResponse{}, nil
}

// unavailable is a CA error as the contract's "try again": Unavailable, with a google.rpc.RetryInfo
// detail when the CA said how long to wait (a *ca.RetryAfterError), which the client turns back
// into one.
func unavailable(op string, err error) error {
	st := status.Newf(codes.Unavailable, "%s: %v", op, err)
	if d := ca.RetryAfter(err); d > 0 {
		if with, derr := st.WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)}); derr == nil {
			st = with
		}
	}
	return st.Err()
}

// TokenAuth returns interceptors that refuse calls without `authorization: Bearer <token>`
// (the scheme in any case, as RFC 6750 allows; the token compared in constant time). Health checks
// and reflection stay open. An empty token refuses every call: a plug-in whose token file is empty
// must not serve everyone.
func TokenAuth(token string) (grpc.UnaryServerInterceptor, grpc.StreamServerInterceptor) {
	check := func(ctx context.Context, method string) error {
		if strings.HasPrefix(method, "/grpc.health.v1.") || strings.HasPrefix(method, "/grpc.reflection.") {
			return nil
		}
		md, _ := metadata.FromIncomingContext(ctx)
		var scheme, got string
		if v := md.Get("authorization"); len(v) == 1 {
			scheme, got, _ = strings.Cut(v[0], " ")
		}
		if token == "" || !strings.EqualFold(scheme, "Bearer") ||
			subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			return status.Error(codes.Unauthenticated, "missing or wrong plug-in token")
		}
		return nil
	}
	unary := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
		if err := check(ctx, info.FullMethod); err != nil {
			return nil, err
		}
		return h(ctx, req)
	}
	stream := func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, h grpc.StreamHandler) error {
		if err := check(ss.Context(), info.FullMethod); err != nil {
			return err
		}
		return h(srv, ss)
	}
	return unary, stream
}
