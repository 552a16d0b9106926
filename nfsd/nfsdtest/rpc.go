package nfsdtest

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// CallTimeout bounds one Caller.Call (UDP retransmits within it).
const CallTimeout = 10 * time.Second

// Caller makes raw ONC RPC calls to a server over TCP or UDP, one at a time.
// It is for tests that check wire behaviour of the server's programs
// without the client package. Close it, or let t.Cleanup do it.
type Caller struct {
	network string
	conn    net.Conn
	rr      *rpc.RecordReader
	mu      sync.Mutex // one call at a time
	xid     uint32
	buf     []byte // UDP receive buffer
}

// Dial connects a Caller to addr over "tcp" or "udp"; t.Cleanup closes it.
func Dial(t testing.TB, network string, addr netip.AddrPort) *Caller {
	t.Helper()
	c, err := net.DialTimeout(network, addr.String(), CallTimeout)
	if err != nil {
		t.Fatalf("dial %s %s: %v", network, addr, err)
	}
	return newCaller(t, network, c)
}

// DialReserved is Dial from a reserved source port (below 1024), as a
// kernel client or a "secure" export expects; it needs root and skips the
// test without it.
func DialReserved(t testing.TB, network string, addr netip.AddrPort) *Caller {
	t.Helper()
	RequireRoot(t)
	var last error
	// Try from the top of the range down, as bindresvport does.
	for port := 1023; port >= 600; port-- {
		d := net.Dialer{Timeout: CallTimeout}
		local := netip.AddrPortFrom(netip.IPv6Loopback(), uint16(port))
		if addr.Addr().Is4() {
			local = netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
		}
		if network == "tcp" {
			d.LocalAddr = net.TCPAddrFromAddrPort(local)
		} else {
			d.LocalAddr = net.UDPAddrFromAddrPort(local)
		}
		c, err := d.Dial(network, addr.String())
		if err == nil {
			return newCaller(t, network, c)
		}
		last = err
	}
	t.Fatalf("dial %s %s from a reserved port: %v", network, addr, last)
	return nil
}

func newCaller(t testing.TB, network string, c net.Conn) *Caller {
	t.Cleanup(func() { c.Close() })
	cl := &Caller{network: network, conn: c, xid: uint32(time.Now().UnixNano())}
	if network == "tcp" {
		cl.rr = rpc.NewRecordReader(c, 0)
	} else {
		cl.buf = make([]byte, 65536)
	}
	return cl
}

// Close closes the connection.
func (c *Caller) Close() error { return c.conn.Close() }

// AuthSys returns an AUTH_SYS credential for uid, gid and supplementary gids.
func AuthSys(uid, gid uint32, gids ...uint32) rpc.OpaqueAuth {
	return rpc.AuthSysParms{MachineName: "nfsdtest", UID: uid, GID: gid, GIDs: gids}.Credential()
}

// AuthNone is the AUTH_NONE credential.
var AuthNone = rpc.OpaqueAuth{Flavor: rpc.AuthNone}

// Call sends one call and returns a decoder positioned at the results of a
// SUCCESS reply. A reply that is not SUCCESS is a *rpc.ReplyError. args may
// be nil (void arguments). The decoder's bytes stay valid until the next
// call.
func (c *Caller) Call(prog, vers, proc uint32, cred rpc.OpaqueAuth, args func(e *xdr.Encoder)) (*xdr.Decoder, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.xid++
	xid := c.xid
	var e xdr.Encoder
	rpc.CallHeader{XID: xid, Prog: prog, Vers: vers, Proc: proc, Cred: cred, Verf: AuthNone}.Encode(&e)
	if args != nil {
		args(&e)
	}
	msg := e.Bytes()
	deadline := time.Now().Add(CallTimeout)
	c.conn.SetDeadline(deadline)
	if c.network == "tcp" {
		if _, err := c.conn.Write(rpc.FrameRecord(msg)); err != nil {
			return nil, err
		}
		for {
			rec, err := c.rr.Next()
			if err != nil {
				return nil, err
			}
			if d, ok, err := matchReply(rec, xid); ok {
				return d, err
			}
		}
	}
	for {
		if _, err := c.conn.Write(msg); err != nil {
			return nil, err
		}
		// Retransmit every second until the deadline.
		rd := time.Now().Add(time.Second)
		if rd.After(deadline) {
			rd = deadline
		}
		c.conn.SetReadDeadline(rd)
		for {
			n, err := c.conn.Read(c.buf)
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() && time.Now().Before(deadline) {
				break
			}
			if err != nil {
				return nil, err
			}
			if d, ok, err := matchReply(c.buf[:n], xid); ok {
				return d, err
			}
		}
	}
}

// matchReply decodes a reply header; ok is false for another xid.
func matchReply(rec []byte, xid uint32) (*xdr.Decoder, bool, error) {
	d := xdr.NewDecoder(rec)
	got, err := rpc.DecodeReply(d)
	if got != xid {
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	return d, true, nil
}

// Null calls procedure 0 of prog/vers and fails the test unless it
// succeeds with empty results.
func (c *Caller) Null(t testing.TB, prog, vers uint32) {
	t.Helper()
	d, err := c.Call(prog, vers, 0, AuthNone, nil)
	if err != nil {
		t.Fatalf("NULL prog %d vers %d over %s: %v", prog, vers, c.network, err)
	}
	if err := d.Done(); err != nil {
		t.Fatalf("NULL prog %d vers %d: results: %v", prog, vers, err)
	}
}

// String names the caller for test logs.
func (c *Caller) String() string { return fmt.Sprintf("%s %s", c.network, c.conn.RemoteAddr()) }
