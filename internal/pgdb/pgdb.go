// Package pgdb creates and drops PostgreSQL databases for the benchmark commands: each run on
// databases of its own, as the tests do (internal/dbtest).
package pgdb

import (
	"context"
	"fmt"
	"net/url"

	"github.com/jackc/pgx/v5"
)

// Fresh creates the databases prefix_<name> for each name on the PostgreSQL server of admin (the
// URL of any database there), dropping any left over from an earlier run, and returns their URLs
// by name and a func that drops them.
func Fresh(ctx context.Context, admin, prefix string, names ...string) (map[string]string, func(), error) {
	u, err := url.Parse(admin)
	if err != nil {
		return nil, nil, fmt.Errorf("postgres URL: %w", err)
	}
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return nil, nil, fmt.Errorf("connect to PostgreSQL: %w", err)
	}
	urls := map[string]string{}
	var created []string
	drop := func() {
		for _, name := range created {
			_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		}
		conn.Close(context.Background())
	}
	for _, n := range names {
		name := prefix + "_" + n
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			drop()
			return nil, nil, err
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			drop()
			return nil, nil, err
		}
		created = append(created, name)
		d := *u
		d.Path = "/" + name
		urls[n] = d.String()
	}
	return urls, drop, nil
}
