package lifecycle

import (
	"cmp"
	"slices"
	"time"

	"github.com/certhosting/certhosting/pkg/ca"
)

// The hosting timeline (DESIGN.md, "Hosting timeline rules"), as pure functions of their inputs.
// The ticker (ticker.go) reads the database, asks these what to do, and writes the answer.

// Year is the length of one subscription year: one certificate instance covers one Year.
const Year = 365 * 24 * time.Hour

// Defaults of the renewal rules.
const (
	maxRenewBefore    = 30 * 24 * time.Hour // the seed product's 30 days
	maxEscalateBefore = 7 * 24 * time.Hour
)

// day is a day, the unit of the days paid and covered.
const oneDay = 24 * time.Hour

// Covered is how much of [start, end) (micros) the validity periods (micros, [not_before,
// not_after), in any order and overlapping) cover together: the days of an instance's subscription
// year that its certificates cover.
func Covered(periods [][2]int64, start, end int64) time.Duration {
	ps := slices.Clone(periods)
	slices.SortFunc(ps, func(a, b [2]int64) int { return cmp.Compare(a[0], b[0]) })
	var total int64
	at := start // covered up to here
	for _, p := range ps {
		from, to := max(p[0], at), min(p[1], end)
		if to > from {
			total += to - from
			at = to
		}
	}
	return time.Duration(total) * time.Microsecond
}

// Coverage is the subscription year instance seq (1-based) covers: [T0+(seq-1)·Year, T0+seq·Year).
func Coverage(t0 time.Time, seq int) (start, end time.Time) {
	start = t0.Add(time.Duration(seq-1) * Year)
	return start, start.Add(Year)
}

// RenewBefore is how long before a certificate's not_after its renewal starts:
// min(30 days, lifetime/3) by default, so a 47-day certificate renews with 15 days to spare
// rather than 30. A bundle's own setting (override > 0) replaces the default but is capped at
// half the lifetime, so a short certificate is never renewed the moment it is issued.
func RenewBefore(lifetime, override time.Duration) time.Duration {
	if override > 0 {
		return min(override, lifetime/2)
	}
	return min(maxRenewBefore, lifetime/3)
}

// EscalateBefore is how long before the predecessor's expiry an unfinished renewal opens an urgent
// support case: min(7 days, lifetime/10), and never earlier than half the renewal window, so the
// renewal always gets a chance before a person is called.
func EscalateBefore(lifetime, renewBefore time.Duration) time.Duration {
	return min(maxEscalateBefore, lifetime/10, renewBefore/2)
}

// EscalationWindow is the escalate_before of a certificate of this lifetime with the default
// renewal window: min(7 days, lifetime/10). A CA's wait that ends in a verdict (its DNS timeout)
// must be shorter than the window of the shortest certificate it issues, so that a renewal's
// rejection, and its support case, come before the renewal is escalated as late.
func EscalationWindow(lifetime time.Duration) time.Duration {
	return EscalateBefore(lifetime, RenewBefore(lifetime, 0))
}

// VerdictTimeout checks a CA's wait that ends in a verdict (the local CA's DNS timeout) against
// the escalation window of the shortest certificate the CA issues: a renewal whose record is
// missing must be rejected, and its case opened, before the renewal is escalated as late, or one
// incident would reach a person as a late renewal with no cause known. A timeout set explicitly
// must be shorter than the window (ok false otherwise); a default one is shortened to half the
// window when that is shorter, so short-lived certificates for a demo or a test need no second
// setting. A timeout set to zero or less is refused too (a CA would take its default, unchecked).
// It returns the timeout to use and the window.
func VerdictTimeout(timeout time.Duration, explicit bool, shortestLifetime time.Duration) (use, window time.Duration, ok bool) {
	window = EscalationWindow(shortestLifetime)
	if !explicit {
		return min(timeout, window/2), window, true
	}
	return timeout, window, timeout > 0 && timeout < window
}

// SuccessorKind is what a hosted certificate's renewal does.
type SuccessorKind int

const (
	// Reissue: the successor belongs to the same instance (a new issuance; the instance stays HOSTED).
	Reissue SuccessorKind = iota + 1
	// Activate: the successor belongs to a later instance, which is activated and applied for with
	// the first application's information.
	Activate
	// HostingEnds: the predecessor runs to (or past) the end of the subscription; nothing is
	// activated and hosting ends when it expires.
	HostingEnds
)

func (k SuccessorKind) String() string {
	switch k {
	case Reissue:
		return "reissue"
	case Activate:
		return "activate"
	case HostingEnds:
		return "hosting ends"
	}
	return "unknown"
}

// Successor is the renewal decision for one hosted certificate.
type Successor struct {
	Kind SuccessorKind
	// Sequence is the instance the successor belongs to (Reissue, Activate).
	Sequence int
	// NotAfter is the end requested for the successor: its instance's coverage end, so the days a
	// certificate does not use are not lost (the CA caps it at its maximum validity).
	NotAfter time.Time
	// TakeOver is when the successor takes over: the predecessor's not_after, or now if that has
	// passed (a late renewal).
	TakeOver time.Time
}

// DecideSuccessor decides which instance the successor of a hosted certificate belongs to: the one
// whose coverage contains the moment it takes over. t0 is the bundle's T0, years its number of
// instances, predSeq the predecessor's instance and predNotAfter its end.
func DecideSuccessor(t0 time.Time, years, predSeq int, predNotAfter, now time.Time) Successor {
	takeOver := predNotAfter
	if now.After(takeOver) {
		takeOver = now
	}
	seq := 1
	if !takeOver.Before(t0) {
		seq = int(takeOver.Sub(t0)/Year) + 1
	}
	// A successor never goes back to an earlier instance, whatever a CA chose as not_after.
	seq = max(seq, predSeq)
	if seq > years {
		return Successor{Kind: HostingEnds, TakeOver: takeOver}
	}
	_, end := Coverage(t0, seq)
	kind := Activate
	if seq == predSeq {
		kind = Reissue
	}
	return Successor{Kind: kind, Sequence: seq, NotAfter: end, TakeOver: takeOver}
}

// RequestedEnd is the end to request for an application of instance seq: its coverage end once
// T0 is known. Before that (the bundle's first application) it is the zero time, and the
// application asks for a lifetime of one Year instead (see caRequest), so the first certificate
// ends exactly at the end of instance 1's coverage, whenever it is issued.
func RequestedEnd(t0 time.Time, seq int) time.Time {
	if t0.IsZero() {
		return time.Time{}
	}
	_, end := Coverage(t0, seq)
	return end
}

// DefaultRenewalInfoRecheck is how long to wait before asking a CA for a renewal window again
// when its answer carried no Retry-After.
const DefaultRenewalInfoRecheck = 6 * time.Hour

// RenewalInfoPlan is what to do with a CA's renewal window (RFC 9773).
type RenewalInfoPlan struct {
	// RenewAt is the renewal time to use (unchanged when the window is not trusted).
	RenewAt time.Time
	// NextCheck is when to ask again; zero means never again for this certificate.
	NextCheck time.Time
}

// PlanRenewalInfo applies a CA's suggested renewal window to a hosted certificate valid
// [notBefore, notAfter) whose renewal is planned at current:
//
//   - Once less than 1/20 of the lifetime remains, no window is trusted any more: the planned
//     renewal time stands and the CA is not asked again (a window pushed late then could let the
//     certificate expire).
//   - Otherwise the renewal happens at a uniformly random time inside the window (pick draws it,
//     in [0, n)), so a CA's whole population does not renew at once; a current time already inside
//     the window is kept, so a window that does not move does not move the renewal. The time is
//     never later than the 1/20 cut-off, nor earlier than now.
//   - The CA is asked again after its Retry-After (DefaultRenewalInfoRecheck when it gave none),
//     unless the renewal or the cut-off comes first. Asking again is what lets a CA move a window
//     earlier (it does after a mass revocation).
func PlanRenewalInfo(w ca.RenewalWindow, notBefore, notAfter, current, now time.Time, pick func(n int64) int64) RenewalInfoPlan {
	cutoff := notAfter.Add(-notAfter.Sub(notBefore) / 20)
	if !now.Before(cutoff) {
		return RenewalInfoPlan{RenewAt: current}
	}
	renewAt := current
	end := w.End
	if end.After(cutoff) {
		end = cutoff
	}
	if w.End.After(w.Start) && end.After(w.Start) {
		if current.Before(w.Start) || current.After(end) {
			renewAt = w.Start.Add(time.Duration(pick(int64(end.Sub(w.Start)))))
		}
	}
	if renewAt.Before(now) {
		renewAt = now
	}
	recheck := w.RetryAfter
	if recheck <= 0 {
		recheck = DefaultRenewalInfoRecheck
	}
	next := now.Add(recheck)
	if !next.Before(renewAt) || !next.Before(cutoff) {
		next = time.Time{} // the renewal comes first
	}
	return RenewalInfoPlan{RenewAt: renewAt, NextCheck: next}
}

// Automatic retries of a rejected hosted renewal, for a certificate with the default 30-day
// renewal window: the first after retryBase, doubling, at most retryMax apart.
const (
	retryBase = time.Hour
	retryMax  = 24 * time.Hour
)

// NextRenewalRetry decides whether, and when, a hosted renewal rejected at now is tried again by
// itself, for its attempt-th automatic retry (1 for the first). The delay is retryBase doubling
// with each attempt up to retryMax, both scaled down like renew_before is for short certificates
// (by renewBefore / 30 days, the renewal window of the certificate in use against the default's):
// a 47-day certificate's renewal is retried after 31 minutes at first and at most every 12.5 hours,
// a 90-second one's every second. Never sooner than a second.
//
// ok is false when that time is not before inUseNotAfter, the end of the certificate in use: the
// retries are there to keep a valid certificate in place, and once it has expired there is none
// to keep. A person decides then (the incident's case is open and urgent since the escalation),
// and RetryApplication starts again.
func NextRenewalRetry(attempt int, renewBefore time.Duration, now, inUseNotAfter time.Time) (at time.Time, ok bool) {
	scale := min(1, float64(renewBefore)/float64(maxRenewBefore))
	base := time.Duration(float64(retryBase) * scale)
	ceiling := time.Duration(float64(retryMax) * scale)
	d := base
	for i := 1; i < attempt && d < ceiling; i++ {
		d *= 2
	}
	at = now.Add(max(time.Second, min(d, ceiling)))
	return at, at.Before(inUseNotAfter)
}
