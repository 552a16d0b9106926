package nfsd

import (
	"net"
	"net/netip"

	"golang.org/x/sys/unix"
)

// pktinfoSize is room for one IPv4 or IPv6 packet-info control message.
var pktinfoSize = max(unix.CmsgSpace(unix.SizeofInet4Pktinfo), unix.CmsgSpace(unix.SizeofInet6Pktinfo))

// enablePktinfo asks the kernel to report each datagram's destination
// address on a socket bound to a wildcard address, so that the reply can
// leave from the address the client wrote to (a client with a connected
// UDP socket drops a reply from any other address, which the kernel's
// routing choice would give on a host with several addresses). It reports
// whether the socket delivers that information.
func enablePktinfo(uc *net.UDPConn) bool {
	rc, err := uc.SyscallConn()
	if err != nil {
		return false
	}
	ok := false
	rc.Control(func(fd uintptr) {
		// IP_PKTINFO also covers IPv4 traffic on a dual-stack IPv6 socket.
		v4 := unix.SetsockoptInt(int(fd), unix.IPPROTO_IP, unix.IP_PKTINFO, 1) == nil
		v6 := unix.SetsockoptInt(int(fd), unix.IPPROTO_IPV6, unix.IPV6_RECVPKTINFO, 1) == nil
		ok = v4 || v6
	})
	return ok
}

// parsePktinfo returns the destination address from a datagram's control
// messages, or false.
func parsePktinfo(oob []byte) (netip.Addr, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.Addr{}, false
	}
	for _, m := range msgs {
		switch {
		case m.Header.Level == unix.IPPROTO_IP && m.Header.Type == unix.IP_PKTINFO &&
			len(m.Data) >= unix.SizeofInet4Pktinfo:
			// struct in_pktinfo: ifindex, spec_dst, addr (the header's
			// destination address).
			var a [4]byte
			copy(a[:], m.Data[8:12])
			return netip.AddrFrom4(a), true
		case m.Header.Level == unix.IPPROTO_IPV6 && m.Header.Type == unix.IPV6_PKTINFO &&
			len(m.Data) >= unix.SizeofInet6Pktinfo:
			// struct in6_pktinfo: addr, ifindex.
			var a [16]byte
			copy(a[:], m.Data[:16])
			return netip.AddrFrom16(a).Unmap(), true
		}
	}
	return netip.Addr{}, false
}

// pktinfoSource returns a control message that makes a reply leave from
// src. Linux takes IP_PKTINFO on an IPv6 socket too, for a v4-mapped
// destination.
func pktinfoSource(src netip.Addr) []byte {
	if src.Is4() {
		return unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: src.As4()})
	}
	return unix.PktInfo6(&unix.Inet6Pktinfo{Addr: src.As16()})
}
