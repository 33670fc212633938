package auth

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/jonboulle/clockwork"

	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/ids"
)

// DefaultIdentityDB is where both services and the admin commands find the identity database
// unless -identity-db (or CERTHOSTING_IDENTITY_DB) says otherwise.
const DefaultIdentityDB = "var/identity.db"

const adminUsage = `usage: %s admin <command> [flags]

Commands (each takes -identity-db, default $CERTHOSTING_IDENTITY_DB or var/identity.db):
  create-account -name NAME                      create an account; prints its id
  create-key -account ID -role ROLE -name NAME   create a key (role: owner, deployer, reader,
             [-bundles B1,B2] [-expires DUR]      support, service); deployer and reader keys may
             [-out FILE]                          be limited to bundles, any key may expire after
                                                  DUR; prints the secret, or writes it to FILE (0600)
  revoke-key -key ID                             revoke a key (honoured within seconds)
  list-keys -account ID                          list an account's keys (never their secrets)
  bootstrap -dir DIR                             the demo setup used by 'make run': a "demo" account
                                                 with an owner key in DIR/demo-api-key and the
                                                 order service's key in DIR/order-service-key;
                                                 keeps keys that are still valid
`

// RunAdmin runs an admin subcommand (args exclude "admin" itself). Output meant for scripts (ids,
// secrets) goes to stdout, one value per line.
func RunAdmin(ctx context.Context, prog string, args []string, stdout io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "help" {
		fmt.Fprintf(stdout, adminUsage, prog)
		return nil
	}
	cmd, args := args[0], args[1:]
	fs := flag.NewFlagSet(prog+" admin "+cmd, flag.ContinueOnError)
	defaultDB := DefaultIdentityDB
	if v := os.Getenv("CERTHOSTING_IDENTITY_DB"); v != "" {
		defaultDB = v
	}
	dbPath := fs.String("identity-db", defaultDB, "identity database: a SQLite file, or a postgres:// URL")
	name := fs.String("name", "", "account or key name")
	account := fs.String("account", "", "account id")
	role := fs.String("role", string(RoleOwner), "key role: owner, deployer, reader, support or service (customer: owner)")
	bundles := fs.String("bundles", "", "create-key: comma-separated bundle ids a deployer or reader key is limited to")
	expires := fs.Duration("expires", 0, "create-key: the key stops working this long from now; 0: never")
	keyID := fs.String("key", "", "key id")
	out := fs.String("out", "", "write the key's secret to this file instead of stdout")
	dir := fs.String("dir", "var", "bootstrap: directory for the key files")
	if err := fs.Parse(args); err != nil {
		return err
	}
	store, err := OpenStore(ctx, *dbPath, clockwork.NewRealClock(), slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer store.Close()

	switch cmd {
	case "create-account":
		a, err := store.CreateAccount(ctx, *name)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, a.ID)
	case "create-key":
		r, err := ParseRole(*role)
		if err != nil {
			return err
		}
		if *account == "" {
			return errors.New("-account is required")
		}
		spec := KeySpec{AccountID: *account, Role: r, Name: *name}
		if *bundles != "" {
			if r != RoleDeployer && r != RoleReader {
				return errors.New("-bundles: only deployer and reader keys are limited to bundles")
			}
			spec.Bundles = strings.Split(*bundles, ",")
			for _, b := range spec.Bundles {
				if !ids.Valid(ids.Bundle, b) {
					return fmt.Errorf("-bundles: %q is not a bundle id (bdl_...)", b)
				}
			}
		} else if r == RoleDeployer {
			return errors.New("-bundles: a deployer key must name the bundles it deploys")
		}
		if *expires < 0 {
			return errors.New("-expires must be positive")
		} else if *expires > 0 {
			spec.Expire = db.Micros(time.Now().Add(*expires))
		}
		_, secret, err := store.NewKey(ctx, spec, Admin)
		if err != nil {
			return err
		}
		if *out != "" {
			return writeSecret(*out, secret)
		}
		fmt.Fprintln(stdout, secret)
	case "revoke-key":
		return store.RevokeKey(ctx, *keyID)
	case "list-keys":
		keys, err := store.ListKeys(ctx, *account)
		if err != nil {
			return err
		}
		for _, k := range keys {
			state := "active"
			if k.RevokeTime.Valid {
				state = "revoked"
			}
			if k.ExpireTime.Valid && !k.RevokeTime.Valid && !time.Now().Before(db.FromMicros(k.ExpireTime.Int64)) {
				state = "expired"
			}
			fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\n", k.ID, k.Role, state, k.Name)
		}
	case "bootstrap":
		demo, err := Bootstrap(ctx, store, *dir)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, demo)
	default:
		fmt.Fprintf(stdout, adminUsage, prog)
		return fmt.Errorf("unknown admin command %q", cmd)
	}
	return nil
}

// Bootstrap makes sure the demo account and the order service's credential exist, with their
// keys in dir/demo-api-key and dir/order-service-key, and returns the demo key. A key file whose
// key still verifies is kept, so running it again (every 'make run') changes nothing.
func Bootstrap(ctx context.Context, store *Store, dir string) (demoKey string, err error) {
	demoKey, err = ensureKey(ctx, store, filepath.Join(dir, "demo-api-key"), "demo", RoleOwner, "demo key")
	if err != nil {
		return "", err
	}
	if _, err := ensureKey(ctx, store, filepath.Join(dir, "order-service-key"), "certhosting-order", RoleService, "order service"); err != nil {
		return "", err
	}
	return demoKey, nil
}

func ensureKey(ctx context.Context, store *Store, path, accountName string, role Role, keyName string) (string, error) {
	if b, err := os.ReadFile(path); err == nil {
		secret := strings.TrimSpace(string(b))
		if p, _, ok, err := store.lookup(ctx, secret); err == nil && ok && p.Role == role {
			return secret, nil
		}
	}
	a, found, err := store.FindAccount(ctx, accountName)
	if err != nil {
		return "", err
	}
	if !found {
		if a, err = store.CreateAccount(ctx, accountName); err != nil {
			return "", err
		}
	}
	_, secret, err := store.CreateKey(ctx, a.ID, role, keyName)
	if err != nil {
		return "", err
	}
	return secret, writeSecret(path, secret)
}

// writeSecret writes a key file readable by its owner only.
func writeSecret(path, secret string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(secret+"\n"), 0o600)
}

// ReadKeyFile reads a key written by writeSecret (or by hand).
func ReadKeyFile(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	k := strings.TrimSpace(string(b))
	if !wellFormed(k) {
		return "", fmt.Errorf("%s does not hold an API key", path)
	}
	return k, nil
}
