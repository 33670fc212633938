package lifecycle_test

import (
	"context"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
)

// An account sees nothing of another's: every read by id is NotFound, every listing empty.
func TestTenancy(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.create(t, e.accA, 2, false)
	cert := b.GetCertificates()[0].GetCertificateId()
	tests := []struct {
		name string
		call func(c lifecyclev1.LifecycleServiceClient) error
	}{
		{"GetBundle", func(c lifecyclev1.LifecycleServiceClient) error {
			_, err := c.GetBundle(ctx, &lifecyclev1.GetBundleRequest{BundleId: b.GetBundleId()})
			return err
		}},
		{"GetCertificate", func(c lifecyclev1.LifecycleServiceClient) error {
			_, err := c.GetCertificate(ctx, &lifecyclev1.GetCertificateRequest{CertificateId: cert})
			return err
		}},
		{"GetCertificateLifecycle", func(c lifecyclev1.LifecycleServiceClient) error {
			_, err := c.GetCertificateLifecycle(ctx, &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: cert})
			return err
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.call(e.a); err != nil {
				t.Fatalf("owner: %v", err)
			}
			err := tc.call(e.b)
			if status.Code(err) != codes.NotFound {
				t.Fatalf("other account: %v, want NotFound", err)
			}
			if msg := status.Convert(err).Message(); strings.Contains(msg, e.accA) {
				t.Errorf("NotFound message %q reveals the owner", msg)
			}
		})
	}
	bundles, err := e.b.ListBundles(ctx, &lifecyclev1.ListBundlesRequest{})
	if err != nil || len(bundles.GetBundles()) != 0 {
		t.Errorf("B's ListBundles = %v, %v; want empty", bundles.GetBundles(), err)
	}
	for _, req := range []*lifecyclev1.ListCertificatesRequest{{}, {BundleId: b.GetBundleId()}} {
		certs, err := e.b.ListCertificates(ctx, req)
		if err != nil || len(certs.GetCertificates()) != 0 {
			t.Errorf("B's ListCertificates(%v) = %v, %v; want empty", req, certs.GetCertificates(), err)
		}
	}
}

func TestGetCertificate(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	b := e.create(t, e.accA, 3, true)
	want := b.GetCertificates()[1]
	resp, err := e.a.GetCertificate(context.Background(), &lifecyclev1.GetCertificateRequest{CertificateId: want.GetCertificateId()})
	if err != nil {
		t.Fatal(err)
	}
	got := resp.GetCertificate()
	if got.GetCertificateId() != want.GetCertificateId() || got.GetBundleId() != b.GetBundleId() || got.GetSequence() != 2 ||
		got.GetState() != notActivated || !got.GetCreateTime().AsTime().Equal(b.GetCreateTime().AsTime()) {
		t.Errorf("GetCertificate = %v, want %v", got, want)
	}
}

func TestMalformedIDs(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	orderID := ids.New(ids.Order, e.clk.Now())
	tests := []struct {
		name  string
		call  func() error
		field string
	}{
		{"GetBundle empty", func() error { _, err := e.a.GetBundle(ctx, &lifecyclev1.GetBundleRequest{}); return err }, "bundle_id"},
		{"GetBundle order id", func() error {
			_, err := e.a.GetBundle(ctx, &lifecyclev1.GetBundleRequest{BundleId: orderID})
			return err
		}, "bundle_id"},
		{"GetCertificate malformed", func() error {
			_, err := e.a.GetCertificate(ctx, &lifecyclev1.GetCertificateRequest{CertificateId: "crt_x"})
			return err
		}, "certificate_id"},
		{"GetCertificateLifecycle empty", func() error {
			_, err := e.a.GetCertificateLifecycle(ctx, &lifecyclev1.GetCertificateLifecycleRequest{})
			return err
		}, "certificate_id"},
		{"ListCertificates bundle filter", func() error {
			_, err := e.a.ListCertificates(ctx, &lifecyclev1.ListCertificatesRequest{BundleId: "nope"})
			return err
		}, "bundle_id"},
		{"ListCertificates state filter", func() error {
			_, err := e.a.ListCertificates(ctx, &lifecyclev1.ListCertificatesRequest{State: 99})
			return err
		}, "state"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			grpctest.WantInvalidArgument(t, tc.call(), tc.field)
		})
	}
}

// listCertificates pages through ListCertificates with req's filters and returns, per
// certificate, "bundle#sequence:state" with bundles numbered as in byNumber.
func listCertificates(t *testing.T, c lifecyclev1.LifecycleServiceClient, req *lifecyclev1.ListCertificatesRequest, byNumber map[string]int) ([]string, int) {
	t.Helper()
	return grpctest.Pages(t, func(token string) ([]string, string, error) {
		req.PageToken = token
		resp, err := c.ListCertificates(context.Background(), req)
		var got []string
		for _, cert := range resp.GetCertificates() {
			got = append(got, fmt.Sprintf("%d#%d:%s", byNumber[cert.GetBundleId()], cert.GetSequence(),
				strings.TrimPrefix(cert.GetState().String(), "CERTIFICATE_STATE_")))
		}
		return got, resp.GetNextPageToken(), err
	})
}

// ListCertificates orders newest bundle first, then by sequence; pages of 2 walk across bundles
// without gaps or repeats, with and without filters.
func TestListCertificates(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	// Bundles 1..4 of A (1 oldest), 3+1+2+1 = 7 certificates, and one of B.
	byNumber := map[string]int{}
	var bundle3 string
	for i, years := range []int32{3, 1, 2, 1} {
		id := e.create(t, e.accA, years, years > 1).GetBundleId()
		byNumber[id] = i + 1
		if i+1 == 3 {
			bundle3 = id
		}
	}
	e.create(t, e.accB, 3, true)

	tests := []struct {
		name      string
		req       *lifecyclev1.ListCertificatesRequest
		want      []string
		wantPages int
	}{
		{"all, pages of 2", &lifecyclev1.ListCertificatesRequest{PageSize: 2},
			[]string{"4#1:PENDING_APPLICATION", "3#1:PENDING_APPLICATION", "3#2:NOT_ACTIVATED", "2#1:PENDING_APPLICATION",
				"1#1:PENDING_APPLICATION", "1#2:NOT_ACTIVATED", "1#3:NOT_ACTIVATED"}, 4},
		{"all, one page", &lifecyclev1.ListCertificatesRequest{},
			[]string{"4#1:PENDING_APPLICATION", "3#1:PENDING_APPLICATION", "3#2:NOT_ACTIVATED", "2#1:PENDING_APPLICATION",
				"1#1:PENDING_APPLICATION", "1#2:NOT_ACTIVATED", "1#3:NOT_ACTIVATED"}, 1},
		{"exact pages", &lifecyclev1.ListCertificatesRequest{PageSize: 7},
			[]string{"4#1:PENDING_APPLICATION", "3#1:PENDING_APPLICATION", "3#2:NOT_ACTIVATED", "2#1:PENDING_APPLICATION",
				"1#1:PENDING_APPLICATION", "1#2:NOT_ACTIVATED", "1#3:NOT_ACTIVATED"}, 1},
		{"state filter", &lifecyclev1.ListCertificatesRequest{PageSize: 2, State: notActivated},
			[]string{"3#2:NOT_ACTIVATED", "1#2:NOT_ACTIVATED", "1#3:NOT_ACTIVATED"}, 2},
		{"bundle filter", &lifecyclev1.ListCertificatesRequest{PageSize: 1, BundleId: bundle3},
			[]string{"3#1:PENDING_APPLICATION", "3#2:NOT_ACTIVATED"}, 2},
		{"bundle and state filter", &lifecyclev1.ListCertificatesRequest{BundleId: bundle3, State: pending},
			[]string{"3#1:PENDING_APPLICATION"}, 1},
		{"filter matching nothing", &lifecyclev1.ListCertificatesRequest{State: lifecyclev1.CertificateState_CERTIFICATE_STATE_HOSTED}, nil, 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, pages := listCertificates(t, e.a, tc.req, byNumber)
			if !slices.Equal(got, tc.want) || pages != tc.wantPages {
				t.Errorf("got %v in %d pages, want %v in %d", got, pages, tc.want, tc.wantPages)
			}
		})
	}
}

func TestListCertificatesBadPaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	e.create(t, e.accA, 3, true)
	first, err := e.a.ListCertificates(ctx, &lifecyclev1.ListCertificatesRequest{PageSize: 1})
	if err != nil || first.GetNextPageToken() == "" {
		t.Fatalf("first page: %v, %v", first, err)
	}
	tok := first.GetNextPageToken()
	tests := []struct {
		name   string
		client lifecyclev1.LifecycleServiceClient
		req    *lifecyclev1.ListCertificatesRequest
		field  string
	}{
		{"token with another state filter", e.a, &lifecyclev1.ListCertificatesRequest{PageSize: 1, PageToken: tok, State: pending}, "page_token"},
		{"token of another account", e.b, &lifecyclev1.ListCertificatesRequest{PageSize: 1, PageToken: tok}, "page_token"},
		{"garbage token", e.a, &lifecyclev1.ListCertificatesRequest{PageToken: "garbage!"}, "page_token"},
		{"page_size 501", e.a, &lifecyclev1.ListCertificatesRequest{PageSize: 501}, "page_size"},
		{"negative page_size", e.a, &lifecyclev1.ListCertificatesRequest{PageSize: -1}, "page_size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.client.ListCertificates(ctx, tc.req)
			grpctest.WantInvalidArgument(t, err, tc.field)
		})
	}
	// The token still works with the filters it was made for.
	if resp, err := e.a.ListCertificates(ctx, &lifecyclev1.ListCertificatesRequest{PageSize: 1, PageToken: tok}); err != nil || resp.GetCertificates()[0].GetSequence() != 2 {
		t.Errorf("second page = %v, %v; want the certificate of sequence 2", resp, err)
	}
}

// addHistory appends events to a certificate's history as the store does for later transitions
// (which no RPC makes yet): ids from the events counter, in one transaction.
func addHistory(t *testing.T, e *env, accountID, bundleID, certID string, reasons ...string) {
	t.Helper()
	err := e.db.Write(context.Background(), func(tx *db.Tx) error {
		for _, r := range reasons {
			var id int64
			if err := tx.Get(&id, `UPDATE counters SET value = value + 1 WHERE name = 'events' RETURNING value`); err != nil {
				return err
			}
			if _, err := tx.Exec(`INSERT INTO events (event_id, account_id, bundle_id, certificate_id, type, from_state, to_state, actor, reason, time)
				VALUES (?, ?, ?, ?, 'test', 'PENDING_APPLICATION', 'PENDING_APPLICATION', 'system', ?, ?)`,
				id, accountID, bundleID, certID, r, db.Micros(e.clk.Now())); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func TestGetCertificateLifecyclePaging(t *testing.T) {
	t.Parallel()
	e := newEnv(t)
	ctx := context.Background()
	b := e.create(t, e.accA, 2, false)
	cert, other := b.GetCertificates()[0].GetCertificateId(), b.GetCertificates()[1].GetCertificateId()
	addHistory(t, e, e.accA, b.GetBundleId(), cert, "r1", "r2", "r3", "r4")
	addHistory(t, e, e.accA, b.GetBundleId(), other, "other")

	events, pages := grpctest.Pages(t, func(token string) ([]*lifecyclev1.LifecycleEvent, string, error) {
		resp, err := e.a.GetCertificateLifecycle(ctx, &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: cert, PageSize: 2, PageToken: token})
		return resp.GetEvents(), resp.GetNextPageToken(), err
	})
	var reasons []string
	var lastID int64
	for _, ev := range events {
		id, err := strconv.ParseInt(ev.GetEventId(), 10, 64)
		if err != nil || id <= lastID || ev.GetCertificateId() != cert {
			t.Errorf("event %v out of order or of another certificate", ev)
		}
		lastID = id
		reasons = append(reasons, ev.GetReason())
	}
	if len(reasons) != 5 || !slices.Equal(reasons[1:], []string{"r1", "r2", "r3", "r4"}) || pages != 3 {
		t.Errorf("history %v in %d pages, want the creation event then r1..r4 in 3 pages", reasons, pages)
	}

	first, err := e.a.GetCertificateLifecycle(ctx, &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: cert, PageSize: 1})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name  string
		req   *lifecyclev1.GetCertificateLifecycleRequest
		field string
	}{
		{"token of another certificate", &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: other, PageToken: first.GetNextPageToken()}, "page_token"},
		{"garbage token", &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: cert, PageToken: "x"}, "page_token"},
		{"page_size 501", &lifecyclev1.GetCertificateLifecycleRequest{CertificateId: cert, PageSize: 501}, "page_size"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.a.GetCertificateLifecycle(ctx, tc.req)
			grpctest.WantInvalidArgument(t, err, tc.field)
		})
	}
}
