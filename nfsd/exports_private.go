package nfsd

import (
	"fmt"
	"net"
	"net/netip"
)

// privateNets are the networks NFS may be offered on without a warning:
// loopback, RFC 1918, IPv4 link-local, and the IPv6 equivalents (loopback,
// unique local fc00::/7, link-local fe80::/10).
var privateNets = []netip.Prefix{
	netip.MustParsePrefix("127.0.0.0/8"),
	netip.MustParsePrefix("10.0.0.0/8"),
	netip.MustParsePrefix("172.16.0.0/12"),
	netip.MustParsePrefix("192.168.0.0/16"),
	netip.MustParsePrefix("169.254.0.0/16"),
	netip.MustParsePrefix("::1/128"),
	netip.MustParsePrefix("fc00::/7"),
	netip.MustParsePrefix("fe80::/10"),
}

// IsPrivatePrefix reports whether every address of p is loopback, RFC 1918,
// link-local or IPv6 unique local. IPv4-mapped IPv6 prefixes count as IPv4.
func IsPrivatePrefix(p netip.Prefix) bool {
	if !p.IsValid() {
		return false
	}
	a, bits := p.Addr(), p.Bits()
	if a.Is4In6() {
		if bits < 96 {
			return false
		}
		a, bits = a.Unmap(), bits-96
	}
	for _, n := range privateNets {
		if bits >= n.Bits() && n.Contains(a) {
			return true
		}
	}
	return false
}

// IsPrivateAddr reports whether a is a private address (see IsPrivatePrefix).
func IsPrivateAddr(a netip.Addr) bool {
	return a.IsValid() && IsPrivatePrefix(netip.PrefixFrom(a.Unmap(), a.Unmap().BitLen()))
}

// PublicExposure lists, one sentence each, where the configuration offers
// NFS outside private networks: a listen address that is public (an empty
// listen means every address of ifaceAddrs, the host's interface
// addresses), and every export rule that admits everyone, a public network
// or a host name that resolved to a public address. mailnfsd logs each at
// start (Warn) and -check-config prints them. NFSv3 with AUTH_SYS trusts
// the uid a client claims: it belongs on a private network.
func PublicExposure(listen string, t *ExportTable, ifaceAddrs []netip.Addr) []string {
	var out []string
	if listen == "" {
		for _, a := range ifaceAddrs {
			if !IsPrivateAddr(a) {
				out = append(out, fmt.Sprintf("listening on every address, including public address %s; use -listen with a private address", a.Unmap()))
			}
		}
	} else if a, err := netip.ParseAddr(listen); err == nil && !IsPrivateAddr(a) && !a.IsUnspecified() {
		out = append(out, fmt.Sprintf("listening on public address %s; NFS belongs on a private network (loopback, RFC 1918, fc00::/7, fe80::/10)", a))
	} else if err == nil && a.IsUnspecified() {
		return PublicExposure("", t, ifaceAddrs)
	}
	if t == nil {
		return out
	}
	for _, e := range t.Exports {
		for _, r := range e.Rules {
			if len(r.Clients) == 0 {
				out = append(out, fmt.Sprintf("%s: export %s admits everyone (no hosts given), which counts as public; name the private hosts or networks", r.Pos, e.Path))
				continue
			}
			for _, c := range r.Clients {
				switch c.Kind {
				case ClientWorld:
					out = append(out, fmt.Sprintf("%s: export %s admits everyone (*), which counts as public; name the private hosts or networks", r.Pos, e.Path))
				case ClientNet:
					if !IsPrivatePrefix(c.Net) {
						out = append(out, fmt.Sprintf("%s: export %s admits %s, outside private networks", r.Pos, e.Path, c))
					}
				case ClientHost:
					for _, a := range c.Addrs {
						if !IsPrivateAddr(a) {
							out = append(out, fmt.Sprintf("%s: export %s admits host %s at public address %s", r.Pos, e.Path, c.Name, a))
						}
					}
				}
			}
		}
	}
	return out
}

// InterfaceAddrs returns the addresses of the host's interfaces (for
// PublicExposure with an empty listen address); errors yield none.
func InterfaceAddrs() []netip.Addr {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil
	}
	var out []netip.Addr
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok {
			if ip, ok := netip.AddrFromSlice(n.IP); ok {
				out = append(out, ip.Unmap())
			}
		}
	}
	return out
}
