package store

import (
	"context"
	"database/sql"
)

// MetricsSnapshot is the state the metrics report, read in one go at scrape time.
type MetricsSnapshot struct {
	Certificates []CertificateCount
	// Bundles are the bundles with a certificate in use (only when asked for).
	Bundles             []BundleExpiry
	PendingApplications int
	OldestPending       int64 // create_time (micros) of the oldest pending application; 0: none
	OpenCases           int
	OpenUrgentCases     int
}

// CertificateCount is how many instances are in a state, by their bundle's hosting status.
type CertificateCount struct {
	State         string `db:"state"`
	HostingStatus string `db:"hosting_status"`
	Count         int    `db:"n"`
}

// BundleExpiry is when a bundle's certificate in use ends.
type BundleExpiry struct {
	BundleID      string `db:"bundle_id"`
	AccountID     string `db:"account_id"`
	HostingStatus string `db:"hosting_status"`
	NotAfter      int64  `db:"current_not_after"`
	Renewing      bool   `db:"renewing"`
}

// MetricsSnapshot reads the metrics' state; bundles adds every bundle's expiry.
func (s *Store) MetricsSnapshot(ctx context.Context, bundles bool) (MetricsSnapshot, error) {
	var m MetricsSnapshot
	if err := s.db.Select(ctx, &m.Certificates, `SELECT c.state, b.hosting_status, COUNT(*) AS n
		FROM certificates c JOIN bundles b ON b.bundle_id = c.bundle_id
		GROUP BY c.state, b.hosting_status ORDER BY c.state, b.hosting_status`); err != nil {
		return m, err
	}
	if bundles {
		if err := s.db.Select(ctx, &m.Bundles, `SELECT bundle_id, account_id, hosting_status, current_not_after,
			renewal_application_id IS NOT NULL AS renewing
			FROM bundles WHERE current_not_after IS NOT NULL ORDER BY bundle_id`); err != nil {
			return m, err
		}
	}
	var pending struct {
		N      int           `db:"n"`
		Oldest sql.NullInt64 `db:"oldest"`
	}
	if err := s.db.Get(ctx, &pending, `SELECT COUNT(*) AS n, MIN(create_time) AS oldest FROM applications
		WHERE status IN ('SUBMITTING', 'PENDING')`); err != nil {
		return m, err
	}
	m.PendingApplications, m.OldestPending = pending.N, pending.Oldest.Int64
	var cases []struct {
		Urgent bool `db:"urgent"`
		N      int  `db:"n"`
	}
	if err := s.db.Select(ctx, &cases, `SELECT urgent, COUNT(*) AS n FROM support_cases WHERE status <> ? GROUP BY urgent`, CaseResolved); err != nil {
		return m, err
	}
	for _, c := range cases {
		if c.Urgent {
			m.OpenUrgentCases += c.N
		} else {
			m.OpenCases += c.N
		}
	}
	return m, nil
}
