package lifecycle_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"testing"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
)

// scrape fetches url's metrics in the Prometheus text format, the way Prometheus does, and returns
// each sample by its name and labels (`name{a="x",b="y"}`, labels sorted); a histogram's samples
// are its _count and _sum.
func scrape(t *testing.T, url string) map[string]float64 {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("scrape %s: %s %v", url, resp.Status, err)
	}
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(strings.NewReader(string(body)))
	if err != nil {
		t.Fatalf("scrape %s: %v\n%s", url, err, body)
	}
	out := map[string]float64{}
	for name, f := range families {
		for _, m := range f.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, l.GetName()+`="`+l.GetValue()+`"`)
			}
			sort.Strings(labels)
			key := func(n string) string {
				if len(labels) == 0 {
					return n
				}
				return n + "{" + strings.Join(labels, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[key(name)] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[key(name)] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[key(name+"_count")] = float64(m.GetHistogram().GetSampleCount())
				out[key(name+"_sum")] = m.GetHistogram().GetSampleSum()
			}
		}
	}
	return out
}

// TestMetricsShowRenewals: two hosted certificates come up for renewal; one bundle's validation
// record has been removed. A scrape shows two renewals started, one succeeded and one failed by
// the local CA, the failed one's open case, the certificates by state, each bundle's expiry (the
// renewed one's moved to its new certificate), the CA calls, and the ticker's last sweep.
func TestMetricsShowRenewals(t *testing.T) {
	t.Parallel()
	e := newEnv(t, envOptions{maxValidity: 398 * day})
	srv := httptest.NewServer(e.metrics.Handler())
	t.Cleanup(srv.Close)

	before := scrape(t, srv.URL)
	if before[`certhosting_store_up`] != 1 || before[`certhosting_applications_pending`] != 0 {
		t.Fatalf("fresh service: %v", before)
	}
	hosted := func(domain string) (*lifecyclev1.Bundle, []*lifecyclev1.DnsRecord) {
		b := e.buy("dv-single", dv, single, 1, 3, true)
		sub := e.submit(application(b.GetCertificates()[0].GetCertificateId(), domain))
		e.publish(sub.GetInstructions())
		e.tick()
		return b, sub.GetInstructions()
	}
	good, _ := hosted("good.example.com")
	bad, records := hosted("bad.example.com")
	after := scrape(t, srv.URL)
	if got := after[`certhosting_certificates{hosting_status="ACTIVE",state="HOSTED"}`]; got != 2 {
		t.Errorf("HOSTED certificates after two issuances: %v, want 2", got)
	}
	if got := after[`certhosting_certificates{hosting_status="ACTIVE",state="NOT_ACTIVATED"}`]; got != 4 {
		t.Errorf("NOT_ACTIVATED certificates: %v, want 4", got)
	}
	firstEnd := e.certificate(good.GetCertificates()[0].GetCertificateId()).GetCurrentIssuance().GetNotAfter().AsTime()
	expiryKey := `certhosting_bundle_not_after_timestamp_seconds{account_id="` + e.accA + `",bundle_id="` + good.GetBundleId() + `",hosting_status="ACTIVE",renewing="0"}`
	if got := after[expiryKey]; got != float64(firstEnd.Unix()) {
		t.Errorf("%s = %v, want %d", expiryKey, got, firstEnd.Unix())
	}

	e.withhold(records)
	e.advance(340*day, nil) // past the renewal time (day 265 for a 398-day certificate) and the DNS timeout
	m := scrape(t, srv.URL)
	for key, want := range map[string]float64{
		`certhosting_renewals_total{ca="local",outcome="started"}`:   2,
		`certhosting_renewals_total{ca="local",outcome="succeeded"}`: 1,
		`certhosting_store_up`:                              1,
		`certhosting_ticker_last_success_timestamp_seconds`: float64(e.clk.Now().Unix()),
	} {
		if got, ok := m[key]; !ok || got != want {
			t.Errorf("%s = %v (present %v), want %v", key, got, ok, want)
		}
	}
	if open := m[`certhosting_support_cases_open{urgent="false"}`] + m[`certhosting_support_cases_open{urgent="true"}`]; open != 1 {
		t.Errorf("open support cases: %v, want the failed renewal's one", open)
	}
	// The failed renewal is tried again by itself (a hosted bundle's), so it may have failed
	// more than once by now.
	if got := m[`certhosting_renewals_total{ca="local",outcome="failed"}`]; got < 1 {
		t.Errorf("failed renewals = %v, want at least 1", got)
	}
	if got := m[`certhosting_ca_call_duration_seconds_count{ca="local",call="submit",outcome="ok"}`]; got < 4 {
		t.Errorf("CA submits counted: %v, want at least 4 (two first applications, two renewals)", got)
	}
	if m[`certhosting_ticker_sweep_duration_seconds_count`] < 2 {
		t.Errorf("ticker sweeps counted: %v", m[`certhosting_ticker_sweep_duration_seconds_count`])
	}
	renewed := e.bundle(good.GetBundleId())
	newEnd := renewed.GetCertificates()[1].GetCurrentIssuance().GetNotAfter().AsTime()
	expiryKey = `certhosting_bundle_not_after_timestamp_seconds{account_id="` + e.accA + `",bundle_id="` + good.GetBundleId() + `",hosting_status="ACTIVE",renewing="0"}`
	if got := m[expiryKey]; got != float64(newEnd.Unix()) || !newEnd.After(firstEnd) {
		t.Errorf("renewed bundle's expiry = %v, want its new certificate's end %d (after %d)", got, newEnd.Unix(), firstEnd.Unix())
	}
	badEnd := e.certificate(bad.GetCertificates()[0].GetCertificateId()).GetCurrentIssuance().GetNotAfter().AsTime()
	var badSeries []string
	for k, v := range m {
		if strings.Contains(k, `bundle_id="`+bad.GetBundleId()+`"`) && strings.HasPrefix(k, "certhosting_bundle_not_after") {
			badSeries = append(badSeries, k)
			if v != float64(badEnd.Unix()) {
				t.Errorf("%s = %v, want the old certificate's end %d", k, v, badEnd.Unix())
			}
		}
	}
	if len(badSeries) != 1 {
		t.Errorf("the failing bundle's expiry series: %v, want one", badSeries)
	}
	if age := m[`certhosting_applications_oldest_pending_age_seconds`]; age < 0 || age > (340*day).Seconds() {
		t.Errorf("oldest pending application's age = %v s", age)
	}
}
