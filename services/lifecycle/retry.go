package lifecycle

import (
	"context"
	"database/sql"
	"fmt"
	"sync"
	"time"

	"github.com/certhosting/certhosting/pkg/ca"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// A hosted renewal does not give up. When the CA rejects a renewal of a hosted bundle (the
// customer removed the validation record, a CAA record names another CA, the organization check
// failed), the incident's case is opened, as for any rejection, and the instance's renewal status
// is FAILED (an instance whose own certificate the renewal would replace keeps its state; a newly
// activated one, which has none, becomes VALIDATION_FAILED); and the ticker tries the renewal again by itself, with a new application (the same
// information, a fresh key) after a backoff (NextRenewalRetry), again and again while the
// certificate in use is valid. A customer who puts the record back is renewed at the next attempt,
// without anyone calling RetryApplication. There is never more than one application in flight:
// a retry is submitted only while the instance's last application is still the rejected one, with
// nothing in flight for the bundle, and it takes the bundle's renewal slot with the same compare-and-set as a
// renewal (docs/lifecycle.md, "Crash safety"). Every attempt and its outcome are noted on the
// incident's case.

// Retried reports whether a rejection for reason is one time can cure, and so is retried by
// itself: DNS (the customer puts the record or the delegation back) and CAA (the customer changes
// the CAA records). An ORGANIZATION or POLICY rejection comes back the same however often it is
// asked again, and each attempt costs the CA (for a certificate that did not match its
// application, a certificate issued each time): those wait for a person.
func Retried(reason ca.Reason) bool { return reason == ca.ReasonDNS || reason == ca.ReasonCAA }

// planRetry plans the next automatic attempt of the renewal a of instance c, rejected for reason
// (saving c's retry_at), and returns what to tell the case about it.
func (t *Ticker) planRetry(tx *store.Tx, b store.Bundle, c *store.Certificate, a store.Application, reason ca.Reason, now time.Time) (string, error) {
	if b.HostingStatus == store.HostingEnding || b.HostingStatus == store.HostingEnded {
		return "", nil
	}
	if !Retried(reason) {
		c.RetryAt = sql.NullInt64{}
		return fmt.Sprintf("no automatic retry: a %s rejection does not change by asking again; fix the cause and call RetryApplication",
			reason), tx.SaveSchedule(c)
	}
	inUse, err := tx.Issuance(a.ReplacesIssuanceID.String)
	if err != nil {
		return "", err
	}
	notBefore, notAfter := db.FromMicros(inUse.NotBefore), db.FromMicros(inUse.NotAfter)
	renewBefore := RenewBefore(notAfter.Sub(notBefore), time.Duration(b.RenewBeforeSeconds.Int64)*time.Second)
	at, ok := NextRenewalRetry(c.Retries+1, renewBefore, now, notAfter)
	c.RetryAt = sql.NullInt64{}
	plan := fmt.Sprintf("no automatic retry: the certificate in use expires at %s, before another attempt would be due; "+
		"fix the cause and call RetryApplication", notAfter.Format(time.RFC3339))
	if ok {
		c.RetryAt = sql.NullInt64{Int64: db.Micros(at), Valid: true}
		plan = fmt.Sprintf("automatic retry %d at %s", c.Retries+1, at.Format(time.RFC3339))
	}
	return plan, tx.SaveSchedule(c)
}

// retryRenewals submits the automatic retries that are due.
func (t *Ticker) retryRenewals(ctx context.Context, now time.Time, st *TickStats) error {
	var mu sync.Mutex
	return sweep(ctx, t, "retry", func() ([]store.Certificate, error) {
		return t.Store.ClaimCertificates(ctx, store.SweepRetry, now, t.cfg.Lease, t.cfg.Batch)
	}, func(c store.Certificate) error {
		var retried bool
		err := t.write(ctx, now, func(tx *store.Tx) error {
			var err error
			retried, err = t.retryRenewal(tx, c.ID, now)
			return err
		})
		if err == nil && retried {
			mu.Lock()
			st.Retried++
			mu.Unlock()
		}
		return err
	})
}

// retryRenewal records the next automatic application of instance certID's rejected renewal, for
// the submit sweep to hand to the CA; false when there is nothing to retry any more (a person
// resubmitted, or the certificate in use expired).
func (t *Ticker) retryRenewal(tx *store.Tx, certID string, now time.Time) (bool, error) {
	cur, err := tx.Certificate(certID)
	if err != nil {
		return false, err
	}
	if !cur.RetryAt.Valid || cur.RetryAt.Int64 > db.Micros(now) {
		return false, nil // done or rescheduled since it was read
	}
	cur.RetryAt = sql.NullInt64{}
	if err := tx.SaveSchedule(&cur); err != nil {
		return false, err
	}
	if !cur.CurrentApplicationID.Valid || (cur.State != state.ValidationFailed && !holdsCertificate(cur)) {
		return false, nil
	}
	last, err := tx.Application(cur.CurrentApplicationID.String)
	if err != nil {
		return false, err
	}
	b, err := tx.Bundle(cur.BundleID)
	if err != nil {
		return false, err
	}
	if last.Status != store.AppRejected || !last.ReplacesIssuanceID.Valid {
		return false, nil // resubmitted by the customer or support meanwhile
	}
	if b.RenewalApplicationID.Valid {
		// Not reachable by the rules above (a rejection frees the slot, and only a retry or a
		// renewal takes it); said loudly rather than dropped in silence if it ever is.
		t.Log.Warn("automatic retry skipped: the bundle has another renewal in flight", "certificate_id", cur.ID,
			"renewal_application_id", b.RenewalApplicationID.String)
		return false, noteIncident(tx, b, cur.ID, "automatic retry skipped: renewal "+b.RenewalApplicationID.String+" is in flight")
	}
	inUse, err := tx.Issuance(last.ReplacesIssuanceID.String)
	if err != nil {
		return false, err
	}
	if notAfter := db.FromMicros(inUse.NotAfter); !now.Before(notAfter) {
		return false, noteIncident(tx, b, cur.ID, fmt.Sprintf("automatic retries stopped: the certificate in use expired at %s; "+
			"fix the cause and call RetryApplication", notAfter.Format(time.RFC3339)))
	}
	// The bundle's template, which UpdateApplicationTemplate may have changed since (to drop a name
	// that cannot be verified, say); the rejected application's information without one.
	from := last
	if b.TemplateApplicationID.Valid {
		if from, err = tx.Application(b.TemplateApplicationID.String); err != nil {
			return false, err
		}
	}
	info, err := infoFromRow(from)
	if err != nil {
		return false, err
	}
	info.CSRPEM, info.KeyAlgorithm = "", keyAlgorithmOr(info.KeyAlgorithm)
	a := store.Application{
		ID: ids.New(ids.Application, now), CertificateID: cur.ID, BundleID: b.ID, AccountID: b.AccountID,
		Status: store.AppSubmitting, Automatic: true, Actor: state.ActorTicker,
		RequestedNotAfter: last.RequestedNotAfter, ReplacesIssuanceID: last.ReplacesIssuanceID,
		NextPollAt: sql.NullInt64{Int64: db.Micros(now), Valid: true},
	}
	if err := info.toRow(&a); err != nil {
		return false, err
	}
	a.CAName, _ = t.CAs.Route(b.ProductID, b.ValidationType)
	if err := tx.InsertApplication(&a); err != nil {
		return false, err
	}
	prev := b.RenewalApplicationID
	b.RenewalApplicationID = sql.NullString{String: a.ID, Valid: true}
	if err := tx.SaveBundle(&b, &prev); err != nil {
		return false, err
	}
	cur.Retries++
	what := fmt.Sprintf("automatic retry %d of the rejected renewal: application %s", cur.Retries, a.ID)
	if err := submitted(tx, &cur, state.ActorTicker, what); err != nil {
		return false, err
	}
	cur.CurrentApplicationID = sql.NullString{String: a.ID, Valid: true}
	if err := tx.SaveSchedule(&cur); err != nil {
		return false, err
	}
	return true, noteIncident(tx, b, cur.ID, what+" submitted")
}

// submitted records that an application was submitted for instance c: the instance becomes
// VALIDATING, unless it holds a certificate (a re-issue), whose state stays.
func submitted(tx *store.Tx, c *store.Certificate, actor state.Actor, what string) error {
	if holdsCertificate(*c) {
		return tx.Event(store.Event{AccountID: c.AccountID, BundleID: c.BundleID, CertificateID: c.ID,
			Type: store.EventApplicationSubmitted, From: c.State, To: c.State, Actor: actor, Reason: what})
	}
	return tx.Transition(c, state.Validating, actor, store.EventApplicationSubmitted, what)
}

// keyAlgorithmOr is a stored key algorithm, or the default for an application that had the
// customer's own key (never re-used for a system-generated one).
func keyAlgorithmOr(alg string) string {
	if alg == "" || alg == KeyCustomer {
		return KeyECDSAP256
	}
	return alg
}
