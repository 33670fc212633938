// Package dnsserver is a small authoritative DNS server: it answers queries over UDP and TCP on one
// address from a Source (records in memory, a zone file, or whatever a service implements), the
// way the name servers of a delegated zone do. The local CA's domain checks run against it in tests
// and in `make run` (cmd/certhosting-devdns), and the lifecycle service can answer ACME DNS-01
// challenges in a zone delegated to it with a Source of its own.
//
// What it answers, for the one question of a query:
//   - the records of the name and type, with the AA bit set;
//   - a CNAME at the name for any other type, followed (up to 8 links) as far as the Source knows
//     the targets, so a resolver gets the whole chain in one answer;
//   - NXDOMAIN for a name that does not exist, NODATA (NOERROR, empty answer) for a name that
//     exists without records of the type; either with the closest enclosing SOA, when the Source
//     has one, in the authority section, for negative caching (RFC 2308);
//   - REFUSED for zone transfers and classes other than IN, NOTIMP for opcodes other than QUERY.
//
// It is not a resolver (no recursion, RA clear) and it does not know zone cuts: every name the
// Source does not know is NXDOMAIN.
package dnsserver

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/miekg/dns"
)

// maxCNAMEChain bounds how many CNAMEs one answer follows (and so breaks loops).
const maxCNAMEChain = 8

// Config configures Start.
type Config struct {
	// Addr is the host:port to serve UDP and TCP on; port 0 picks a port free for both.
	Addr string
	// Source answers the questions.
	Source Source
	// Logger receives each query at debug level and serving errors; nil discards them.
	Logger *slog.Logger
}

// Server is a running DNS server. Close stops it.
type Server struct {
	src  Source
	log  *slog.Logger
	addr string
	pc   net.PacketConn
	ln   net.Listener
	udp  *dns.Server
	tcp  *dns.Server

	wg        sync.WaitGroup
	closeOnce sync.Once
	mu        sync.Mutex
	closing   bool
	serveErr  error // a serve loop that ended before Close
}

// Start listens on cfg.Addr (UDP and TCP) and serves until Close. It returns once both are
// accepting queries.
func Start(cfg Config) (*Server, error) {
	if cfg.Source == nil {
		return nil, errors.New("dnsserver: no Source")
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	pc, ln, err := listen(cfg.Addr)
	if err != nil {
		return nil, err
	}
	s := &Server{src: cfg.Source, log: log, addr: ln.Addr().String(), pc: pc, ln: ln}
	started := make(chan struct{}, 2)
	notify := func() { started <- struct{}{} }
	s.udp = &dns.Server{PacketConn: pc, Handler: s, UDPSize: dns.DefaultMsgSize, NotifyStartedFunc: notify}
	s.tcp = &dns.Server{Listener: ln, Handler: s, NotifyStartedFunc: notify}
	failed := make(chan error, 2)
	for _, srv := range []*dns.Server{s.udp, s.tcp} {
		s.wg.Go(func() {
			err := srv.ActivateAndServe()
			s.mu.Lock()
			defer s.mu.Unlock()
			if !s.closing && err != nil {
				s.log.Error("dns server stopped serving", "addr", s.addr, "err", err)
				s.serveErr = errors.Join(s.serveErr, err)
				failed <- err
			}
		})
	}
	for range 2 {
		select {
		case <-started:
		case err := <-failed:
			s.Close()
			return nil, fmt.Errorf("dnsserver: serve %s: %w", s.addr, err)
		}
	}
	return s, nil
}

// listen opens the UDP and TCP sockets of addr. With port 0 it takes the port the kernel gives the
// TCP listener and binds UDP to the same one, retrying the rare time that UDP port is taken.
func listen(addr string) (net.PacketConn, net.Listener, error) {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return nil, nil, fmt.Errorf("dnsserver: listen address %q: %w", addr, err)
	}
	var lastErr error
	for range 10 {
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, fmt.Errorf("dnsserver: %w", err)
		}
		udpAddr := net.JoinHostPort(host, strconv.Itoa(ln.Addr().(*net.TCPAddr).Port))
		pc, err := net.ListenPacket("udp", udpAddr)
		if err == nil {
			return pc, ln, nil
		}
		ln.Close()
		lastErr = err
		if port != "0" {
			break
		}
	}
	return nil, nil, fmt.Errorf("dnsserver: %w", lastErr)
}

// Addr is the host:port the server answers on (UDP and TCP).
func (s *Server) Addr() string { return s.addr }

// Close stops serving, waits (a few seconds at most) for queries in progress, and returns the error
// of a serve loop that had stopped on its own, if any.
func (s *Server) Close() error {
	s.closeOnce.Do(func() {
		s.mu.Lock()
		s.closing = true
		s.mu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		// A server whose loop already failed says "not started"; that is not news. Closing the
		// sockets afterwards covers that case (miekg closes them only for a started server).
		_ = s.udp.ShutdownContext(ctx)
		_ = s.tcp.ShutdownContext(ctx)
		s.pc.Close()
		s.ln.Close()
		s.wg.Wait()
	})
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.serveErr
}

// ServeDNS answers one query (it implements dns.Handler).
func (s *Server) ServeDNS(w dns.ResponseWriter, r *dns.Msg) {
	m := answer(s.src, r)
	network := w.LocalAddr().Network()
	if network == "udp" {
		size := dns.MinMsgSize
		if opt := r.IsEdns0(); opt != nil {
			size = max(size, int(opt.UDPSize()))
		}
		m.Truncate(size)
	}
	if err := w.WriteMsg(m); err != nil {
		s.log.Debug("dns reply not sent", "remote", w.RemoteAddr().String(), "err", err)
	}
	if len(r.Question) == 1 {
		q := r.Question[0]
		s.log.Debug("dns query", "name", q.Name, "type", dns.Type(q.Qtype).String(),
			"rcode", dns.RcodeToString[m.Rcode], "answers", len(m.Answer), "net", network, "remote", w.RemoteAddr().String())
	}
}

// answer is the reply to query r from src, before any truncation for UDP.
func answer(src Source, r *dns.Msg) *dns.Msg {
	m := new(dns.Msg)
	m.SetReply(r)
	if opt := r.IsEdns0(); opt != nil {
		m.SetEdns0(dns.DefaultMsgSize, false)
	}
	switch {
	case r.Opcode != dns.OpcodeQuery:
		m.Rcode = dns.RcodeNotImplemented
		return m
	case len(r.Question) != 1:
		m.Rcode = dns.RcodeFormatError
		return m
	}
	q := r.Question[0]
	switch {
	case q.Qclass != dns.ClassINET && q.Qclass != dns.ClassANY,
		q.Qtype == dns.TypeAXFR, q.Qtype == dns.TypeIXFR:
		m.Rcode = dns.RcodeRefused
		return m
	}
	m.Authoritative = true

	name := dns.CanonicalName(q.Name)
	seen := map[string]bool{name: true}
	for hops := 0; ; hops++ {
		if q.Qtype != dns.TypeCNAME && q.Qtype != dns.TypeANY {
			if cname, _ := src.Lookup(name, dns.TypeCNAME); len(cname) > 0 {
				if hops == maxCNAMEChain {
					break // a chain this long is a mistake; answer the part followed
				}
				m.Answer = append(m.Answer, cname[0])
				name = dns.CanonicalName(cname[0].(*dns.CNAME).Target)
				if seen[name] {
					break // a loop
				}
				seen[name] = true
				continue
			}
		}
		rrs, exists := src.Lookup(name, q.Qtype)
		m.Answer = append(m.Answer, rrs...)
		if len(m.Answer) == 0 {
			if !exists {
				m.Rcode = dns.RcodeNameError
			}
			if soa := closestSOA(src, name); soa != nil {
				m.Ns = append(m.Ns, soa)
			}
		}
		break
	}
	return m
}

// closestSOA is the SOA of the zone that holds name, if the source has one, with the TTL a
// negative answer is cached for: the smaller of the SOA's own TTL and its MINIMUM (RFC 2308).
func closestSOA(src Source, name string) dns.RR {
	for off, end := 0, false; !end; off, end = dns.NextLabel(name, off) {
		rrs, _ := src.Lookup(name[off:], dns.TypeSOA)
		for _, rr := range rrs {
			if soa, ok := rr.(*dns.SOA); ok {
				soa = dns.Copy(soa).(*dns.SOA)
				soa.Hdr.Ttl = min(soa.Hdr.Ttl, soa.Minttl)
				return soa
			}
		}
	}
	return nil
}
