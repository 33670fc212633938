package store

import (
	"context"
	"time"

	"github.com/certhosting/certhosting/pkg/db"
)

// Deployments: what deploy agents report (RecordDeployment), the targets a bundle expects its
// certificates on (UpdateBundle), and the ticker's deploy-deadline check of each issuance.

// EventDeploymentOverdue: a bundle's certificate was not on every expected target in time.
const EventDeploymentOverdue = "deployment_overdue"

// CaseDeploymentMissing is the case kind of an overdue deployment.
const CaseDeploymentMissing = "DEPLOYMENT_MISSING"

// Deploy-deadline check outcomes, as stored in deployment_checks.outcome.
const (
	CheckDeployed = "DEPLOYED"
	CheckOverdue  = "OVERDUE"
)

// Deployment is one deployments row: one report of an agent.
type Deployment struct {
	ID              string `db:"deployment_id"`
	AccountID       string `db:"account_id"`
	BundleID        string `db:"bundle_id"`
	CertificateID   string `db:"certificate_id"`
	IssuanceID      string `db:"issuance_id"`
	Serial          string `db:"serial"`
	Target          string `db:"target"`
	Host            string `db:"host"`
	CertificatePath string `db:"certificate_path"`
	PrivateKeyPath  string `db:"private_key_path"`
	DeployTime      int64  `db:"deploy_time"`
	Success         bool   `db:"success"`
	Error           string `db:"error"`
	RecordTime      int64  `db:"record_time"`
}

const deploymentColumns = `deployment_id, account_id, bundle_id, certificate_id, issuance_id, serial, target, host,
	certificate_path, private_key_path, deploy_time, success, error, record_time`

// InsertDeployment appends a report; d.RecordTime is set to the transaction's time.
func (t *Tx) InsertDeployment(d *Deployment) error {
	d.RecordTime = t.now
	_, err := t.tx.NamedExec(`INSERT INTO deployments (`+deploymentColumns+`) VALUES (:deployment_id, :account_id,
		:bundle_id, :certificate_id, :issuance_id, :serial, :target, :host, :certificate_path, :private_key_path,
		:deploy_time, :success, :error, :record_time)`, d)
	return err
}

// LatestDeployments is the latest report of each target of a bundle, by target name.
func (s *Store) LatestDeployments(ctx context.Context, bundleID string) ([]Deployment, error) {
	var out []Deployment
	err := s.db.Select(ctx, &out, `SELECT `+deploymentColumns+` FROM deployments d WHERE bundle_id = ?
		AND deployment_id = (SELECT MAX(deployment_id) FROM deployments l WHERE l.bundle_id = d.bundle_id AND l.target = d.target)
		ORDER BY target`, bundleID)
	return out, err
}

// DeploymentHistory is every report of a bundle, oldest first.
func (s *Store) DeploymentHistory(ctx context.Context, bundleID string) ([]Deployment, error) {
	var out []Deployment
	err := s.db.Select(ctx, &out, `SELECT `+deploymentColumns+` FROM deployments WHERE bundle_id = ? ORDER BY deployment_id`, bundleID)
	return out, err
}

// ExpectedTargets is the bundle's expected deployment targets, sorted.
func (s *Store) ExpectedTargets(ctx context.Context, bundleID string) ([]string, error) {
	var out []string
	err := s.db.Select(ctx, &out, `SELECT target FROM deployment_targets WHERE bundle_id = ? ORDER BY target`, bundleID)
	return out, err
}

// SetExpectedTargets replaces the bundle's expected deployment targets (none clears them).
func (t *Tx) SetExpectedTargets(bundleID string, targets []string) error {
	if _, err := t.tx.Exec(`DELETE FROM deployment_targets WHERE bundle_id = ?`, bundleID); err != nil {
		return err
	}
	for _, target := range targets {
		if _, err := t.tx.Exec(`INSERT INTO deployment_targets (bundle_id, target, set_time) VALUES (?, ?, ?)`, bundleID, target, t.now); err != nil {
			return err
		}
	}
	return nil
}

// DeployCheck is a bundle's current issuance whose deploy-deadline check is due.
type DeployCheck struct {
	BundleID      string `db:"bundle_id"`
	CertificateID string `db:"certificate_id"`
	IssuanceID    string `db:"issuance_id"`
	IssueTime     int64  `db:"create_time"`
}

// DeployChecksDue lists, up to limit, the bundles with expected targets whose current certificate
// has not been checked yet (no deployment_checks row) and was received, as were the targets named,
// at or before cutoff (now less the deploy deadline).
//
// The query starts from deployment_targets, the bundles that expect targets, and reaches each
// one's bundle and current issuance by key: every ticker sweep runs it, so its cost must follow
// the bundles that expect deployments, not the bundles stored. (Starting from bundles, as it did
// first, SQLite read every bundle of the store at every tick, looking for its targets: 66 ms per
// sweep with nothing due at 200,000 stored against 5 ms at 10,000; docs/performance.md, "Flat
// costs".) The CROSS JOIN keeps that order on SQLite, whose planner takes a CROSS JOIN's left
// table as the outer loop; PostgreSQL plans it as the inner join it is.
func (s *Store) DeployChecksDue(ctx context.Context, cutoff time.Time, limit int) ([]DeployCheck, error) {
	var out []DeployCheck
	err := s.db.Select(ctx, &out, deployChecksDue, db.Micros(cutoff), db.Micros(cutoff), limit)
	return out, err
}

// deployChecksDue is DeployChecksDue's query: cutoff for the targets, cutoff for the issuance,
// limit.
const deployChecksDue = `SELECT b.bundle_id, b.current_certificate_id AS certificate_id, i.issuance_id, i.create_time
	FROM (SELECT bundle_id, MAX(set_time) AS set_time FROM deployment_targets GROUP BY bundle_id) t
	CROSS JOIN bundles b CROSS JOIN issuances i
	WHERE b.bundle_id = t.bundle_id AND i.issuance_id = b.current_issuance_id
	  AND t.set_time <= ? AND i.create_time <= ?
	  AND NOT EXISTS (SELECT 1 FROM deployment_checks c WHERE c.bundle_id = b.bundle_id AND c.issuance_id = i.issuance_id)
	ORDER BY i.create_time LIMIT ?`

// MissingTargets is the bundle's expected targets with no successful deployment of the issuance.
func (t *Tx) MissingTargets(bundleID, issuanceID string) ([]string, error) {
	var out []string
	err := t.tx.Select(&out, `SELECT target FROM deployment_targets t WHERE bundle_id = ? AND NOT EXISTS
		(SELECT 1 FROM deployments d WHERE d.issuance_id = ? AND d.target = t.target AND d.success) ORDER BY target`,
		bundleID, issuanceID)
	return out, err
}

// RecordDeployCheck records the check of an issuance; false when it was recorded already (by
// another replica), so that one issuance is reported once.
func (t *Tx) RecordDeployCheck(bundleID, issuanceID, outcome string) (bool, error) {
	res, err := t.tx.Exec(`INSERT INTO deployment_checks (bundle_id, issuance_id, outcome, check_time) VALUES (?, ?, ?, ?)
		ON CONFLICT DO NOTHING`, bundleID, issuanceID, outcome, t.now)
	if err != nil {
		return false, err
	}
	n, err := res.RowsAffected()
	return n == 1, err
}
