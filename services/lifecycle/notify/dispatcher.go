package notify

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/backoff"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/pkg/secrets"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// Defaults of Options.
const (
	DefaultTimeout  = 10 * time.Second
	DefaultGiveUp   = 72 * time.Hour
	DefaultInterval = time.Second
	fanOutBatch     = 500
)

// DefaultRetry is the backoff between attempts: 30 s doubling to 6 h, with jitter. Over the 3
// days of DefaultGiveUp that is about 20 attempts.
var DefaultRetry = backoff.Policy{Base: 30 * time.Second, Max: 6 * time.Hour}

// Mailer sends one e-mail. An error means "try again later".
type Mailer interface {
	Send(ctx context.Context, to, subject, body string) error
}

// Options configure a Dispatcher.
type Options struct {
	Store *store.Store
	Clock clockwork.Clock
	Log   *slog.Logger
	// Keys opens the endpoints' sealed signing secrets.
	Keys *secrets.Box
	// HTTP posts webhooks; its Transport decides which roots are trusted. Each request also gets
	// Timeout.
	HTTP *http.Client
	// Mail sends e-mail; nil: e-mail is off (no e-mail is queued).
	Mail Mailer
	// Engineers maps a support engineer's name (a case's assignee) to an e-mail address.
	Engineers map[string]string
	// Timeout bounds one attempt (default DefaultTimeout).
	Timeout time.Duration
	// GiveUp is how long after it was queued a notification is retried (default DefaultGiveUp).
	GiveUp time.Duration
	// Retry is the backoff between attempts (default DefaultRetry).
	Retry backoff.Policy
	// Interval is Run's pause between sweeps (default DefaultInterval).
	Interval time.Duration
}

// Dispatcher fans history events out into the queue and delivers what is due.
type Dispatcher struct {
	o      Options
	mu     sync.Mutex
	active map[string]bool // lanes with a running worker
	wg     sync.WaitGroup
	wake   chan struct{}
}

// New returns a dispatcher; it does nothing until Run or RunOnce.
func New(o Options) *Dispatcher {
	if o.Timeout <= 0 {
		o.Timeout = DefaultTimeout
	}
	if o.GiveUp <= 0 {
		o.GiveUp = DefaultGiveUp
	}
	if o.Retry == (backoff.Policy{}) {
		o.Retry = DefaultRetry
	}
	if o.Interval <= 0 {
		o.Interval = DefaultInterval
	}
	if o.HTTP == nil {
		o.HTTP = &http.Client{}
	}
	if o.Log == nil {
		o.Log = slog.New(slog.DiscardHandler)
	}
	return &Dispatcher{o: o, active: map[string]bool{}, wake: make(chan struct{}, 1)}
}

// Wake asks Run to sweep now (the store calls it after commits with events). It never blocks.
func (d *Dispatcher) Wake() {
	select {
	case d.wake <- struct{}{}:
	default:
	}
}

// Run sweeps until ctx ends, then waits for the lanes' workers.
func (d *Dispatcher) Run(ctx context.Context) error {
	defer d.wg.Wait()
	for {
		if err := d.RunOnce(ctx); err != nil && ctx.Err() == nil {
			d.o.Log.Error("notification sweep failed", "err", err)
		}
		timer := d.o.Clock.NewTimer(d.o.Interval)
		select {
		case <-ctx.Done():
			timer.Stop()
			return nil
		case <-d.wake:
		case <-timer.Chan():
		}
		timer.Stop()
	}
}

// RunOnce fans out every new event and starts a worker for each lane that has a due
// notification and none running. It does not wait for the workers (Wait does).
func (d *Dispatcher) RunOnce(ctx context.Context) error {
	for {
		n, err := d.o.Store.FanOut(ctx, db.Micros(d.o.Clock.Now()), fanOutBatch, d.build)
		if err != nil {
			return fmt.Errorf("fan out: %w", err)
		}
		if n < fanOutBatch {
			break
		}
	}
	lanes, err := d.o.Store.DueLanes(ctx, d.o.Clock.Now())
	if err != nil {
		return err
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	for _, lane := range lanes {
		if d.active[lane] {
			continue
		}
		d.active[lane] = true
		d.wg.Add(1)
		go d.work(ctx, lane)
	}
	return nil
}

// Wait waits until every started worker has emptied its lane of due notifications.
func (d *Dispatcher) Wait() { d.wg.Wait() }

// work delivers a lane's due notifications one at a time, oldest first, until none is due.
func (d *Dispatcher) work(ctx context.Context, lane string) {
	defer d.wg.Done()
	defer func() {
		d.mu.Lock()
		delete(d.active, lane)
		d.mu.Unlock()
	}()
	for ctx.Err() == nil {
		// The claim outlasts one attempt, so another replica does not send it concurrently.
		n, ok, err := d.o.Store.ClaimNext(ctx, lane, d.o.Clock.Now(), 2*d.o.Timeout+time.Minute)
		if err != nil {
			d.o.Log.Error("claim notification", "lane", lane, "err", err)
			return
		}
		if !ok {
			return
		}
		d.attempt(ctx, &n)
		if err := d.o.Store.RecordAttempt(context.WithoutCancel(ctx), n); err != nil {
			d.o.Log.Error("record notification attempt", "notification", n.ID, "err", err)
			return
		}
	}
}

// errPermanent marks an attempt that no retry can fix.
var errPermanent = errors.New("permanent")

// attempt sends n once and sets its outcome.
func (d *Dispatcher) attempt(ctx context.Context, n *store.Notification) {
	now := d.o.Clock.Now()
	n.Attempts++
	n.LastAttemptTime = sql.NullInt64{Int64: db.Micros(now), Valid: true}
	var code int
	var retryAfter time.Duration
	var err error
	switch n.Channel {
	case store.ChannelWebhook:
		code, retryAfter, err = d.post(ctx, n, now)
	case store.ChannelEmail:
		err = d.mail(ctx, n)
	default:
		err = fmt.Errorf("%w: unknown channel %q", errPermanent, n.Channel)
	}
	n.LastStatusCode = int64(code)
	if err == nil {
		n.Status, n.LastError, n.NextAttemptTime = store.NotificationSucceeded, "", sql.NullInt64{}
		return
	}
	n.LastError = err.Error()
	next := now.Add(d.o.Retry.DelayAtLeast(int(n.Attempts), retryAfter))
	if errors.Is(err, errPermanent) || db.Micros(next) > n.GiveUpTime {
		n.Status, n.NextAttemptTime = store.NotificationFailed, sql.NullInt64{}
		return
	}
	n.NextAttemptTime = sql.NullInt64{Int64: db.Micros(next), Valid: true}
}

// post POSTs a webhook, signed with the endpoint's secret (and its previous one while valid).
func (d *Dispatcher) post(ctx context.Context, n *store.Notification, now time.Time) (code int, retryAfter time.Duration, err error) {
	e, err := d.o.Store.EndpointByID(ctx, n.EndpointID)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: endpoint %s: %v", errPermanent, n.EndpointID, err)
	}
	if e.Disabled {
		return 0, 0, fmt.Errorf("%w: endpoint %s is disabled", errPermanent, e.ID)
	}
	secrets, err := d.secrets(e, now)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", errPermanent, err)
	}
	body := []byte(n.Payload)
	h, err := SignatureHeaders(n.MessageID, now, body, secrets...)
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", errPermanent, err)
	}
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, e.URL, bytes.NewReader(body))
	if err != nil {
		return 0, 0, fmt.Errorf("%w: %v", errPermanent, err)
	}
	req.Header = h
	req.Header.Set("content-type", "application/json")
	req.Header.Set("user-agent", "certhosting-webhooks/1")
	resp, err := d.o.HTTP.Do(req)
	if err != nil {
		return 0, 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return resp.StatusCode, 0, nil
	}
	if s, err := strconv.Atoi(resp.Header.Get("retry-after")); err == nil && s > 0 {
		retryAfter = time.Duration(s) * time.Second
	}
	return resp.StatusCode, retryAfter, fmt.Errorf("endpoint answered %s", resp.Status)
}

// SecretContext is the sealing context of an endpoint's secrets: a sealed secret copied to another
// endpoint's row does not open.
func SecretContext(endpointID string) string { return "webhook-secret:" + endpointID }

// secrets opens the endpoint's current secret and, until it expires, the previous one.
func (d *Dispatcher) secrets(e store.WebhookEndpoint, now time.Time) ([]string, error) {
	cur, err := d.o.Keys.Open(e.SecretSealed, SecretContext(e.ID))
	if err != nil {
		return nil, fmt.Errorf("open secret of %s: %w", e.ID, err)
	}
	out := []string{string(cur)}
	if e.PreviousSecretSealed != "" && e.PreviousSecretExpire.Valid && db.Micros(now) < e.PreviousSecretExpire.Int64 {
		prev, err := d.o.Keys.Open(e.PreviousSecretSealed, SecretContext(e.ID))
		if err != nil {
			return nil, fmt.Errorf("open previous secret of %s: %w", e.ID, err)
		}
		out = append(out, string(prev))
	}
	return out, nil
}

// mail sends an e-mail notification.
func (d *Dispatcher) mail(ctx context.Context, n *store.Notification) error {
	if d.o.Mail == nil {
		return fmt.Errorf("%w: e-mail is off (-smtp-addr is empty)", errPermanent)
	}
	var p lifecyclev1.NotificationPayload
	if err := protojson.Unmarshal([]byte(n.Payload), &p); err != nil {
		return fmt.Errorf("%w: payload: %v", errPermanent, err)
	}
	subject, body := EmailText(&p)
	ctx, cancel := context.WithTimeout(ctx, d.o.Timeout)
	defer cancel()
	return d.o.Mail.Send(ctx, n.Recipient, subject, body)
}

// build turns events into notifications (store.FanOut's callback, inside its transaction).
func (d *Dispatcher) build(tx *store.Tx, events []store.Event) ([]store.Notification, error) {
	now := db.FromMicros(tx.Now())
	endpoints := map[string][]store.WebhookEndpoint{}
	var out []store.Notification
	for _, ev := range events {
		eps, seen := endpoints[ev.AccountID]
		if !seen {
			var err error
			if eps, err = tx.AccountEndpoints(ev.AccountID); err != nil {
				return nil, err
			}
			endpoints[ev.AccountID] = eps
		}
		if len(eps) == 0 && d.o.Mail == nil {
			continue // nobody to tell: no need to work out what the event means
		}
		kind, ok, err := d.kindOf(tx, ev)
		if err != nil {
			return nil, err
		}
		if !ok {
			continue
		}
		if ev.Type == store.EventRenewalFailed && ev.SupportCaseID == "" && ev.CertificateID != "" {
			// The failure's case is opened (or updated) after its event, in the same transaction.
			c, found, err := tx.UnresolvedCaseOf(ev.CertificateID)
			if err != nil {
				return nil, err
			}
			if found {
				ev.SupportCaseID = c.ID
			}
		}
		payload, err := protojson.Marshal(&lifecyclev1.NotificationPayload{
			NotificationId: MessageID(ev.ID), Kind: kind, AccountId: ev.AccountID, BundleId: ev.BundleID,
			CertificateId: ev.CertificateID, SupportCaseId: ev.SupportCaseID, EventType: ev.Type, Reason: ev.Reason,
			EventTime: timestamppb.New(db.FromMicros(ev.Time)),
		})
		if err != nil {
			return nil, err
		}
		row := func(id, channel, lane string) store.Notification {
			return store.Notification{ID: id, AccountID: ev.AccountID, EventID: ev.ID, Kind: KindName(kind), Channel: channel,
				Lane: lane, MessageID: MessageID(ev.ID), Payload: string(payload), Status: store.NotificationPending,
				CreateTime: db.Micros(now), GiveUpTime: db.Micros(now.Add(d.o.GiveUp)),
				NextAttemptTime: sql.NullInt64{Int64: db.Micros(now), Valid: true}}
		}
		for _, e := range eps {
			if Wants(e.Kinds, kind) {
				n := row(ids.New(ids.WebhookDelivery, now), store.ChannelWebhook, e.ID)
				n.EndpointID = e.ID
				out = append(out, n)
			}
		}
		if d.o.Mail == nil {
			continue
		}
		rcpts, err := d.recipients(tx, ev, kind)
		if err != nil {
			return nil, err
		}
		for _, r := range rcpts {
			n := row(ids.New(ids.Email, now), store.ChannelEmail, store.LaneSMTP)
			n.Recipient = r
			out = append(out, n)
		}
	}
	return out, nil
}

// MessageID is the webhook-id of an event's deliveries: stable across retries and replays, so a
// receiver can deduplicate.
func MessageID(eventID int64) string { return "evt_" + strconv.FormatInt(eventID, 10) }

// kindOf reads what KindOf needs about an event.
func (d *Dispatcher) kindOf(tx *store.Tx, ev store.Event) (lifecyclev1.NotificationKind, bool, error) {
	var renewal, dns bool
	switch ev.Type {
	case store.EventIssued:
		var err error
		if renewal, err = tx.IssuedBefore(ev.BundleID, ev.ID); err != nil {
			return 0, false, err
		}
	case store.EventApplicationSubmitted:
		a, ok, err := applicationOf(tx, ev)
		if err != nil {
			return 0, false, err
		}
		dns = ok && a.ValidationMethod == "DNS_TXT"
	}
	k, ok := KindOf(ev.Type, renewal, dns)
	return k, ok, nil
}

// applicationOf is the event's instance's current application, or its bundle's template.
func applicationOf(tx *store.Tx, ev store.Event) (store.Application, bool, error) {
	var appID sql.NullString
	if ev.CertificateID != "" {
		c, err := tx.Certificate(ev.CertificateID)
		if isNotFound(err) {
			return store.Application{}, false, nil
		}
		if err != nil {
			return store.Application{}, false, err
		}
		appID = c.CurrentApplicationID
	}
	if !appID.Valid && ev.BundleID != "" {
		b, err := tx.Bundle(ev.BundleID)
		if isNotFound(err) {
			return store.Application{}, false, nil
		}
		if err != nil {
			return store.Application{}, false, err
		}
		appID = b.TemplateApplicationID
	}
	if !appID.Valid {
		return store.Application{}, false, nil
	}
	a, err := tx.Application(appID.String)
	if isNotFound(err) {
		return store.Application{}, false, nil
	}
	return a, err == nil, err
}

// isNotFound: a row the event names is gone; the event is notified without what it would add
// rather than blocking the queue behind it.
func isNotFound(err error) bool { return status.Code(err) == codes.NotFound }

// recipients are an event's e-mail recipients: the application's contact, and for case kinds
// the case's assignee when -support-engineer-emails names them.
func (d *Dispatcher) recipients(tx *store.Tx, ev store.Event, kind lifecyclev1.NotificationKind) ([]string, error) {
	var out []string
	a, ok, err := applicationOf(tx, ev)
	if err != nil {
		return nil, err
	}
	if ok && a.Contact != "" {
		var c struct {
			Email string `json:"email"`
		}
		if err := json.Unmarshal([]byte(a.Contact), &c); err == nil && c.Email != "" {
			out = append(out, c.Email)
		}
	}
	if ev.SupportCaseID != "" && emailsEngineer(kind) {
		c, err := tx.Case(ev.SupportCaseID)
		if isNotFound(err) {
			return out, nil
		}
		if err != nil {
			return nil, err
		}
		if addr, ok := d.o.Engineers[c.Assignee]; ok && addr != "" {
			out = append(out, addr)
		}
	}
	return out, nil
}
