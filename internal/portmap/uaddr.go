package portmap

import (
	"errors"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ErrBadUaddr means a string is not a universal address of an IP transport.
var ErrBadUaddr = errors.New("portmap: malformed universal address")

// FormatUaddr returns the universal address of ap (RFC 5665 §5.2.3.3): the
// textual IP address followed by ".p1.p2", where p1 and p2 are the high and
// low byte of the port in decimal. 127.0.0.1 port 2049 is "127.0.0.1.8.1",
// ::1 port 2049 is "::1.8.1". An IPv6 zone is dropped: uaddrs carry none
// (TI-RPC formats them with inet_ntop). An IPv4-mapped IPv6 address stays in
// IPv6 form. The invalid AddrPort formats as "".
func FormatUaddr(ap netip.AddrPort) string {
	a := ap.Addr()
	if !a.IsValid() {
		return ""
	}
	p := ap.Port()
	return a.WithZone("").String() + "." + strconv.Itoa(int(p>>8)) + "." + strconv.Itoa(int(p&0xff))
}

// ParseUaddr parses a universal address of an inet or inet6 transport:
// an IPv4 or IPv6 address in the forms netip.ParseAddr accepts, without a
// zone, followed by two decimal port bytes of at most three digits and
// values 0..255.
func ParseUaddr(s string) (netip.AddrPort, error) {
	i := strings.LastIndexByte(s, '.')
	if i < 0 {
		return netip.AddrPort{}, fmt.Errorf("%w: %q", ErrBadUaddr, s)
	}
	lo, ok := portByte(s[i+1:])
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%w: %q", ErrBadUaddr, s)
	}
	rest := s[:i]
	j := strings.LastIndexByte(rest, '.')
	if j < 0 {
		return netip.AddrPort{}, fmt.Errorf("%w: %q", ErrBadUaddr, s)
	}
	hi, ok := portByte(rest[j+1:])
	if !ok {
		return netip.AddrPort{}, fmt.Errorf("%w: %q", ErrBadUaddr, s)
	}
	a, err := netip.ParseAddr(rest[:j])
	if err != nil || a.Zone() != "" {
		return netip.AddrPort{}, fmt.Errorf("%w: %q", ErrBadUaddr, s)
	}
	return netip.AddrPortFrom(a, uint16(hi)<<8|uint16(lo)), nil
}

// portByte parses one port byte: 1 to 3 decimal digits, at most 255.
func portByte(s string) (int, bool) {
	if len(s) == 0 || len(s) > 3 {
		return 0, false
	}
	v := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int(c-'0')
	}
	return v, v <= 255
}

// Netid returns the netid of network ("tcp" or "udp") over addresses like a:
// "tcp"/"udp" for IPv4, "tcp6"/"udp6" for IPv6 (including IPv4-mapped
// addresses, which only an IPv6 socket has). It returns "" for another
// network.
func Netid(network string, a netip.Addr) string {
	var n string
	switch network {
	case "tcp", "tcp4", "tcp6":
		n = NetidTCP
	case "udp", "udp4", "udp6":
		n = NetidUDP
	default:
		return ""
	}
	if a.Is6() {
		n += "6"
	}
	return n
}

// NetidInfo describes one netid: its portmap v2 protocol number, its
// semantics and protocol family for rpcb_entry, and whether it is IPv6.
type NetidInfo struct {
	Prot      uint32 // IPProtoTCP or IPProtoUDP
	Semantics uint32
	ProtoFmly string // "inet" or "inet6"
	Proto     string // "tcp" or "udp"
	IPv6      bool
}

// LookupNetid returns what is known of netid; ok is false for a netid other
// than tcp, udp, tcp6 and udp6.
func LookupNetid(netid string) (info NetidInfo, ok bool) {
	switch netid {
	case NetidTCP:
		return NetidInfo{IPProtoTCP, SemanticsCOTSOrd, "inet", "tcp", false}, true
	case NetidUDP:
		return NetidInfo{IPProtoUDP, SemanticsCLTS, "inet", "udp", false}, true
	case NetidTCP6:
		return NetidInfo{IPProtoTCP, SemanticsCOTSOrd, "inet6", "tcp", true}, true
	case NetidUDP6:
		return NetidInfo{IPProtoUDP, SemanticsCLTS, "inet6", "udp", true}, true
	}
	return NetidInfo{}, false
}
