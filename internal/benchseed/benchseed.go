// Package benchseed writes the hosted bundles the benchmarks start from straight into a lifecycle
// database (cmd/certhosting-sweepbench, cmd/certhosting-reissuebench): each a 2-year hosted
// bundle of the domain bench-<i>.example.com whose first instance is HOSTED with an issued
// certificate, as the service would have left it.
package benchseed

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"math/big"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
	"github.com/certhosting/certhosting/services/lifecycle/state"
	"github.com/certhosting/certhosting/services/lifecycle/store"
)

// Params are what every seeded bundle shares: the account, the first issuance's validity
// (issued 335 days before at, expiring 30 days after it) and a chain to store.
func Params(at time.Time) (account, chain string, t0, notAfter time.Time, err error) {
	chain, err = DummyChain(at)
	t0 = at.Add(-335 * 24 * time.Hour)
	return ids.New(ids.Account, at), chain, t0, t0.Add(365 * 24 * time.Hour), err
}

// SQLite writes n two-year hosted bundles whose first instance is HOSTED with a certificate issued
// 335 days before at, expiring 30 days after it: renewing it activates instance 2. The first `due`
// bundles are at their renewal time; the others renew over the next 300 days.
func SQLite(ctx context.Context, path string, n, due int, at time.Time) error {
	return SQLiteWith(ctx, path, Options{N: n, Due: due, At: at})
}

// Options are what SQLiteWith seeds.
type Options struct {
	// N bundles, the first Due of them at their renewal time at At (see SQLite).
	N, Due int
	At     time.Time
	// Account owns every bundle; empty: a new account id. A benchmark that calls the API as the
	// bundles' owner creates the account (and a key for it) first and passes its id.
	Account string
	// History also writes what the service keeps beside such a bundle, which SQLite leaves out:
	// the bundle's current certificate (bundles.current_certificate_id, current_issuance_id,
	// current_not_after) and the bundle's history events as the service writes them on the way to HOSTED (each instance
	// created, the first application submitted, the certificate hosted: 4 per bundle), with the
	// events counter set past them, and the notification fan-out's cursor too: the seeded
	// events stand for history the service fanned out as it wrote it, so a service started on
	// the store does not spend its first minutes turning 4,000,000 old events into
	// notifications (which made bench-flat measure the million-certificate store's service in
	// the middle of that catch-up). Without History a store of a million certificates has an
	// empty events table, and what reads the events (WatchEvents, GetCertificateLifecycle) is
	// measured on nothing.
	History bool
}

// SQLiteWith writes the bundles o describes into the lifecycle database at path (see SQLite).
func SQLiteWith(ctx context.Context, path string, o Options) error {
	d, err := db.Open(ctx, path, db.Options{Migrations: store.Migrations(), MaxBatch: 1})
	if err != nil {
		return err
	}
	defer d.Close()
	account, chain, t0, notAfter, err := Params(o.At)
	if err != nil {
		return err
	}
	if o.Account != "" {
		account = o.Account
	}
	const perTx = 5000
	for startIdx := 0; startIdx < o.N; startIdx += perTx {
		err := d.Write(ctx, func(tx *db.Tx) error {
			for i := startIdx; i < min(startIdx+perTx, o.N); i++ {
				rows := Rows(i, account, chain, t0, notAfter, o.At, i < o.Due)
				if o.History {
					addHistory(rows, i)
				}
				if err := insertRows(tx, rows, o.History); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}
	if !o.History || o.N == 0 {
		return nil
	}
	return d.Write(ctx, func(tx *db.Tx) error {
		_, err := tx.Exec(`UPDATE counters SET value = ? WHERE name IN ('events', 'notify_cursor')`, int64(o.N)*eventsPerBundle)
		return err
	})
}

// Columns of the seeded rows, in the order Rows gives their values.
var Columns = map[string][]string{
	"bundles": {"bundle_id", "account_id", "order_id", "product_id", "validation_type", "domain_type", "domain_count",
		"hosting", "subscription_years", "create_time", "t0", "template_application_id", "hosting_status"},
	"certificates": {"certificate_id", "bundle_id", "account_id", "sequence", "state", "coverage_start", "coverage_end",
		"create_time", "update_time", "current_issuance_id", "current_application_id", "renew_at", "expire_at", "escalate_at"},
	"applications": {"application_id", "certificate_id", "bundle_id", "account_id", "status", "automatic", "actor", "domains",
		"validation_method", "contact", "key_algorithm", "ca_name", "ca_ref", "create_time", "update_time"},
	"issuances": {"issuance_id", "certificate_id", "application_id", "bundle_id", "account_id", "serial", "not_before",
		"not_after", "chain_pem", "create_time"},
	"certificate_domains": {"account_id", "certificate_id", "bundle_id", "domain", "reversed"},
}

// Tables is the order the tables are written in.
var Tables = []string{"bundles", "certificates", "applications", "issuances", "certificate_domains"}

// Rows gives bundle i's rows, by table: its bundle, its two instances (the first HOSTED,
// the second NOT_ACTIVATED), the first instance's application and issuance, and the names the
// domain filters look up (certificate_domains), as the service writes them.
func Rows(i int, account, chain string, t0, notAfter, at time.Time, due bool) map[string][][]any {
	day := 24 * time.Hour
	bundle, order := ids.New(ids.Bundle, t0), ids.New(ids.Order, t0)
	app, iss := ids.New(ids.Application, t0), ids.New(ids.Issuance, t0)
	micros := db.Micros
	renewAt := at.Add(-time.Minute)
	if !due {
		renewAt = at.Add(time.Duration(1+i%300) * day)
	}
	rows := map[string][][]any{
		"bundles": {{bundle, account, order, "dv-single", "DV", "SINGLE", int32(1), true, int32(2), micros(t0), micros(t0), app, "ACTIVE"}},
	}
	certs := make([]string, 2)
	for seq := 1; seq <= 2; seq++ {
		certs[seq-1] = ids.New(ids.Certificate, t0)
		start, end := t0.Add(time.Duration(seq-1)*365*day), t0.Add(time.Duration(seq)*365*day)
		if seq == 1 {
			rows["certificates"] = append(rows["certificates"], []any{certs[0], bundle, account, int32(1), "HOSTED", micros(start),
				micros(end), micros(t0), micros(t0), iss, app, micros(renewAt), micros(notAfter), micros(notAfter.Add(-7 * day))})
			continue
		}
		rows["certificates"] = append(rows["certificates"], []any{certs[1], bundle, account, int32(seq), "NOT_ACTIVATED",
			micros(start), micros(end), micros(t0), micros(t0), nil, nil, nil, nil, nil})
	}
	domain := fmt.Sprintf("bench-%d.example.com", i)
	rows["certificate_domains"] = [][]any{{account, certs[0], bundle, domain, store.ReverseName(domain)}}
	rows["applications"] = [][]any{{app, certs[0], bundle, account, "ISSUED", false, "customer", `["` + domain + `"]`,
		"DNS_TXT", `{"email":"ops@example.com"}`, "ECDSA_P256", "local", "seeded", micros(t0), micros(t0)}}
	rows["issuances"] = [][]any{{iss, certs[0], app, bundle, account, strconv.Itoa(i), micros(t0), micros(notAfter), chain, micros(t0)}}
	return rows
}

// historyColumns are the columns of the rows addHistory adds or extends, by table: the bundle
// also names its current certificate (bundles.current_*, which the service keeps up to date at
// every issuance, RefreshCurrent).
var historyColumns = map[string][]string{
	"bundles": append(slices.Clone(Columns["bundles"]), "current_certificate_id", "current_issuance_id", "current_not_after"),
	"events": {"event_id", "account_id", "bundle_id", "certificate_id", "type", "from_state", "to_state", "actor",
		"reason", "time"},
}

// allTables are Tables and the history tables, in the order insertRows writes them.
var allTables = append(slices.Clone(Tables), "events")

// eventsPerBundle is how many history events addHistory writes per bundle; bundle i's take the
// event ids after i*eventsPerBundle, so ids increase with the bundles' order, as commits would.
const eventsPerBundle = 4

// addHistory adds to bundle i's rows its current certificate and its history events (Options.History).
func addHistory(rows map[string][][]any, i int) {
	b, certs, iss := rows["bundles"][0], rows["certificates"], rows["issuances"][0]
	bundle, account, order, created := b[0], b[1], b[2], b[9]
	first, second := certs[0][0], certs[1][0]
	rows["bundles"][0] = append(b, first, iss[0], iss[7])
	id := int64(i) * eventsPerBundle
	event := func(cert any, typ string, from, to state.State, actor state.Actor, reason string) []any {
		id++
		return []any{id, account, bundle, cert, typ, string(from), string(to), string(actor), reason, created}
	}
	rows["events"] = [][]any{
		event(first, store.EventCreated, state.None, state.PendingApplication, state.ActorSystem, fmt.Sprintf("order %s paid", order)),
		event(second, store.EventCreated, state.None, state.NotActivated, state.ActorSystem, fmt.Sprintf("order %s paid", order)),
		event(first, store.EventApplicationSubmitted, state.PendingApplication, state.Validating, state.ActorCustomer,
			fmt.Sprintf("application %s submitted", rows["applications"][0][0])),
		event(first, store.EventHosted, state.Validating, state.Hosted, state.ActorTicker,
			fmt.Sprintf("certificate %s issued", iss[0])),
	}
}

// insertRows writes one bundle's rows: Tables, then the history tables when present.
func insertRows(tx *db.Tx, rows map[string][][]any, history bool) error {
	for _, table := range allTables {
		cols := Columns[table]
		if history && historyColumns[table] != nil {
			cols = historyColumns[table]
		}
		q := `INSERT INTO ` + table + ` (` + strings.Join(cols, ", ") + `) VALUES (` +
			strings.TrimSuffix(strings.Repeat("?, ", len(cols)), ", ") + `)`
		for _, r := range rows[table] {
			if _, err := tx.Exec(q, r...); err != nil {
				return err
			}
		}
	}
	return nil
}

// DummyChain is a real, small certificate, stored as every seeded issuance's chain (the sweep
// reads it as the certificate a renewal replaces; nothing verifies it).
func DummyChain(at time.Time) (string, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return "", err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "bench.example.com"},
		DNSNames: []string{"bench.example.com"}, NotBefore: at.Add(-335 * 24 * time.Hour), NotAfter: at.Add(30 * 24 * time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return "", err
	}
	return string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})), nil
}
