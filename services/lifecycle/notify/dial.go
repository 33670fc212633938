package notify

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// PublicOnly is a net.Dialer Control function that refuses to connect to loopback, private,
// link-local (cloud metadata services), unspecified and multicast addresses. A webhook URL is the
// customer's to choose; without this an endpoint named "https://169.254.169.254/" or a host that
// resolves to 127.0.0.1 would have the service call into its own network. It checks the address
// actually dialled, after name resolution, so a name that resolves differently later (DNS
// rebinding) is caught too. -webhook-allow-private turns it off (tests, private deployments).
func PublicOnly(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("webhook dial %s: %w", address, err)
	}
	if !IsPublic(ap.Addr()) {
		return fmt.Errorf("webhook endpoint address %s is not public (see -webhook-allow-private)", ap.Addr())
	}
	return nil
}

// IsPublic reports whether a is a globally routable unicast address.
func IsPublic(a netip.Addr) bool {
	a = a.Unmap()
	return a.IsGlobalUnicast() && !a.IsPrivate() && !a.IsLoopback() && !a.IsLinkLocalUnicast() &&
		!cgnat.Contains(a) && !a.IsUnspecified()
}

// cgnat is the shared address space of carrier-grade NAT (RFC 6598), not routable on the internet.
var cgnat = netip.MustParsePrefix("100.64.0.0/10")

// Dialer is the dialer of webhook requests: PublicOnly unless allowPrivate.
func Dialer(allowPrivate bool) *net.Dialer {
	d := &net.Dialer{}
	if !allowPrivate {
		d.Control = PublicOnly
	}
	return d
}
