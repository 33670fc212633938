package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	lifecyclev1 "github.com/certhosting/certhosting/gen/go/certhosting/lifecycle/v1"
	"github.com/certhosting/certhosting/pkg/backoff"
)

// state is what the agent keeps across restarts, in stateDir/state.json: the WatchEvents cursor
// (the last event handled) and, per bundle, the issuance last deployed successfully. A restart
// resumes the stream after the cursor and deploys only a certificate that is not the one
// recorded here.
type state struct {
	dir string
	// Cursor is the event_id the stream resumes after; empty before the first event.
	Cursor string `json:"cursor"`
	// Deployed maps a bundle id to the issuance id last deployed successfully.
	Deployed map[string]string `json:"deployed"`
}

func openState(dir string) (*state, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	st := &state{dir: dir, Deployed: map[string]string{}}
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if errors.Is(err, os.ErrNotExist) {
		return st, nil
	}
	if err != nil {
		return nil, err
	}
	if err := json.Unmarshal(b, st); err != nil {
		return nil, fmt.Errorf("state.json: %w", err)
	}
	if st.Deployed == nil {
		st.Deployed = map[string]string{}
	}
	return st, nil
}

// save writes the state atomically.
func (s *state) save() error {
	b, err := json.MarshalIndent(s, "", "  ")
	if err != nil {
		return err
	}
	return writeAtomic(filepath.Join(s.dir, "state.json"), b, 0o600)
}

// writeAtomic replaces path with data: a temporary file in the same directory, written and
// fsynced, renamed over path, and the directory fsynced, so a reader (or a crash) sees the old
// file or the new one, never a part. The file gets mode perm whatever the umask.
func writeAtomic(path string, data []byte, perm os.FileMode) (err error) {
	dir := filepath.Dir(path)
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp-*")
	if err != nil {
		return err
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	if err = f.Chmod(perm); err != nil {
		return err
	}
	if _, err = f.Write(data); err != nil {
		return err
	}
	if err = f.Sync(); err != nil {
		return err
	}
	if err = f.Close(); err != nil {
		return err
	}
	if err = os.Rename(f.Name(), path); err != nil {
		return err
	}
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// agent follows the events and deploys.
type agent struct {
	client        lifecyclev1.LifecycleServiceClient
	log           *slog.Logger
	state         *state
	targets       map[string]string // bundle id -> directory
	name, host    string
	reload        string
	reloadTimeout time.Duration
	backoff       backoff.Policy
	now           func() time.Time
	// ready, if set, is called once, when the first catch-up of every target is done.
	ready func()
}

// run follows WatchEvents until ctx ends, reconnecting with backoff whenever the stream fails.
func (a *agent) run(ctx context.Context) error {
	failures := 0
	for {
		err := a.follow(ctx)
		if ctx.Err() != nil {
			return ctx.Err()
		}
		switch status.Code(err) {
		case codes.Unauthenticated, codes.PermissionDenied:
			return fmt.Errorf("the lifecycle service refused the API key: %w", err)
		}
		if errors.Is(err, errProgress) {
			failures = 0
		}
		failures++
		d := a.backoff.Delay(failures)
		a.log.Warn("lifecycle stream ended; reconnecting", "err", err, "in", d)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

// errProgress marks a stream that delivered events before it ended: the next reconnect starts
// its backoff afresh.
var errProgress = errors.New("stream ended after progress")

// follow opens the stream after the cursor, brings every watched bundle up to date (events
// committed from now on reach the stream, so nothing falls between), then handles the events.
func (a *agent) follow(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stream, err := a.client.WatchEvents(ctx, &lifecyclev1.WatchEventsRequest{AfterEventId: a.state.Cursor})
	if err != nil {
		return err
	}
	if _, err := stream.Header(); err != nil {
		return err
	}
	bundles := make([]string, 0, len(a.targets))
	for b := range a.targets {
		bundles = append(bundles, b)
	}
	sort.Strings(bundles)
	for _, b := range bundles {
		if err := a.sync(ctx, b); err != nil {
			return err
		}
	}
	if a.ready != nil {
		a.ready()
		a.ready = nil
	}
	progressed := false
	for {
		resp, err := stream.Recv()
		if err != nil {
			if progressed && ctx.Err() == nil {
				return fmt.Errorf("%w: %w", errProgress, err)
			}
			return err
		}
		ev := resp.GetEvent()
		if _, watched := a.targets[ev.GetBundleId()]; watched {
			if err := a.sync(ctx, ev.GetBundleId()); err != nil {
				return err
			}
		}
		a.state.Cursor = ev.GetEventId()
		if err := a.state.save(); err != nil {
			return err
		}
		progressed = true
	}
}

// sync deploys the bundle's current certificate if it is not the one deployed already. A
// failure to deploy (files, reload) is reported and logged, not returned: the agent goes on with
// the other bundles and tries again at the next event or start. Errors talking to the service
// are returned (the caller reconnects).
func (a *agent) sync(ctx context.Context, bundleID string) error {
	resp, err := a.client.GetBundle(ctx, &lifecyclev1.GetBundleRequest{BundleId: bundleID})
	if err != nil {
		if c := status.Code(err); c == codes.NotFound || c == codes.InvalidArgument {
			a.log.Error("watched bundle is not readable with this key", "bundle", bundleID, "err", err)
			return nil
		}
		return err
	}
	b := resp.GetBundle()
	cur := b.GetCurrentIssuance().GetIssuanceId()
	if cur == "" || a.state.Deployed[bundleID] == cur {
		return nil
	}
	exp, err := a.client.ExportCertificate(ctx, &lifecyclev1.ExportCertificateRequest{CertificateId: b.GetCurrentCertificateId()})
	if err != nil {
		return err
	}
	iss := exp.GetIssuance()
	if exp.GetPrivateKeyPem() == "" {
		a.log.Error("the certificate's key is the customer's (own CSR): nothing to deploy", "bundle", bundleID, "issuance", iss.GetIssuanceId())
		return nil
	}
	dir := a.targets[bundleID]
	certPath, keyPath := filepath.Join(dir, "fullchain.pem"), filepath.Join(dir, "privkey.pem")
	deployErr := a.install(ctx, dir, certPath, keyPath, iss.GetCertificateChainPem(), exp.GetPrivateKeyPem())
	req := &lifecyclev1.RecordDeploymentRequest{
		BundleId: bundleID, IssuanceId: iss.GetIssuanceId(), Target: a.name, Host: a.host,
		CertificatePath: certPath, PrivateKeyPath: keyPath, DeployTime: timestamppb.New(a.now()), Success: deployErr == nil,
	}
	if deployErr != nil {
		req.Error = shorten(deployErr.Error(), 2000)
		a.log.Error("deployment failed", "bundle", bundleID, "serial", iss.GetSerialNumber(), "err", deployErr)
	}
	if _, err := a.client.RecordDeployment(ctx, req); err != nil {
		return fmt.Errorf("RecordDeployment: %w", err)
	}
	if deployErr != nil {
		return nil
	}
	// Saved after the service has the deployment: an agent killed between the two installs the
	// same certificate again at its next start (the same files, one more reload), rather than
	// leave a deployment the service never hears of and alarms on.
	a.state.Deployed[bundleID] = iss.GetIssuanceId()
	if err := a.state.save(); err != nil {
		return err
	}
	a.log.Info("certificate deployed", "bundle", bundleID, "serial", iss.GetSerialNumber(), "issuance", iss.GetIssuanceId(), "dir", dir)
	return nil
}

// install writes the key, then the chain, each atomically, then runs the reload command. (Each
// file is whole at every instant; the pair is consistent once both renames are done, which is
// before the reload asks the server to read them.)
func (a *agent) install(ctx context.Context, dir, certPath, keyPath, chain, key string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := writeAtomic(keyPath, []byte(key), 0o600); err != nil {
		return fmt.Errorf("writing %s: %w", keyPath, err)
	}
	if err := writeAtomic(certPath, []byte(chain), 0o644); err != nil {
		return fmt.Errorf("writing %s: %w", certPath, err)
	}
	if a.reload == "" {
		return nil
	}
	rctx, cancel := context.WithTimeout(ctx, a.reloadTimeout)
	defer cancel()
	cmd := exec.CommandContext(rctx, "sh", "-c", a.reload)
	cmd.WaitDelay = time.Second
	out, err := cmd.CombinedOutput()
	if rctx.Err() == context.DeadlineExceeded {
		return fmt.Errorf("reload command timed out after %s", a.reloadTimeout)
	}
	if err != nil {
		return fmt.Errorf("reload command: %w: %s", err, strings.TrimSpace(string(out)))
	}
	return nil
}

func shorten(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
