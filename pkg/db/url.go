package db

import (
	"fmt"
	"strings"
)

// Dialect is the SQL database behind a DB.
type Dialect string

// The dialects.
const (
	SQLite   Dialect = "sqlite"
	Postgres Dialect = "postgres"
)

// ParseURL reads a database URL: `postgres://…` (or `postgresql://…`, a libpq connection URL) is
// PostgreSQL; `sqlite:PATH` (or `sqlite://PATH`) and a bare path are SQLite files. It returns the
// dialect and what to open: the connection string, or the file's path.
func ParseURL(url string) (Dialect, string, error) {
	switch {
	case url == "":
		return "", "", fmt.Errorf("db: empty database URL")
	case strings.HasPrefix(url, "postgres://"), strings.HasPrefix(url, "postgresql://"):
		return Postgres, url, nil
	case strings.HasPrefix(url, "sqlite:"):
		path := strings.TrimPrefix(strings.TrimPrefix(url, "sqlite:"), "//")
		if path == "" {
			return "", "", fmt.Errorf("db: %q names no file", url)
		}
		return SQLite, path, nil
	case strings.Contains(url, "://"):
		return "", "", fmt.Errorf("db: %q: unknown scheme (want postgres://, sqlite: or a file path)", url)
	}
	return SQLite, url, nil
}

// Redacted is url without its password, for logs.
func Redacted(url string) string {
	d, dsn, err := ParseURL(url)
	if err != nil || d != Postgres {
		return url
	}
	scheme, rest, _ := strings.Cut(dsn, "://")
	userinfo, host, ok := strings.Cut(rest, "@")
	if !ok {
		return url
	}
	if user, _, hasPass := strings.Cut(userinfo, ":"); hasPass {
		return scheme + "://" + user + ":xxxxx@" + host
	}
	return url
}
