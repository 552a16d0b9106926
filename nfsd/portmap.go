package nfsd

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"time"

	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// MaxPortmapRegistrations bounds the portmapper's table; a SET beyond it is
// refused (FALSE). Only loopback callers can register, so this guards
// against a runaway local program, not a remote attacker.
const MaxPortmapRegistrations = 1024

// portmapOwner is the r_owner of the entries registered with SetLocal and
// of the portmapper's own entries.
const portmapOwner = "mailnfsd"

// ErrUnknownNetid means a netid other than tcp, udp, tcp6 and udp6.
var ErrUnknownNetid = errors.New("nfsd: unknown netid")

// Portmap is the portmapper, program 100000 versions 2 (portmap) to 4
// (rpcbind), RFC 1833. It keeps a table of (prog, vers, netid) -> address
// registrations and answers lookups for the netids tcp, udp, tcp6 and udp6.
//
// Procedures and the choices made:
//
//   - v2 NULL, SET, UNSET, GETPORT (0 = not registered), DUMP. v2 sees only
//     the IPv4 netids tcp (prot 6) and udp (prot 17).
//   - v3/v4 NULL, SET, UNSET, GETADDR ("" = not registered), DUMP, GETTIME;
//     v4 GETVERSADDR and GETADDRLIST (FreeBSD's libc asks for it).
//   - GETADDR and GETVERSADDR with an empty r_netid look the program up
//     on the netid of the transport the call came on (tcp6 for a TCP call
//     over IPv6), as rpcbind does for every GETADDR; libnfs over IPv6
//     sends an empty netid. A named netid is looked up as named.
//   - GETPORT and GETADDR, like portmap and rpcbind, fall back to another
//     version of the program on the same netid when the asked version is not
//     registered, so that the client reaches the server and learns the
//     supported range from its PROG_MISMATCH. GETVERSADDR and GETADDRLIST
//     match the version exactly.
//   - SET and UNSET are accepted only from loopback callers; others get
//     FALSE. Nobody may SET or UNSET program 100000 itself over RPC. A SET
//     of a (prog, vers, netid) that is already registered is FALSE; UNSET
//     removes (prog, vers) on the given netid, or on every netid when the
//     netid is empty (v2: on tcp and udp). Owners are recorded, not checked:
//     every caller allowed to SET is local.
//   - CALLIT (v2, v3), BCAST and INDIRECT (v4) answer PROC_UNAVAIL: a
//     forwarding service lets a spoofed small UDP datagram trigger calls to
//     other programs and larger replies to a victim (amplification), and
//     no NFS client needs it.
//   - UADDR2TADDR and TADDR2UADDR answer PROC_UNAVAIL: a taddr is the
//     server's own C struct sockaddr layout, meaningless to a remote client,
//     and neither rpcinfo, the Linux kernel, mount.nfs nor the BSD libcs
//     send them for lookups.
//   - GETSTAT answers PROC_UNAVAIL (only rpcinfo -m asks).
//
// Addresses returned by GETADDR, GETVERSADDR and GETADDRLIST: a registration
// on the wildcard address (0.0.0.0 or ::, as SetLocal and v2 SET make) is
// answered with the server address the request arrived on (Request.Local)
// and the registered port, so a client behind any interface gets an address
// it can reach. That needs Local to be of the netid's family and specified;
// otherwise the registered address is returned as it is.
//
// Access control beyond the SET/UNSET rule (hosts_access) belongs in
// Server.Gate. A Portmap is safe for concurrent use; its table's mutex is a
// leaf lock (nothing else is locked while it is held). The zero Portmap has
// an empty table; NewPortmap lists the portmapper itself.
type Portmap struct {
	// Clock returns the time for GETTIME. Nil means time.Now.
	Clock func() time.Time

	mu struct {
		sync.Mutex
		regs []registration // in registration order, as DUMP lists them
	}
}

// registration is one row of the table.
type registration struct {
	prog, vers uint32
	netid      string
	addr       netip.AddrPort // as registered; often the wildcard address
	owner      string
}

var (
	_ Program   = (*Portmap)(nil)
	_ Cacheable = (*Portmap)(nil)
)

// NewPortmap returns a portmapper that lists itself, program 100000 versions
// 2, 3 and 4, on tcp and udp at port (normally 111). A server that also
// listens on IPv6 adds tcp6 and udp6 with SetLocal.
func NewPortmap(port uint16) *Portmap {
	p := &Portmap{}
	for _, netid := range []string{portmap.NetidTCP, portmap.NetidUDP} {
		for v := uint32(portmap.V2); v <= portmap.V4; v++ {
			_ = p.SetLocal(portmap.Prog, v, netid, port)
		}
	}
	return p
}

// SetLocal registers (prog, vers, netid) at port on the wildcard address,
// replacing any registration of the same triple, without an RPC: mailnfsd
// uses it for NFS v3 and MOUNT v1 and v3 on the ports it serves. netid is
// tcp, udp, tcp6 or udp6.
func (p *Portmap) SetLocal(prog, vers uint32, netid string, port uint16) error {
	info, ok := portmap.LookupNetid(netid)
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownNetid, netid)
	}
	r := registration{prog: prog, vers: vers, netid: netid, addr: netip.AddrPortFrom(wildcard(info.IPv6), port), owner: portmapOwner}
	p.mu.Lock()
	defer p.mu.Unlock()
	if i := p.findLocked(prog, vers, netid); i >= 0 {
		p.mu.regs[i] = r
	} else {
		p.mu.regs = append(p.mu.regs, r)
	}
	return nil
}

// SetMappings calls SetLocal for each of ms (see ServiceMappings).
func (p *Portmap) SetMappings(ms []RpcbindMapping) error {
	for _, m := range ms {
		if err := p.SetLocal(m.Prog, m.Vers, m.Netid, m.Port); err != nil {
			return err
		}
	}
	return nil
}

// UnsetLocal removes the registrations of (prog, vers) on every netid and
// reports whether there were any.
func (p *Portmap) UnsetLocal(prog, vers uint32) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unsetLocked(prog, vers, func(string) bool { return true })
}

// Mappings returns a snapshot of the table as rpcb entries with their
// registered addresses, in DUMP order.
func (p *Portmap) Mappings() []portmap.RPCB {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]portmap.RPCB, 0, len(p.mu.regs))
	for _, r := range p.mu.regs {
		out = append(out, r.rpcb())
	}
	return out
}

func (r registration) rpcb() portmap.RPCB {
	return portmap.RPCB{Prog: r.prog, Vers: r.vers, Netid: r.netid, Addr: portmap.FormatUaddr(r.addr), Owner: r.owner}
}

func wildcard(v6 bool) netip.Addr {
	if v6 {
		return netip.IPv6Unspecified()
	}
	return netip.IPv4Unspecified()
}

// Prog returns 100000.
func (p *Portmap) Prog() uint32 { return portmap.Prog }

// Versions returns 2..4.
func (p *Portmap) Versions() (low, high uint32) { return portmap.V2, portmap.V4 }

// NonIdempotent reports SET and UNSET (the same numbers in every version):
// a retransmitted SET must get the original TRUE, not FALSE for "already
// registered".
func (p *Portmap) NonIdempotent(vers, proc uint32) bool {
	return proc == portmap.PmapProcSet || proc == portmap.PmapProcUnset
}

// Serve runs one portmapper call.
func (p *Portmap) Serve(ctx context.Context, req *Request, res *xdr.Encoder) Status {
	if req.Vers == portmap.V2 {
		return p.serveV2(req, res)
	}
	return p.serveRpcb(req, res)
}

func (p *Portmap) serveV2(req *Request, res *xdr.Encoder) Status {
	d := req.Args
	switch req.Proc {
	case portmap.PmapProcNull:
		if d.Done() != nil {
			return StatusGarbage
		}
	case portmap.PmapProcSet, portmap.PmapProcUnset, portmap.PmapProcGetPort:
		m := portmap.DecodeMapping(d)
		if d.Done() != nil {
			return StatusGarbage
		}
		switch req.Proc {
		case portmap.PmapProcSet:
			res.Bool(p.setV2(req, m))
		case portmap.PmapProcUnset:
			res.Bool(p.unsetV2(req, m))
		default:
			res.Uint32(uint32(p.getPort(m)))
		}
	case portmap.PmapProcDump:
		if d.Done() != nil {
			return StatusGarbage
		}
		portmap.EncodeMappingList(res, p.dumpV2())
	default: // CALLIT and beyond
		return StatusProcUnavail
	}
	return StatusOK
}

func (p *Portmap) serveRpcb(req *Request, res *xdr.Encoder) Status {
	d := req.Args
	switch req.Proc {
	case portmap.RpcbProcNull:
		if d.Done() != nil {
			return StatusGarbage
		}
	case portmap.RpcbProcSet, portmap.RpcbProcUnset, portmap.RpcbProcGetAddr:
		b := portmap.DecodeRPCB(d)
		if d.Done() != nil {
			return StatusGarbage
		}
		switch req.Proc {
		case portmap.RpcbProcSet:
			res.Bool(p.setRpcb(req, b))
		case portmap.RpcbProcUnset:
			res.Bool(p.unsetRpcb(req, b))
		default:
			res.String(p.getAddr(req, b, true))
		}
	case portmap.RpcbProcDump:
		if d.Done() != nil {
			return StatusGarbage
		}
		portmap.EncodeRPCBList(res, p.Mappings())
	case portmap.RpcbProcGetTime:
		if d.Done() != nil {
			return StatusGarbage
		}
		now := time.Now
		if p.Clock != nil {
			now = p.Clock
		}
		res.Uint32(uint32(now().Unix()))
	case portmap.RpcbProcGetVersAddr, portmap.RpcbProcGetAddrList:
		if req.Vers < portmap.V4 {
			return StatusProcUnavail
		}
		b := portmap.DecodeRPCB(d)
		if d.Done() != nil {
			return StatusGarbage
		}
		if req.Proc == portmap.RpcbProcGetVersAddr {
			res.String(p.getAddr(req, b, false))
		} else {
			portmap.EncodeEntryList(res, p.addrList(req, b))
		}
	default:
		// CALLIT/BCAST, UADDR2TADDR, TADDR2UADDR, INDIRECT, GETSTAT and
		// unknown procedures: see the type's documentation.
		return StatusProcUnavail
	}
	return StatusOK
}

// localCaller reports whether req came from a loopback address.
func localCaller(req *Request) bool {
	return req.Addr.Addr().Unmap().IsLoopback()
}

// ownerOf names the registering user as rpcbind does: "superuser" for uid 0,
// the uid in decimal otherwise, "unknown" without AUTH_SYS.
func ownerOf(req *Request) string {
	switch {
	case req.AuthSys == nil:
		return "unknown"
	case req.AuthSys.UID == 0:
		return "superuser"
	}
	return strconv.FormatUint(uint64(req.AuthSys.UID), 10)
}

func logRefused(req *Request, what string, args ...any) {
	if req.Log != nil {
		req.Log.Debug("portmap: "+what+" refused", args...)
	}
}

// v2Netid maps a pmap prot to its IPv4 netid.
func v2Netid(prot uint32) (string, bool) {
	switch prot {
	case portmap.IPProtoTCP:
		return portmap.NetidTCP, true
	case portmap.IPProtoUDP:
		return portmap.NetidUDP, true
	}
	return "", false
}

func (p *Portmap) setV2(req *Request, m portmap.Mapping) bool {
	netid, ok := v2Netid(m.Prot)
	if !ok || m.Port == 0 || m.Port > 0xffff {
		return false
	}
	r := registration{prog: m.Prog, vers: m.Vers, netid: netid, addr: netip.AddrPortFrom(netip.IPv4Unspecified(), uint16(m.Port)), owner: ownerOf(req)}
	return p.set(req, r)
}

func (p *Portmap) setRpcb(req *Request, b portmap.RPCB) bool {
	info, ok := portmap.LookupNetid(b.Netid)
	if !ok {
		return false
	}
	ap, err := portmap.ParseUaddr(b.Addr)
	if err != nil || ap.Port() == 0 || ap.Addr().Is6() != info.IPv6 {
		return false
	}
	owner := b.Owner
	if owner == "" {
		owner = ownerOf(req)
	}
	return p.set(req, registration{prog: b.Prog, vers: b.Vers, netid: b.Netid, addr: ap, owner: owner})
}

func (p *Portmap) set(req *Request, r registration) bool {
	if !localCaller(req) || r.prog == portmap.Prog {
		logRefused(req, "SET", "from", req.Addr, "prog", r.prog, "vers", r.vers, "netid", r.netid)
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.findLocked(r.prog, r.vers, r.netid) >= 0 || len(p.mu.regs) >= MaxPortmapRegistrations {
		return false
	}
	p.mu.regs = append(p.mu.regs, r)
	return true
}

func (p *Portmap) unsetV2(req *Request, m portmap.Mapping) bool {
	// RFC 1833 §3.2: UNSET ignores prot and port; v2 knows only tcp and udp.
	return p.unset(req, m.Prog, m.Vers, func(n string) bool { return n == portmap.NetidTCP || n == portmap.NetidUDP })
}

func (p *Portmap) unsetRpcb(req *Request, b portmap.RPCB) bool {
	return p.unset(req, b.Prog, b.Vers, func(n string) bool { return b.Netid == "" || n == b.Netid })
}

func (p *Portmap) unset(req *Request, prog, vers uint32, netid func(string) bool) bool {
	if !localCaller(req) || prog == portmap.Prog {
		logRefused(req, "UNSET", "from", req.Addr, "prog", prog, "vers", vers)
		return false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.unsetLocked(prog, vers, netid)
}

func (p *Portmap) unsetLocked(prog, vers uint32, netid func(string) bool) bool {
	n := len(p.mu.regs)
	p.mu.regs = slices.DeleteFunc(p.mu.regs, func(r registration) bool {
		return r.prog == prog && r.vers == vers && netid(r.netid)
	})
	return len(p.mu.regs) != n
}

func (p *Portmap) findLocked(prog, vers uint32, netid string) int {
	return slices.IndexFunc(p.mu.regs, func(r registration) bool {
		return r.prog == prog && r.vers == vers && r.netid == netid
	})
}

// lookup returns the registration of (prog, vers, netid); with anyVers, if
// that version is not registered, the highest registered version of prog on
// netid.
func (p *Portmap) lookup(prog, vers uint32, netid string, anyVers bool) (registration, bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	var best registration
	found := false
	for _, r := range p.mu.regs {
		if r.prog != prog || r.netid != netid {
			continue
		}
		if r.vers == vers {
			return r, true
		}
		if anyVers && (!found || r.vers > best.vers) {
			best, found = r, true
		}
	}
	return best, found
}

func (p *Portmap) getPort(m portmap.Mapping) uint16 {
	netid, ok := v2Netid(m.Prot)
	if !ok {
		return 0
	}
	r, ok := p.lookup(m.Prog, m.Vers, netid, true)
	if !ok {
		return 0
	}
	return r.addr.Port()
}

func (p *Portmap) dumpV2() []portmap.Mapping {
	p.mu.Lock()
	defer p.mu.Unlock()
	var ms []portmap.Mapping
	for _, r := range p.mu.regs {
		info, _ := portmap.LookupNetid(r.netid)
		if info.IPv6 {
			continue
		}
		ms = append(ms, portmap.Mapping{Prog: r.prog, Vers: r.vers, Prot: info.Prot, Port: uint32(r.addr.Port())})
	}
	return ms
}

// getAddr answers GETADDR (anyVers) and GETVERSADDR. An empty r_netid
// means the netid of the transport the call came on: rpcbind always looks
// the service up by that netid, and libnfs over IPv6 sends "".
func (p *Portmap) getAddr(req *Request, b portmap.RPCB, anyVers bool) string {
	netid := b.Netid
	if netid == "" {
		// The server address the call came to; on a wildcard UDP socket
		// without packet info, the caller's, of the same family.
		a := req.Local.Addr()
		if !a.IsValid() || a.IsUnspecified() {
			a = req.Addr.Addr()
		}
		netid = portmap.Netid(req.Net, a)
	}
	r, ok := p.lookup(b.Prog, b.Vers, netid, anyVers)
	if !ok {
		return ""
	}
	return portmap.FormatUaddr(reachable(req, r))
}

// addrList answers GETADDRLIST: every netid on which (prog, vers) is
// registered.
func (p *Portmap) addrList(req *Request, b portmap.RPCB) []portmap.Entry {
	p.mu.Lock()
	regs := slices.Clone(p.mu.regs)
	p.mu.Unlock()
	var es []portmap.Entry
	for _, r := range regs {
		if r.prog != b.Prog || r.vers != b.Vers {
			continue
		}
		info, _ := portmap.LookupNetid(r.netid)
		es = append(es, portmap.Entry{
			MAddr:     portmap.FormatUaddr(reachable(req, r)),
			Netid:     r.netid,
			Semantics: info.Semantics,
			ProtoFmly: info.ProtoFmly,
			Proto:     info.Proto,
		})
	}
	return es
}

// reachable returns the address to give a client for r: a wildcard
// registration becomes the address the request arrived on, when that is a
// specified address of the registration's family.
func reachable(req *Request, r registration) netip.AddrPort {
	if !r.addr.Addr().IsUnspecified() {
		return r.addr
	}
	local := req.Local.Addr()
	if !r.addr.Addr().Is6() {
		local = local.Unmap()
	}
	if !local.IsValid() || local.IsUnspecified() || local.Is6() != r.addr.Addr().Is6() {
		return r.addr
	}
	return netip.AddrPortFrom(local.WithZone(""), r.addr.Port())
}
