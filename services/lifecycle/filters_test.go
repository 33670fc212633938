package lifecycle_test

import (
	"slices"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
)

// TestListFilters: ListBundles and ListCertificates find bundles and instances by name (exact and
// under a domain), state, hosting status and expiry, page by page; bad filters are refused naming
// the field.
func TestListFilters(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// A second between purchases: bundle ids (ULIDs) made at one fake instant sort at random, and
	// the lists are newest first.
	hosted, _ := e.hosting() // shop.example.com
	e.clk.Advance(time.Second)
	plain := e.buy("dv-single", dv, single, 1, 2, false)
	e.clk.Advance(time.Second)
	e.issue(application(plain.GetCertificates()[0].GetCertificateId(), "api.example.com"))
	waiting := e.buy("dv-single", dv, single, 1, 1, false)
	e.clk.Advance(time.Second)
	e.submit(application(waiting.GetCertificates()[0].GetCertificateId(), "www.other.test"))
	e.buy("dv-single", dv, single, 1, 1, false) // never applied for
	now := e.clk.Now()

	bundles := func(t *testing.T, c lifecyclev1.LifecycleServiceClient, req *lifecyclev1.ListBundlesRequest) []string {
		t.Helper()
		var out []string
		for {
			resp, err := c.ListBundles(e.ctx, req)
			if err != nil {
				t.Fatalf("ListBundles(%v): %v", req, err)
			}
			for _, b := range resp.GetBundles() {
				out = append(out, b.GetBundleId())
			}
			if resp.GetNextPageToken() == "" {
				return out
			}
			req.PageToken = resp.GetNextPageToken()
		}
	}
	certs := func(t *testing.T, req *lifecyclev1.ListCertificatesRequest) []string {
		t.Helper()
		resp, err := e.a.ListCertificates(e.ctx, req)
		if err != nil {
			t.Fatalf("ListCertificates(%v): %v", req, err)
		}
		var out []string
		for _, c := range resp.GetCertificates() {
			out = append(out, c.GetCertificateId())
		}
		return out
	}
	h, p, w := hosted.GetBundleId(), plain.GetBundleId(), waiting.GetBundleId()
	soon, later := timestamppb.New(now.Add(100*day)), timestamppb.New(now.Add(201*day))
	for _, tc := range []struct {
		name string
		req  *lifecyclev1.ListBundlesRequest
		want []string // newest first
	}{
		{"exact name", &lifecyclev1.ListBundlesRequest{Domain: "shop.example.com"}, []string{h}},
		{"exact name in Unicode case", &lifecyclev1.ListBundlesRequest{Domain: "API.Example.com"}, []string{p}},
		{"under a domain", &lifecyclev1.ListBundlesRequest{Domain: ".example.com", PageSize: 1}, []string{p, h}},
		{"the domain itself only", &lifecyclev1.ListBundlesRequest{Domain: "example.com"}, nil},
		{"under another domain", &lifecyclev1.ListBundlesRequest{Domain: ".other.test"}, []string{w}},
		{"hosting active", &lifecyclev1.ListBundlesRequest{HostingStatus: hostingActive}, []string{h}},
		{"state ISSUED", &lifecyclev1.ListBundlesRequest{State: stIssued}, []string{p}},
		{"expiring within 100 days", &lifecyclev1.ListBundlesRequest{ExpireBefore: soon}, nil},
		{"expiring within 201 days", &lifecyclev1.ListBundlesRequest{ExpireBefore: later, PageSize: 1}, []string{p, h}},
		{"combined", &lifecyclev1.ListBundlesRequest{Domain: ".example.com", State: stHosted}, []string{h}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := bundles(t, e.a, tc.req); !slices.Equal(got, tc.want) {
				t.Errorf("bundles %v, want %v", got, tc.want)
			}
		})
	}
	if got := bundles(t, e.b, &lifecyclev1.ListBundlesRequest{Domain: ".example.com"}); len(got) != 0 {
		t.Errorf("account B finds %v under example.com, want nothing of A's", got)
	}
	if got, want := certs(t, &lifecyclev1.ListCertificatesRequest{Domain: ".example.com"}),
		[]string{plain.GetCertificates()[0].GetCertificateId(), hosted.GetCertificates()[0].GetCertificateId()}; !slices.Equal(got, want) {
		t.Errorf("instances under example.com %v, want %v", got, want)
	}
	if got, want := certs(t, &lifecyclev1.ListCertificatesRequest{ExpireBefore: later, HostingStatus: lifecyclev1.HostingStatus_HOSTING_STATUS_NOT_HOSTED}),
		[]string{plain.GetCertificates()[0].GetCertificateId()}; !slices.Equal(got, want) {
		t.Errorf("non-hosted instances expiring within 201 days %v, want %v", got, want)
	}

	first, err := e.a.ListBundles(e.ctx, &lifecyclev1.ListBundlesRequest{Domain: ".example.com", PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name    string
		req     *lifecyclev1.ListBundlesRequest
		mention string
	}{
		{"not a name", &lifecyclev1.ListBundlesRequest{Domain: "exa mple.com"}, "domain"},
		{"wildcard under a domain", &lifecyclev1.ListBundlesRequest{Domain: ".*.example.com"}, "domain"},
		{"unknown hosting status", &lifecyclev1.ListBundlesRequest{HostingStatus: 42}, "hosting_status"},
		{"unknown state", &lifecyclev1.ListBundlesRequest{State: 42}, "state"},
		{"page token of other filters", &lifecyclev1.ListBundlesRequest{Domain: ".other.test", PageToken: first.GetNextPageToken()}, "page_token"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.a.ListBundles(e.ctx, tc.req)
			wantRefused(t, "ListBundles", err, codes.InvalidArgument, tc.mention)
		})
	}
}
