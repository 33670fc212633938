package acme_test

import (
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/certhosting/certhosting/internal/grpctest"
	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/ca/acme"
	"github.com/certhosting/certhosting/pkg/secrets"
)

// fakeCA is a scripted ACME server for what Pebble does not do: rate limits, internal errors with
// Retry-After, a directory without renewalInfo. It checks no signature; it answers the directory,
// nonces and new-account, and hands new-order and everything else to the test's handler.
type fakeCA struct {
	srv *httptest.Server

	mu       sync.Mutex
	handle   func(w http.ResponseWriter, r *http.Request, payload map[string]any)
	ari      bool
	requests []string
}

func newFakeCA(t *testing.T, ari bool, handle func(w http.ResponseWriter, r *http.Request, payload map[string]any)) *fakeCA {
	f := &fakeCA{handle: handle, ari: ari}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeCA) serve(w http.ResponseWriter, r *http.Request) {
	base := f.srv.URL
	w.Header().Set("Replay-Nonce", fmt.Sprintf("nonce-%d", time.Now().UnixNano()))
	f.mu.Lock()
	f.requests = append(f.requests, r.Method+" "+r.URL.Path)
	f.mu.Unlock()
	switch {
	case r.URL.Path == "/dir":
		dir := map[string]any{"newNonce": base + "/nonce", "newAccount": base + "/acct", "newOrder": base + "/order",
			"revokeCert": base + "/revoke", "keyChange": base + "/key"}
		if f.ari {
			dir["renewalInfo"] = base + "/ari"
		}
		_ = json.NewEncoder(w).Encode(dir)
	case r.URL.Path == "/nonce":
		w.WriteHeader(http.StatusOK)
	case r.URL.Path == "/acct":
		w.Header().Set("Location", base+"/acct/1")
		w.WriteHeader(http.StatusCreated)
		_, _ = io.WriteString(w, `{"status":"valid"}`)
	default:
		f.handle(w, r, jwsPayload(r))
	}
}

// jwsPayload decodes the payload of a flattened JWS request body (nil for POST-as-GET).
func jwsPayload(r *http.Request) map[string]any {
	var jws struct{ Payload string }
	if err := json.NewDecoder(r.Body).Decode(&jws); err != nil || jws.Payload == "" {
		return nil
	}
	raw, err := base64.RawURLEncoding.DecodeString(jws.Payload)
	if err != nil {
		return nil
	}
	var m map[string]any
	_ = json.Unmarshal(raw, &m)
	return m
}

func (f *fakeCA) count(req string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := 0
	for _, r := range f.requests {
		if r == req {
			n++
		}
	}
	return n
}

// client opens an ACME client on the fake CA.
func (f *fakeCA) client(t *testing.T) *acme.Client {
	t.Helper()
	box, err := secrets.Parse(secrets.Generate())
	if err != nil {
		t.Fatal(err)
	}
	root := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	c, err := acme.Open(t.Context(), acme.Config{
		DirectoryURL: f.srv.URL + "/dir", RootCAs: root, NoSystemRoots: true, DBPath: filepath.Join(t.TempDir(), "acme.db"),
		Box: box, Challenges: newZoneChallenges(), Zone: zone, HTTPTimeout: 5 * time.Second, Logger: grpctest.Logger(t),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// problem writes an ACME problem document.
func problem(w http.ResponseWriter, status int, typ, detail string, headers ...string) {
	for i := 0; i+1 < len(headers); i += 2 {
		w.Header().Set(headers[i], headers[i+1])
	}
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "urn:ietf:params:acme:error:" + typ, "detail": detail, "status": status})
}

// TestNewOrderOutcomes: how new-order answers reach the caller. Refusals are verdicts recorded at
// Submit; rate limits, internal errors and answers that are not problem documents are errors,
// carrying the CA's Retry-After when it sent one.
func TestNewOrderOutcomes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		answer    func(w http.ResponseWriter)
		wantErr   bool
		wantAfter time.Duration
		want      ca.Status // when no error
	}{
		{"rateLimited with Retry-After seconds", func(w http.ResponseWriter) {
			problem(w, 429, "rateLimited", "too many orders", "Retry-After", "120")
		}, true, 120 * time.Second, ca.Status{}},
		{"serverInternal with Retry-After date", func(w http.ResponseWriter) {
			problem(w, 503, "serverInternal", "maintenance", "Retry-After", time.Now().Add(time.Hour).UTC().Format(http.TimeFormat))
		}, true, time.Hour, ca.Status{}},
		{"serverInternal without Retry-After", func(w http.ResponseWriter) {
			problem(w, 500, "serverInternal", "oops")
		}, true, 0, ca.Status{}},
		{"not a problem document", func(w http.ResponseWriter) {
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html>bad gateway</html>")
		}, true, 0, ca.Status{}},
		{"rejectedIdentifier", func(w http.ResponseWriter) {
			problem(w, 400, "rejectedIdentifier", "policy forbids shop.example.com")
		}, false, 0, ca.Status{State: ca.Rejected, Reason: ca.ReasonPolicy, Message: "new order: rejectedIdentifier: policy forbids shop.example.com"}},
		{"caa", func(w http.ResponseWriter) {
			problem(w, 403, "caa", "CAA forbids issuance")
		}, false, 0, ca.Status{State: ca.Rejected, Reason: ca.ReasonCAA, Message: "new order: caa: CAA forbids issuance"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := newFakeCA(t, true, func(w http.ResponseWriter, r *http.Request, _ map[string]any) {
				if r.URL.Path == "/order" {
					tc.answer(w)
					return
				}
				http.NotFound(w, r)
			})
			c := f.client(t)
			sub, err := c.Submit(t.Context(), request(t, "app", "bdl", "shop.example.com"))
			if (err != nil) != tc.wantErr {
				t.Fatalf("Submit error %v, want error %v", err, tc.wantErr)
			}
			if tc.wantErr {
				var ra *ca.RetryAfterError
				gotAfter := ca.RetryAfter(err)
				if tc.wantAfter > 0 && !errors.As(err, &ra) {
					t.Errorf("error %v is not a *ca.RetryAfterError", err)
				}
				if gotAfter < tc.wantAfter-2*time.Second || gotAfter > tc.wantAfter {
					t.Errorf("RetryAfter %v, want %v", gotAfter, tc.wantAfter)
				}
				return
			}
			st, err := c.Status(t.Context(), sub.Ref)
			if err != nil || st.State != tc.want.State || st.Reason != tc.want.Reason || st.Message != tc.want.Message {
				t.Errorf("Status = %v %s %q, %v; want %v %s %q", st.State, st.Reason, st.Message, err,
					tc.want.State, tc.want.Reason, tc.want.Message)
			}
		})
	}
}

// TestReplacesRefusedFallsBack: a CA that calls the replaces field malformed gets the same order
// again without it, and the order goes on; a rate limit is not retried that way.
func TestReplacesRefusedFallsBack(t *testing.T) {
	t.Parallel()
	var withReplaces, without int
	var mu sync.Mutex
	f := newFakeCA(t, true, func(w http.ResponseWriter, r *http.Request, payload map[string]any) {
		switch {
		case r.URL.Path == "/order":
			mu.Lock()
			defer mu.Unlock()
			if _, ok := payload["replaces"]; ok {
				withReplaces++
				problem(w, 400, "malformed", "replaces does not identify a certificate of yours")
				return
			}
			without++
			w.Header().Set("Location", "https://"+r.Host+"/order/1")
			w.WriteHeader(http.StatusCreated)
			_ = json.NewEncoder(w).Encode(map[string]any{"status": "processing", "identifiers": payload["identifiers"]})
		default:
			w.Header().Set("Retry-After", "7")
			_ = json.NewEncoder(w).Encode(map[string]any{"status": "processing"})
		}
	})
	c := f.client(t)
	req := request(t, "app", "bdl", "shop.example.com")
	req.Replaces = foreignCertificate(t)
	sub, err := c.Submit(t.Context(), req)
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	if withReplaces != 1 || without != 1 {
		t.Errorf("new-order with replaces %d, without %d; want 1 and 1", withReplaces, without)
	}
	st, err := c.Status(t.Context(), sub.Ref)
	if err != nil || st.State != ca.Pending || st.RetryAfter != 7*time.Second {
		t.Errorf("Status = %v RetryAfter %v, %v; want pending with the CA's Retry-After 7s", st.State, st.RetryAfter, err)
	}
}

// TestRenewalInfoWithoutARI: a directory without renewalInfo answers ok=false, no error.
func TestRenewalInfoWithoutARI(t *testing.T) {
	t.Parallel()
	f := newFakeCA(t, false, func(w http.ResponseWriter, r *http.Request, _ map[string]any) { http.NotFound(w, r) })
	_, ok, err := f.client(t).RenewalInfo(t.Context(), foreignCertificate(t))
	if ok || err != nil {
		t.Errorf("RenewalInfo = %v, %v; want false, nil", ok, err)
	}
	if n := f.count("GET /ari"); n != 0 {
		t.Errorf("%d renewal-info requests, want none", n)
	}
}

// orderingCA is a fake CA that creates orders 1, 2, ... at /order/<n>, processing, and answers
// every other request with poll.
func orderingCA(t *testing.T, poll func(w http.ResponseWriter, r *http.Request)) *fakeCA {
	var mu sync.Mutex
	orders := 0
	return newFakeCA(t, false, func(w http.ResponseWriter, r *http.Request, payload map[string]any) {
		mu.Lock()
		defer mu.Unlock()
		if r.URL.Path != "/order" {
			poll(w, r)
			return
		}
		orders++
		w.Header().Set("Location", fmt.Sprintf("https://%s/order/%d", r.Host, orders))
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(map[string]any{"status": "processing", "identifiers": payload["identifiers"]})
	})
}

// TestOrderGone: an application whose order the CA no longer has (404 on the poll, with a problem
// document as Boulder sends or without one as Pebble does) carries on with a new order; any other
// failed poll is a transient error and keeps the order.
func TestOrderGone(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name      string
		poll      func(w http.ResponseWriter)
		wantErr   bool
		wantOrder int // new-order requests after the Submit's
	}{
		{"404 problem", func(w http.ResponseWriter) { problem(w, 404, "malformed", "no such order") }, false, 1},
		{"404 without a problem", func(w http.ResponseWriter) { w.WriteHeader(http.StatusNotFound) }, false, 1},
		{"404 account unknown", func(w http.ResponseWriter) { problem(w, 404, "accountDoesNotExist", "who?") }, true, 0},
		{"500 without a problem", func(w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) }, true, 0},
		{"403 problem", func(w http.ResponseWriter) { problem(w, 403, "unauthorized", "not your order") }, true, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			f := orderingCA(t, func(w http.ResponseWriter, r *http.Request) {
				if r.URL.Path == "/order/1" {
					tc.poll(w)
					return
				}
				_ = json.NewEncoder(w).Encode(map[string]any{"status": "processing"})
			})
			c := f.client(t)
			sub, err := c.Submit(t.Context(), request(t, "app", "bdl", "shop.example.com"))
			if err != nil {
				t.Fatalf("Submit: %v", err)
			}
			st, err := c.Status(t.Context(), sub.Ref)
			if (err != nil) != tc.wantErr || (err == nil && st.State != ca.Pending) {
				t.Errorf("Status = %v, %v; want error %v, else pending", st.State, err, tc.wantErr)
			}
			if n := f.count("POST /order"); n != 1+tc.wantOrder {
				t.Errorf("%d new-order requests, want %d", n, 1+tc.wantOrder)
			}
			// The next poll goes to the order the application has now.
			if _, err := c.Status(t.Context(), sub.Ref); err != nil && tc.wantOrder > 0 {
				t.Errorf("Status on the new order: %v", err)
			}
			if n := f.count("POST /order/2"); (n > 0) != (tc.wantOrder > 0) {
				t.Errorf("%d polls of the new order, want them only if one was made", n)
			}
		})
	}
}

// TestOrderGoneRepeatedly: a CA (or a proxy in front of it) that answers 404 to every order poll
// gets maxReorders (3) new orders for an application, then only errors: the client does not order
// again and again into the CA's rate limit.
func TestOrderGoneRepeatedly(t *testing.T) {
	t.Parallel()
	f := orderingCA(t, func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNotFound) })
	c := f.client(t)
	sub, err := c.Submit(t.Context(), request(t, "app", "bdl", "shop.example.com"))
	if err != nil {
		t.Fatalf("Submit: %v", err)
	}
	for i := 1; i <= 3; i++ {
		if st, err := c.Status(t.Context(), sub.Ref); err != nil || st.State != ca.Pending {
			t.Fatalf("poll %d: %v, %v; want pending on new order %d", i, st.State, err, i+1)
		}
	}
	for i := range 2 {
		if _, err := c.Status(t.Context(), sub.Ref); err == nil || !strings.Contains(err.Error(), "replaced 3 times") {
			t.Errorf("poll %d after 3 new orders: %v; want an error saying the order was replaced 3 times", 4+i, err)
		}
	}
	if n := f.count("POST /order"); n != 4 {
		t.Errorf("%d new-order requests, want 4 (the first and 3 replacements)", n)
	}
}
