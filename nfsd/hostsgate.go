package nfsd

import (
	"log/slog"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/internal/ratelog"
	"github.com/mailnfs/mailnfs/internal/rpc"
)

// HostsGate enforces a HostsAccess as Server.Gate:
//
//   - The portmapper (daemon names "rpcbind" and "portmap") is checked on
//     every procedure from every caller except loopback ones (as Venema's
//     portmap; mailnfsd serves no AF_LOCAL socket). A denied caller gets
//     AUTH_ERROR/AUTH_TOOWEAK, as FreeBSD's rpcbind answers: nothing it
//     can use, and no port numbers.
//   - MOUNT ("mountd") and NFS ("nfsd") are checked, for every caller, only
//     when some rule names that daemon explicitly (ALL alone does not
//     switch them on; the exports file already guards them). A denied call
//     gets AUTH_TOOWEAK too.
//
// Denials are logged at Warn once per caller address per minute (Clock),
// not per packet. The rules sit behind an atomic pointer: Set swaps them
// and calls already past the gate are not affected. A HostsGate is safe
// for concurrent use.
type HostsGate struct {
	log   *slog.Logger
	clock func() time.Time
	cur   atomic.Pointer[hostsState]

	logs   ratelog.Limiter[netip.Addr] // denials logged once a minute per caller address
	denied atomic.Uint64

	// OnDenied, if set before the gate is used, is called for every
	// refused call with the rule that refused it ("hosts_access:" and
	// the rule's file:line:column). It must not block.
	OnDenied func(rule string)
}

type hostsState struct {
	h            *HostsAccess
	mountd, nfsd bool
}

// NewHostsGate returns a gate enforcing h (nil: everything allowed). log
// may be nil (discard); clock nil means time.Now.
func NewHostsGate(h *HostsAccess, log *slog.Logger, clock func() time.Time) *HostsGate {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if clock == nil {
		clock = time.Now
	}
	g := &HostsGate{log: log, clock: clock}
	g.Set(h)
	return g
}

// Set makes h the rules new calls are checked against (nil: none).
func (g *HostsGate) Set(h *HostsAccess) {
	g.cur.Store(&hostsState{h: h, mountd: h.Names(DaemonMountd), nfsd: h.Names(DaemonNFSD)})
}

// Access returns the rules in force (nil: none).
func (g *HostsGate) Access() *HostsAccess { return g.cur.Load().h }

// Denied returns how many calls the gate refused.
func (g *HostsGate) Denied() uint64 { return g.denied.Load() }

var (
	portmapNames = []string{DaemonRpcbind, DaemonPortmap}
	mountdNames  = []string{DaemonMountd}
	nfsdNames    = []string{DaemonNFSD}
)

// Gate is a Server.Gate: the zero Status lets the call through.
func (g *HostsGate) Gate(req *Request) Status {
	st := g.cur.Load()
	if st.h == nil {
		return Status{}
	}
	client := req.Addr.Addr().Unmap()
	var names []string
	switch req.Prog {
	case portmap.Prog:
		if client.IsLoopback() {
			return Status{}
		}
		names = portmapNames
	case nfs3.MountProgram:
		if !st.mountd {
			return Status{}
		}
		names = mountdNames
	case nfs3.Program:
		if !st.nfsd {
			return Status{}
		}
		names = nfsdNames
	default:
		return Status{}
	}
	v, r := st.h.Check(names, req.Local.Addr(), client)
	if v == HostsAllow {
		return Status{}
	}
	g.refused(r)
	if g.shouldLog(client) {
		attrs := []any{"client", client, "daemon", names[0], "prog", req.Prog, "proc", req.Proc, "net", req.Net}
		if r != nil {
			attrs = append(attrs, "rule", r.Pos.String())
		}
		g.log.Warn("hosts_access: request from unauthorized host refused (logged once a minute per host)", attrs...)
	}
	return Status{Auth: rpc.AuthTooWeak}
}

// AcceptConn is a Server.ConnGate: it refuses a TCP connection from a
// client whose every call Gate would refuse, which the rules decide from the
// addresses alone: a caller that is not loopback, that the portmapper rules
// deny, and that rules naming mountd and nfsd deny too. Such a host then
// holds no connection (and no share of Server.MaxConns). A client that
// could make some call keeps its connection, and its calls are checked one
// by one as before. A refusal is counted, reported to OnDenied and logged
// like a refused call.
func (g *HostsGate) AcceptConn(remote, local netip.AddrPort) bool {
	st := g.cur.Load()
	if st.h == nil || !st.mountd || !st.nfsd {
		return true // MOUNT or NFS calls are not checked: any host may make them
	}
	client := remote.Addr().Unmap()
	if client.IsLoopback() {
		return true // the portmapper is open to loopback callers
	}
	var rule *HostsRule
	for _, names := range [][]string{portmapNames, mountdNames, nfsdNames} {
		v, r := st.h.Check(names, local.Addr(), client)
		if v == HostsAllow {
			return true
		}
		if rule == nil {
			rule = r
		}
	}
	g.refused(rule)
	if g.shouldLog(client) {
		attrs := []any{"client", client, "local", local.String()}
		if rule != nil {
			attrs = append(attrs, "rule", rule.Pos.String())
		}
		g.log.Warn("hosts_access: connection from unauthorized host closed (logged once a minute per host)", attrs...)
	}
	return false
}

// refused counts a refusal by rule r (nil: the default) and reports it
// to OnDenied.
func (g *HostsGate) refused(r *HostsRule) {
	g.denied.Add(1)
	if g.OnDenied != nil {
		name := "hosts_access"
		if r != nil {
			name += ":" + r.Pos.String()
		}
		g.OnDenied(name)
	}
}

// shouldLog reports whether a denial of a is due for a log line.
func (g *HostsGate) shouldLog(a netip.Addr) bool {
	ok, _ := g.logs.Allow(a, g.clock())
	return ok
}
