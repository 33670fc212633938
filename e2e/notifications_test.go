package e2e

import (
	"encoding/pem"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/miekg/dns"
	standardwebhooks "github.com/standard-webhooks/standard-webhooks/libraries/go"
	"google.golang.org/protobuf/encoding/protojson"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/pair"
	"github.com/certhosting/certhosting/internal/smtptest"
	"github.com/certhosting/certhosting/pkg/dnsserver"
)

// TestNotificationsWebhookAndEmail runs the lifecycle service as a process with a webhook
// endpoint (an httptest TLS server here, trusted through -webhook-ca-file) and an SMTP relay
// (go-smtp here): a hosted certificate's issuance and its automatic renewal each arrive as a
// webhook whose Standard Webhooks signature verifies with the secret CreateWebhookEndpoint gave,
// and as an e-mail to the application's contact.
func TestNotificationsWebhookAndEmail(t *testing.T) {
	t.Parallel()
	var (
		mu       sync.Mutex
		secret   string
		received []*lifecyclev1.NotificationPayload
	)
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		mu.Lock()
		defer mu.Unlock()
		wh, err := standardwebhooks.NewWebhook(secret)
		if err != nil {
			t.Errorf("secret %q: %v", secret, err)
			w.WriteHeader(http.StatusInternalServerError)
			return
		}
		// Verify checks the signature and that webhook-timestamp is within 5 minutes of now.
		if err := wh.Verify(body, r.Header); err != nil {
			t.Errorf("delivery %s does not verify: %v", r.Header.Get("webhook-id"), err)
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		var p lifecyclev1.NotificationPayload
		if err := protojson.Unmarshal(body, &p); err != nil {
			t.Errorf("payload %s: %v", body, err)
		}
		received = append(received, &p)
		w.WriteHeader(http.StatusOK)
	}))
	t.Cleanup(hook.Close)
	caFile := filepath.Join(t.TempDir(), "webhook-ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: hook.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	relay := smtptest.Start(t)
	zone := dnsserver.NewMemorySource()
	dnsSrv, err := dnsserver.Start(dnsserver.Config{Addr: "127.0.0.1:0", Source: zone})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dnsSrv.Close() })

	e := startWith(t, pair.Options{Dir: t.TempDir(), LifecycleArgs: []string{
		"-localca-resolver", dnsSrv.Addr(), "-localca-recheck", "1s", "-localca-max-validity", "30s", "-ticker-interval", "1s",
		"-webhook-ca-file", caFile, "-webhook-allow-private", "-smtp-addr", relay.Addr, "-smtp-from", "certhosting@example.net",
	}})
	webhooks := lifecyclev1.NewWebhookServiceClient(dial(t, e.LifecycleAddr, e.DemoKey))
	created, err := webhooks.CreateWebhookEndpoint(t.Context(), &lifecyclev1.CreateWebhookEndpointRequest{
		Url: hook.URL + "/certhosting", Description: "e2e",
		EventKinds: []lifecyclev1.NotificationKind{
			lifecyclev1.NotificationKind_NOTIFICATION_KIND_ISSUED, lifecyclev1.NotificationKind_NOTIFICATION_KIND_RENEWED,
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	secret = created.GetSecret()
	mu.Unlock()

	cert, records := e.applyHosted(t, "notify-1", "notify.example.com")
	for _, r := range records {
		name := dns.Fqdn(r.GetName())
		zone.Set(name, dns.TypeTXT, &dns.TXT{Hdr: dns.RR_Header{Name: name, Rrtype: dns.TypeTXT, Class: dns.ClassINET, Ttl: 60},
			Txt: []string{r.GetValue()}})
	}
	e.waitHosted(t, cert.GetCertificateId(), 30*time.Second)

	kinds := func() map[lifecyclev1.NotificationKind]int {
		mu.Lock()
		defer mu.Unlock()
		out := map[lifecyclev1.NotificationKind]int{}
		for _, p := range received {
			if p.GetCertificateId() == cert.GetCertificateId() || p.GetBundleId() == cert.GetBundleId() {
				out[p.GetKind()]++
			}
		}
		return out
	}
	mailed := func(subject string) error {
		for _, m := range relay.Messages() {
			if strings.Contains(m.Data, subject) {
				if len(m.To) != 1 || m.To[0] != "ops@example.com" || m.From != "certhosting@example.net" {
					return fmt.Errorf("%q went from %s to %v, want from certhosting@example.net to the contact ops@example.com", subject, m.From, m.To)
				}
				return nil
			}
		}
		return fmt.Errorf("no e-mail %q among %d", subject, len(relay.Messages()))
	}
	waitFor(t, 20*time.Second, func() error {
		if kinds()[lifecyclev1.NotificationKind_NOTIFICATION_KIND_ISSUED] != 1 {
			return fmt.Errorf("webhooks so far: %v; want one ISSUED", kinds())
		}
		return mailed("Certificate issued")
	})
	// The 30 s certificate renews on its own within about a minute.
	waitFor(t, 90*time.Second, func() error {
		if kinds()[lifecyclev1.NotificationKind_NOTIFICATION_KIND_RENEWED] == 0 {
			return fmt.Errorf("webhooks so far: %v; want a RENEWED", kinds())
		}
		return mailed("Certificate renewed")
	})

	// The receiver counts a webhook when it arrives; the service records the delivery's outcome
	// once the answer is back, a moment later.
	waitFor(t, 10*time.Second, func() error {
		log, err := webhooks.ListWebhookDeliveries(t.Context(), &lifecyclev1.ListWebhookDeliveriesRequest{
			WebhookEndpointId: created.GetWebhookEndpoint().GetWebhookEndpointId()})
		if err != nil {
			return err
		}
		for _, d := range log.GetWebhookDeliveries() {
			if d.GetStatus() != lifecyclev1.WebhookDeliveryStatus_WEBHOOK_DELIVERY_STATUS_SUCCEEDED || d.GetLastStatusCode() != 200 {
				return fmt.Errorf("delivery %v", d)
			}
		}
		if len(log.GetWebhookDeliveries()) < 2 {
			return fmt.Errorf("delivery log has %d entries, want the issuance and the renewal", len(log.GetWebhookDeliveries()))
		}
		return nil
	})
}
