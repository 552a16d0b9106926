package nfsd

import (
	"net/netip"
	"testing"

	"golang.org/x/sys/unix"
)

// pktinfoDst builds the control message the kernel attaches to a datagram
// received for dst (IP_PKTINFO or IPV6_PKTINFO).
func pktinfoDst(dst netip.Addr) []byte {
	if dst.Is4() {
		return unix.PktInfo4(&unix.Inet4Pktinfo{Ifindex: 2, Spec_dst: [4]byte{10, 9, 9, 9}, Addr: dst.As4()})
	}
	return unix.PktInfo6(&unix.Inet6Pktinfo{Addr: dst.As16(), Ifindex: 2})
}

func TestParsePktinfo(t *testing.T) {
	for _, s := range []string{"127.0.0.1", "192.0.2.7", "::1", "2001:db8::5"} {
		want := netip.MustParseAddr(s)
		if got, ok := parsePktinfo(pktinfoDst(want)); !ok || got != want {
			t.Errorf("%s: parsed %v, %v", s, got, ok)
		}
	}
	// A v4-mapped IPv6 destination is the IPv4 address.
	if got, ok := parsePktinfo(pktinfoDst(netip.MustParseAddr("::ffff:192.0.2.8"))); !ok || got != netip.MustParseAddr("192.0.2.8") {
		t.Errorf("mapped: parsed %v, %v", got, ok)
	}
	good := pktinfoDst(netip.MustParseAddr("192.0.2.7"))
	for name, oob := range map[string][]byte{
		"none":      nil,
		"truncated": good[:unix.CmsgLen(unix.SizeofInet4Pktinfo)-1],
		"other":     unix.UnixRights(0),
	} {
		if got, ok := parsePktinfo(oob); ok {
			t.Errorf("%s: parsed %v", name, got)
		}
	}
}

// FuzzParsePktinfo: whatever control bytes arrive with a datagram, the
// parser returns a valid address or nothing, and the address it returns
// is the one a control message built for it carries.
func FuzzParsePktinfo(f *testing.F) {
	f.Add(pktinfoDst(netip.MustParseAddr("192.0.2.7")))
	f.Add(pktinfoDst(netip.MustParseAddr("2001:db8::5")))
	f.Add(append(unix.UnixRights(0), pktinfoDst(netip.MustParseAddr("::1"))...))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, oob []byte) {
		a, ok := parsePktinfo(oob)
		if !ok {
			return
		}
		if !a.IsValid() || a.Is4In6() {
			t.Fatalf("parsed %v", a)
		}
		if b, ok := parsePktinfo(pktinfoDst(a)); !ok || b != a {
			t.Fatalf("%v re-parses as %v, %v", a, b, ok)
		}
	})
}
