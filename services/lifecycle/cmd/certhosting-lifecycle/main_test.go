package main

import (
	"io"
	"strings"
	"testing"
	"time"

	"github.com/certhosting/certhosting/pkg/ca/caconfig"
)

// TestCARetryFlags: the CA retry backoff defaults to the ticker's (5 s doubling to 1 h), can be
// shortened (tests, demos), and must make sense.
func TestCARetryFlags(t *testing.T) {
	tests := []struct {
		name      string
		args      []string
		base, max time.Duration
		err       string
	}{
		{"defaults", nil, 5 * time.Second, time.Hour, ""},
		{"shortened", []string{"-ca-retry-base", "200ms", "-ca-retry-max", "1s"}, 200 * time.Millisecond, time.Second, ""},
		{"zero base", []string{"-ca-retry-base", "0s"}, 0, 0, "0 < base <= max"},
		{"max below base", []string{"-ca-retry-base", "10s", "-ca-retry-max", "1s"}, 0, 0, "0 < base <= max"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := parseFlags(tc.args, io.Discard)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("parseFlags(%q) = %v, want an error saying %q", tc.args, err, tc.err)
				}
				return
			}
			if err != nil || c.caRetryBase != tc.base || c.caRetryMax != tc.max {
				t.Errorf("parseFlags(%q) = base %v, max %v, %v; want %v, %v", tc.args, c.caRetryBase, c.caRetryMax, err, tc.base, tc.max)
			}
		})
	}
}

// TestVerdictTimeoutChecks: a CA's wait that ends in a verdict must be shorter than the
// escalation window of its certificates, or the service refuses to start naming both settings;
// the local CA's default shrinks for short certificates instead.
func TestVerdictTimeoutChecks(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		env  map[string]string
		want time.Duration
		err  []string
	}{
		{"defaults", nil, nil, time.Hour, nil},
		{"short certificates: the default is half their window", []string{"-localca-max-validity", "45s"}, nil, 2250 * time.Millisecond, nil},
		{"explicit and shorter", []string{"-localca-max-validity", "45s", "-localca-dns-timeout", "3s"}, nil, 3 * time.Second, nil},
		{"explicit and not shorter", []string{"-localca-max-validity", "45s", "-localca-dns-timeout", "1h"}, nil, 0,
			[]string{"-localca-dns-timeout 1h0m0s", "-localca-max-validity 45s", "4.5s"}},
		{"equal to the window", []string{"-localca-max-validity", "90s", "-localca-dns-timeout", "9s"}, nil, 0,
			[]string{"-localca-dns-timeout 9s", "9s"}},
		{"from the environment", []string{"-localca-max-validity", "45s"}, map[string]string{"CERTHOSTING_LIFECYCLE_LOCALCA_DNS_TIMEOUT": "10s"}, 0,
			[]string{"-localca-dns-timeout 10s"}},
		{"zero", []string{"-localca-dns-timeout", "0s"}, nil, 0, []string{"-localca-dns-timeout 0s: must be positive"}},
		{"a week's window fits the default hour", []string{"-localca-max-validity", "2400h"}, nil, time.Hour, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for k, v := range tc.env {
				t.Setenv(k, v)
			}
			c, err := parseFlags(tc.args, io.Discard)
			if tc.err != nil {
				if err == nil {
					t.Fatalf("parseFlags(%q) accepted a DNS timeout of %v", tc.args, c.localCADNSTimeout)
				}
				for _, want := range tc.err {
					if !strings.Contains(err.Error(), want) {
						t.Errorf("error %q does not name %q", err, want)
					}
				}
				return
			}
			if err != nil || c.localCADNSTimeout != tc.want {
				t.Errorf("parseFlags(%q) = DNS timeout %v, %v; want %v", tc.args, c.localCADNSTimeout, err, tc.want)
			}
		})
	}

	for _, tc := range []struct {
		name string
		a    caconfig.Authority
		err  string
	}{
		{"no CNAME resolver: nothing to check", caconfig.Authority{CNAMETimeout: "48h"}, ""},
		{"default timeout, default lifetime", caconfig.Authority{CNAMEResolver: "127.0.0.1:53"}, ""},
		{"a day against 160-hour certificates", caconfig.Authority{CNAMEResolver: "127.0.0.1:53", CNAMETimeout: "24h"}, "cname_timeout 24h0m0s"},
		{"an hour against 6-hour certificates", caconfig.Authority{CNAMEResolver: "127.0.0.1:53", ShortestLifetime: "6h"}, "shortest_lifetime 6h0m0s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := checkCNAMETimeout(tc.a)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("checkCNAMETimeout = %v, want %q", err, tc.err)
			}
		})
	}
}

// TestPluginTransport: a plug-in without tls_ca_file must be on loopback, unless
// -insecure-plaintext; with TLS it may be anywhere.
func TestPluginTransport(t *testing.T) {
	tests := []struct {
		name     string
		a        caconfig.Authority
		insecure bool
		err      string
	}{
		{"plaintext on loopback", caconfig.Authority{Type: caconfig.TypePlugin, Address: "127.0.0.1:50060"}, false, ""},
		{"plaintext on localhost", caconfig.Authority{Type: caconfig.TypePlugin, Address: "localhost:50060"}, false, ""},
		{"plaintext beyond loopback", caconfig.Authority{Type: caconfig.TypePlugin, Address: "ca.internal:50060"}, false,
			"CA ovev: address ca.internal:50060 is not a loopback address"},
		{"plaintext beyond loopback, insecure", caconfig.Authority{Type: caconfig.TypePlugin, Address: "ca.internal:50060"}, true, ""},
		{"TLS beyond loopback", caconfig.Authority{Type: caconfig.TypePlugin, Address: "ca.internal:50060", TLSCAFile: "ca.pem"}, false, ""},
		{"not a plug-in", caconfig.Authority{Type: caconfig.TypeLocal}, false, ""},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := checkPluginTransport(&caconfig.File{Authorities: map[string]caconfig.Authority{"ovev": tc.a}}, tc.insecure)
			if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
				t.Errorf("checkPluginTransport = %v, want %q", err, tc.err)
			}
		})
	}
}
