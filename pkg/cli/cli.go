// Package cli holds the few pieces both binaries' mains share: flags with environment overrides,
// and the logger.
package cli

import (
	"flag"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/peterbourgon/ff/v3"
)

// Parse parses args into fs, letting an environment variable override each flag's default: flag
// -listen of a parser with prefix CERTHOSTING_ORDER is CERTHOSTING_ORDER_LISTEN. Flags given on the
// command line win over the environment.
func Parse(fs *flag.FlagSet, args []string, envPrefix string) error {
	return ff.Parse(fs, args, ff.WithEnvVarPrefix(envPrefix))
}

// EnvName is the environment variable that overrides a flag, for help texts and docs.
func EnvName(envPrefix, flagName string) string {
	return envPrefix + "_" + strings.ToUpper(strings.NewReplacer("-", "_", ".", "_").Replace(flagName))
}

// Logger returns a structured logger writing to w. format is "text" or "json"; level is debug,
// info, warn or error.
func Logger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level: %w", err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("-log-format: want text or json, got %q", format)
}
