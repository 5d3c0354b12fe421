/*
Copyright 2026 The labhook Authors.

Licensed under the Apache License, Version 2.0 (the "License");
you may not use this file except in compliance with the License.
You may obtain a copy of the License at

    http://www.apache.org/licenses/LICENSE-2.0

Unless required by applicable law or agreed to in writing, software
distributed under the License is distributed on an "AS IS" BASIS,
WITHOUT WARRANTIES OR CONDITIONS OF ANY KIND, either express or implied.
See the License for the specific language governing permissions and
limitations under the License.
*/

package outbound

import (
	"fmt"
	"net"
	"net/netip"
	"syscall"
)

// PolicyError is returned when a request is refused before anything is sent:
// the target address is in a blocked range (SSRF guard), or the URL's scheme
// is not allowed. It never contains secrets.
type PolicyError struct {
	// Addr is the refused IP address, when the refusal is about an address.
	Addr netip.Addr
	// Msg says why.
	Msg string
}

func (e *PolicyError) Error() string { return "refused by policy: " + e.Msg }

// blockedRange is an address range that must not be reached from the
// operator unless an admin allows it with --allowed-target-cidrs.
type blockedRange struct {
	prefix netip.Prefix
	what   string
}

// blockedRanges complements netip.Addr's classification methods with ranges
// it does not name. IPv6 forms that embed an IPv4 address (NAT64, 6to4) are
// blocked whole: a public receiver is reachable by its plain address.
var blockedRanges = []blockedRange{
	{netip.MustParsePrefix("0.0.0.0/8"), "a this-network address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a carrier-grade NAT address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol assignment address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("64:ff9b::/96"), "a NAT64 address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a NAT64 address"},
	{netip.MustParsePrefix("2002::/16"), "a 6to4 address"},
}

// classify says why addr must not be dialled, or "" when it may be.
func classify(addr netip.Addr) string {
	a := addr.Unmap() // ::ffff:10.0.0.1 is 10.0.0.1
	switch {
	case a.IsUnspecified():
		return "an unspecified address"
	case a.IsLoopback():
		return "a loopback address"
	case a.IsPrivate():
		if a.Is4() {
			return "a private (RFC 1918) address"
		}
		return "a unique-local address"
	case a.IsLinkLocalUnicast():
		return "a link-local address"
	case a.IsMulticast(), a.IsLinkLocalMulticast(), a.IsInterfaceLocalMulticast():
		return "a multicast address"
	case a.Is4() && a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address"
	}
	for _, r := range blockedRanges {
		if r.prefix.Contains(a) {
			return r.what
		}
	}
	return ""
}

// guard decides, per resolved address, whether a connection may be made.
type guard struct {
	allowed []netip.Prefix
}

// check returns a *PolicyError when addr is in a blocked range and in none of
// the allowed prefixes.
func (g guard) check(addr netip.Addr) error {
	why := classify(addr)
	if why == "" {
		return nil
	}
	for _, p := range g.allowed {
		if p.Contains(addr) || p.Contains(addr.Unmap()) {
			return nil
		}
	}
	return &PolicyError{Addr: addr, Msg: fmt.Sprintf("%s is %s, not in --allowed-target-cidrs", addr.Unmap(), why)}
}

// control is a net.Dialer.Control: it runs after name resolution, for every
// address the dialer is about to connect to, so a DNS answer that changes
// between a check and the connection (rebinding) cannot slip through.
func (g guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		// The dialer hands us resolved "ip:port" strings; anything else is
		// unexpected and refused rather than guessed at.
		host, _, splitErr := net.SplitHostPort(address)
		if splitErr != nil {
			return &PolicyError{Msg: fmt.Sprintf("cannot parse dial address %q", address)}
		}
		a, perr := netip.ParseAddr(host)
		if perr != nil {
			return &PolicyError{Msg: fmt.Sprintf("cannot parse dial address %q", address)}
		}
		return g.check(a)
	}
	return g.check(ap.Addr())
}
