package lifecycle_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/internal/smtptest"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/notify"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// receiver is a webhook endpoint in the test: an httptest TLS server that verifies every
// delivery's signature with the Standard Webhooks library and records the verified payloads.
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	secret []string // secrets it accepts; set after CreateWebhookEndpoint
	got    []*lifecyclev1.NotificationPayload
	sigs   []string
	status int // answer; 0: 204
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.status != 0 {
			w.WriteHeader(r.status)
			return
		}
		for _, s := range r.secret {
			wh, err := standardwebhooks.NewWebhook(s)
			if err != nil {
				t.Error(err)
				return
			}
			// The fake clock is not the wall clock: the timestamp is checked by the tests.
			if err := wh.VerifyIgnoringTimestamp(body, req.Header); err != nil {
				t.Errorf("delivery %s: signature with %s…: %v", req.Header.Get("webhook-id"), s[:10], err)
				w.WriteHeader(http.StatusBadRequest)
				return
			}
		}
		var p lifecyclev1.NotificationPayload
		if err := protojson.Unmarshal(body, &p); err != nil {
			t.Errorf("payload %s: %v", body, err)
		}
		r.got = append(r.got, &p)
		r.sigs = append(r.sigs, req.Header.Get("webhook-signature"))
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) payloads() []*lifecyclev1.NotificationPayload {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]*lifecyclev1.NotificationPayload(nil), r.got...)
}

// trusting is an HTTP client trusting the test servers' certificates (as -webhook-ca-file does).
func trusting(servers ...*httptest.Server) *http.Client {
	pool := x509.NewCertPool()
	for _, s := range servers {
		pool.AddCert(s.Certificate())
	}
	return &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

func (e *env) dispatcher(o notify.Options) *notify.Dispatcher {
	o.Store, o.Clock, o.Keys, o.Log = e.st, e.clk, e.box, grpctest.Logger(e.t)
	return notify.New(o)
}

// sweep runs the dispatcher once and waits for its workers.
func sweep(t *testing.T, d *notify.Dispatcher) {
	t.Helper()
	if err := d.RunOnce(context.Background()); err != nil {
		t.Fatal(err)
	}
	d.Wait()
}

// webhookTargets makes, for the authorization matrix, an endpoint, a spare endpoint and a
// delivery of A's and of B's.
func webhookTargets(t *testing.T, e *env) (aEP, aSpare, bEP, bSpare, aDelivery, bDelivery string) {
	t.Helper()
	mk := func(c lifecyclev1.WebhookServiceClient) string {
		resp, err := c.CreateWebhookEndpoint(e.ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: "https://127.0.0.1:1/hook"})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetWebhookEndpoint().GetWebhookEndpointId()
	}
	aEP, aSpare, bEP, bSpare = mk(e.webhooksA), mk(e.webhooksA), mk(e.webhooksB), mk(e.webhooksB)
	sweep(t, e.dispatcher(notify.Options{Timeout: time.Second}))
	first := func(c lifecyclev1.WebhookServiceClient, ep string) string {
		resp, err := c.ListWebhookDeliveries(e.ctx, &lifecyclev1.ListWebhookDeliveriesRequest{WebhookEndpointId: ep})
		if err != nil {
			t.Fatal(err)
		}
		if len(resp.GetWebhookDeliveries()) == 0 {
			t.Fatalf("no delivery to %s after the account's events", ep)
		}
		return resp.GetWebhookDeliveries()[0].GetWebhookDeliveryId()
	}
	return aEP, aSpare, bEP, bSpare, first(e.webhooksA, aEP), first(e.webhooksB, bEP)
}

func TestWebhookRequestValidation(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ep, err := e.webhooksA.CreateWebhookEndpoint(e.ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: "https://hooks.example.com/a"})
	if err != nil {
		t.Fatal(err)
	}
	epID := ep.GetWebhookEndpoint().GetWebhookEndpointId()
	bEP, err := e.webhooksB.CreateWebhookEndpoint(e.ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: "https://hooks.example.com/b"})
	if err != nil {
		t.Fatal(err)
	}
	missingEP := ids.New(ids.WebhookEndpoint, e.clk.Now())
	c := e.webhooksA
	create := func(r *lifecyclev1.CreateWebhookEndpointRequest) func() error {
		return func() error { _, err := c.CreateWebhookEndpoint(e.ctx, r); return err }
	}
	update := func(ep *lifecyclev1.WebhookEndpoint, paths ...string) func() error {
		return func() error {
			var mask *fieldmaskpb.FieldMask
			if paths != nil {
				mask = &fieldmaskpb.FieldMask{Paths: paths}
			}
			_, err := c.UpdateWebhookEndpoint(e.ctx, &lifecyclev1.UpdateWebhookEndpointRequest{WebhookEndpoint: ep, UpdateMask: mask})
			return err
		}
	}
	tests := []struct {
		name  string
		call  func() error
		code  codes.Code
		field string
	}{
		{"create: no url", create(&lifecyclev1.CreateWebhookEndpointRequest{}), codes.InvalidArgument, "url"},
		{"create: http url", create(&lifecyclev1.CreateWebhookEndpointRequest{Url: "http://hooks.example.com/"}), codes.InvalidArgument, "url"},
		{"create: no host", create(&lifecyclev1.CreateWebhookEndpointRequest{Url: "https:///path"}), codes.InvalidArgument, "url"},
		{"create: user info", create(&lifecyclev1.CreateWebhookEndpointRequest{Url: "https://u:p@hooks.example.com/"}), codes.InvalidArgument, "url"},
		{"create: not a url", create(&lifecyclev1.CreateWebhookEndpointRequest{Url: "https://exa mple.com/%zz"}), codes.InvalidArgument, "url"},
		{"create: long url", create(&lifecyclev1.CreateWebhookEndpointRequest{Url: "https://hooks.example.com/" + strings.Repeat("a", 2000)}), codes.InvalidArgument, "url"},
		{"create: unspecified kind", create(&lifecyclev1.CreateWebhookEndpointRequest{Url: "https://h.example.com/", EventKinds: []lifecyclev1.NotificationKind{0}}), codes.InvalidArgument, "event_kinds"},
		{"create: unknown kind", create(&lifecyclev1.CreateWebhookEndpointRequest{Url: "https://h.example.com/", EventKinds: []lifecyclev1.NotificationKind{99}}), codes.InvalidArgument, "event_kinds"},
		{"create: kind twice", create(&lifecyclev1.CreateWebhookEndpointRequest{Url: "https://h.example.com/", EventKinds: []lifecyclev1.NotificationKind{2, 2}}), codes.InvalidArgument, "event_kinds"},
		{"create: long description", create(&lifecyclev1.CreateWebhookEndpointRequest{Url: "https://h.example.com/", Description: strings.Repeat("d", 201)}), codes.InvalidArgument, "description"},
		{"create: control character", create(&lifecyclev1.CreateWebhookEndpointRequest{Url: "https://h.example.com/", Description: "a\x00b"}), codes.InvalidArgument, "description"},
		{"get: no id", func() error {
			_, err := c.GetWebhookEndpoint(e.ctx, &lifecyclev1.GetWebhookEndpointRequest{})
			return err
		}, codes.InvalidArgument, "webhook_endpoint_id"},
		{"get: malformed id", func() error {
			_, err := c.GetWebhookEndpoint(e.ctx, &lifecyclev1.GetWebhookEndpointRequest{WebhookEndpointId: "whe_x"})
			return err
		}, codes.InvalidArgument, "webhook_endpoint_id"},
		{"get: missing", func() error {
			_, err := c.GetWebhookEndpoint(e.ctx, &lifecyclev1.GetWebhookEndpointRequest{WebhookEndpointId: missingEP})
			return err
		}, codes.NotFound, ""},
		{"get: another account's", func() error {
			_, err := c.GetWebhookEndpoint(e.ctx, &lifecyclev1.GetWebhookEndpointRequest{WebhookEndpointId: bEP.GetWebhookEndpoint().GetWebhookEndpointId()})
			return err
		}, codes.NotFound, ""},
		{"update: no endpoint", update(nil, "url"), codes.InvalidArgument, "webhook_endpoint"},
		{"update: no id", update(&lifecyclev1.WebhookEndpoint{}, "url"), codes.InvalidArgument, "webhook_endpoint.webhook_endpoint_id"},
		{"update: no mask", update(&lifecyclev1.WebhookEndpoint{WebhookEndpointId: epID}), codes.InvalidArgument, "update_mask"},
		{"update: unknown path", update(&lifecyclev1.WebhookEndpoint{WebhookEndpointId: epID}, "create_time"), codes.InvalidArgument, "update_mask"},
		{"update: path twice", update(&lifecyclev1.WebhookEndpoint{WebhookEndpointId: epID, Description: "x"}, "description", "description"), codes.InvalidArgument, "update_mask"},
		{"update: bad url", update(&lifecyclev1.WebhookEndpoint{WebhookEndpointId: epID, Url: "ftp://x"}, "url"), codes.InvalidArgument, "url"},
		{"update: bad kinds", update(&lifecyclev1.WebhookEndpoint{WebhookEndpointId: epID, EventKinds: []lifecyclev1.NotificationKind{0}}, "event_kinds"), codes.InvalidArgument, "event_kinds"},
		{"update: bad description", update(&lifecyclev1.WebhookEndpoint{WebhookEndpointId: epID, Description: "\x07"}, "description"), codes.InvalidArgument, "description"},
		{"update: missing", update(&lifecyclev1.WebhookEndpoint{WebhookEndpointId: missingEP}, "disabled"), codes.NotFound, ""},
		{"delete: no id", func() error {
			_, err := c.DeleteWebhookEndpoint(e.ctx, &lifecyclev1.DeleteWebhookEndpointRequest{})
			return err
		}, codes.InvalidArgument, "webhook_endpoint_id"},
		{"delete: missing", func() error {
			_, err := c.DeleteWebhookEndpoint(e.ctx, &lifecyclev1.DeleteWebhookEndpointRequest{WebhookEndpointId: missingEP})
			return err
		}, codes.NotFound, ""},
		{"rotate: no id", func() error {
			_, err := c.RotateWebhookSecret(e.ctx, &lifecyclev1.RotateWebhookSecretRequest{})
			return err
		}, codes.InvalidArgument, "webhook_endpoint_id"},
		{"rotate: missing", func() error {
			_, err := c.RotateWebhookSecret(e.ctx, &lifecyclev1.RotateWebhookSecretRequest{WebhookEndpointId: missingEP})
			return err
		}, codes.NotFound, ""},
		{"deliveries: bad endpoint", func() error {
			_, err := c.ListWebhookDeliveries(e.ctx, &lifecyclev1.ListWebhookDeliveriesRequest{WebhookEndpointId: "crt_1"})
			return err
		}, codes.InvalidArgument, "webhook_endpoint_id"},
		{"deliveries: bad page size", func() error {
			_, err := c.ListWebhookDeliveries(e.ctx, &lifecyclev1.ListWebhookDeliveriesRequest{PageSize: -1})
			return err
		}, codes.InvalidArgument, "page_size"},
		{"deliveries: bad page token", func() error {
			_, err := c.ListWebhookDeliveries(e.ctx, &lifecyclev1.ListWebhookDeliveriesRequest{PageToken: "!!"})
			return err
		}, codes.InvalidArgument, "page_token"},
		{"replay: no id", func() error {
			_, err := c.ReplayWebhookDelivery(e.ctx, &lifecyclev1.ReplayWebhookDeliveryRequest{})
			return err
		}, codes.InvalidArgument, "webhook_delivery_id"},
		{"replay: missing", func() error {
			_, err := c.ReplayWebhookDelivery(e.ctx, &lifecyclev1.ReplayWebhookDeliveryRequest{WebhookDeliveryId: ids.New(ids.WebhookDelivery, e.clk.Now())})
			return err
		}, codes.NotFound, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			if got := status.Code(err); got != tc.code {
				t.Fatalf("got %v, want %v", err, tc.code)
			}
			if tc.field != "" && !strings.Contains(status.Convert(err).Message(), tc.field) {
				t.Errorf("message %q does not name %s", status.Convert(err).Message(), tc.field)
			}
		})
	}

	// The account's limit.
	for i := 1; i < 20; i++ {
		if _, err := c.CreateWebhookEndpoint(e.ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: "https://hooks.example.com/n"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.CreateWebhookEndpoint(e.ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: "https://hooks.example.com/21"}); status.Code(err) != codes.FailedPrecondition {
		t.Errorf("21st endpoint: %v, want FailedPrecondition", err)
	}
}

func TestWebhookEndpointLifecycleIsAudited(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	c := e.webhooksA
	created, err := c.CreateWebhookEndpoint(e.ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: "https://hooks.example.com/a",
		EventKinds: []lifecyclev1.NotificationKind{lifecyclev1.NotificationKind_NOTIFICATION_KIND_ISSUED}, Description: "ops"})
	if err != nil {
		t.Fatal(err)
	}
	if s := created.GetSecret(); !strings.HasPrefix(s, "whsec_") || len(s) < 40 {
		t.Errorf("secret %q, want whsec_ and base64 of 32 bytes", s)
	}
	id := created.GetWebhookEndpoint().GetWebhookEndpointId()
	upd, err := c.UpdateWebhookEndpoint(e.ctx, &lifecyclev1.UpdateWebhookEndpointRequest{
		WebhookEndpoint: &lifecyclev1.WebhookEndpoint{WebhookEndpointId: id, Url: "https://hooks.example.com/b", Description: "ignored"},
		UpdateMask:      &fieldmaskpb.FieldMask{Paths: []string{"url"}}})
	if err != nil {
		t.Fatal(err)
	}
	if got := upd.GetWebhookEndpoint(); got.GetUrl() != "https://hooks.example.com/b" || got.GetDescription() != "ops" || len(got.GetEventKinds()) != 1 {
		t.Errorf("after updating url: %v", got)
	}
	rot, err := c.RotateWebhookSecret(e.ctx, &lifecyclev1.RotateWebhookSecretRequest{WebhookEndpointId: id})
	if err != nil {
		t.Fatal(err)
	}
	if rot.GetSecret() == created.GetSecret() || !rot.GetWebhookEndpoint().GetPreviousSecretExpireTime().AsTime().Equal(e.clk.Now().Add(24*time.Hour)) {
		t.Errorf("rotation: %v", rot)
	}
	list, err := c.ListWebhookEndpoints(e.ctx, &lifecyclev1.ListWebhookEndpointsRequest{})
	if err != nil || len(list.GetWebhookEndpoints()) != 1 {
		t.Fatalf("list: %v, %v", list, err)
	}
	if _, err := c.DeleteWebhookEndpoint(e.ctx, &lifecyclev1.DeleteWebhookEndpointRequest{WebhookEndpointId: id}); err != nil {
		t.Fatal(err)
	}
	if _, err := c.GetWebhookEndpoint(e.ctx, &lifecyclev1.GetWebhookEndpointRequest{WebhookEndpointId: id}); status.Code(err) != codes.NotFound {
		t.Errorf("get after delete: %v", err)
	}
	// Through AccountService, filtered by the new kind.
	audit, err := lifecyclev1.NewAccountServiceClient(e.gs.Dial(t, e.keyA)).ListAuditEvents(e.ctx, &lifecyclev1.ListAuditEventsRequest{
		Kinds: []lifecyclev1.AuditEventKind{lifecyclev1.AuditEventKind_AUDIT_EVENT_KIND_WEBHOOK_ENDPOINT_CHANGED}})
	if err != nil {
		t.Fatal(err)
	}
	var details []string
	for _, a := range audit.GetAuditEvents() {
		if a.GetResource() == id {
			details = append(details, a.GetDetail())
		}
	}
	if len(details) != 4 || !strings.HasPrefix(details[3], "created") || !strings.HasPrefix(details[0], "deleted") {
		t.Errorf("audit of %s, newest first: %q; want deleted, rotated, updated, created", id, details)
	}
}

// TestWebhookDeliverySigned: an issuance is delivered to the endpoint that wants ISSUED, signed
// as Standard Webhooks specifies, and not to the one that wants only RENEWED; the delivery log
// shows it; a replay delivers the same webhook-id again.
func TestWebhookDeliverySigned(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r, other := newReceiver(t), newReceiver(t)
	mk := func(rc *receiver, kinds ...lifecyclev1.NotificationKind) string {
		resp, err := e.webhooksA.CreateWebhookEndpoint(e.ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: rc.srv.URL + "/hook", EventKinds: kinds})
		if err != nil {
			t.Fatal(err)
		}
		rc.secret = []string{resp.GetSecret()}
		return resp.GetWebhookEndpoint().GetWebhookEndpointId()
	}
	ep := mk(r, lifecyclev1.NotificationKind_NOTIFICATION_KIND_ISSUED)
	mk(other, lifecyclev1.NotificationKind_NOTIFICATION_KIND_RENEWED)
	d := e.dispatcher(notify.Options{HTTP: trusting(r.srv, other.srv)})

	b := e.buy("dv-single", dv, single, 1, 1, false)
	cert := b.GetCertificates()[0].GetCertificateId()
	e.issue(application(cert, "signed.example.com"))
	sweep(t, d)

	got := r.payloads()
	if len(got) != 1 || got[0].GetKind() != lifecyclev1.NotificationKind_NOTIFICATION_KIND_ISSUED || got[0].GetCertificateId() != cert ||
		got[0].GetBundleId() != b.GetBundleId() || got[0].GetAccountId() != e.accA {
		t.Fatalf("receiver got %v, want one ISSUED of %s", got, cert)
	}
	if n := len(other.payloads()); n != 0 {
		t.Errorf("the RENEWED-only endpoint got %d deliveries", n)
	}
	log, err := e.webhooksA.ListWebhookDeliveries(e.ctx, &lifecyclev1.ListWebhookDeliveriesRequest{WebhookEndpointId: ep})
	if err != nil {
		t.Fatal(err)
	}
	if ds := log.GetWebhookDeliveries(); len(ds) != 1 || ds[0].GetStatus() != lifecyclev1.WebhookDeliveryStatus_WEBHOOK_DELIVERY_STATUS_SUCCEEDED ||
		ds[0].GetAttempts() != 1 || ds[0].GetLastStatusCode() != 204 || ds[0].GetNotificationId() != got[0].GetNotificationId() {
		t.Fatalf("delivery log: %v", ds)
	}
	rep, err := e.webhooksA.ReplayWebhookDelivery(e.ctx, &lifecyclev1.ReplayWebhookDeliveryRequest{WebhookDeliveryId: log.GetWebhookDeliveries()[0].GetWebhookDeliveryId()})
	if err != nil {
		t.Fatal(err)
	}
	if rep.GetWebhookDelivery().GetStatus() != lifecyclev1.WebhookDeliveryStatus_WEBHOOK_DELIVERY_STATUS_PENDING {
		t.Errorf("replay: %v", rep)
	}
	sweep(t, d)
	if got := r.payloads(); len(got) != 2 || got[1].GetNotificationId() != got[0].GetNotificationId() {
		t.Errorf("after replay the receiver has %v, want the same notification twice", got)
	}
}

// TestWebhookRotationSignsWithBoth: for 24 h after a rotation both secrets sign; after, only
// the new one.
func TestWebhookRotationSignsWithBoth(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := newReceiver(t)
	created, err := e.webhooksA.CreateWebhookEndpoint(e.ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: r.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	id := created.GetWebhookEndpoint().GetWebhookEndpointId()
	rot, err := e.webhooksA.RotateWebhookSecret(e.ctx, &lifecyclev1.RotateWebhookSecretRequest{WebhookEndpointId: id})
	if err != nil {
		t.Fatal(err)
	}
	// The receiver demands that each secret alone verifies the delivery.
	r.secret = []string{created.GetSecret(), rot.GetSecret()}
	d := e.dispatcher(notify.Options{HTTP: trusting(r.srv)})
	e.issue(application(e.buy("dv-single", dv, single, 1, 1, false).GetCertificates()[0].GetCertificateId(), "rot.example.com"))
	sweep(t, d)
	if len(r.payloads()) == 0 || len(strings.Fields(r.sigs[0])) != 2 {
		t.Fatalf("within 24 h: %d deliveries, signatures %q; want two signatures", len(r.payloads()), r.sigs)
	}
	e.clk.Advance(25 * time.Hour)
	r.secret = []string{rot.GetSecret()}
	n := len(r.payloads())
	e.issue(application(e.buy("dv-single", dv, single, 1, 1, false).GetCertificates()[0].GetCertificateId(), "rot2.example.com"))
	sweep(t, d)
	if got := r.payloads(); len(got) <= n || len(strings.Fields(r.sigs[len(r.sigs)-1])) != 1 {
		t.Errorf("after 25 h: signatures %q, want one", r.sigs[n:])
	}
}

// TestWebhookRetriesThenFails: a failing endpoint is retried with growing delays (fake clock)
// and marked failed once 3 days have passed; an endpoint that recovers gets the delivery.
func TestWebhookRetriesThenFails(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := newReceiver(t)
	r.status = http.StatusServiceUnavailable
	created, err := e.webhooksA.CreateWebhookEndpoint(e.ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: r.srv.URL,
		EventKinds: []lifecyclev1.NotificationKind{lifecyclev1.NotificationKind_NOTIFICATION_KIND_ISSUED}})
	if err != nil {
		t.Fatal(err)
	}
	r.secret = []string{created.GetSecret()}
	d := e.dispatcher(notify.Options{HTTP: trusting(r.srv)})
	e.issue(application(e.buy("dv-single", dv, single, 1, 1, false).GetCertificates()[0].GetCertificateId(), "retry.example.com"))
	queued := e.clk.Now()
	sweep(t, d)
	delivery := func() *lifecyclev1.WebhookDelivery {
		log, err := e.webhooksA.ListWebhookDeliveries(e.ctx, &lifecyclev1.ListWebhookDeliveriesRequest{})
		if err != nil || len(log.GetWebhookDeliveries()) != 1 {
			t.Fatalf("log: %v %v", log, err)
		}
		return log.GetWebhookDeliveries()[0]
	}
	var prevGap time.Duration
	for i := 0; ; i++ {
		got := delivery()
		if got.GetStatus() == lifecyclev1.WebhookDeliveryStatus_WEBHOOK_DELIVERY_STATUS_FAILED {
			if at := got.GetLastAttemptTime().AsTime(); at.Sub(queued) > 72*time.Hour || at.Sub(queued) < 36*time.Hour {
				t.Errorf("failed at %v after queueing, want within 3 days and not long before", at.Sub(queued))
			}
			if got.GetAttempts() < 8 || got.GetLastStatusCode() != 503 || !strings.Contains(got.GetLastError(), "503") {
				t.Errorf("failed delivery: %v", got)
			}
			break
		}
		if i > 100 {
			t.Fatal("never gave up")
		}
		gap := got.GetNextAttemptTime().AsTime().Sub(got.GetLastAttemptTime().AsTime())
		// Equal jitter: each delay is at least half its nominal, which doubles up to 6 h.
		if i > 0 && gap < prevGap/4 {
			t.Errorf("attempt %d: delay %v after %v; want growing", got.GetAttempts(), gap, prevGap)
		}
		prevGap = gap
		e.clk.Advance(gap)
		sweep(t, d)
	}

	// A second issuance; the endpoint recovers after two failures.
	e.issue(application(e.buy("dv-single", dv, single, 1, 1, false).GetCertificates()[0].GetCertificateId(), "retry2.example.com"))
	sweep(t, d)
	e.clk.Advance(time.Minute)
	sweep(t, d)
	r.mu.Lock()
	r.status = 0
	r.mu.Unlock()
	e.clk.Advance(2 * time.Minute)
	sweep(t, d)
	if got := r.payloads(); len(got) != 1 {
		t.Fatalf("after recovery: %d deliveries, want 1", len(got))
	}
}

// TestWebhookSlowEndpointIsolated: an endpoint that never answers holds up neither another
// account's endpoint nor a renewal tick.
func TestWebhookSlowEndpointIsolated(t *testing.T) {
	t.Parallel()
	e := supportEnv(t)
	release := make(chan struct{})
	var hung sync.WaitGroup
	hung.Add(1)
	var once sync.Once
	slow := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		once.Do(hung.Done)
		select {
		case <-release:
		case <-req.Context().Done():
		}
	}))
	defer slow.Close()
	defer close(release)
	healthy := newReceiver(t)
	if _, err := e.webhooksA.CreateWebhookEndpoint(e.ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: slow.URL}); err != nil {
		t.Fatal(err)
	}
	created, err := e.webhooksB.CreateWebhookEndpoint(e.ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: healthy.srv.URL})
	if err != nil {
		t.Fatal(err)
	}
	healthy.secret = []string{created.GetSecret()}
	// A request timeout far beyond the test: only isolation lets the healthy endpoint through.
	d := e.dispatcher(notify.Options{HTTP: trusting(slow, healthy.srv), Timeout: time.Hour})
	ctx, cancel := context.WithCancel(e.ctx)
	defer cancel()

	e.issue(application(e.buy("dv-single", dv, single, 1, 1, false).GetCertificates()[0].GetCertificateId(), "slow.example.com"))
	if err := d.RunOnce(ctx); err != nil {
		t.Fatal(err)
	}
	hung.Wait()                  // A's endpoint holds a delivery
	rejectFor(t, e, e.accB, e.b) // B: a rejected application opens a support case
	deadline := time.Now().Add(20 * time.Second)
	for len(healthy.payloads()) == 0 && time.Now().Before(deadline) {
		if err := d.RunOnce(ctx); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if len(healthy.payloads()) == 0 {
		t.Fatal("B's endpoint got nothing while A's hung")
	}
	// The ticker does not wait for notifications: a tick finishes while A's delivery hangs.
	done := make(chan struct{})
	go func() { _, _ = e.ticker.Tick(e.ctx, e.clk.Now()); close(done) }()
	select {
	case <-done:
	case <-time.After(20 * time.Second):
		t.Fatal("a tick waited for the hanging endpoint")
	}
	cancel()
	d.Wait()
}

// TestNotificationQueueSurvivesRestart: notifications fanned out but not yet delivered (the
// endpoint was down) are delivered by a new process over the same database; events appended
// while no dispatcher runs are fanned out by the next one, none twice.
func TestNotificationQueueSurvivesRestart(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	r := newReceiver(t)
	r.status = http.StatusBadGateway
	created, err := e.webhooksA.CreateWebhookEndpoint(e.ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: r.srv.URL,
		EventKinds: []lifecyclev1.NotificationKind{lifecyclev1.NotificationKind_NOTIFICATION_KIND_ISSUED}})
	if err != nil {
		t.Fatal(err)
	}
	r.secret = []string{created.GetSecret()}
	e.issue(application(e.buy("dv-single", dv, single, 1, 1, false).GetCertificates()[0].GetCertificateId(), "crash1.example.com"))
	sweep(t, e.dispatcher(notify.Options{HTTP: trusting(r.srv)})) // queued, first attempt failed
	e.issue(application(e.buy("dv-single", dv, single, 1, 1, false).GetCertificates()[0].GetCertificateId(), "crash2.example.com"))

	// "Crash": close the database and open it again as a new process would.
	if err := e.db.Close(); err != nil {
		t.Fatal(err)
	}
	reopened := store.New(grpctest.OpenDBWith(t, e.dir, "lifecycle.db", store.DBOptions()), nil)
	r.mu.Lock()
	r.status = 0
	r.mu.Unlock()
	e.clk.Advance(time.Hour)
	d := notify.New(notify.Options{Store: reopened, Clock: e.clk, Keys: e.box, HTTP: trusting(r.srv)})
	sweep(t, d)
	sweep(t, d)
	got := r.payloads()
	if len(got) != 2 || got[0].GetNotificationId() == got[1].GetNotificationId() {
		t.Fatalf("after the restart: %v, want both issuances once", got)
	}
}

// TestEmailNotifications: with a mailer, an issuance e-mails the application's contact, and a
// support case e-mails its engineer too (-support-engineer-emails); the SMTP server is go-smtp.
func TestEmailNotifications(t *testing.T) {
	t.Parallel()
	e := supportEnv(t)
	srv := smtptest.Start(t)
	d := e.dispatcher(notify.Options{Mail: &notify.SMTP{Addr: srv.Addr, From: "certhosting@example.net"},
		Engineers: map[string]string{"alice": "alice@example.net", "bob": "bob@example.net"}})
	cert := e.buy("dv-single", dv, single, 1, 1, false).GetCertificates()[0].GetCertificateId()
	e.issue(application(cert, "mail.example.com"))
	sweep(t, d)
	msgs := srv.Messages()
	var issued *smtptest.Message
	for i, m := range msgs {
		if strings.Contains(m.Data, "Subject: [certhosting] Certificate issued: "+cert) {
			issued = &msgs[i]
		}
	}
	if issued == nil || len(issued.To) != 1 || issued.To[0] != contact.GetEmail() || issued.From != "certhosting@example.net" {
		t.Fatalf("messages %+v: want one 'Certificate issued' to %s", msgs, contact.GetEmail())
	}

	n := len(msgs)
	caseID := rejectFor(t, e, e.accA, e.a)
	sweep(t, d)
	var to []string
	for _, m := range srv.Messages()[n:] {
		if strings.Contains(m.Data, "Support case opened") && strings.Contains(m.Data, caseID) {
			to = append(to, m.To...)
		}
	}
	c, err := e.aSupport.GetSupportCase(e.ctx, &lifecyclev1.GetSupportCaseRequest{CaseId: caseID})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"alice": "alice@example.net", "bob": "bob@example.net"}[c.GetCase().GetAssignee()]
	// The two mails go out in notification id order. Ids made in one millisecond sort in the
	// order they were made only while no id of another millisecond is made in between (pkg/ids'
	// monotonic entropy), and parallel tests' clocks make such ids: either mail may go first.
	slices.Sort(to)
	if wantTo := slices.Sorted(slices.Values([]string{contact.GetEmail(), want})); !slices.Equal(to, wantTo) {
		t.Errorf("case %s opened: mail to %v, want the contact and %s", caseID, to, want)
	}
}

// TestWebhookRenewalFailedNamesCase: a rejected re-issue is notified as RENEWAL_FAILED with the
// support case it opened.
func TestWebhookRenewalFailedNamesCase(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{recheck: 10 * time.Minute})
	r := newReceiver(t)
	created, err := e.webhooksA.CreateWebhookEndpoint(e.ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: r.srv.URL,
		EventKinds: []lifecyclev1.NotificationKind{lifecyclev1.NotificationKind_NOTIFICATION_KIND_RENEWAL_FAILED}})
	if err != nil {
		t.Fatal(err)
	}
	r.secret = []string{created.GetSecret()}
	d := e.dispatcher(notify.Options{HTTP: trusting(r.srv)})
	cert := e.buy("dv-single", dv, single, 1, 2, false).GetCertificates()[0].GetCertificateId()
	sub := e.submit(application(cert, "shop.example.com"))
	e.publish(sub.GetInstructions())
	e.tick()
	e.clk.Advance(150 * day)
	e.withhold(sub.GetInstructions())
	if _, err := e.reissue(cert); err != nil {
		t.Fatalf("ReissueCertificate: %v", err)
	}
	e.advance(2*time.Hour, nil)
	sweep(t, d)
	caseID := e.certificate(cert).GetRenewalSupportCaseId()
	got := r.payloads()
	if caseID == "" || len(got) != 1 || got[0].GetKind() != lifecyclev1.NotificationKind_NOTIFICATION_KIND_RENEWAL_FAILED ||
		got[0].GetSupportCaseId() != caseID || got[0].GetCertificateId() != cert {
		t.Fatalf("deliveries %v; want one RENEWAL_FAILED of %s naming case %q", got, cert, caseID)
	}
}

// TestWebhookSupportCaseUpdates: a note on a case and its resolution by an engineer are history
// events of the instance, and each reaches an endpoint that wants it as SUPPORT_CASE_UPDATED and
// SUPPORT_CASE_RESOLVED naming the case.
func TestWebhookSupportCaseUpdates(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{rejectOrg: regexp.MustCompile("Evil")})
	r := newReceiver(t)
	created, err := e.webhooksA.CreateWebhookEndpoint(e.ctx, &lifecyclev1.CreateWebhookEndpointRequest{Url: r.srv.URL,
		EventKinds: []lifecyclev1.NotificationKind{lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_UPDATED,
			lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_RESOLVED}})
	if err != nil {
		t.Fatal(err)
	}
	r.secret = []string{created.GetSecret()}
	d := e.dispatcher(notify.Options{HTTP: trusting(r.srv)})
	cert := e.rejectOV(1)[0]
	cases := e.cases(e.aSupport)
	if len(cases) != 1 {
		t.Fatalf("cases %v, want the rejection's", cases)
	}
	caseID := cases[0].GetCaseId()
	if _, err := e.updateCase(e.aSupport, &lifecyclev1.UpdateSupportCaseRequest{CaseId: caseID, Note: "our registry entry is fixed"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.updateCase(e.support, &lifecyclev1.UpdateSupportCaseRequest{CaseId: caseID,
		Status: lifecyclev1.SupportCaseStatus_SUPPORT_CASE_STATUS_RESOLVED}); err != nil {
		t.Fatal(err)
	}
	sweep(t, d)
	var kinds []lifecyclev1.NotificationKind
	for _, p := range r.payloads() {
		if p.GetSupportCaseId() != caseID || p.GetCertificateId() != cert {
			t.Errorf("delivery %v; want it about case %s of %s", p, caseID, cert)
		}
		kinds = append(kinds, p.GetKind())
	}
	want := []lifecyclev1.NotificationKind{lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_UPDATED,
		lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_RESOLVED}
	if !slices.Equal(kinds, want) {
		t.Errorf("deliveries %v, want %v", kinds, want)
	}
	var types []lifecyclev1.EventType
	for _, ev := range e.history(cert) {
		if ev.GetSupportCaseId() == caseID {
			types = append(types, ev.GetType())
		}
	}
	if !slices.Contains(types, lifecyclev1.EventType_EVENT_TYPE_SUPPORT_CASE_UPDATED) || !slices.Contains(types, lifecyclev1.EventType_EVENT_TYPE_SUPPORT_CASE_RESOLVED) {
		t.Errorf("history of the case: %v; want SUPPORT_CASE_UPDATED and SUPPORT_CASE_RESOLVED", types)
	}
}
