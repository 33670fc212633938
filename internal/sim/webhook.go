package sim

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/protobuf/encoding/protojson"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/secrets"
	"github.com/certhosting/certhosting/services/lifecycle"
	"github.com/certhosting/certhosting/services/lifecycle/notify"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// FlakyEndpoint is the customer's webhook receiver: a real HTTPS server on loopback that fails
// every other request (503) and acknowledges the rest. The service's real notification pipeline
// (notify.Dispatcher, driven after every tick) delivers to it through the durable queue, retrying
// what failed. As Notifications, it counts a notification only once the endpoint acknowledged it,
// at the simulated time it arrived.
type FlakyEndpoint struct {
	srv *httptest.Server
	clk clockwork.Clock
	d   *notify.Dispatcher

	requests, failed atomic.Int64
	mu               sync.Mutex
	received         map[string][]int64 // acknowledged notifications' arrival (micros) by bundle
}

// startFlakyEndpoint starts the receiver, registers it for the account's case, renewal-failure and
// expiry-reminder notifications through the real WebhookService, and makes the dispatcher.
func startFlakyEndpoint(ctx context.Context, lc lifecycle.Config, owner context.Context, st *store.Store, box *secrets.Box, clk clockwork.Clock, log *slog.Logger) (*FlakyEndpoint, error) {
	f := &FlakyEndpoint{clk: clk, received: map[string][]int64{}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	_, err := lifecycle.NewWebhookServer(lc, nil).CreateWebhookEndpoint(owner, &lifecyclev1.CreateWebhookEndpointRequest{
		Url: f.srv.URL, Description: "simulation: fails half of its deliveries",
		EventKinds: []lifecyclev1.NotificationKind{lifecyclev1.NotificationKind_NOTIFICATION_KIND_SUPPORT_CASE_OPENED,
			lifecyclev1.NotificationKind_NOTIFICATION_KIND_RENEWAL_FAILED, lifecyclev1.NotificationKind_NOTIFICATION_KIND_EXPIRY_REMINDER}})
	if err != nil {
		f.srv.Close()
		return nil, err
	}
	roots := x509.NewCertPool()
	roots.AddCert(f.srv.Certificate())
	f.d = notify.New(notify.Options{Store: st, Clock: clk, Log: log, Keys: box,
		HTTP: &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: roots}}}})
	return f, nil
}

func (f *FlakyEndpoint) serve(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if f.requests.Add(1)%2 == 1 {
		f.failed.Add(1)
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	var p lifecyclev1.NotificationPayload
	if err := protojson.Unmarshal(body, &p); err != nil {
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	f.mu.Lock()
	f.received[p.GetBundleId()] = append(f.received[p.GetBundleId()], db.Micros(f.clk.Now()))
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// deliver runs the dispatcher once at the clock's now (fan-out and every due attempt) and waits for
// its workers.
func (f *FlakyEndpoint) deliver(ctx context.Context) error {
	err := f.d.RunOnce(ctx)
	f.d.Wait()
	return err
}

// NotifiedBy implements Notifications: an acknowledged delivery about the bundle arrived in
// [from, by].
func (f *FlakyEndpoint) NotifiedBy(_ context.Context, bundleID, _ string, from, by time.Time) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, t := range f.received[bundleID] {
		if t >= db.Micros(from) && t <= db.Micros(by) {
			return true, nil
		}
	}
	return false, nil
}

// Close stops the receiver.
func (f *FlakyEndpoint) Close() { f.srv.Close() }
