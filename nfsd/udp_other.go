//go:build !linux

package nfsd

import (
	"net"
	"net/netip"
)

// Elsewhere than Linux replies to datagrams on a wildcard socket leave from
// the address the kernel's routing picks.

const pktinfoSize = 0

func enablePktinfo(*net.UDPConn) bool { return false }

func parsePktinfo([]byte) (netip.Addr, bool) { return netip.Addr{}, false }

func pktinfoSource(netip.Addr) []byte { return nil }
