package nfsd

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"syscall"
	"time"

	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// DefaultRpcbindTimeout bounds one call of an RpcbindClient whose Timeout is
// zero.
const DefaultRpcbindTimeout = 3 * time.Second

// ErrNoRpcbind means no rpcbind or portmap answered at any of the addresses
// tried.
var ErrNoRpcbind = errors.New("nfsd: no rpcbind is running")

// ErrRpcbindRefused means rpcbind answered FALSE to a SET: the triple is
// registered by another owner, or rpcbind does not count the caller as
// local.
var ErrRpcbindRefused = errors.New("nfsd: rpcbind refused the registration")

// RpcbindMapping is one registration made with the system's rpcbind.
type RpcbindMapping struct {
	Prog, Vers uint32
	Netid      string // tcp, udp, tcp6 or udp6
	Port       uint16
}

// ServiceMappings returns the registrations a mailnfsd serving NFS v3 at
// nfsPort and MOUNT v1 and v3 at mountPort needs (reference §2.3: MOUNT v1
// for Linux showmount), on tcp and udp, and with ipv6 on tcp6 and udp6 too.
// A zero port leaves that program out.
func ServiceMappings(nfsPort, mountPort uint16, ipv6 bool) []RpcbindMapping {
	netids := []string{portmap.NetidTCP, portmap.NetidUDP}
	if ipv6 {
		netids = append(netids, portmap.NetidTCP6, portmap.NetidUDP6)
	}
	var ms []RpcbindMapping
	for _, n := range netids {
		if nfsPort != 0 {
			ms = append(ms, RpcbindMapping{Prog: rpc.ProgNFS, Vers: 3, Netid: n, Port: nfsPort})
		}
		if mountPort != 0 {
			ms = append(ms, RpcbindMapping{Prog: rpc.ProgMount, Vers: 1, Netid: n, Port: mountPort},
				RpcbindMapping{Prog: rpc.ProgMount, Vers: 3, Netid: n, Port: mountPort})
		}
	}
	return ms
}

// RpcbindClient registers programs with the system's rpcbind (or an old
// portmap), for a mailnfsd that serves no portmapper of its own
// (-portmap-port 0). It speaks rpcbind v4 SET/UNSET and falls back to
// portmap v2 when the peer does not know v4 (v2 cannot register tcp6 or
// udp6).
//
// Linux's rpcbind takes SET and UNSET only from its AF_LOCAL socket, unless
// started with -i: a call over TCP to 127.0.0.1 is answered FALSE. So the
// zero RpcbindClient tries DefaultRpcbindSocket first and 127.0.0.1:111 over
// TCP second (mailnfs's own portmapper and old portmap daemons take loopback
// TCP).
//
// Every call dials a new connection: registration happens at start and
// stop, and a Daemon asks every Config.RpcbindCheck whether it still
// holds. An RpcbindClient is safe for concurrent use.
type RpcbindClient struct {
	// Network and Address name one rpcbind: "unix" and a socket path, or
	// "tcp" or "udp" and a host:port. Empty Network means: the unix socket
	// DefaultRpcbindSocket, then tcp 127.0.0.1:111.
	Network, Address string

	// Timeout bounds each call, including the dial and, on UDP, the
	// retransmissions. Zero means DefaultRpcbindTimeout.
	Timeout time.Duration
}

// target is one place to reach rpcbind.
type target struct{ network, address string }

func (c *RpcbindClient) targets() []target {
	if c.Network != "" {
		return []target{{c.Network, c.Address}}
	}
	return []target{
		{"unix", DefaultRpcbindSocket},
		{"tcp", netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 0, 0, 1}), portmap.Port).String()},
	}
}

// Ping sends NULL and returns nil when an rpcbind answers, or an error
// wrapping ErrNoRpcbind.
func (c *RpcbindClient) Ping(ctx context.Context) error {
	return c.call(ctx, portmap.V2, portmap.PmapProcNull, nil, nil)
}

// Register replaces any stale registration of the mappings (left by an
// earlier run that did not stop cleanly): it UNSETs every mapping first,
// then SETs them all. The two passes matter with an old portmap v2 peer,
// whose UNSET removes a (prog, vers) on tcp and udp at once: an UNSET of the
// udp mapping after the tcp SET would remove the tcp mapping again. It
// stops at the first failure; the caller then calls Unregister for the same
// list.
func (c *RpcbindClient) Register(ctx context.Context, maps []RpcbindMapping) error {
	for _, m := range maps {
		if _, err := c.Unset(ctx, m.Prog, m.Vers, m.Netid); err != nil {
			return err
		}
	}
	for _, m := range maps {
		ok, err := c.Set(ctx, m)
		if err != nil {
			return err
		}
		if !ok {
			return fmt.Errorf("%w: prog %d vers %d %s port %d", ErrRpcbindRefused, m.Prog, m.Vers, m.Netid, m.Port)
		}
	}
	return nil
}

// RegisterAbsent SETs each mapping without UNSETting anything first:
// rpcbind refuses a SET of a (prog, vers, netid) it already maps, so a
// mapping another server made after the caller found ours gone stays. It
// returns how many SETs were refused so; it stops at the first error.
func (c *RpcbindClient) RegisterAbsent(ctx context.Context, maps []RpcbindMapping) (refused int, err error) {
	for _, m := range maps {
		ok, err := c.Set(ctx, m)
		if err != nil {
			return refused, err
		}
		if !ok {
			refused++
		}
	}
	return refused, nil
}

// Unregister UNSETs each mapping, going on after failures, and returns them
// joined. Mappings that were not registered are no error.
func (c *RpcbindClient) Unregister(ctx context.Context, maps []RpcbindMapping) error {
	var errs []error
	for _, m := range maps {
		if _, err := c.Unset(ctx, m.Prog, m.Vers, m.Netid); err != nil {
			errs = append(errs, fmt.Errorf("unset prog %d vers %d %s: %w", m.Prog, m.Vers, m.Netid, err))
		}
	}
	return errors.Join(errs...)
}

// UnregisterOwn UNSETs each mapping rpcbind still maps to the mapping's
// port, going on after failures, and returns them joined: a (prog, vers,
// netid) another server took meanwhile (rpcbind lost ours and it
// registered) is left alone, where an UNSET would remove it whatever its
// port. It asks with one rpcbind v3 DUMP, or else (an old portmap) v2
// GETPORT; a mapping neither can tell about is UNSET as Unregister does.
func (c *RpcbindClient) UnregisterOwn(ctx context.Context, maps []RpcbindMapping) error {
	type key struct {
		prog, vers uint32
		netid      string
	}
	var ports map[key]uint16 // nil: DUMP failed
	if table, err := c.Dump(ctx); err == nil {
		ports = make(map[key]uint16, len(table))
		for _, b := range table {
			if ap, err := portmap.ParseUaddr(b.Addr); err == nil {
				ports[key{b.Prog, b.Vers, b.Netid}] = ap.Port()
			}
		}
	}
	var errs []error
	for _, m := range maps {
		if ports != nil {
			if ports[key{m.Prog, m.Vers, m.Netid}] != m.Port {
				continue // not ours, or nothing there
			}
		} else if info, ok := portmap.LookupNetid(m.Netid); ok && !info.IPv6 {
			if port, err := c.GetPort(ctx, m.Prog, m.Vers, info.Prot); err == nil && port != m.Port {
				continue
			}
		}
		if _, err := c.Unset(ctx, m.Prog, m.Vers, m.Netid); err != nil {
			errs = append(errs, fmt.Errorf("unset prog %d vers %d %s: %w", m.Prog, m.Vers, m.Netid, err))
		}
	}
	return errors.Join(errs...)
}

// Set registers m on the wildcard address and returns rpcbind's verdict.
func (c *RpcbindClient) Set(ctx context.Context, m RpcbindMapping) (bool, error) {
	info, ok := portmap.LookupNetid(m.Netid)
	if !ok {
		return false, fmt.Errorf("%w: %q", ErrUnknownNetid, m.Netid)
	}
	b := portmap.RPCB{Prog: m.Prog, Vers: m.Vers, Netid: m.Netid,
		Addr: portmap.FormatUaddr(netip.AddrPortFrom(wildcard(info.IPv6), m.Port)), Owner: owner()}
	var res bool
	err := c.call(ctx, portmap.V4, portmap.RpcbProcSet, b.Encode, func(d *xdr.Decoder) { res = d.Bool() })
	if isVersionError(err) && !info.IPv6 {
		pm := portmap.Mapping{Prog: m.Prog, Vers: m.Vers, Prot: info.Prot, Port: uint32(m.Port)}
		err = c.call(ctx, portmap.V2, portmap.PmapProcSet, pm.Encode, func(d *xdr.Decoder) { res = d.Bool() })
	}
	return res, err
}

// Unset removes (prog, vers) on netid and returns rpcbind's verdict (FALSE
// when nothing was registered).
func (c *RpcbindClient) Unset(ctx context.Context, prog, vers uint32, netid string) (bool, error) {
	info, ok := portmap.LookupNetid(netid)
	if !ok {
		return false, fmt.Errorf("%w: %q", ErrUnknownNetid, netid)
	}
	b := portmap.RPCB{Prog: prog, Vers: vers, Netid: netid, Owner: owner()}
	var res bool
	err := c.call(ctx, portmap.V4, portmap.RpcbProcUnset, b.Encode, func(d *xdr.Decoder) { res = d.Bool() })
	if isVersionError(err) && !info.IPv6 {
		// v2 UNSET removes both tcp and udp; there is no finer choice.
		pm := portmap.Mapping{Prog: prog, Vers: vers, Prot: info.Prot}
		err = c.call(ctx, portmap.V2, portmap.PmapProcUnset, pm.Encode, func(d *xdr.Decoder) { res = d.Bool() })
	}
	return res, err
}

// Dump returns rpcbind's table (rpcbind v3 DUMP).
func (c *RpcbindClient) Dump(ctx context.Context) ([]portmap.RPCB, error) {
	var res []portmap.RPCB
	err := c.call(ctx, portmap.V3, portmap.RpcbProcDump, nil, func(d *xdr.Decoder) { res = portmap.DecodeRPCBList(d) })
	return res, err
}

// GetPort asks for the port of (prog, vers, prot) with portmap v2 GETPORT;
// 0 means not registered.
func (c *RpcbindClient) GetPort(ctx context.Context, prog, vers, prot uint32) (uint16, error) {
	var port uint32
	m := portmap.Mapping{Prog: prog, Vers: vers, Prot: prot}
	err := c.call(ctx, portmap.V2, portmap.PmapProcGetPort, m.Encode, func(d *xdr.Decoder) { port = d.Uint32() })
	if err == nil && port > 0xffff {
		err = fmt.Errorf("nfsd: rpcbind returned port %d", port)
	}
	return uint16(port), err
}

// GetAddr asks for the universal address of (prog, vers, netid) with
// rpcbind v4 GETADDR; "" means not registered.
func (c *RpcbindClient) GetAddr(ctx context.Context, prog, vers uint32, netid string) (string, error) {
	var addr string
	b := portmap.RPCB{Prog: prog, Vers: vers, Netid: netid}
	err := c.call(ctx, portmap.V4, portmap.RpcbProcGetAddr, b.Encode, func(d *xdr.Decoder) { addr = d.String(portmap.MaxUaddr) })
	return addr, err
}

// owner is the r_owner sent with SET and UNSET. rpcbind replaces it with
// what it knows of the caller (its uid on the AF_LOCAL socket).
func owner() string {
	if os.Geteuid() == 0 {
		return "superuser"
	}
	return fmt.Sprint(os.Geteuid())
}

func isVersionError(err error) bool {
	var re *rpc.ReplyError
	return errors.As(err, &re) && !re.Denied && (re.Accept == rpc.ProgMismatch || re.Accept == rpc.ProgUnavail || re.Accept == rpc.ProcUnavail)
}

// call runs one call on the first target that accepts a connection. A
// target that refuses or does not exist is skipped; if none is left the
// error wraps ErrNoRpcbind.
func (c *RpcbindClient) call(ctx context.Context, vers, proc uint32, args func(*xdr.Encoder), res func(*xdr.Decoder)) error {
	timeout := c.Timeout
	if timeout <= 0 {
		timeout = DefaultRpcbindTimeout
	}
	var tried []error
	for _, t := range c.targets() {
		cctx, cancel := context.WithTimeout(ctx, timeout)
		err := c.callOne(cctx, t, vers, proc, args, res)
		cancel()
		if err == nil || !errors.Is(err, ErrNoRpcbind) {
			return err
		}
		tried = append(tried, err)
		if ctx.Err() != nil {
			break
		}
	}
	return errors.Join(tried...)
}

// newXID returns a random XID, so that calls of two runs (or two clients)
// do not meet in rpcbind's duplicate request cache.
func newXID() uint32 {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint32(b[:])
}

func (c *RpcbindClient) callOne(ctx context.Context, t target, vers, proc uint32, args func(*xdr.Encoder), res func(*xdr.Decoder)) error {
	var d net.Dialer
	conn, err := d.DialContext(ctx, t.network, t.address)
	if err != nil {
		if errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ENOENT) || ctx.Err() != nil {
			return fmt.Errorf("%w at %s %s: %v", ErrNoRpcbind, t.network, t.address, err)
		}
		return fmt.Errorf("nfsd: rpcbind at %s %s: %w", t.network, t.address, err)
	}
	defer conn.Close()
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Now()) })
	defer stop()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}

	xid := newXID()
	var e xdr.Encoder
	stream := t.network != "udp" && t.network != "udp4" && t.network != "udp6"
	if stream {
		e.Reserve(4)
	}
	rpc.CallHeader{XID: xid, Prog: portmap.Prog, Vers: vers, Proc: proc, Cred: credential()}.Encode(&e)
	if args != nil {
		args(&e)
	}
	msg := e.Bytes()

	var body []byte
	if stream {
		rpc.PutRecordMark(msg)
		if _, err := conn.Write(msg); err != nil {
			return c.ioError(ctx, t, err)
		}
		rr := rpc.NewRecordReader(conn, 64<<10)
		for {
			rec, err := rr.Next()
			if err != nil {
				return c.ioError(ctx, t, err)
			}
			if len(rec) >= 4 && binary.BigEndian.Uint32(rec) == xid {
				body = rec
				break
			}
		}
	} else {
		body, err = udpExchange(ctx, conn, msg, xid)
		if err != nil {
			return c.ioError(ctx, t, err)
		}
	}

	dec := xdr.NewDecoder(body)
	if _, err := rpc.DecodeReply(dec); err != nil {
		return fmt.Errorf("nfsd: rpcbind at %s %s: %w", t.network, t.address, err)
	}
	if res != nil {
		res(dec)
	}
	if err := dec.Done(); err != nil {
		return fmt.Errorf("nfsd: rpcbind at %s %s: bad reply: %w", t.network, t.address, err)
	}
	return nil
}

// udpExchange sends msg every 500 ms until a reply with xid arrives or ctx
// ends.
func udpExchange(ctx context.Context, conn net.Conn, msg []byte, xid uint32) ([]byte, error) {
	buf := make([]byte, 64<<10)
	for {
		if _, err := conn.Write(msg); err != nil {
			return nil, err
		}
		_ = conn.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
		for {
			n, err := conn.Read(buf)
			if err != nil {
				if ctx.Err() != nil {
					return nil, ctx.Err()
				}
				if errors.Is(err, os.ErrDeadlineExceeded) {
					break // retransmit
				}
				return nil, err
			}
			if n >= 4 && binary.BigEndian.Uint32(buf) == xid {
				return buf[:n], nil
			}
		}
	}
}

// ioError classifies a failure after the dial: refused (a UDP port with no
// listener) or silence until the deadline means no rpcbind.
func (c *RpcbindClient) ioError(ctx context.Context, t target, err error) error {
	if errors.Is(err, syscall.ECONNREFUSED) || ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
		return fmt.Errorf("%w at %s %s: %v", ErrNoRpcbind, t.network, t.address, err)
	}
	return fmt.Errorf("nfsd: rpcbind at %s %s: %w", t.network, t.address, err)
}

// credential is AUTH_SYS with the process's ids, as libtirpc's rpcb_set
// sends.
func credential() rpc.OpaqueAuth {
	host, _ := os.Hostname()
	return rpc.AuthSysParms{
		Stamp:       uint32(time.Now().Unix()),
		MachineName: host,
		UID:         uint32(os.Geteuid()),
		GID:         uint32(os.Getegid()),
	}.Credential()
}
