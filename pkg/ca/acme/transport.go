package acme

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Retry-After. lego exposes the header on a few answers only (challenges, renewal information,
// rateLimited problems), not on order polls nor on serverInternal problems. The transport below
// sees every response, so each call of this package gives its context a slot and the transport
// writes the last Retry-After it saw for that call into it: a request-scoped value, used by
// nothing but the call that made it. The slot keeps the last response's status code too: lego
// turns an error response without a problem document (Pebble's 404 for an order it does not
// have) into an untyped error, and call gives that error its status back (statusError). It is
// the status of the call's last response: a call that got a 4xx and then failed on the network
// would carry that 4xx, which only matters to a caller that reads statusError (orderGone, for
// order polls, which make one request).

type retryAfterKey struct{}

// retryAfterSlot holds the last Retry-After header and status code of one call's responses.
type retryAfterSlot struct {
	mu     sync.Mutex
	header string
	status int
}

func (s *retryAfterSlot) set(v string) {
	s.mu.Lock()
	s.header = v
	s.mu.Unlock()
}

func (s *retryAfterSlot) setStatus(code int) {
	s.mu.Lock()
	s.status = code
	s.mu.Unlock()
}

func (s *retryAfterSlot) lastStatus() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.status
}

// statusError is a CA's error response that carried no problem document, with its status code.
type statusError struct {
	code int
	err  error
}

func (e *statusError) Error() string { return e.err.Error() }
func (e *statusError) Unwrap() error { return e.err }

// after is the delay the header asks for at now (zero when there was none or it is unreadable).
func (s *retryAfterSlot) after(now time.Time) time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	return parseRetryAfter(s.header, now)
}

// parseRetryAfter reads a Retry-After value: delay-seconds or an HTTP date (RFC 9110 §10.2.3).
func parseRetryAfter(v string, now time.Time) time.Duration {
	v = strings.TrimSpace(v)
	if v == "" {
		return 0
	}
	if secs, err := strconv.ParseInt(v, 10, 64); err == nil {
		if secs < 0 {
			return 0
		}
		return time.Duration(min(secs, int64(maxRetryAfter/time.Second))) * time.Second
	}
	if t, err := http.ParseTime(v); err == nil {
		return min(max(t.Sub(now), 0), maxRetryAfter).Round(time.Second)
	}
	return 0
}

// maxRetryAfter bounds what a CA may ask for: a day, well beyond any real Retry-After, so a
// wrong header cannot park an application for years.
const maxRetryAfter = 24 * time.Hour

// retryAfterTransport records the Retry-After header of each response in its call's slot.
type retryAfterTransport struct {
	base *http.Transport
}

func (t retryAfterTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	resp, err := t.base.RoundTrip(req)
	if resp != nil {
		if slot, ok := req.Context().Value(retryAfterKey{}).(*retryAfterSlot); ok {
			slot.setStatus(resp.StatusCode)
			if v := resp.Header.Get("Retry-After"); v != "" {
				slot.set(v)
			}
		}
	}
	return resp, err
}

// newTransport is the HTTP transport to the CA: bounded dials, handshakes and response waits, and
// the configured roots (with or without the system's).
func newTransport(rootsPEM []byte, noSystemRoots bool, timeout time.Duration) (retryAfterTransport, error) {
	var pool *x509.CertPool
	if !noSystemRoots {
		sys, err := x509.SystemCertPool()
		if err != nil {
			return retryAfterTransport{}, err
		}
		pool = sys
	} else {
		pool = x509.NewCertPool()
	}
	if len(rootsPEM) > 0 && !pool.AppendCertsFromPEM(rootsPEM) {
		return retryAfterTransport{}, errors.New("RootCAs holds no PEM certificate")
	}
	if noSystemRoots && len(rootsPEM) == 0 {
		return retryAfterTransport{}, errors.New("NoSystemRoots needs RootCAs")
	}
	return retryAfterTransport{base: &http.Transport{
		Proxy:                 http.ProxyFromEnvironment,
		DialContext:           (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		TLSClientConfig:       &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		TLSHandshakeTimeout:   10 * time.Second,
		ResponseHeaderTimeout: timeout,
		IdleConnTimeout:       90 * time.Second,
		MaxIdleConnsPerHost:   4,
		ForceAttemptHTTP2:     true,
	}}, nil
}

// call runs one operation against the CA with a Retry-After slot in its context and returns the
// delay the CA asked for, if any.
func (c *Client) call(ctx context.Context, f func(ctx context.Context) error) (time.Duration, error) {
	slot := &retryAfterSlot{}
	err := f(context.WithValue(ctx, retryAfterKey{}, slot))
	if code := slot.lastStatus(); err != nil && code >= http.StatusBadRequest && problemOf(err) == nil {
		err = &statusError{code: code, err: err}
	}
	return slot.after(c.clk.Now()), err
}

// withContext runs f, which cannot be cancelled (lego's api.New fetches the directory with a
// background context), and returns early when ctx ends; f still ends within the HTTP timeout.
func withContext[T any](ctx context.Context, f func() (T, error)) (T, error) {
	type result struct {
		v   T
		err error
	}
	ch := make(chan result, 1)
	go func() {
		v, err := f()
		ch <- result{v, err}
	}()
	select {
	case r := <-ch:
		return r.v, r.err
	case <-ctx.Done():
		var zero T
		return zero, ctx.Err()
	}
}
