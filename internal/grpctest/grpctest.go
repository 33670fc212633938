// Package grpctest runs the services' gRPC plumbing in-process for tests: databases in the test's
// temporary directory, an identity store with real accounts and keys, a grpcserver.Server with the
// real interceptor chain (recovery, error mapping, authentication) on an in-memory bufconn
// listener, and client connections that present a key. Everything a test starts is stopped by
// t.Cleanup, and nothing is shared between tests, so they run in parallel.
package grpctest

import (
	"context"
	"io/fs"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jonboulle/clockwork"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/test/bufconn"

	"github.com/certhosting/certhosting/internal/dbtest"
	"github.com/certhosting/certhosting/pkg/auth"
	"github.com/certhosting/certhosting/pkg/db"
	"github.com/certhosting/certhosting/pkg/grpcserver"
)

// Logger writes to the test's output, which go test shows for a failing test (and with -v).
func Logger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelWarn}))
}

// OpenDB opens (creating) the database name in dir with migrations, and closes it at cleanup: a
// SQLite file, or with CERTHOSTING_TEST_DB=postgres a PostgreSQL database of the test's own
// (internal/dbtest). Tests that reopen a database pass the same dir and name.
func OpenDB(t testing.TB, dir, name string, migrations fs.FS) *db.DB {
	t.Helper()
	return OpenDBWith(t, dir, name, db.Options{Migrations: migrations})
}

// OpenDBWith is OpenDB with the database's options (a store's DBOptions).
func OpenDBWith(t testing.TB, dir, name string, opts db.Options) *db.DB {
	t.Helper()
	opts.Logger = Logger(t)
	d, err := db.Open(context.Background(), dbtest.URLIn(t, dbtest.FromEnv(t), dir, name), opts)
	if err != nil {
		t.Fatalf("open %s: %v", name, err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// OpenIdentity opens an identity store of its own for the test.
func OpenIdentity(t testing.TB, clk clockwork.Clock) *auth.Store {
	t.Helper()
	st, err := auth.OpenStore(context.Background(), dbtest.URLIn(t, dbtest.FromEnv(t), t.TempDir(), "identity.db"), clk, Logger(t))
	if err != nil {
		t.Fatalf("open identity store: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

// Caller is an account with one API key.
type Caller struct {
	AccountID string
	KeyID     string
	Key       string // the secret, sent as `authorization: Bearer <Key>`
}

// NewCaller creates an account named name and a key of the given role for it.
func NewCaller(t testing.TB, st *auth.Store, name string, role auth.Role) Caller {
	t.Helper()
	ctx := context.Background()
	a, err := st.CreateAccount(ctx, name)
	if err != nil {
		t.Fatalf("create account %s: %v", name, err)
	}
	k, secret, err := st.CreateKey(ctx, a.ID, role, name+" key")
	if err != nil {
		t.Fatalf("create %s key for %s: %v", role, name, err)
	}
	return Caller{AccountID: a.ID, KeyID: k.ID, Key: secret}
}

// Server is a grpcserver.Server serving on an in-memory listener.
type Server struct {
	*grpcserver.Server
	lis *bufconn.Listener
}

// Start makes a grpcserver.Server with authn as its auth interceptor, lets register add the
// services, and serves (through Server.Run, as main does) until the test ends.
func Start(t testing.TB, authn *auth.Interceptor, register func(*grpc.Server)) *Server {
	t.Helper()
	return StartWith(t, authn, grpcserver.Options{}, register)
}

// StartWith is Start with the server's options.
func StartWith(t testing.TB, authn *auth.Interceptor, opts grpcserver.Options, register func(*grpc.Server)) *Server {
	t.Helper()
	s := &Server{Server: grpcserver.New(Logger(t), authn, opts), lis: bufconn.Listen(1 << 20)}
	register(s.GRPC)
	ctx, cancel := context.WithCancel(context.Background())
	stopped := make(chan error, 1)
	go func() { stopped <- s.Run(ctx, s.lis, 5*time.Second) }()
	t.Cleanup(func() {
		cancel()
		if err := <-stopped; err != nil {
			t.Errorf("server Run: %v", err)
		}
	})
	return s
}

// Dial connects to the server presenting key (none when key is empty), and closes the
// connection at cleanup.
func (s *Server) Dial(t testing.TB, key string) *grpc.ClientConn {
	t.Helper()
	opts := []grpc.DialOption{
		grpc.WithContextDialer(func(ctx context.Context, _ string) (net.Conn, error) { return s.lis.DialContext(ctx) }),
		grpc.WithTransportCredentials(insecure.NewCredentials()),
	}
	if key != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(auth.BearerCredentials(key)))
	}
	conn, err := grpc.NewClient("passthrough:///bufconn", opts...)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

// Pages reads a paginated listing to the end: list fetches the page at token ("" for the first)
// and returns its items and the next page's token. Pages returns every item in order and how
// many pages there were, and fails the test on an error or a listing that does not end.
func Pages[T any](t testing.TB, list func(token string) (items []T, next string, err error)) (all []T, pages int) {
	t.Helper()
	token := ""
	for {
		items, next, err := list(token)
		if err != nil {
			t.Fatalf("page %d: %v", pages+1, err)
		}
		pages++
		all = append(all, items...)
		if next == "" {
			return all, pages
		}
		if pages == 100 {
			t.Fatal("pagination does not end after 100 pages")
		}
		token = next
	}
}

// WantInvalidArgument fails the test unless err is InvalidArgument with a message that starts
// with the name of field, as every validation error of the services does.
func WantInvalidArgument(t testing.TB, err error, field string) {
	t.Helper()
	if status.Code(err) != codes.InvalidArgument || !strings.HasPrefix(status.Convert(err).Message(), field+":") {
		t.Errorf("got %v, want InvalidArgument naming %s", err, field)
	}
}

// WantShuttingDown fails the test unless err, the end of a stream, is grpcserver.ErrShuttingDown:
// the server ended the stream as it began to shut down, rather than the connection being cut.
func WantShuttingDown(t testing.TB, what string, err error) {
	t.Helper()
	want := status.Convert(grpcserver.ErrShuttingDown)
	if got := status.Convert(err); got.Code() != want.Code() || got.Message() != want.Message() {
		t.Errorf("%s ended with %v at shutdown; want %v", what, err, grpcserver.ErrShuttingDown)
	}
}
