package lifecycle

import (
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/apierr"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// Deployments (issue 13, item 5). A deploy agent (cmd/certhosting-agent) installs each new
// certificate of the bundles it watches and reports it with RecordDeployment; GetBundle shows the
// latest report of each target. A bundle may name the targets it expects (UpdateBundle's
// expected_deployment_targets); the ticker checks each current certificate of such a bundle once,
// DeployDeadline after the service received it: if a target has no successful report of it by
// then, that is an incident like a late renewal (an EVENT_TYPE_DEPLOYMENT_OVERDUE history event
// and an urgent case through reportIncident: one incident, one case).

// Limits of a deployment report's fields.
const (
	maxTargetLen   = 64
	maxTargets     = 32
	maxHostLen     = 253
	maxPathLen     = 4096
	maxErrorLen    = 2048
	maxDeploySkew  = 5 * time.Minute
	defaultOverdue = 24 * time.Hour
)

// DefaultDeployDeadline is how long after its issuance a certificate may take to reach every
// target its bundle expects before the ticker reports it (certhosting-lifecycle -deploy-deadline).
const DefaultDeployDeadline = defaultOverdue

// checkTarget says why name is not a valid target name, or returns nil.
func checkTarget(field, name string) error {
	if name == "" || len(name) > maxTargetLen {
		return apierr.InvalidArgument(field, "must be 1 to %d characters, got %d", maxTargetLen, len(name))
	}
	for _, r := range name {
		if !(r < unicode.MaxASCII && (unicode.IsLetter(r) || unicode.IsDigit(r)) || r == '.' || r == '-' || r == '_') {
			return apierr.InvalidArgument(field, "%q: only letters, digits, '.', '-' and '_' are allowed", name)
		}
	}
	return nil
}

// checkTargets validates a bundle's expected targets and returns them sorted.
func checkTargets(field string, targets []string) ([]string, error) {
	if len(targets) > maxTargets {
		return nil, apierr.InvalidArgument(field, "at most %d targets, got %d", maxTargets, len(targets))
	}
	out := slices.Clone(targets)
	slices.Sort(out)
	for i, t := range out {
		if err := checkTarget(field, t); err != nil {
			return nil, err
		}
		if i > 0 && out[i-1] == t {
			return nil, apierr.InvalidArgument(field, "%q is listed twice", t)
		}
	}
	return out, nil
}

// checkPath validates an absolute path reported by an agent.
func checkPath(field, p string) error {
	switch {
	case p == "":
		return apierr.InvalidArgument(field, "is required")
	case len(p) > maxPathLen:
		return apierr.InvalidArgument(field, "must be at most %d characters", maxPathLen)
	case !filepath.IsAbs(p) || strings.ContainsRune(p, 0):
		return apierr.InvalidArgument(field, "must be an absolute path, got %q", p)
	}
	return nil
}

// checkDeployment validates every field of a report (the bundle and issuance ids first, so a
// request naming nothing says so), against the service's time now.
func checkDeployment(req *lifecyclev1.RecordDeploymentRequest, now time.Time) error {
	if err := ids.Check("bundle_id", ids.Bundle, req.GetBundleId()); err != nil {
		return err
	}
	if err := ids.Check("issuance_id", ids.Issuance, req.GetIssuanceId()); err != nil {
		return err
	}
	if err := checkTarget("target", req.GetTarget()); err != nil {
		return err
	}
	host := req.GetHost()
	if host == "" || len(host) > maxHostLen || strings.IndexFunc(host, func(r rune) bool { return unicode.IsSpace(r) || unicode.IsControl(r) }) >= 0 {
		return apierr.InvalidArgument("host", "must be 1 to %d characters without spaces or control characters, got %q", maxHostLen, host)
	}
	if err := checkPath("certificate_path", req.GetCertificatePath()); err != nil {
		return err
	}
	if err := checkPath("private_key_path", req.GetPrivateKeyPath()); err != nil {
		return err
	}
	if req.GetDeployTime() == nil {
		return apierr.InvalidArgument("deploy_time", "is required")
	}
	if err := req.GetDeployTime().CheckValid(); err != nil {
		return apierr.InvalidArgument("deploy_time", "%v", err)
	}
	if t := req.GetDeployTime().AsTime(); t.After(now.Add(maxDeploySkew)) {
		return apierr.InvalidArgument("deploy_time", "%s is more than %s in the future", t.Format(time.RFC3339), maxDeploySkew)
	}
	switch e := req.GetError(); {
	case req.GetSuccess() && e != "":
		return apierr.InvalidArgument("error", "must be empty when success is true")
	case !req.GetSuccess() && e == "":
		return apierr.InvalidArgument("error", "is required when success is false")
	case len(e) > maxErrorLen:
		return apierr.InvalidArgument("error", "must be at most %d characters", maxErrorLen)
	}
	return nil
}

// RecordDeployment implements LifecycleService.RecordDeployment.
func (s *Server) RecordDeployment(ctx context.Context, req *lifecyclev1.RecordDeploymentRequest) (*lifecyclev1.RecordDeploymentResponse, error) {
	who, err := caller(ctx)
	if err != nil {
		return nil, err
	}
	now := s.Clock.Now()
	if err := checkDeployment(req, now); err != nil {
		return nil, err
	}
	if !who.Sees(req.GetBundleId()) {
		return nil, apierr.NotFound("bundle", req.GetBundleId())
	}
	var d store.Deployment
	err = s.Store.Write(ctx, db.Micros(now), func(tx *store.Tx) error {
		b, err := tx.Bundle(req.GetBundleId())
		if err != nil {
			return err
		}
		if b.AccountID != who.AccountID {
			return apierr.NotFound("bundle", b.ID)
		}
		iss, err := tx.Issuance(req.GetIssuanceId())
		if err != nil {
			return err
		}
		if iss.AccountID != who.AccountID {
			return apierr.NotFound("issuance", iss.ID)
		}
		if iss.BundleID != b.ID {
			return apierr.InvalidArgument("issuance_id", "%s is a certificate of bundle %s, not of %s", iss.ID, iss.BundleID, b.ID)
		}
		d = store.Deployment{
			ID: ids.New(ids.Deployment, now), AccountID: b.AccountID, BundleID: b.ID, CertificateID: iss.CertificateID,
			IssuanceID: iss.ID, Serial: iss.Serial, Target: req.GetTarget(), Host: req.GetHost(),
			CertificatePath: req.GetCertificatePath(), PrivateKeyPath: req.GetPrivateKeyPath(),
			DeployTime: db.Micros(req.GetDeployTime().AsTime()), Success: req.GetSuccess(), Error: req.GetError(),
		}
		return tx.InsertDeployment(&d)
	})
	if err != nil {
		return nil, err
	}
	return &lifecyclev1.RecordDeploymentResponse{Deployment: deploymentProto(d)}, nil
}

// deploymentProto converts a stored report.
func deploymentProto(d store.Deployment) *lifecyclev1.Deployment {
	return &lifecyclev1.Deployment{
		BundleId: d.BundleID, CertificateId: d.CertificateID, IssuanceId: d.IssuanceID, SerialNumber: d.Serial,
		Target: d.Target, Host: d.Host, CertificatePath: d.CertificatePath, PrivateKeyPath: d.PrivateKeyPath,
		DeployTime: ts(d.DeployTime), Success: d.Success, Error: d.Error, RecordTime: ts(d.RecordTime),
	}
}

// addDeployments fills a bundle answer's expected targets and latest deployments (GetBundle,
// UpdateBundle).
func (s *Server) addDeployments(ctx context.Context, out *lifecyclev1.Bundle) error {
	targets, err := s.Store.ExpectedTargets(ctx, out.GetBundleId())
	if err != nil {
		return err
	}
	latest, err := s.Store.LatestDeployments(ctx, out.GetBundleId())
	if err != nil {
		return err
	}
	out.ExpectedDeploymentTargets = targets
	for _, d := range latest {
		out.Deployments = append(out.Deployments, deploymentProto(d))
	}
	return nil
}

// checkDeployments is the ticker's deploy-deadline phase: each current certificate of a bundle
// with expected targets, received DeployDeadline or longer ago and not checked yet, is checked
// once. Every target reached: recorded as DEPLOYED. Otherwise: recorded as OVERDUE, a
// deployment_overdue history event on the instance, and an urgent DEPLOYMENT_MISSING case (or a
// note on the bundle's open case).
func (t *Ticker) checkDeployments(ctx context.Context, now time.Time, st *TickStats) error {
	var mu sync.Mutex
	return sweep(ctx, t, "deployments", func() ([]store.DeployCheck, error) {
		return t.Store.DeployChecksDue(ctx, now.Add(-t.cfg.DeployDeadline), t.cfg.Batch)
	}, func(c store.DeployCheck) error {
		return t.write(ctx, now, func(tx *store.Tx) error {
			missing, err := tx.MissingTargets(c.BundleID, c.IssuanceID)
			if err != nil {
				return err
			}
			outcome := store.CheckDeployed
			if len(missing) > 0 {
				outcome = store.CheckOverdue
			}
			if first, err := tx.RecordDeployCheck(c.BundleID, c.IssuanceID, outcome); err != nil || !first || len(missing) == 0 {
				return err
			}
			b, err := tx.Bundle(c.BundleID)
			if err != nil {
				return err
			}
			cert, err := tx.Certificate(c.CertificateID)
			if err != nil {
				return err
			}
			summary := fmt.Sprintf("the certificate of instance %d (issuance %s) is not deployed to %s %s after its issuance",
				cert.Sequence, c.IssuanceID, strings.Join(missing, ", "), t.cfg.DeployDeadline)
			if err := tx.Event(store.Event{AccountID: b.AccountID, BundleID: b.ID, CertificateID: cert.ID,
				Type: store.EventDeploymentOverdue, From: cert.State, To: cert.State, Actor: state.ActorSystem, Reason: summary}); err != nil {
				return err
			}
			if _, err := t.reportIncident(tx, b, report{cert: cert, kind: store.CaseDeploymentMissing, urgent: true, summary: summary}); err != nil {
				return err
			}
			mu.Lock()
			st.DeploymentsOverdue++
			mu.Unlock()
			return nil
		})
	})
}
