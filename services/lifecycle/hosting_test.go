package lifecycle_test

import (
	"crypto/x509"
	"math"
	"slices"
	"sort"
	"testing"
	"time"

	"google.golang.org/protobuf/proto"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/tlstest"
)

const day = 24 * time.Hour

// span is one expected certificate: its instance and validity, in days after T0.
type span struct {
	seq             int32
	notBefore, days float64 // not_before and not_after, days after T0
}

// issued is one certificate the test saw, with what it observed around it.
type issued struct {
	seq       int32
	notBefore time.Time
	notAfter  time.Time
	hostedAt  time.Time // when the test first saw it as the bundle's hosted certificate
	leaf      *x509.Certificate
	chainPEM  string
	app       *lifecyclev1.Application
}

// TestHostingTimeTravel buys a 3-year hosted OV subscription, gets the first certificate through
// a real DNS TXT lookup, and moves the fake clock through the whole subscription. The expected
// certificates are DESIGN.md's two worked examples: one-year certificates (a 398-day CA maximum)
// renew twice, each renewal activating the next instance; 200-day certificates re-issue inside
// an instance and activate the next one at the year boundary, with coverage continuous to the end.
func TestHostingTimeTravel(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name        string
		maxValidity time.Duration
		want        []span
	}{
		{"one-year certificates", 398 * day, []span{
			{1, 0, 365}, {2, 335, 730}, {3, 700, 1095},
		}},
		{"200-day certificates", 200 * day, []span{
			{1, 0, 200}, {1, 170, 365},
			{2, 335, 535}, {2, 505, 705}, {2, 675, 730},
			{3, 730 - 55.0/3, 930 - 55.0/3}, {3, 900 - 55.0/3, 1100 - 55.0/3}, {3, 1070 - 55.0/3, 1095},
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, envOptions{maxValidity: tc.maxValidity})
			b := e.buy("ov-multi", lifecyclev1.ValidationType_VALIDATION_TYPE_OV, lifecyclev1.DomainType_DOMAIN_TYPE_MULTI, 2, 3, true)
			first := b.GetCertificates()[0]
			org := &lifecyclev1.Organization{LegalName: "Example GmbH", Country: "DE", Locality: "Berlin", RegistrationNumber: "HRB 12345"}
			sub, err := e.a.SubmitApplication(e.ctx, &lifecyclev1.SubmitApplicationRequest{
				CertificateId: first.GetCertificateId(),
				Domains:       []string{"shop.example.com", "www.shop.example.com"},
				Contact:       &lifecyclev1.Contact{Name: "Ops", Email: "ops@example.com"},
				Organization:  org,
			})
			if err != nil {
				t.Fatalf("SubmitApplication: %v", err)
			}
			if got := sub.GetCertificate().GetState(); got != lifecyclev1.CertificateState_CERTIFICATE_STATE_VALIDATING {
				t.Fatalf("after SubmitApplication the instance is %s, want VALIDATING", got)
			}
			if len(sub.GetInstructions()) != 2 {
				t.Fatalf("instructions = %v, want one TXT record per domain", sub.GetInstructions())
			}
			e.publish(sub.GetInstructions())

			seen := map[string]*issued{}
			observe := func() {
				now := e.clk.Now()
				for _, c := range e.bundle(b.GetBundleId()).GetCertificates() {
					iss := c.GetCurrentIssuance()
					if iss == nil {
						continue
					}
					got, ok := seen[iss.GetIssuanceId()]
					if !ok {
						got = &issued{seq: c.GetSequence(), notBefore: iss.GetNotBefore().AsTime(),
							notAfter: iss.GetNotAfter().AsTime(), chainPEM: iss.GetCertificateChainPem(),
							leaf: parseLeaf(t, iss.GetCertificateChainPem()), app: c.GetCurrentApplication()}
						seen[iss.GetIssuanceId()] = got
					}
					if c.GetState() == lifecyclev1.CertificateState_CERTIFICATE_STATE_HOSTED && got.hostedAt.IsZero() {
						got.hostedAt = now
					}
				}
			}
			e.advance(1100*day, observe)

			var certs []*issued
			for _, c := range seen {
				certs = append(certs, c)
			}
			sort.Slice(certs, func(i, j int) bool { return certs[i].notBefore.Before(certs[j].notBefore) })
			t0 := certs[0].notBefore
			final := e.bundle(b.GetBundleId())
			if !final.GetFirstIssueTime().AsTime().Equal(t0) {
				t.Errorf("bundle first_issue_time = %s, want T0 = %s", final.GetFirstIssueTime().AsTime(), t0)
			}
			for i, c := range final.GetCertificates() {
				t.Logf("instance %d: coverage [%.0f, %.0f) days, %s", c.GetSequence(),
					days(t0, c.GetCoverageStartTime().AsTime()), days(t0, c.GetCoverageEndTime().AsTime()), c.GetState())
				for _, ev := range e.history(c.GetCertificateId()) {
					t.Logf("  day %7.2f  %-26s %s → %s (%s) %s", days(t0, ev.GetTime().AsTime()), ev.GetType(),
						ev.GetFromState(), ev.GetToState(), ev.GetActor(), ev.GetReason())
				}
				if c.GetState() != lifecyclev1.CertificateState_CERTIFICATE_STATE_EXPIRED {
					t.Errorf("instance %d is %s at the end, want EXPIRED", i+1, c.GetState())
				}
			}
			if final.GetHostingStatus() != lifecyclev1.HostingStatus_HOSTING_STATUS_ENDED {
				t.Errorf("bundle hosting status = %s, want ENDED", final.GetHostingStatus())
			}
			if end := final.GetHostingEndTime().AsTime(); math.Abs(days(t0, end)-1095) > 1.0/1440 {
				t.Errorf("hosting_end_time = day %.3f, want day 1095", days(t0, end))
			}

			// The certificates are the worked example's, in order.
			for i, c := range certs {
				t.Logf("certificate %d: instance %d, days %.2f → %.2f, hosted at day %.2f, automatic=%v",
					i+1, c.seq, days(t0, c.notBefore), days(t0, c.notAfter), days(t0, c.hostedAt), c.app.GetAutomatic())
			}
			if len(certs) != len(tc.want) {
				t.Fatalf("got %d certificates, want %d", len(certs), len(tc.want))
			}
			const tolerance = 1.0 / 1440 // one minute, in days
			for i, w := range tc.want {
				c := certs[i]
				if c.seq != w.seq || math.Abs(days(t0, c.notBefore)-w.notBefore) > tolerance || math.Abs(days(t0, c.notAfter)-w.days) > tolerance {
					t.Errorf("certificate %d: instance %d, days %.3f → %.3f; want instance %d, days %.3f → %.3f",
						i+1, c.seq, days(t0, c.notBefore), days(t0, c.notAfter), w.seq, w.notBefore, w.days)
				}
			}

			// Coverage is continuous; every successor is hosted before its predecessor expires.
			for i := 1; i < len(certs); i++ {
				prev, c := certs[i-1], certs[i]
				if c.notBefore.After(prev.notAfter) {
					t.Errorf("gap between certificate %d (ends day %.2f) and %d (starts day %.2f)", i, days(t0, prev.notAfter), i+1, days(t0, c.notBefore))
				}
				if c.hostedAt.IsZero() || !c.hostedAt.Before(prev.notAfter) {
					t.Errorf("certificate %d hosted at day %.2f, not before its predecessor expired (day %.2f)", i+1, days(t0, c.hostedAt), days(t0, prev.notAfter))
				}
			}

			// Every renewal is automatic and carries the first application's information with a
			// new key; every chain verifies against the local CA's root.
			keys := map[string]int{}
			firstApp := certs[0].app
			for i, c := range certs {
				if got := c.app.GetAutomatic(); got != (i > 0) {
					t.Errorf("certificate %d: automatic = %v, want %v", i+1, got, i > 0)
				}
				if !slices.Equal(c.app.GetDomains(), firstApp.GetDomains()) || !proto.Equal(c.app.GetOrganization(), firstApp.GetOrganization()) {
					t.Errorf("certificate %d: application domains %v org %v, want the first application's %v %v",
						i+1, c.app.GetDomains(), c.app.GetOrganization(), firstApp.GetDomains(), firstApp.GetOrganization())
				}
				pub, err := x509.MarshalPKIXPublicKey(c.leaf.PublicKey)
				if err != nil {
					t.Fatal(err)
				}
				if j, dup := keys[string(pub)]; dup {
					t.Errorf("certificate %d reuses the key of certificate %d", i+1, j)
				}
				keys[string(pub)] = i + 1
				verifyChain(t, e.authority.Roots(), c)
			}

			// Each renewal that crosses a year boundary activates the next instance exactly once.
			for _, c := range final.GetCertificates()[1:] {
				activations := 0
				for _, ev := range e.history(c.GetCertificateId()) {
					if ev.GetType() == lifecyclev1.EventType_EVENT_TYPE_ACTIVATED {
						activations++
					}
				}
				if activations != 1 {
					t.Errorf("instance %d was activated %d times, want once", c.GetSequence(), activations)
				}
			}
			if n := len(e.cases(e.aSupport)); n != 0 {
				t.Errorf("%d support cases opened on the happy path, want none", n)
			}
		})
	}
}

func parseLeaf(t *testing.T, chainPEM string) *x509.Certificate {
	t.Helper()
	return tlstest.Certs(t, []byte(chainPEM))[0]
}

// verifyChain checks an issued chain against roots at a moment inside its validity.
func verifyChain(t *testing.T, roots *x509.CertPool, c *issued) {
	t.Helper()
	verifyChainAt(t, roots, c.chainPEM, c.notBefore.Add(time.Hour))
}

// verifyChainAt checks a chain (PEM, leaf first) against roots at the moment at, for the leaf's
// first name, and returns the leaf.
func verifyChainAt(t *testing.T, roots *x509.CertPool, chainPEM string, at time.Time) *x509.Certificate {
	t.Helper()
	leaf, inter := tlstest.ParseChain(t, []byte(chainPEM))
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter,
		CurrentTime: at, DNSName: leaf.DNSNames[0]}); err != nil {
		t.Errorf("chain of %s does not verify at %s: %v", leaf.SerialNumber.Text(16), at, err)
	}
	return leaf
}
