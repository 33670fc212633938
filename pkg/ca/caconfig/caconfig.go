// Package caconfig reads the lifecycle service's CA configuration: which certificate authorities
// exist (the built-in local CA, ACME CAs, CA plug-ins) and which one serves each product. The file
// is JSON (see docs/cas.md for an example); it is checked completely at start, and every problem is
// reported with where it is, so a service never starts half-configured.
//
// Without a file, the local CA serves every product (Default).
package caconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net"
	"net/url"
	"os"
	"sort"
	"strings"
	"time"
)

// Authority types.
const (
	TypeLocal  = "local"
	TypeACME   = "acme"
	TypePlugin = "plugin"
)

// File is the configuration.
type File struct {
	// Authorities are the CAs by name.
	Authorities map[string]Authority `json:"authorities"`
	// Products routes a product to a CA by name: keys are product ids ("dv-wildcard"), validation
	// types ("DV", "OV", "EV"), or "*" for everything else. The most specific key wins.
	Products map[string]string `json:"products"`
}

// Authority is one CA.
type Authority struct {
	Type string `json:"type"`
	// MaxIssuanceRate is the most new certificates per second the CA accepts from us (its rate
	// limit); a mass re-issue never starts renewals faster. 0: no limit of ours.
	MaxIssuanceRate float64 `json:"max_issuance_rate,omitempty"`

	// ACME.
	DirectoryURL string `json:"directory_url,omitempty"`
	Email        string `json:"email,omitempty"`
	// EAB (External Account Binding), required by most commercial ACME CAs: the key id, and a
	// file holding the base64url HMAC key the CA gave.
	EABKeyID    string `json:"eab_key_id,omitempty"`
	EABHMACFile string `json:"eab_hmac_file,omitempty"`
	// RootCAsFile is a PEM bundle trusted for the directory's TLS (a private ACME CA, or Pebble).
	RootCAsFile string `json:"root_cas_file,omitempty"`
	// Profile asks the CA for a certificate profile (draft-ietf-acme-profiles), e.g. "shortlived".
	Profile string `json:"profile,omitempty"`
	// DB is the ACME client's own database (account key, orders).
	DB string `json:"db,omitempty"`
	// CNAMEResolver (host:port of a recursive resolver) makes the client wait, before it asks the
	// CA to validate, until the customer's _acme-challenge CNAME is visible there, for up to
	// CNAMETimeout (default 1h). Without it the CA is asked at once.
	CNAMEResolver string `json:"cname_resolver,omitempty"`
	CNAMETimeout  string `json:"cname_timeout,omitempty"`
	// ShortestLifetime is the shortest certificate lifetime the CA issues (ACME CAs choose it):
	// the lifecycle service refuses to start when cname_timeout is not shorter than the escalation
	// window of such a certificate. Default DefaultShortestLifetime.
	ShortestLifetime string `json:"shortest_lifetime,omitempty"`
	// SendNotAfter asks the CA for the certificate to end at its instance's coverage end (few ACME
	// CAs accept notAfter; Pebble and Let's Encrypt do not).
	SendNotAfter bool `json:"send_not_after,omitempty"`
	// RelinquishAuthorizations deactivates each order's authorizations once its certificate is
	// downloaded, so the account keeps no standing authority over customers' domains
	// (acme.Config.RelinquishAuthorizations says what it costs).
	RelinquishAuthorizations bool `json:"relinquish_authorizations,omitempty"`

	// Plug-in.
	Address       string `json:"address,omitempty"`
	TokenFile     string `json:"token_file,omitempty"`
	TLSCAFile     string `json:"tls_ca_file,omitempty"`
	TLSCertFile   string `json:"tls_cert_file,omitempty"`
	TLSKeyFile    string `json:"tls_key_file,omitempty"`
	TLSServerName string `json:"tls_server_name,omitempty"`
	Timeout       string `json:"timeout,omitempty"`
}

// IssuanceRates are the CAs' max_issuance_rate by name, for those that set one.
func (f *File) IssuanceRates() map[string]float64 {
	out := map[string]float64{}
	for name, a := range f.Authorities {
		if a.MaxIssuanceRate > 0 {
			out[name] = a.MaxIssuanceRate
		}
	}
	return out
}

// CallTimeout is the plug-in's per-call deadline (zero: the default).
func (a Authority) CallTimeout() time.Duration {
	d, _ := time.ParseDuration(a.Timeout)
	return d
}

// DefaultShortestLifetime is the shortest certificate public ACME CAs issue today: Let's
// Encrypt's "shortlived" profile, 160 hours.
const DefaultShortestLifetime = 160 * time.Hour

// ShortestCertificate is ShortestLifetime, or its default.
func (a Authority) ShortestCertificate() time.Duration {
	if d, err := time.ParseDuration(a.ShortestLifetime); err == nil && d > 0 {
		return d
	}
	return DefaultShortestLifetime
}

// CNAMEWait is how long an ACME application waits for its CNAMEs (zero: the default).
func (a Authority) CNAMEWait() time.Duration {
	d, _ := time.ParseDuration(a.CNAMETimeout)
	return d
}

// Default is the configuration without a file: the local CA for every product.
func Default() *File {
	return &File{
		Authorities: map[string]Authority{"local": {Type: TypeLocal}},
		Products:    map[string]string{"*": "local"},
	}
}

// Load reads and checks the file at path.
func Load(path string) (*File, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA configuration: %w", err)
	}
	f, err := Parse(raw)
	if err != nil {
		return nil, fmt.Errorf("CA configuration %s: %w", path, err)
	}
	return f, nil
}

// Parse decodes a configuration (JSON; unknown fields are an error, as is anything after the one
// object) and checks it.
func Parse(raw []byte) (*File, error) {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	var f File
	if err := dec.Decode(&f); err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, fmt.Errorf("more than one JSON value")
	}
	if err := f.Validate(); err != nil {
		return nil, err
	}
	return &f, nil
}

// Validate checks the whole configuration and reports every problem found.
func (f *File) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if len(f.Authorities) == 0 {
		bad("authorities: at least one CA is required")
	}
	for _, name := range sortedKeys(f.Authorities) {
		a := f.Authorities[name]
		where := "authorities." + name
		if a.MaxIssuanceRate < 0 || math.IsNaN(a.MaxIssuanceRate) {
			bad("%s.max_issuance_rate: must be 0 (no limit) or a positive number of certificates per second, got %v", where, a.MaxIssuanceRate)
		}
		switch a.Type {
		case TypeLocal:
		case TypeACME:
			if u, err := url.Parse(a.DirectoryURL); err != nil || u.Scheme != "https" || u.Host == "" {
				bad("%s.directory_url: must be an https:// URL, got %q", where, a.DirectoryURL)
			}
			if a.Email == "" || !strings.Contains(a.Email, "@") {
				bad("%s.email: a contact email is required, got %q", where, a.Email)
			}
			if (a.EABKeyID == "") != (a.EABHMACFile == "") {
				bad("%s: eab_key_id and eab_hmac_file go together", where)
			}
			for field, file := range map[string]string{"eab_hmac_file": a.EABHMACFile, "root_cas_file": a.RootCAsFile} {
				if file != "" {
					if _, err := os.Stat(file); err != nil {
						bad("%s.%s: %v", where, field, err)
					}
				}
			}
			if a.DB == "" {
				bad("%s.db: the ACME client's database path is required", where)
			}
			if a.CNAMEResolver != "" {
				if _, _, err := net.SplitHostPort(a.CNAMEResolver); err != nil {
					bad("%s.cname_resolver: must be host:port, got %q", where, a.CNAMEResolver)
				}
			}
			if a.CNAMETimeout != "" {
				if d, err := time.ParseDuration(a.CNAMETimeout); err != nil || d <= 0 {
					bad("%s.cname_timeout: must be a positive duration such as \"1h\", got %q", where, a.CNAMETimeout)
				}
			}
			if a.ShortestLifetime != "" {
				if d, err := time.ParseDuration(a.ShortestLifetime); err != nil || d <= 0 {
					bad("%s.shortest_lifetime: must be a positive duration such as \"160h\", got %q", where, a.ShortestLifetime)
				}
			}
		case TypePlugin:
			if _, _, err := net.SplitHostPort(a.Address); err != nil {
				bad("%s.address: must be host:port, got %q", where, a.Address)
			}
			if a.TokenFile == "" {
				bad("%s.token_file: a token file is required", where)
			} else if _, err := os.Stat(a.TokenFile); err != nil {
				bad("%s.token_file: %v", where, err)
			}
			if (a.TLSCertFile == "") != (a.TLSKeyFile == "") {
				bad("%s: tls_cert_file and tls_key_file go together", where)
			}
			if a.TLSCertFile != "" && a.TLSCAFile == "" {
				bad("%s.tls_cert_file: mutual TLS needs tls_ca_file too (the CA that verifies the plug-in)", where)
			}
			for _, field := range []struct{ name, file string }{
				{"tls_ca_file", a.TLSCAFile}, {"tls_cert_file", a.TLSCertFile}, {"tls_key_file", a.TLSKeyFile},
			} {
				if field.file != "" {
					if _, err := os.Stat(field.file); err != nil {
						bad("%s.%s: %v", where, field.name, err)
					}
				}
			}
			if a.Timeout != "" {
				if d, err := time.ParseDuration(a.Timeout); err != nil || d <= 0 {
					bad("%s.timeout: must be a positive duration such as \"10s\", got %q", where, a.Timeout)
				}
			}
		case "":
			bad("%s.type: is required (local, acme or plugin)", where)
		default:
			bad("%s.type: unknown type %q (local, acme or plugin)", where, a.Type)
		}
	}
	if _, ok := f.Products["*"]; !ok {
		bad(`products: a default route "*" is required, so every product has a CA`)
	}
	for _, key := range sortedKeys(f.Products) {
		name := f.Products[key]
		if _, ok := f.Authorities[name]; !ok {
			bad("products.%s: names CA %q, which is not in authorities", key, name)
		}
		if f.Authorities[name].Type == TypeACME && (key == "OV" || key == "EV") {
			bad("products.%s: ACME CAs issue domain-validated certificates; route OV and EV products to a plug-in or the local CA", key)
		}
	}
	return errors.Join(errs...)
}

// UsesType reports whether any routed CA is of type t.
func (f *File) UsesType(t string) bool {
	for _, name := range f.Products {
		if f.Authorities[name].Type == t {
			return true
		}
	}
	return false
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
