package dnsserver_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/miekg/dns"

	"github.com/certhosting/certhosting/pkg/dnsserver"
)

func appendFile(t *testing.T, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_CREATE|os.O_WRONLY, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
}

// lookup renders what the source holds for a name and type: "" for nothing, "NXDOMAIN" when the
// name does not exist, else the records' TTL and data.
func lookup(src dnsserver.Source, name string, qtype uint16) string {
	rrs, exists := src.Lookup(name, qtype)
	if !exists {
		return "NXDOMAIN"
	}
	var out []string
	for _, r := range rrs {
		f := strings.Fields(r.String())
		out = append(out, strings.Join(append([]string{f[1]}, f[4:]...), " "))
	}
	return strings.Join(out, "; ")
}

// TestZoneFileSource follows one file through its life: absent, written with $ORIGIN and $TTL,
// appended to (the one-line way to publish), broken, fixed, deleted. Every step is seen by the next
// lookup, with no reload call and no wait.
func TestZoneFileSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev.zone")
	src := dnsserver.NewZoneFileSource(path, ".", nil)
	txt := "_certhosting-validation.shop.example.com."

	steps := []struct {
		name    string
		change  func()
		qname   string
		qtype   uint16
		want    string
		wantErr bool // of Reload
	}{
		{"missing file is an empty zone", func() {}, "www.example.com.", dns.TypeA, "NXDOMAIN", false},
		{"$ORIGIN and $TTL", func() {
			appendFile(t, path, "; dev zone\n$ORIGIN example.com.\n$TTL 120\nwww IN A 192.0.2.1\nmail 30 IN A 192.0.2.2\n")
		}, "www.example.com.", dns.TypeA, "120 192.0.2.1", false},
		{"explicit TTL wins over $TTL", func() {}, "mail.example.com.", dns.TypeA, "30 192.0.2.2", false},
		{"appended record answered at once", func() {
			appendFile(t, path, txt+` 60 IN TXT "VALUE"`+"\n")
		}, txt, dns.TypeTXT, `60 "VALUE"`, false},
		{"empty non-terminal exists", func() {}, "shop.example.com.", dns.TypeA, "", false},
		{"broken edit keeps the last good records", func() {
			appendFile(t, path, "this is not a record\n")
		}, txt, dns.TypeTXT, `60 "VALUE"`, true},
		{"fixed file is read again", func() {
			if err := os.WriteFile(path, []byte("www.example.com. 60 IN A 192.0.2.9\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}, "www.example.com.", dns.TypeA, "60 192.0.2.9", false},
		{"record dropped from the file is gone", func() {}, txt, dns.TypeTXT, "NXDOMAIN", false},
		{"deleted file is an empty zone again", func() {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}, "www.example.com.", dns.TypeA, "NXDOMAIN", false},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			s.change()
			if got := lookup(src, s.qname, s.qtype); got != s.want {
				t.Errorf("Lookup(%s, %s) = %q, want %q", s.qname, dns.Type(s.qtype), got, s.want)
			}
			if err := src.Reload(); (err != nil) != s.wantErr {
				t.Errorf("Reload() = %v, want error: %v", err, s.wantErr)
			}
		})
	}
}

// TestZoneFileServed: the server answers from a zone file, and an appended record is answered by
// the next query.
func TestZoneFileServed(t *testing.T) {
	path := filepath.Join(t.TempDir(), "dev.zone")
	srv := start(t, dnsserver.NewZoneFileSource(path, "example.com.", nil))
	name := "_certhosting-validation.shop.example.com."
	if r := query(t, "udp", srv.Addr(), name, dns.TypeTXT, dns.ClassINET); r.Rcode != dns.RcodeNameError {
		t.Fatalf("before publishing: rcode %s, want NXDOMAIN", dns.RcodeToString[r.Rcode])
	}
	// A relative name is under the origin the source was given.
	appendFile(t, path, `_certhosting-validation.shop 60 IN TXT "VALUE"`+"\n")
	r := query(t, "udp", srv.Addr(), name, dns.TypeTXT, dns.ClassINET)
	if got, want := answers(r), name+` TXT "VALUE"`; got != want || !r.Authoritative {
		t.Errorf("after publishing: %q (AA %v), want %q (AA true)", got, r.Authoritative, want)
	}
}
