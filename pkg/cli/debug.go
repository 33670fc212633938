package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"time"
)

// ServeDebug serves the runtime profiles (net/http/pprof, under /debug/pprof/) on addr until ctx
// ends. It is off unless an operator asks for it with -debug-addr: profiles show internals (and
// a CPU profile costs CPU while it runs), so bind it to loopback. It returns once listening.
func ServeDebug(ctx context.Context, addr string, log *slog.Logger) error {
	// Our own mux, not http.DefaultServeMux, so nothing else registered there is exposed.
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	_, err := ServeHTTP(ctx, "debug-addr", addr, mux, log)
	return err
}

// ServeHTTP serves h on addr until ctx ends, for the side listeners (-debug-addr, -metrics-addr;
// flag names the flag, for errors and logs). It returns the bound address once listening.
func ServeHTTP(ctx context.Context, flag, addr string, h http.Handler, log *slog.Logger) (net.Addr, error) {
	lis, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("-%s: %w", flag, err)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		<-ctx.Done()
		_ = srv.Close()
	}()
	go func() {
		if err := srv.Serve(lis); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Error("HTTP server stopped", "flag", flag, "err", err)
		}
	}()
	log.Info("listening", "flag", flag, "addr", lis.Addr().String())
	return lis.Addr(), nil
}
