package store

import (
	"context"
	"io/fs"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/pkg/db"
)

// migrationsBefore are the migrations older than version prefix (e.g. "00004").
func migrationsBefore(t *testing.T, prefix string) fs.FS {
	t.Helper()
	out := fstest.MapFS{}
	entries, err := fs.ReadDir(Migrations(), ".")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() >= prefix {
			continue
		}
		b, err := fs.ReadFile(Migrations(), e.Name())
		if err != nil {
			t.Fatal(err)
		}
		out[e.Name()] = &fstest.MapFile{Data: b}
	}
	return out
}

// TestIncidentsMigration: upgrading a database with open cases and rejected renewals keeps one
// incident one case (the oldest open case of each carries on as its case) and plans the first
// automatic retry of each rejected hosted renewal that time can cure.
func TestIncidentsMigration(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect db.Dialect) {
		ctx := context.Background()
		path := dbtest.URL(t, dialect, "incidents")
		old, err := db.Open(ctx, path, db.Options{Migrations: migrationsBefore(t, "00004")})
		if err != nil {
			t.Fatal(err)
		}
		err = old.Write(ctx, func(tx *db.Tx) error {
			for _, q := range []string{
				`INSERT INTO bundles (bundle_id, account_id, order_id, product_id, validation_type, domain_type, domain_count, hosting,
					subscription_years, create_time) VALUES ('bdl_h', 'acc', 'ord_h', 'dv-single', 'DV', 'SINGLE', 1, TRUE, 2, 0),
					('bdl_n', 'acc', 'ord_n', 'dv-single', 'DV', 'SINGLE', 1, FALSE, 2, 0)`,
				`INSERT INTO certificates (certificate_id, bundle_id, account_id, sequence, state, create_time, update_time,
					current_application_id) VALUES
					('crt_h1', 'bdl_h', 'acc', 1, 'HOSTED', 0, 0, NULL),
					('crt_h2', 'bdl_h', 'acc', 2, 'VALIDATION_FAILED', 0, 0, 'app_dns'),
					('crt_n1', 'bdl_n', 'acc', 1, 'VALIDATION_FAILED', 0, 0, 'app_first'),
					('crt_n2', 'bdl_n', 'acc', 2, 'NOT_ACTIVATED', 0, 0, NULL)`,
				`INSERT INTO applications (application_id, certificate_id, bundle_id, account_id, status, automatic, actor, domains,
					validation_method, contact, key_algorithm, ca_name, replaces_issuance_id, reject_reason, create_time, update_time) VALUES
					('app_dns', 'crt_h2', 'bdl_h', 'acc', 'REJECTED', TRUE, 'ticker', '[]', 'DNS_TXT', '{}', 'ECDSA_P256', 'local', 'iss_1', 'DNS', 0, 0),
					('app_first', 'crt_n1', 'bdl_n', 'acc', 'REJECTED', FALSE, 'customer', '[]', 'DNS_TXT', '{}', 'ECDSA_P256', 'local', NULL, 'DNS', 0, 0)`,
				// Bundle h: two open cases (the old escalation and rejection), one resolved. Bundle n:
				// one open case.
				`INSERT INTO support_cases (case_id, account_id, bundle_id, certificate_id, kind, urgent, status, assignee, summary,
					create_time, update_time) VALUES
					('case_1', 'acc', 'bdl_h', 'crt_h1', 'LATE_RENEWAL', TRUE, 'OPEN', 'alice', 's', 0, 0),
					('case_2', 'acc', 'bdl_h', 'crt_h2', 'VALIDATION_FAILED', TRUE, 'IN_PROGRESS', 'bob', 's', 0, 0),
					('case_0', 'acc', 'bdl_h', 'crt_h1', 'VALIDATION_FAILED', FALSE, 'RESOLVED', 'bob', 's', 0, 0),
					('case_3', 'acc', 'bdl_n', 'crt_n1', 'VALIDATION_FAILED', FALSE, 'OPEN', 'alice', 's', 0, 0)`,
			} {
				if _, err := tx.Exec(q); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		old.Close()

		d, err := db.Open(ctx, path, db.Options{Migrations: Migrations()})
		if err != nil {
			t.Fatalf("migrating: %v", err)
		}
		defer d.Close()
		var incidents []string
		if err := d.Select(ctx, &incidents, `SELECT case_id || '=' || incident FROM support_cases ORDER BY case_id`); err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(incidents, " "), "case_0=case_0 case_1=bdl_h case_2=case_2 case_3=crt_n1"; got != want {
			t.Errorf("incidents after the migration: %s, want %s", got, want)
		}
		var retries []string
		if err := d.Select(ctx, &retries, `SELECT certificate_id FROM certificates WHERE retry_at IS NOT NULL ORDER BY certificate_id`); err != nil {
			t.Fatal(err)
		}
		if len(retries) != 1 || retries[0] != "crt_h2" {
			t.Errorf("retries planned for %v, want crt_h2 only (a rejected hosted renewal; not a first application)", retries)
		}
	})
}

// TestCoverageMigration: upgrading to the renewal status keeps the state truthful for instances a
// rejected re-issue had moved to VALIDATION_FAILED (HOSTED again while their certificate is valid,
// EXPIRED once it ended), leaves an instance without a certificate VALIDATION_FAILED, and names each
// bundle's current certificate.
func TestCoverageMigration(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect db.Dialect) {
		ctx := context.Background()
		path := dbtest.URL(t, dialect, "coverage")
		old, err := db.Open(ctx, path, db.Options{Migrations: migrationsBefore(t, "00006")})
		if err != nil {
			t.Fatal(err)
		}
		err = old.Write(ctx, func(tx *db.Tx) error {
			for _, q := range []string{
				`INSERT INTO bundles (bundle_id, account_id, order_id, product_id, validation_type, domain_type, domain_count, hosting,
					subscription_years, create_time) VALUES ('bdl_v', 'acc', 'ord_v', 'dv-single', 'DV', 'SINGLE', 1, TRUE, 2, 0),
					('bdl_e', 'acc', 'ord_e', 'dv-single', 'DV', 'SINGLE', 1, TRUE, 2, 0),
					('bdl_n', 'acc', 'ord_n', 'dv-single', 'DV', 'SINGLE', 1, TRUE, 2, 0)`,
				// bdl_v: a re-issue rejected, the certificate still valid (expire_at set). bdl_e: the same,
				// its certificate ended since (expire_at cleared). bdl_n: the next instance's
				// application rejected, the predecessor HOSTED.
				`INSERT INTO certificates (certificate_id, bundle_id, account_id, sequence, state, create_time, update_time,
					current_issuance_id, expire_at) VALUES
					('crt_v1', 'bdl_v', 'acc', 1, 'VALIDATION_FAILED', 0, 0, 'iss_v', 500),
					('crt_e1', 'bdl_e', 'acc', 1, 'VALIDATION_FAILED', 0, 0, 'iss_e', NULL),
					('crt_n1', 'bdl_n', 'acc', 1, 'HOSTED', 0, 0, 'iss_n', 500),
					('crt_n2', 'bdl_n', 'acc', 2, 'VALIDATION_FAILED', 0, 0, NULL, NULL)`,
				`INSERT INTO applications (application_id, certificate_id, bundle_id, account_id, status, automatic, actor, domains,
					validation_method, contact, key_algorithm, ca_name, create_time, update_time) VALUES
					('app_v', 'crt_v1', 'bdl_v', 'acc', 'ISSUED', FALSE, 'customer', '[]', 'DNS_TXT', '{}', 'ECDSA_P256', 'local', 0, 0),
					('app_e', 'crt_e1', 'bdl_e', 'acc', 'ISSUED', FALSE, 'customer', '[]', 'DNS_TXT', '{}', 'ECDSA_P256', 'local', 0, 0),
					('app_n', 'crt_n1', 'bdl_n', 'acc', 'ISSUED', FALSE, 'customer', '[]', 'DNS_TXT', '{}', 'ECDSA_P256', 'local', 0, 0)`,
				`INSERT INTO issuances (issuance_id, certificate_id, application_id, bundle_id, account_id, serial, not_before, not_after,
					chain_pem, create_time) VALUES
					('iss_v', 'crt_v1', 'app_v', 'bdl_v', 'acc', '1', 0, 500, '', 0),
					('iss_e', 'crt_e1', 'app_e', 'bdl_e', 'acc', '2', 0, 100, '', 0),
					('iss_n', 'crt_n1', 'app_n', 'bdl_n', 'acc', '3', 0, 500, '', 0)`,
			} {
				if _, err := tx.Exec(q); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		old.Close()

		d, err := db.Open(ctx, path, db.Options{Migrations: Migrations()})
		if err != nil {
			t.Fatalf("migrating: %v", err)
		}
		defer d.Close()
		var states []string
		if err := d.Select(ctx, &states, `SELECT certificate_id || '=' || state FROM certificates ORDER BY certificate_id`); err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(states, " "), "crt_e1=EXPIRED crt_n1=HOSTED crt_n2=VALIDATION_FAILED crt_v1=HOSTED"; got != want {
			t.Errorf("states after the migration: %s, want %s", got, want)
		}
		var current []string
		if err := d.Select(ctx, &current, `SELECT bundle_id || '=' || COALESCE(current_issuance_id, '-') FROM bundles ORDER BY bundle_id`); err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(current, " "), "bdl_e=- bdl_n=iss_n bdl_v=iss_v"; got != want {
			t.Errorf("current certificates after the migration: %s, want %s", got, want)
		}
	})
}

// TestAccountEngineersMigration: upgrading gives each account with cases the assignee of its
// newest case as its engineer, and none to an account without cases; EngineerFor then keeps a
// configured engineer and replaces one no longer configured with the least-loaded.
func TestAccountEngineersMigration(t *testing.T) {
	t.Parallel()
	dbtest.Each(t, func(t *testing.T, dialect db.Dialect) {
		ctx := context.Background()
		path := dbtest.URL(t, dialect, "engineers")
		old, err := db.Open(ctx, path, db.Options{Migrations: migrationsBefore(t, "00010")})
		if err != nil {
			t.Fatal(err)
		}
		err = old.Write(ctx, func(tx *db.Tx) error {
			_, err := tx.Exec(`INSERT INTO support_cases (case_id, account_id, bundle_id, certificate_id, kind, urgent, status, assignee,
				summary, incident, create_time, update_time) VALUES
				('case_1', 'acc_a', 'bdl_a', 'crt_a', 'VALIDATION_FAILED', FALSE, 'RESOLVED', 'alice', 's', 'case_1', 10, 10),
				('case_2', 'acc_a', 'bdl_a', 'crt_a', 'LATE_RENEWAL', TRUE, 'OPEN', 'bob', 's', 'bdl_a', 20, 20),
				('case_3', 'acc_b', 'bdl_b', 'crt_b', 'VALIDATION_FAILED', FALSE, 'OPEN', 'zed', 's', 'crt_b', 30, 30)`)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		old.Close()

		d, err := db.Open(ctx, path, db.Options{Migrations: Migrations()})
		if err != nil {
			t.Fatalf("migrating: %v", err)
		}
		defer d.Close()
		var rows []string
		if err := d.Select(ctx, &rows, `SELECT account_id || '=' || engineer FROM account_engineers ORDER BY account_id`); err != nil {
			t.Fatal(err)
		}
		if got, want := strings.Join(rows, " "), "acc_a=bob acc_b=zed"; got != want {
			t.Errorf("engineers after the migration: %s, want %s", got, want)
		}

		s := New(d, nil)
		var a, b string
		err = s.Write(ctx, 100, func(tx *Tx) error {
			if a, err = tx.EngineerFor("acc_a", []string{"alice", "bob"}); err != nil {
				return err
			}
			// zed is gone: b gets the least loaded of alice (0 accounts) and bob (1).
			b, err = tx.EngineerFor("acc_b", []string{"alice", "bob"})
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		if a != "bob" || b != "alice" {
			t.Errorf("EngineerFor after the migration: acc_a %s, acc_b %s; want bob (kept), alice (zed not configured)", a, b)
		}
	})
}
