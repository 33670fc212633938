package main

import (
	"context"
	"fmt"
	"net/url"
	"strings"

	"github.com/jackc/pgx/v5"
)

// freshDatabases creates a run's four databases (order, lifecycle, identity, local CA) on the
// PostgreSQL server of admin (the URL of any database there) and returns their URLs, for
// pair.Options.Databases, and a func that drops them.
func freshDatabases(ctx context.Context, admin string, run int) (map[string]string, func(), error) {
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return nil, nil, fmt.Errorf("-postgres: %w", err)
	}
	u, err := url.Parse(admin)
	if err != nil {
		conn.Close(ctx)
		return nil, nil, fmt.Errorf("-postgres: %w", err)
	}
	urls := map[string]string{}
	var names []string
	drop := func() {
		for _, name := range names {
			_, _ = conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
		}
		conn.Close(context.Background())
	}
	for _, svc := range []string{"order", "lifecycle", "identity", "localca"} {
		name := fmt.Sprintf("certhosting_bench_%s_%d", svc, run)
		if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)"); err != nil {
			drop()
			return nil, nil, err
		}
		if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
			drop()
			return nil, nil, err
		}
		names = append(names, name)
		d := *u
		d.Path = "/" + name
		urls[svc] = d.String()
	}
	return urls, drop, nil
}

// databaseName describes where the services' databases are, for the report.
func databaseName(cfg config, fs string) string {
	if cfg.postgres == "" {
		return "SQLite WAL synchronous=FULL on " + fs
	}
	u, err := url.Parse(cfg.postgres)
	if err != nil {
		return "PostgreSQL"
	}
	return "PostgreSQL at " + strings.TrimSuffix(u.Host, "/") + " (SERIALIZABLE writes, synchronous_commit on), one database per service"
}
