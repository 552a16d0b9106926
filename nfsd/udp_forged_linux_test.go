package nfsd_test

import (
	"context"
	"encoding/binary"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestForgedMappedSourceDropped: Linux delivers to an IPv6 UDP socket a
// native IPv6 datagram whose source is IPv4-mapped, which no real host
// sends. From another host such a datagram with source ::ffff:127.0.0.1
// counted as a loopback caller: the portmapper took its SET (a remote
// host registered a mapping) and UNSET (NFS unregistered: clients that
// ask the portmapper could no longer find it). The server now drops a datagram
// from a mapped source sent to an IPv6 address, on a dual-stack wildcard
// socket and on one bound to an IPv6 address; IPv4 traffic on the
// dual-stack socket (a loopback SET) is still served. Two private network
// namespaces joined by a veth pair; the forged datagrams are written with
// a raw socket.
func TestForgedMappedSourceDropped(t *testing.T) {
	nfsdtest.RequireRoot(t)
	netnstest.RequireTool(t, "ip")
	for _, tc := range []struct{ name, listen string }{{"Wildcard", ""}, {"IPv6Address", "fd77::1"}} {
		t.Run(tc.name, func(t *testing.T) {
			srv := netnstest.New(t, "forgedsrv")
			att := netnstest.New(t, "forgedatt")
			srv.IP("link", "add", "v0", "type", "veth", "peer", "name", "v1", "netns", att.Name)
			srv.IP("addr", "add", "fd77::1/64", "dev", "v0", "nodad")
			att.IP("addr", "add", "fd77::2/64", "dev", "v1", "nodad")
			for _, ns := range []*netnstest.NS{srv, att} {
				ns.IP("link", "set", "lo", "up")
			}
			srv.IP("link", "set", "v0", "up")
			att.IP("link", "set", "v1", "up")

			dir := t.TempDir()
			export := filepath.Join(dir, "export")
			if err := os.Mkdir(export, 0o755); err != nil {
				t.Fatal(err)
			}
			exports := filepath.Join(dir, "exports")
			if err := os.WriteFile(exports, []byte(export+" 127.0.0.1(rw)\n"), 0o644); err != nil {
				t.Fatal(err)
			}
			var d *nfsd.Daemon
			if err := srv.Do(func() error {
				var err error
				d, err = nfsd.Start(context.Background(), nfsd.Config{
					ExportsFile: exports, StateDir: filepath.Join(dir, "state"),
					Listen: tc.listen, PortmapPort: 111,
				})
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer func() {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				if err := d.Shutdown(ctx); err != nil {
					t.Error(err)
				}
			}()
			pmap := netip.MustParseAddrPort("[fd77::1]:111")
			dial := func(ns *netnstest.NS, to netip.AddrPort) *nfsdtest.Caller {
				t.Helper()
				var c *nfsdtest.Caller
				if err := ns.Do(func() error { c = nfsdtest.Dial(t, "udp", to); return nil }); err != nil {
					t.Fatal(err)
				}
				return c
			}
			set := func(proc, prog, vers, port uint32) []byte {
				var e xdr.Encoder
				rpc.CallHeader{XID: prog, Prog: portmap.Prog, Vers: portmap.V2, Proc: proc}.Encode(&e)
				for _, v := range []uint32{prog, vers, 17, port} {
					e.Uint32(v)
				}
				return e.Bytes()
			}
			getport := func(c *nfsdtest.Caller, prog, vers uint32) uint32 {
				t.Helper()
				dec, err := c.Call(portmap.Prog, portmap.V2, 3, rpc.OpaqueAuth{}, func(e *xdr.Encoder) {
					for _, v := range []uint32{prog, vers, 17, 0} {
						e.Uint32(v)
					}
				})
				if err != nil {
					t.Fatalf("GETPORT: %v", err)
				}
				return dec.Uint32()
			}

			// A genuine caller from the other host is answered (the path
			// works, and its neighbour entries are in place).
			dial(att, pmap).Null(t, portmap.Prog, portmap.V2)

			// The forged SET and UNSET, three times each.
			forged := netip.MustParseAddr("::ffff:127.0.0.1")
			if err := att.Do(func() error {
				fd, err := syscall.Socket(syscall.AF_INET6, syscall.SOCK_RAW, syscall.IPPROTO_RAW)
				if err != nil {
					return err
				}
				defer syscall.Close(fd)
				to := &syscall.SockaddrInet6{Addr: pmap.Addr().As16()}
				for range 3 {
					for _, p := range [][]byte{set(1, 300000, 1, 4444), set(2, nfs3.Program, nfs3.Version, 0)} {
						if err := syscall.Sendto(fd, udp6Datagram(forged, pmap.Addr(), 700, pmap.Port(), p), 0, to); err != nil {
							return err
						}
					}
					time.Sleep(100 * time.Millisecond)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			time.Sleep(300 * time.Millisecond)

			local := pmap
			if tc.listen == "" {
				local = netip.MustParseAddrPort("127.0.0.1:111")
			}
			c := dial(srv, local)
			if port := getport(c, 300000, 1); port != 0 {
				t.Errorf("a remote datagram from ::ffff:127.0.0.1 registered prog 300000 at port %d", port)
			}
			if port := getport(c, nfs3.Program, nfs3.Version); port != uint32(d.NFSAddr().Port()) {
				t.Errorf("NFS is mapped to port %d after a forged UNSET, want %d", port, d.NFSAddr().Port())
			}
			if n := d.Server.Stats().UDPForgedMapped; n < 6 {
				t.Errorf("UDPForgedMapped = %d, want the 6 forged datagrams", n)
			}
			if tc.listen == "" {
				// IPv4 loopback on the dual-stack socket is still local.
				if _, err := c.Call(portmap.Prog, portmap.V2, 1, rpc.OpaqueAuth{}, func(e *xdr.Encoder) {
					for _, v := range []uint32{300001, 1, 17, 4445} {
						e.Uint32(v)
					}
				}); err != nil {
					t.Fatalf("loopback SET: %v", err)
				}
				if port := getport(c, 300001, 1); port != 4445 {
					t.Errorf("a loopback SET over IPv4 on the dual-stack socket: GETPORT %d, want 4445", port)
				}
			}
		})
	}
}

// udp6Datagram builds an IPv6 packet carrying a UDP datagram, checksum
// included, for a raw IPPROTO_RAW socket.
func udp6Datagram(src, dst netip.Addr, sport, dport uint16, payload []byte) []byte {
	pkt := make([]byte, 48+len(payload))
	ulen := 8 + len(payload)
	pkt[0] = 0x60
	binary.BigEndian.PutUint16(pkt[4:], uint16(ulen))
	pkt[6], pkt[7] = syscall.IPPROTO_UDP, 64
	s, d := src.As16(), dst.As16()
	copy(pkt[8:], s[:])
	copy(pkt[24:], d[:])
	udp := pkt[40:]
	binary.BigEndian.PutUint16(udp[0:], sport)
	binary.BigEndian.PutUint16(udp[2:], dport)
	binary.BigEndian.PutUint16(udp[4:], uint16(ulen))
	copy(udp[8:], payload)
	// The checksum covers the pseudo-header (addresses, length, next
	// header) and the datagram.
	sum := uint32(ulen) + syscall.IPPROTO_UDP
	add := func(b []byte) {
		for i := 0; i < len(b); i += 2 {
			w := uint32(b[i]) << 8
			if i+1 < len(b) {
				w |= uint32(b[i+1])
			}
			sum += w
		}
	}
	add(pkt[8:40])
	add(udp)
	for sum>>16 != 0 {
		sum = sum&0xffff + sum>>16
	}
	c := ^uint16(sum)
	if c == 0 {
		c = 0xffff
	}
	binary.BigEndian.PutUint16(udp[6:], c)
	return pkt
}
