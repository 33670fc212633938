package plugin_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/durationpb"

	cav1 "github.com/certhosting/certhosting/gen/go/certhosting/ca/v1"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/plugin"
)

// TestTokenAuth: calls without the token, or with another, are refused with Unauthenticated, and
// through the plug-in client that is an error (try again), never a verdict. Health checks need no
// token.
func TestTokenAuth(t *testing.T) {
	t.Parallel()
	rec := &recordingCA{st: ca.Status{State: ca.Pending}}
	addr := serve(t, plugin.NewServer(rec))
	raw := cav1.NewCertificateAuthorityServiceClient(rawConn(t, addr))

	tests := []struct {
		name          string
		authorization string // the header sent; empty sends none
		want          codes.Code
	}{
		{"no authorization header", "", codes.Unauthenticated},
		{"wrong token", "Bearer wrong-token-0123456789", codes.Unauthenticated},
		{"the token's prefix", "Bearer " + token[:10], codes.Unauthenticated},
		{"empty bearer", "Bearer ", codes.Unauthenticated},
		{"the token without a scheme", token, codes.Unauthenticated},
		{"the token with another scheme", "Basic " + token, codes.Unauthenticated},
		{"the right token", "Bearer " + token, codes.OK},
		{"the right token, scheme in lower case", "bearer " + token, codes.OK},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx := t.Context()
			if tc.authorization != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", tc.authorization)
			}
			_, err := raw.GetStatus(ctx, &cav1.GetStatusRequest{Ref: "ref-1"})
			if got := status.Code(err); got != tc.want {
				t.Errorf("GetStatus = %v (%v), want %v", got, err, tc.want)
			}
		})
	}

	t.Run("the plug-in client with a wrong token gets errors, not verdicts", func(t *testing.T) {
		c := dial(t, plugin.ClientConfig{Address: addr, Token: "wrong-token-0123456789"})
		for _, cl := range calls {
			st, err := cl.do(t.Context(), c)
			if status.Code(err) != codes.Unauthenticated || st.State != 0 {
				t.Errorf("%s = %+v, %v; want an Unauthenticated error and no verdict", cl.name, st, err)
			}
		}
		rec.mu.Lock()
		defer rec.mu.Unlock()
		if len(rec.requests) != 0 || len(rec.refs) != 2 {
			t.Errorf("the CA behind the plug-in saw %d submissions and %d refs; want only the right token's 2 calls", len(rec.requests), len(rec.refs))
		}
	})

	t.Run("a plug-in configured with an empty token refuses every call", func(t *testing.T) {
		lis := listen(t)
		serveOn(t, lis, "", plugin.NewServer(rec))
		raw := cav1.NewCertificateAuthorityServiceClient(rawConn(t, lis.Addr().String()))
		for _, authorization := range []string{"", "Bearer ", "Bearer x"} {
			ctx := t.Context()
			if authorization != "" {
				ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
			}
			if _, err := raw.GetStatus(ctx, &cav1.GetStatusRequest{Ref: "ref-1"}); status.Code(err) != codes.Unauthenticated {
				t.Errorf("GetStatus with authorization %q = %v, want Unauthenticated", authorization, err)
			}
		}
	})

	t.Run("health needs no token", func(t *testing.T) {
		resp, err := healthpb.NewHealthClient(rawConn(t, addr)).Check(t.Context(), &healthpb.HealthCheckRequest{})
		if err != nil || resp.GetStatus() != healthpb.HealthCheckResponse_SERVING {
			t.Errorf("health check without a token = %v, %v; want SERVING", resp.GetStatus(), err)
		}
	})
}

// TestPluginDown: a plug-in that is not running makes every call fail (try again), with no
// verdict; once it serves, the same client reaches it.
func TestPluginDown(t *testing.T) {
	t.Parallel()
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := lis.Addr().String()
	lis.Close()
	c := dial(t, plugin.ClientConfig{Address: addr, Timeout: 2 * time.Second})
	for _, cl := range calls {
		st, err := cl.do(t.Context(), c)
		if err == nil || st.State != 0 {
			t.Errorf("%s with the plug-in down = %+v, %v; want an error and no verdict", cl.name, st, err)
		}
		if status.Code(err) != codes.Unavailable {
			t.Errorf("%s with the plug-in down: code %v, want Unavailable", cl.name, status.Code(err))
		}
	}

	// The plug-in comes up on the same address: the client reconnects by itself.
	lis, err = net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("the port was taken meanwhile: %v", err)
	}
	serveOn(t, lis, token, plugin.NewServer(&recordingCA{st: ca.Status{State: ca.Pending}}))
	waitUntil(t, 10*time.Second, func() error {
		_, err := c.Status(t.Context(), "ref-1")
		return err
	})
}

// TestRetryInfo: a plug-in that says when to come back (a google.rpc.RetryInfo detail) makes the
// client's error a *ca.RetryAfterError with that delay, whichever method failed; without the
// detail the error says nothing about when. A Go plug-in sends the detail when its CA's error is
// a *ca.RetryAfterError.
func TestRetryInfo(t *testing.T) {
	t.Parallel()
	withDelay := func(code codes.Code, d time.Duration) error {
		st, err := status.New(code, "busy").WithDetails(&errdetails.RetryInfo{RetryDelay: durationpb.New(d)})
		if err != nil {
			t.Fatal(err)
		}
		return st.Err()
	}
	goPlugin := func(err error) cav1.CertificateAuthorityServiceServer {
		return plugin.NewServer(&recordingCA{err: err})
	}
	tests := []struct {
		name string
		plug cav1.CertificateAuthorityServiceServer
		code codes.Code
		want time.Duration // zero: no RetryAfterError
	}{
		{"Unavailable with RetryInfo", &rawPlugin{err: withDelay(codes.Unavailable, 42*time.Second)}, codes.Unavailable, 42 * time.Second},
		{"ResourceExhausted with RetryInfo", &rawPlugin{err: withDelay(codes.ResourceExhausted, 90*time.Second)}, codes.ResourceExhausted, 90 * time.Second},
		{"Unavailable without details", &rawPlugin{err: status.Error(codes.Unavailable, "down for maintenance")}, codes.Unavailable, 0},
		{"Internal without details", &rawPlugin{err: status.Error(codes.Internal, "bug")}, codes.Internal, 0},
		{"a Go plug-in whose CA said when", goPlugin(fmt.Errorf("acme: %w", &ca.RetryAfterError{After: 30 * time.Second, Err: errors.New("rate limited")})),
			codes.Unavailable, 30 * time.Second},
		{"a Go plug-in whose CA did not", goPlugin(errors.New("connection refused")), codes.Unavailable, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, plugin.ClientConfig{Address: serve(t, tc.plug)})
			for _, cl := range calls {
				st, err := cl.do(t.Context(), c)
				if err == nil || st.State != 0 {
					t.Fatalf("%s = %+v, %v; want an error and no verdict", cl.name, st, err)
				}
				var ra *ca.RetryAfterError
				if got := errors.As(err, &ra); got != (tc.want > 0) {
					t.Errorf("%s: error is a RetryAfterError: %v, want %v (%v)", cl.name, got, tc.want > 0, err)
				}
				if got := ca.RetryAfter(err); got != tc.want {
					t.Errorf("%s: RetryAfter = %v, want %v", cl.name, got, tc.want)
				}
				if status.Code(err) != tc.code {
					t.Errorf("%s: code %v, want the plug-in's %v", cl.name, status.Code(err), tc.code)
				}
			}
		})
	}
}

// TestCallDeadline: every call has the client's deadline, shorter than the caller's: a plug-in
// that never answers, or a port that accepts connections and never speaks, costs the timeout, and
// is an error.
func TestCallDeadline(t *testing.T) {
	t.Parallel()
	const timeout = 300 * time.Millisecond
	silent := func(t *testing.T) string {
		lis, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { lis.Close() })
		go func() {
			for {
				conn, err := lis.Accept()
				if err != nil {
					return
				}
				t.Cleanup(func() { conn.Close() })
			}
		}()
		return lis.Addr().String()
	}
	tests := []struct {
		name string
		addr func(t *testing.T) string
	}{
		{"the plug-in never answers", func(t *testing.T) string { return serve(t, &rawPlugin{hang: true}) }},
		{"the port accepts and never speaks", silent},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, plugin.ClientConfig{Address: tc.addr(t), Timeout: timeout})
			for _, cl := range calls {
				ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
				start := time.Now()
				st, err := cl.do(ctx, c)
				cancel()
				took := time.Since(start)
				if err == nil || st.State != 0 {
					t.Errorf("%s = %+v, %v; want an error and no verdict", cl.name, st, err)
				}
				if status.Code(err) != codes.DeadlineExceeded {
					t.Errorf("%s: code %v (%v), want DeadlineExceeded", cl.name, status.Code(err), err)
				}
				if took < timeout || took > timeout+2*time.Second {
					t.Errorf("%s took %v; want about the %v timeout", cl.name, took, timeout)
				}
			}
		})
	}
}

// TestRequestTravels: what the lifecycle service asks for reaches the CA behind a Go plug-in
// unchanged: names, CSR, validation, organization, contact, binding, the certificate replaced,
// and the requested end (a time, or a lifetime when no time is given).
func TestRequestTravels(t *testing.T) {
	t.Parallel()
	rec := &recordingCA{sub: ca.Submission{Ref: "ref-1"}}
	c := dial(t, plugin.ClientConfig{Address: serve(t, plugin.NewServer(rec))})
	org := &ca.Organization{LegalName: "Example Shop GmbH", Country: "DE", StateOrProvince: "Berlin", Locality: "Berlin", RegistrationNumber: "HRB 12345"}
	contact := ca.Contact{Name: "Ada Ops", Email: "ops@example.com", Phone: "+49 30 1234567"}
	notAfter := time.Date(2027, 12, 1, 9, 0, 0, 500_000_000, time.UTC)
	tests := []struct {
		name string
		sent ca.Request
		want ca.Request // zero: the same as sent
	}{
		{"DV, first certificate: a lifetime", ca.Request{ID: "app-dv", Domains: []string{"shop.example.com", "*.shop.example.com"},
			CSR: []byte{0x30, 0x01, 0x02}, Validation: "DV", Contact: contact, Binding: "bdl_1", Lifetime: 365 * 24 * time.Hour}, ca.Request{}},
		{"OV renewal: an end time, the organization and the certificate replaced", ca.Request{ID: "app-ov", Domains: []string{"shop.example.com"},
			CSR: []byte{0x30, 0x03}, Validation: "OV", Organization: org, Contact: contact, Binding: "bdl_2", NotAfter: notAfter,
			Replaces: []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")}, ca.Request{}},
		{"EV, as long as allowed", ca.Request{ID: "app-ev", Domains: []string{"bank.example"}, CSR: []byte{0x30}, Validation: "EV",
			Organization: org, Contact: ca.Contact{Email: "ev@example.com"}}, ca.Request{}},
		{"an end time wins over a lifetime", ca.Request{ID: "app-both", Domains: []string{"shop.example.com"}, CSR: []byte{0x30},
			Validation: "DV", NotAfter: notAfter, Lifetime: time.Hour},
			ca.Request{ID: "app-both", Domains: []string{"shop.example.com"}, CSR: []byte{0x30}, Validation: "DV", NotAfter: notAfter}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := c.Submit(t.Context(), tc.sent); err != nil {
				t.Fatalf("Submit: %v", err)
			}
			want := tc.want
			if want.ID == "" {
				want = tc.sent
			}
			got := rec.lastRequest(t)
			if !got.NotAfter.Equal(want.NotAfter) {
				t.Errorf("NotAfter = %v, want %v", got.NotAfter, want.NotAfter)
			}
			got.NotAfter, want.NotAfter = time.Time{}, time.Time{}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("the CA got\n%+v\nwant\n%+v", got, want)
			}
		})
	}
}

// TestAnswersTravel: what the CA behind a Go plug-in answers reaches the lifecycle service
// unchanged: the reference and instructions of a submission, and every state of an application,
// each rejection reason with its message.
func TestAnswersTravel(t *testing.T) {
	t.Parallel()
	rec := &recordingCA{}
	addr := serve(t, plugin.NewServer(rec))
	c := dial(t, plugin.ClientConfig{Address: addr})

	rec.sub = ca.Submission{Ref: "ref-7", Instructions: []ca.DNSRecord{
		{Name: "_certhosting-validation.shop.example.com", Type: "TXT", Value: "v1"},
		{Name: "_acme-challenge.www.example.com", Type: "CNAME", Value: "abc.acme.certhosting.example"},
	}}
	sub, err := c.Submit(t.Context(), ca.Request{ID: "app-1", Domains: []string{"shop.example.com"}})
	if err != nil || !reflect.DeepEqual(sub, rec.sub) {
		t.Errorf("Submit = %+v, %v; want %+v", sub, err, rec.sub)
	}

	chain := []byte("-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n")
	for _, tc := range []struct {
		answered ca.Status
		want     ca.Status // zero: the same
	}{
		{ca.Status{State: ca.Pending, RetryAfter: 7 * time.Second}, ca.Status{}},
		{ca.Status{State: ca.Pending}, ca.Status{}},
		{ca.Status{State: ca.Issued, ChainPEM: chain}, ca.Status{}},
		{ca.Status{State: ca.Rejected, Reason: ca.ReasonDNS, Message: "record not found"}, ca.Status{}},
		{ca.Status{State: ca.Rejected, Reason: ca.ReasonOrganization, Message: "not registered"}, ca.Status{}},
		{ca.Status{State: ca.Rejected, Reason: ca.ReasonCAA, Message: "CAA forbids"}, ca.Status{}},
		{ca.Status{State: ca.Rejected, Reason: ca.ReasonPolicy, Message: "refused"}, ca.Status{}},
		// A reason the contract does not name is "anything else the CA's policy refuses".
		{ca.Status{State: ca.Rejected, Reason: "SANCTIONS", Message: "embargoed"},
			ca.Status{State: ca.Rejected, Reason: ca.ReasonPolicy, Message: "embargoed"}},
	} {
		rec.mu.Lock()
		rec.st = tc.answered
		rec.mu.Unlock()
		want := tc.want
		if want.State == 0 {
			want = tc.answered
		}
		got, err := c.Status(t.Context(), "ref-7")
		if err != nil || !reflect.DeepEqual(got, want) {
			t.Errorf("the CA answered %+v; Status = %+v, %v; want %+v", tc.answered, got, err, want)
		}
	}
	// On the wire too, for plug-in clients in other languages: UNSPECIFIED means "not rejected".
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+token)
	resp, err := cav1.NewCertificateAuthorityServiceClient(rawConn(t, addr)).GetStatus(ctx, &cav1.GetStatusRequest{Ref: "ref-7"})
	if err != nil || resp.GetRejectionReason() != cav1.RejectionReason_REJECTION_REASON_POLICY {
		t.Errorf("GetStatus of a rejection for SANCTIONS = %v, %v; want REJECTION_REASON_POLICY", resp.GetRejectionReason(), err)
	}
	rec.mu.Lock()
	defer rec.mu.Unlock()
	for _, ref := range rec.refs {
		if ref != "ref-7" {
			t.Errorf("the CA was asked about %q, want ref-7", ref)
		}
	}
}

// TestServerErrors: the Go plug-in server keeps the contract's meaning: its CA's errors are
// Unavailable (try again), a request without its idempotency key is InvalidArgument.
func TestServerErrors(t *testing.T) {
	t.Parallel()
	addr := serve(t, plugin.NewServer(&recordingCA{err: errors.New("database is locked")}))
	c := dial(t, plugin.ClientConfig{Address: addr})
	for _, cl := range calls {
		st, err := cl.do(t.Context(), c)
		if status.Code(err) != codes.Unavailable || st.State != 0 || !strings.Contains(err.Error(), "database is locked") {
			t.Errorf("%s with the CA failing = %+v, %v; want Unavailable with the CA's error, no verdict", cl.name, st, err)
		}
	}
	ctx := metadata.AppendToOutgoingContext(t.Context(), "authorization", "Bearer "+token)
	_, err := cav1.NewCertificateAuthorityServiceClient(rawConn(t, addr)).Submit(ctx, &cav1.SubmitRequest{Domains: []string{"shop.example.com"}})
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), "application_id:") {
		t.Errorf("Submit without application_id = %v, want InvalidArgument naming application_id", err)
	}
}

// TestNonsenseAnswers: a plug-in whose answer breaks the contract (no state, issued without a
// chain, no ref) is broken, which is an error (fixed and polled again), not a verdict on the
// customer's certificate.
func TestNonsenseAnswers(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		p    *rawPlugin
		call call
	}{
		{"GetStatus without a state", &rawPlugin{status: &cav1.GetStatusResponse{}}, calls[1]},
		{"GetStatus issued without a chain", &rawPlugin{status: &cav1.GetStatusResponse{State: cav1.ApplicationState_APPLICATION_STATE_ISSUED}}, calls[1]},
		{"Submit without a ref", &rawPlugin{submit: &cav1.SubmitResponse{}}, calls[0]},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			c := dial(t, plugin.ClientConfig{Address: serve(t, tc.p)})
			if st, err := tc.call.do(t.Context(), c); err == nil || st.State != 0 {
				t.Errorf("%s = %+v, %v; want an error, no verdict", tc.call.name, st, err)
			}
		})
	}
}
