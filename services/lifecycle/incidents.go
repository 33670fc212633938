package lifecycle

import (
	"database/sql"

	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// The support-case rule: one incident, one case, one engineer (docs/lifecycle.md, "Failures").
//
// An incident is what has gone wrong with keeping a certificate in place. For a hosted bundle it is
// the bundle: its renewal's rejection, the automatic retries, the escalation before expiry and a
// late renewal are one incident, whichever instance each touches (the predecessor that is about
// to expire, or the next instance whose application failed). For a bundle without hosting it is
// the instance. An incident has at most one unresolved case (a unique index holds it too): every
// later event adds a note to that case and can only raise its urgency, and its engineer stays
// the one it was assigned to. The case resolves when a certificate is issued for the incident
// (recordIssued). A support engineer who resolves it by hand ends the incident: what goes wrong
// after that opens a new case.

// incidentOf is the incident key of what goes wrong with instance certificateID of bundle b.
func incidentOf(b store.Bundle, certificateID string) string {
	if b.Hosting {
		return b.ID
	}
	return certificateID
}

// report is one thing a support engineer must hear about.
type report struct {
	// cert is the instance it is about (the case's instance, if this opens the case).
	cert store.Certificate
	// applicationID is the failed application, if any.
	applicationID string
	// kind is the case kind if this opens the case: store.CaseValidationFailed or CaseLateRenewal.
	kind string
	// urgent: a hosted certificate in use is going to expire.
	urgent bool
	// reason is the CA's rejection reason, if any.
	reason string
	// summary says what happened: the new case's summary, or the note on the open one.
	summary string
}

// reportIncident applies the rule: it opens the incident's case, or adds r to the one open (a
// note, the urgency raised, the rejection reason recorded if the case had none). opened says
// which.
func (c *core) reportIncident(tx *store.Tx, b store.Bundle, r report) (opened bool, err error) {
	incident := incidentOf(b, r.cert.ID)
	open, ok, err := tx.OpenCaseOf(incident)
	if err != nil {
		return false, err
	}
	if ok {
		note := r.summary
		if r.urgent && !open.Urgent {
			note = "urgent now: " + note
		}
		open.Urgent = open.Urgent || r.urgent
		if open.Reason == "" {
			open.Reason = r.reason
		}
		open.AddNote(store.Note{Author: "system", Text: note, Time: tx.Now()})
		return false, tx.SaveCase(&open)
	}
	return true, tx.OpenCase(&store.SupportCase{
		ID: ids.New(ids.SupportCase, db.FromMicros(tx.Now())), AccountID: r.cert.AccountID, BundleID: b.ID, CertificateID: r.cert.ID,
		ApplicationID: sql.NullString{String: r.applicationID, Valid: r.applicationID != ""}, Incident: incident,
		Kind: r.kind, Urgent: r.urgent, Reason: r.reason, Summary: r.summary,
	}, c.Engineers)
}

// noteIncident adds a note to the incident's open case, if there is one (a retry submitted, the
// retries stopping, a customer's resubmission).
func noteIncident(tx *store.Tx, b store.Bundle, certificateID, text string) error {
	open, ok, err := tx.OpenCaseOf(incidentOf(b, certificateID))
	if err != nil || !ok {
		return err
	}
	open.AddNote(store.Note{Author: "system", Text: text, Time: tx.Now()})
	return tx.SaveCase(&open)
}
