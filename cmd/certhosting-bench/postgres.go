package main

import "net/url"

// databaseName describes where the services' databases are, for the report.
func databaseName(cfg config, fs string) string {
	if cfg.postgres == "" {
		return "SQLite WAL synchronous=FULL on " + fs
	}
	u, err := url.Parse(cfg.postgres)
	if err != nil {
		return "PostgreSQL"
	}
	return "PostgreSQL at " + u.Host + " (SERIALIZABLE writes, synchronous_commit on), one database per service"
}
