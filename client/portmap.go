package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"time"

	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// ErrNotRegistered means the portmapper answered but has no mapping for the
// program and version (GETPORT port 0, GETADDR empty string).
var ErrNotRegistered = errors.New("client: program not registered with the portmapper")

// PortmapTrace records the lookups GetPort tried, for diagnostics.
type PortmapTrace []string

// GetPort finds the TCP port of (prog, vers) through the portmapper at
// pmAddr ("host:port"), as real clients do (reference.md §2.4): portmap v2
// GETPORT over TCP; if TCP cannot reach the portmapper, the same over UDP;
// if v2 is refused (PROG_MISMATCH, PROG_UNAVAIL) or garbled, rpcbind v3
// GETADDR with netid "tcp" or "tcp6". A port of 0 or an empty address is
// ErrNotRegistered. trace, if not nil, receives one line per attempt.
func GetPort(ctx context.Context, pmAddr string, prog, vers uint32, trace *PortmapTrace) (int, error) {
	note := func(format string, a ...any) {
		if trace != nil {
			*trace = append(*trace, fmt.Sprintf(format, a...))
		}
	}
	what := progName(prog, vers)
	m := portmap.Mapping{Prog: prog, Vers: vers, Prot: portmap.IPProtoTCP}
	args := func(e *xdr.Encoder) { m.Encode(e) }

	res, err := oneShotTCP(ctx, pmAddr, portmap.Prog, portmap.V2, portmap.PmapProcGetPort, AuthNone(), args)
	if isTransport(err) {
		note("portmap v2 GETPORT %s over TCP %s: %v", what, pmAddr, err)
		res, err = CallUDP(ctx, pmAddr, portmap.Prog, portmap.V2, portmap.PmapProcGetPort, AuthNone(), args)
		if err != nil {
			note("portmap v2 GETPORT %s over UDP %s: %v", what, pmAddr, err)
		} else {
			note("portmap v2 GETPORT %s over UDP %s: answered", what, pmAddr)
		}
	} else if err != nil {
		note("portmap v2 GETPORT %s over TCP %s: %v", what, pmAddr, err)
	} else {
		note("portmap v2 GETPORT %s over TCP %s: answered", what, pmAddr)
	}
	if err == nil {
		d := xdr.NewDecoder(res)
		port := d.Uint32()
		if derr := d.Done(); derr == nil {
			if port == 0 {
				return 0, fmt.Errorf("%w: prog %d vers %d tcp at %s", ErrNotRegistered, prog, vers, pmAddr)
			}
			if port > 65535 {
				return 0, fmt.Errorf("client: portmapper %s: port %d out of range", pmAddr, port)
			}
			return int(port), nil
		} else {
			err = fmt.Errorf("client: portmap GETPORT reply: %w", derr)
			note("%v", err)
		}
	}
	if isTransport(err) {
		return 0, err
	}

	// rpcbind v3 GETADDR over TCP.
	host, _, _ := net.SplitHostPort(pmAddr)
	netid := portmap.NetidTCP
	if a, perr := netip.ParseAddr(host); perr == nil && a.Is6() && !a.Is4In6() {
		netid = portmap.NetidTCP6
	}
	b := portmap.RPCB{Prog: prog, Vers: vers, Netid: netid}
	res, err3 := oneShotTCP(ctx, pmAddr, portmap.Prog, portmap.V3, portmap.RpcbProcGetAddr, AuthNone(), func(e *xdr.Encoder) { b.Encode(e) })
	if err3 != nil {
		note("rpcbind v3 GETADDR %s %s: %v", what, pmAddr, err3)
		return 0, fmt.Errorf("client: portmapper %s: v2: %v; v3: %w", pmAddr, err, err3)
	}
	d := xdr.NewDecoder(res)
	ua := d.String(portmap.MaxUaddr)
	if derr := d.Done(); derr != nil {
		return 0, fmt.Errorf("client: rpcbind GETADDR reply: %w", derr)
	}
	note("rpcbind v3 GETADDR %s %s: %q", what, pmAddr, ua)
	if ua == "" {
		return 0, fmt.Errorf("%w: prog %d vers %d %s at %s", ErrNotRegistered, prog, vers, netid, pmAddr)
	}
	ap, perr := portmap.ParseUaddr(ua)
	if perr != nil {
		return 0, fmt.Errorf("client: rpcbind GETADDR %q: %w", ua, perr)
	}
	if ap.Port() == 0 {
		return 0, fmt.Errorf("%w: prog %d vers %d %s at %s", ErrNotRegistered, prog, vers, netid, pmAddr)
	}
	return int(ap.Port()), nil
}

// isTransport reports whether err is a transport failure rather than an
// answer from the server.
func isTransport(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	return !errors.As(err, &e) && !errors.Is(err, xdr.ErrShort)
}

// oneShotTCP makes one call on a fresh TCP connection and closes it.
func oneShotTCP(ctx context.Context, addr string, prog, vers, proc uint32, auth Auth, args func(*xdr.Encoder)) ([]byte, error) {
	c, err := DialRPC(ctx, addr, RPCOptions{ReconnectTimeout: time.Second})
	if err != nil {
		return nil, err
	}
	defer c.Close()
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
	}
	return c.Call(ctx, prog, vers, proc, auth, args)
}

// CallUDP makes one RPC call over UDP to addr, retransmitting the same XID
// after 0.5, 1 and 2 s (doubling, at most 5 tries) until a reply arrives or
// ctx ends. It returns the result bytes as RPCClient.Call does.
func CallUDP(ctx context.Context, addr string, prog, vers, proc uint32, auth Auth, args func(*xdr.Encoder)) ([]byte, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "udp", addr)
	if err != nil {
		return nil, fmt.Errorf("client: dial udp %s: %w", addr, err)
	}
	defer nc.Close()
	var seed [4]byte
	_, _ = rand.Read(seed[:])
	xid := binary.BigEndian.Uint32(seed[:])
	e := xdr.NewEncoder(nil)
	rpc.CallHeader{XID: xid, Prog: prog, Vers: vers, Proc: proc, Cred: auth.cred}.Encode(e)
	if args != nil {
		args(e)
	}
	msg := e.Bytes()
	buf := make([]byte, 65536)
	wait := 500 * time.Millisecond
	for try := 0; try < 5; try++ {
		if _, err := nc.Write(msg); err != nil {
			return nil, fmt.Errorf("client: udp %s: %w", addr, err)
		}
		deadline := time.Now().Add(wait)
		if dl, ok := ctx.Deadline(); ok && dl.Before(deadline) {
			deadline = dl
		}
		_ = nc.SetReadDeadline(deadline)
		for {
			n, err := nc.Read(buf)
			if err != nil {
				if ne, ok := err.(net.Error); ok && ne.Timeout() {
					break
				}
				return nil, fmt.Errorf("client: udp %s: %w", addr, err)
			}
			if n < 8 || binary.BigEndian.Uint32(buf) != xid {
				continue // a stray or late datagram
			}
			dec := xdr.NewDecoder(append([]byte(nil), buf[:n]...))
			if _, err := rpc.DecodeReply(dec); err != nil {
				var re *rpc.ReplyError
				if errors.As(err, &re) {
					return nil, &Error{Prog: prog, Proc: proc, RPC: re}
				}
				return nil, fmt.Errorf("client: udp %s: %w", addr, err)
			}
			return dec.Rest(), nil
		}
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("client: udp %s: %w", addr, err)
		}
		wait *= 2
	}
	return nil, fmt.Errorf("client: udp %s: no reply: %w", addr, context.DeadlineExceeded)
}

// progName names (prog, vers) in trace lines: "MOUNT v3", "NFS v3", or
// the numbers of any other program.
func progName(prog, vers uint32) string {
	switch prog {
	case rpc.ProgNFS:
		return fmt.Sprintf("NFS v%d", vers)
	case rpc.ProgMount:
		return fmt.Sprintf("MOUNT v%d", vers)
	}
	return fmt.Sprintf("prog %d v%d", prog, vers)
}
