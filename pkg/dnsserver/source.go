package dnsserver

import (
	"sync"

	"github.com/miekg/dns"
)

// Source is where a Server finds its records.
//
// Lookup returns the records owned by name whose type is qtype (every record of name for
// dns.TypeANY), and whether name exists at all: it owns records of some type, or names below it
// do (an "empty non-terminal", which is NODATA, not NXDOMAIN, per RFC 8020). name is canonical:
// lower case and fully qualified ("_acme-challenge.example.com."). Lookup must be safe for
// concurrent use; the Server does not modify the records it returns.
//
// A Source answers one question about one name; CNAMEs, negative answers and the message are the
// Server's business, so a Source can be a map, a zone file or a database table.
type Source interface {
	Lookup(name string, qtype uint16) (rrs []dns.RR, nameExists bool)
}

// rrIndex is the records of a source by owner name and type, plus a count of the owner names
// below every name, so empty non-terminals exist. It is not safe for concurrent use on its own.
type rrIndex struct {
	sets  map[string]map[uint16][]dns.RR
	below map[string]int
}

func newRRIndex() *rrIndex {
	return &rrIndex{sets: map[string]map[uint16][]dns.RR{}, below: map[string]int{}}
}

// add stores a copy of rr under its canonical owner name, unless an identical record is there.
func (x *rrIndex) add(rr dns.RR) {
	rr = dns.Copy(rr)
	name := dns.CanonicalName(rr.Header().Name)
	rr.Header().Name = name
	types, ok := x.sets[name]
	if !ok {
		types = map[uint16][]dns.RR{}
		x.sets[name] = types
		for _, p := range parents(name) {
			x.below[p]++
		}
	}
	t := rr.Header().Rrtype
	for _, have := range types[t] {
		if dns.IsDuplicate(have, rr) {
			return
		}
	}
	types[t] = append(types[t], rr)
}

// remove drops the records of name and type; the name stops existing with its last record.
func (x *rrIndex) remove(name string, rrtype uint16) {
	name = dns.CanonicalName(name)
	types, ok := x.sets[name]
	if !ok {
		return
	}
	delete(types, rrtype)
	if len(types) > 0 {
		return
	}
	delete(x.sets, name)
	for _, p := range parents(name) {
		if x.below[p]--; x.below[p] == 0 {
			delete(x.below, p)
		}
	}
}

// lookup implements Source.Lookup on the index. It returns copies, so a caller may keep them
// while the index changes.
func (x *rrIndex) lookup(name string, qtype uint16) ([]dns.RR, bool) {
	name = dns.CanonicalName(name)
	types, ok := x.sets[name]
	exists := ok || x.below[name] > 0
	var out []dns.RR
	if qtype == dns.TypeANY {
		for _, rrs := range types {
			out = appendCopies(out, rrs)
		}
	} else {
		out = appendCopies(out, types[qtype])
	}
	return out, exists
}

func appendCopies(dst, rrs []dns.RR) []dns.RR {
	for _, rr := range rrs {
		dst = append(dst, dns.Copy(rr))
	}
	return dst
}

// parents are the names above name, up to its top-level domain ("b.c." and "c." for "a.b.c.").
// The root is left out: no source here is authoritative for it.
func parents(name string) []string {
	var out []string
	for off, end := dns.NextLabel(name, 0); !end; off, end = dns.NextLabel(name, off) {
		out = append(out, name[off:])
	}
	return out
}

// MemorySource is a Source held in memory, changed at run time: tests "publish" and "withhold"
// records with it, and a service can answer challenges from it. It is safe for concurrent use.
type MemorySource struct {
	mu  sync.RWMutex
	idx *rrIndex
}

// NewMemorySource returns an empty MemorySource.
func NewMemorySource() *MemorySource { return &MemorySource{idx: newRRIndex()} }

// Add adds records; adding a record that is already there changes nothing.
func (m *MemorySource) Add(rrs ...dns.RR) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, rr := range rrs {
		m.idx.add(rr)
	}
}

// Set replaces the records of name and type with rrs (which should have that name and type);
// with no rrs it removes them.
func (m *MemorySource) Set(name string, rrtype uint16, rrs ...dns.RR) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.idx.remove(name, rrtype)
	for _, rr := range rrs {
		m.idx.add(rr)
	}
}

// Remove removes the records of name and type.
func (m *MemorySource) Remove(name string, rrtype uint16) { m.Set(name, rrtype) }

// Lookup implements Source.
func (m *MemorySource) Lookup(name string, qtype uint16) ([]dns.RR, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	return m.idx.lookup(name, qtype)
}
