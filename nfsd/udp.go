package nfsd

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// maxDatagram is the read buffer for one UDP call: the largest UDP payload.
const maxDatagram = 64 << 10

// ServeUDP serves calls arriving as datagrams on pc, one call per datagram,
// replying to the sender, until Shutdown, after which it returns
// ErrServerClosed. Calls run on the same worker pool as TCP calls. It closes
// pc on return. A datagram that is not an RPC call is dropped.
func (s *Server) ServeUDP(pc net.PacketConn) error {
	s.init()
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		pc.Close()
		return ErrServerClosed
	}
	s.mu.packets[pc] = struct{}{}
	s.serveWG.Add(1)
	s.mu.Unlock()

	var calls sync.WaitGroup
	err := s.readUDP(pc, &calls)
	calls.Wait()
	pc.Close()

	s.mu.Lock()
	delete(s.mu.packets, pc)
	s.mu.Unlock()
	s.serveWG.Done()
	if s.closing.Load() {
		return ErrServerClosed
	}
	return err
}

// readUDP reads datagrams and starts a worker for each.
func (s *Server) readUDP(pc net.PacketConn, calls *sync.WaitGroup) error {
	uc, _ := pc.(*net.UDPConn)
	local := addrPort(pc.LocalAddr())
	log := s.log.With("udp", local.String())
	buf := make([]byte, maxDatagram)
	// On a wildcard socket, learn each datagram's destination address so
	// the reply leaves from it.
	var oob []byte
	if uc != nil && local.Addr().IsUnspecified() {
		if enablePktinfo(uc) {
			oob = make([]byte, pktinfoSize)
		} else {
			// Linux has packet info; elsewhere (FreeBSD) it is not
			// used yet, so say what that costs on a box with more
			// than one address.
			log.Warn("nfsd: UDP on a wildcard address without packet info: a reply leaves from the address routing picks, which a client that wrote to another address of this host drops, and hosts.allow rules naming a server address (daemon@host) do not match UDP calls; give -listen one address, or have front ends mount over TCP")
		}
	}
	var backoff time.Duration
	for {
		var (
			n    int
			from netip.AddrPort
			dst  netip.Addr
			err  error
		)
		if oob != nil {
			var oobn int
			n, oobn, _, from, err = uc.ReadMsgUDPAddrPort(buf, oob)
			if err == nil {
				dst, _ = parsePktinfo(oob[:oobn])
			}
		} else if uc != nil {
			n, from, err = uc.ReadFromUDPAddrPort(buf)
		} else {
			var a net.Addr
			n, a, err = pc.ReadFrom(buf)
			from = addrPort(a)
		}
		if s.closing.Load() {
			return nil
		}
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return fmt.Errorf("nfsd: udp read: %w", err)
			}
			if errors.Is(err, os.ErrDeadlineExceeded) {
				continue
			}
			// Transient errors (ICMP-induced refusals and the like):
			// back off, never spin.
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			log.Warn("nfsd: udp read failed; retrying", "err", err, "backoff", backoff)
			select {
			case <-time.After(backoff):
			case <-s.done:
			}
			continue
		}
		backoff = 0
		if n == 0 || !from.IsValid() {
			continue
		}
		if forgedMapped(from.Addr(), dst, local.Addr()) {
			s.stats.udpForgedMapped.Add(1)
			if ok, held := s.forgedLog.Allow(struct{}{}, time.Now()); ok {
				log.Warn("nfsd: dropped a datagram from an IPv4-mapped source sent to an IPv6 address: a forged source (logged once a minute)",
					"from", from.String(), "to", dst.String(), "held_back", held)
			}
			continue
		}
		if !s.acquireWorker(nil) {
			return nil
		}
		rec := getRecord(buf[:n])
		s.stats.inFlight.Add(1)
		calls.Add(1)
		go func() {
			defer calls.Done()
			s.udpCall(pc, uc, local, dst, from, rec)
		}()
	}
}

// udpCall runs one datagram's call and sends the reply, from dst if it is
// known (a wildcard socket with packet info).
func (s *Server) udpCall(pc net.PacketConn, uc *net.UDPConn, local netip.AddrPort, dst netip.Addr, from netip.AddrPort, rec *[]byte) {
	if dst.IsValid() {
		local = netip.AddrPortFrom(dst, local.Port())
	}
	// An IPv4 client of a dual-stack socket is named as TCP names it,
	// without the ::ffff: prefix; replies go to from as it came.
	remote := netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	ep := endpoint{
		ctx:    s.baseCtx,
		net:    "udp",
		remote: remote,
		local:  local,
		log:    s.log.With("udp", local.String(), "remote", remote.String()),
	}
	e := getEncoder()
	defer putEncoder(e)
	v := s.dispatch(&ep, *rec, e)
	putRecord(rec)
	s.releaseWorker()
	s.stats.inFlight.Add(-1)
	if v != sendReply {
		return
	}
	if e.Len() > maxUDPReply {
		s.stats.udpReplyTooLong.Add(1)
		ep.log.Warn("nfsd: reply too large for a datagram; dropped", "bytes", e.Len())
		return
	}
	var err error
	switch {
	case uc != nil && dst.IsValid():
		_, _, err = uc.WriteMsgUDPAddrPort(e.Bytes(), pktinfoSource(dst), from)
	case uc != nil:
		_, err = uc.WriteToUDPAddrPort(e.Bytes(), from)
	default:
		_, err = pc.WriteTo(e.Bytes(), net.UDPAddrFromAddrPort(from))
	}
	if err != nil && !errors.Is(err, net.ErrClosed) {
		ep.log.Debug("nfsd: udp reply failed", "err", err)
	}
}

// forgedMapped reports whether a datagram from src, sent to dst (packet
// info; invalid if not known) on a socket bound to local, carries a forged
// IPv4-mapped source. A dual-stack socket shows IPv4 traffic with a mapped
// source (::ffff:a.b.c.d), and such a datagram is addressed to IPv4. Linux
// also delivers a native IPv6 datagram whose source is mapped, which no
// real host sends (RFC 4291 2.5.5.2; FreeBSD's ip6_input drops it): taken
// as its IPv4 address, a remote ::ffff:127.0.0.1 counted as loopback (the
// portmapper's SET and UNSET, hosts_access and export rules for
// 127.0.0.1) and any ::ffff:a.b.c.d passed the IPv4 reverse path filter.
// Such a datagram is sent to an IPv6 address.
func forgedMapped(src, dst, local netip.Addr) bool {
	if !src.Is4In6() {
		return false
	}
	to := dst
	if !to.IsValid() {
		to = local
	}
	return to.Is6() && !to.Is4In6() && !to.IsUnspecified()
}
