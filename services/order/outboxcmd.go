package order

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/certhosting/certhosting/pkg/cli"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/services/order/store"
)

// RunOutboxCommand is `certhosting-order outbox`: the operator's view of the paid purchases the
// relay has not delivered to the lifecycle service yet, and a way to retry them at once.
//
// The relay never gives up on a message: a paid order must get its bundle, so a delivery the
// lifecycle service keeps refusing is retried at the capped backoff (a minute) and logged at error
// level from its tenth attempt, rather than set aside in a dead-letter table nobody reads. This
// command shows those messages with their last error; once the cause is fixed, -retry makes them
// all due now instead of at their next backoff time. It reads the database the running service
// uses (SQLite in WAL mode allows that; PostgreSQL is shared anyway) and takes the service's -db
// flag and environment.
func RunOutboxCommand(ctx context.Context, args []string, envPrefix string, now time.Time, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("certhosting-order outbox", flag.ContinueOnError)
	fs.SetOutput(stderr)
	dbPath := fs.String("db", "var/order.db", "order database: a SQLite file, or a postgres:// URL")
	limit := fs.Int("limit", 100, "list at most this many messages, soonest due first")
	retry := fs.Bool("retry", false, "make every undelivered message due now; the running relay attempts them within a second")
	if err := cli.Parse(fs, args, envPrefix); err != nil {
		return err
	}
	if *limit < 1 {
		return fmt.Errorf("-limit must be at least 1, got %d", *limit)
	}
	// Refuse a missing file rather than create an empty database: a mistyped -db would otherwise
	// report an empty outbox.
	dialect, path, err := db.ParseURL(*dbPath)
	if err != nil {
		return fmt.Errorf("-db: %w", err)
	}
	if dialect == db.SQLite {
		if _, err := os.Stat(path); err != nil {
			return fmt.Errorf("-db: %w", err)
		}
	}
	database, err := db.Open(ctx, *dbPath, store.DBOptions())
	if err != nil {
		return err
	}
	defer database.Close()
	st := store.New(database)

	if *retry {
		n, err := st.RetryOutboxNow(ctx, now)
		if err != nil {
			return err
		}
		noun := "messages"
		if n == 1 {
			noun = "message"
		}
		fmt.Fprintf(stdout, "%d undelivered %s made due now\n", n, noun)
		return nil
	}
	total, err := st.OutboxLen(ctx)
	if err != nil {
		return err
	}
	ms, err := st.PendingOutbox(ctx, *limit)
	if err != nil {
		return err
	}
	tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "MESSAGE\tORDER\tPAID\tATTEMPTS\tNEXT ATTEMPT\tLAST ERROR")
	for _, m := range ms {
		lastErr := strings.ReplaceAll(m.LastError.String, "\n", " ")
		if lastErr == "" {
			lastErr = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\n", m.ID, m.OrderID, db.FromMicros(m.CreateTime).UTC().Format(time.RFC3339),
			m.Attempts, db.FromMicros(m.NextAttemptTime).UTC().Format(time.RFC3339), lastErr)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if total > len(ms) {
		fmt.Fprintf(stdout, "(%d more not shown; raise -limit)\n", total-len(ms))
	}
	return nil
}
