package dnsserver

import (
	"strings"
	"testing"

	"github.com/miekg/dns"
)

// FuzzZoneFile: whatever a zone file holds, parsing it returns records or an error, never panics,
// and every record parsed is found again by its owner name and type.
func FuzzZoneFile(f *testing.F) {
	for _, seed := range []string{
		"_certhosting-validation.shop.example.com. 60 IN TXT \"abc\"\n",
		"$ORIGIN example.com.\n@ 60 IN CAA 0 issue \"certhosting.local\"\nwww 60 IN CNAME shop\n",
		"$TTL 60\nexample.com. IN SOA ns1.example.com. admin.example.com. 1 2 3 4 5\n",
		"bad line\n", "$INCLUDE /etc/passwd\n", "a. 60 IN TXT \"unterminated\n", "",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, zone string) {
		idx, n, err := parseZone(strings.NewReader(zone), "", "fuzz.zone")
		if err != nil {
			return
		}
		if n < 0 {
			t.Fatalf("%d records", n)
		}
		for name, types := range idx.sets {
			for qtype := range types {
				if rrs, ok := idx.lookup(name, qtype); !ok || len(rrs) == 0 {
					t.Fatalf("record %s %s parsed but not found", name, dns.TypeToString[qtype])
				}
			}
		}
	})
}
