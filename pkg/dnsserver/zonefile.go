package dnsserver

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// ZoneFileSource answers from an RFC 1035 master file ($ORIGIN, $TTL, relative names, the usual
// record syntax; $INCLUDE is refused), and picks up edits without a restart: every Lookup stats
// the file and parses it again when its modification time or size changed. A stat costs about a
// microsecond, which a development or test server can afford on every query, and it means a
// record appended with `echo ... >> zone` is answered by the very next query.
//
// A missing file is an empty zone. A file that does not parse is logged once per change and the
// records of the last good version keep being served, so saving a half-edited file does not take
// every record away.
type ZoneFileSource struct {
	path   string
	origin string
	log    *slog.Logger

	mu    sync.Mutex
	read  bool      // whether the file was read (or found absent) at least once
	stamp fileStamp // of the version last read, good or not
	idx   *rrIndex  // of the last good version; replaced, never modified
	err   error     // of the last read
}

// fileStamp identifies a version of the file.
type fileStamp struct {
	exists  bool
	modTime time.Time
	size    int64
}

// NewZoneFileSource returns a source reading path. origin is the $ORIGIN that relative names in
// the file are under until the file sets one ("." or "" when every name is written fully
// qualified). log receives parse errors; nil discards them. The file is first read by the first
// Lookup or Reload.
func NewZoneFileSource(path, origin string, log *slog.Logger) *ZoneFileSource {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &ZoneFileSource{path: path, origin: dns.Fqdn(origin), log: log, idx: newRRIndex()}
}

// Reload reads the file if it changed since it was last read, and returns the error of the last
// read (nil when it parsed): a command calls it at start to refuse a broken file at once.
func (z *ZoneFileSource) Reload() error {
	z.mu.Lock()
	defer z.mu.Unlock()
	z.reloadLocked()
	return z.err
}

// Lookup implements Source.
func (z *ZoneFileSource) Lookup(name string, qtype uint16) ([]dns.RR, bool) {
	z.mu.Lock()
	z.reloadLocked()
	idx := z.idx
	z.mu.Unlock()
	// idx is never modified once built, so the lookup needs no lock.
	return idx.lookup(name, qtype)
}

func (z *ZoneFileSource) reloadLocked() {
	var stamp fileStamp
	fi, err := os.Stat(z.path)
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		z.fail(fmt.Errorf("zone file %s: %w", z.path, err))
		return
	default:
		stamp = fileStamp{exists: true, modTime: fi.ModTime(), size: fi.Size()}
	}
	if z.read && stamp == z.stamp {
		return // unchanged; if it is broken, that was reported when it changed
	}
	z.read, z.stamp = true, stamp
	if !stamp.exists {
		z.idx, z.err = newRRIndex(), nil
		z.log.Info("zone file absent: serving an empty zone", "path", z.path)
		return
	}
	idx, n, err := z.parse()
	if err != nil {
		z.fail(err)
		return
	}
	z.idx, z.err = idx, nil
	z.log.Info("zone file loaded", "path", z.path, "records", n)
}

// fail records err, logging it unless it repeats the last one (a file that cannot be stat'ed fails
// on every query).
func (z *ZoneFileSource) fail(err error) {
	if z.err != nil && z.err.Error() == err.Error() {
		return
	}
	z.err = err
	z.log.Error("zone file not loaded: serving its last good version", "path", z.path, "err", err)
}

func (z *ZoneFileSource) parse() (*rrIndex, int, error) {
	f, err := os.Open(z.path)
	if err != nil {
		return nil, 0, fmt.Errorf("zone file %s: %w", z.path, err)
	}
	defer f.Close()
	return parseZone(f, z.origin, z.path)
}

// parseZone reads the records of a zone file (RFC 1035 master file syntax, as miekg/dns parses it)
// into an index; file names it in errors.
func parseZone(r io.Reader, origin, file string) (*rrIndex, int, error) {
	zp := dns.NewZoneParser(r, origin, file)
	idx, n := newRRIndex(), 0
	for rr, ok := zp.Next(); ok; rr, ok = zp.Next() {
		idx.add(rr)
		n++
	}
	if err := zp.Err(); err != nil {
		return nil, 0, err // the parser's error names the file and line
	}
	return idx, n, nil
}
