package netnstest

import (
	"fmt"
	"net/netip"
	"sync"
	"testing"
)

// Bridge is a private layer-2 network: a Linux bridge inside a namespace of
// its own, to which other test namespaces are attached with veth pairs. Its
// addresses are 10.77.<Subnet>.<host>/24 and exist only inside namespaces the
// test created; the host's network is never touched.
type Bridge struct {
	// NS holds the bridge device "br0" and the bridge-side veth ends.
	NS *NS
	// Subnet is the third octet of the 10.77.x.0/24 network.
	Subnet uint8

	t testing.TB

	mu    sync.Mutex
	hosts map[uint8]bool // guarded by mu; host numbers in use
	next  int            // guarded by mu; numbers the bridge-side veth ends
}

// NewBridge creates a namespace holding bridge br0 for network 10.77.subnet.0/24.
func NewBridge(t testing.TB, subnet uint8) *Bridge {
	t.Helper()
	ns := New(t, "br")
	ns.IP("link", "add", "br0", "type", "bridge")
	ns.IP("link", "set", "br0", "up")
	return &Bridge{NS: ns, Subnet: subnet, t: t, hosts: map[uint8]bool{}}
}

// Addr returns 10.77.Subnet.host.
func (b *Bridge) Addr(host uint8) netip.Addr {
	return netip.AddrFrom4([4]byte{10, 77, b.Subnet, host})
}

// Attach connects ns to the bridge with a veth pair whose end in ns is named
// dev (e.g. "eth0") and gets address 10.77.Subnet.host/24, and returns that
// address. host must be 1..254 and unused on this bridge.
func (b *Bridge) Attach(ns *NS, dev string, host uint8) netip.Addr {
	b.t.Helper()
	if host == 0 || host == 255 {
		b.t.Fatalf("netnstest: host number %d is not usable in a /24", host)
	}
	b.mu.Lock()
	if b.hosts[host] {
		b.mu.Unlock()
		b.t.Fatalf("netnstest: host %d already attached to bridge %s", host, b.NS.Name)
	}
	b.hosts[host] = true
	b.next++
	brEnd := fmt.Sprintf("vb%d", b.next)
	b.mu.Unlock()

	// Create the pair inside the bridge namespace and move the peer straight
	// into ns, so no interface ever appears in the host namespace.
	b.NS.IP("link", "add", brEnd, "type", "veth", "peer", "name", dev, "netns", ns.Name)
	b.NS.IP("link", "set", brEnd, "master", "br0")
	b.NS.IP("link", "set", brEnd, "up")
	addr := b.Addr(host)
	ns.IP("addr", "add", netip.PrefixFrom(addr, 24).String(), "dev", dev)
	ns.IP("link", "set", dev, "up")
	return addr
}

// Host creates a new namespace attached to the bridge as 10.77.Subnet.host on
// its "eth0" and returns it with its address.
func (b *Bridge) Host(label string, host uint8) (*NS, netip.Addr) {
	b.t.Helper()
	ns := New(b.t, label)
	return ns, b.Attach(ns, "eth0", host)
}
