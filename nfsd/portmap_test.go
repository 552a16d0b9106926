package nfsd

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

var (
	loopbackCaller = netip.MustParseAddrPort("127.0.0.1:700")
	remoteCaller   = netip.MustParseAddrPort("192.0.2.9:700") // TEST-NET-1; never contacted, only a Request field
	localV4        = netip.MustParseAddrPort("192.0.2.1:111")
)

// pmCall runs one call through Portmap.Serve and returns its status and a
// decoder over the results.
func pmCall(t *testing.T, p *Portmap, from, local netip.AddrPort, vers, proc uint32, args func(*xdr.Encoder)) (Status, *xdr.Decoder) {
	t.Helper()
	var a xdr.Encoder
	if args != nil {
		args(&a)
	}
	req := &Request{
		XID: 1, Prog: portmap.Prog, Vers: vers, Proc: proc,
		Cred: rpc.OpaqueAuth{Flavor: rpc.AuthSys}, AuthSys: &rpc.AuthSysParms{UID: 0},
		Addr: from, Net: "tcp", Local: local,
		Args: xdr.NewDecoder(a.Bytes()),
	}
	var res xdr.Encoder
	st := p.Serve(context.Background(), req, &res)
	return st, xdr.NewDecoder(res.Bytes())
}

// pmOK runs a call that must succeed and returns the result decoder.
func pmOK(t *testing.T, p *Portmap, from, local netip.AddrPort, vers, proc uint32, args func(*xdr.Encoder)) *xdr.Decoder {
	t.Helper()
	st, d := pmCall(t, p, from, local, vers, proc, args)
	if st != StatusOK {
		t.Fatalf("vers %d proc %d: status %+v", vers, proc, st)
	}
	return d
}

func pmDone(t *testing.T, d *xdr.Decoder) {
	t.Helper()
	if err := d.Done(); err != nil {
		t.Fatalf("result: %v", err)
	}
}

func pmBool(t *testing.T, p *Portmap, from netip.AddrPort, vers, proc uint32, args func(*xdr.Encoder)) bool {
	t.Helper()
	d := pmOK(t, p, from, localV4, vers, proc, args)
	v := d.Bool()
	pmDone(t, d)
	return v
}

func pmGetPort(t *testing.T, p *Portmap, prog, vers, prot uint32) uint32 {
	t.Helper()
	d := pmOK(t, p, remoteCaller, localV4, portmap.V2, portmap.PmapProcGetPort, portmap.Mapping{Prog: prog, Vers: vers, Prot: prot}.Encode)
	port := d.Uint32()
	pmDone(t, d)
	return port
}

func pmGetAddr(t *testing.T, p *Portmap, local netip.AddrPort, vers, proc, prog, pvers uint32, netid string) string {
	t.Helper()
	d := pmOK(t, p, remoteCaller, local, vers, proc, portmap.RPCB{Prog: prog, Vers: pvers, Netid: netid}.Encode)
	s := d.String(portmap.MaxUaddr)
	pmDone(t, d)
	return s
}

func pmDumpV2(t *testing.T, p *Portmap) []portmap.Mapping {
	t.Helper()
	d := pmOK(t, p, remoteCaller, localV4, portmap.V2, portmap.PmapProcDump, nil)
	ms := portmap.DecodeMappingList(d)
	pmDone(t, d)
	return ms
}

func TestPortmapV2(t *testing.T) {
	p := NewPortmap(111)
	tcp, udp := uint32(portmap.IPProtoTCP), uint32(portmap.IPProtoUDP)

	t.Run("Null", func(t *testing.T) {
		pmDone(t, pmOK(t, p, remoteCaller, localV4, 2, portmap.PmapProcNull, nil))
	})
	t.Run("SelfRegistered", func(t *testing.T) {
		var want []portmap.Mapping
		for _, prot := range []uint32{tcp, udp} {
			for v := uint32(2); v <= 4; v++ {
				want = append(want, portmap.Mapping{Prog: 100000, Vers: v, Prot: prot, Port: 111})
			}
		}
		if got := pmDumpV2(t, p); !reflect.DeepEqual(got, want) {
			t.Fatalf("DUMP = %v, want %v", got, want)
		}
		if got := pmGetPort(t, p, 100000, 2, udp); got != 111 {
			t.Fatalf("GETPORT portmapper = %d", got)
		}
	})
	t.Run("SetGetUnset", func(t *testing.T) {
		set := portmap.Mapping{Prog: 100003, Vers: 3, Prot: tcp, Port: 2049}
		if !pmBool(t, p, loopbackCaller, 2, portmap.PmapProcSet, set.Encode) {
			t.Fatal("SET from loopback refused")
		}
		if got := pmGetPort(t, p, 100003, 3, tcp); got != 2049 {
			t.Fatalf("GETPORT = %d, want 2049", got)
		}
		if got := pmGetPort(t, p, 100003, 3, udp); got != 0 {
			t.Fatalf("GETPORT udp = %d, want 0", got)
		}
		// Another version of a registered program: the port of the one
		// registered, so the client learns the range from PROG_MISMATCH.
		if got := pmGetPort(t, p, 100003, 4, tcp); got != 2049 {
			t.Fatalf("GETPORT other version = %d, want 2049", got)
		}
		again := set
		again.Port = 2050
		if pmBool(t, p, loopbackCaller, 2, portmap.PmapProcSet, again.Encode) {
			t.Fatal("second SET of the same triple accepted")
		}
		if got := pmGetPort(t, p, 100003, 3, tcp); got != 2049 {
			t.Fatalf("GETPORT after refused SET = %d", got)
		}
		udpSet := portmap.Mapping{Prog: 100003, Vers: 3, Prot: udp, Port: 2049}
		if !pmBool(t, p, loopbackCaller, 2, portmap.PmapProcSet, udpSet.Encode) {
			t.Fatal("SET udp refused")
		}
		d := pmDumpV2(t, p)
		if d[len(d)-2] != set || d[len(d)-1] != udpSet {
			t.Fatalf("DUMP tail = %v", d[len(d)-2:])
		}
		// UNSET ignores prot and port: both go.
		if !pmBool(t, p, loopbackCaller, 2, portmap.PmapProcUnset, portmap.Mapping{Prog: 100003, Vers: 3}.Encode) {
			t.Fatal("UNSET returned FALSE")
		}
		if got := pmGetPort(t, p, 100003, 3, tcp) + pmGetPort(t, p, 100003, 3, udp); got != 0 {
			t.Fatalf("GETPORT after UNSET = %d", got)
		}
		if pmBool(t, p, loopbackCaller, 2, portmap.PmapProcUnset, portmap.Mapping{Prog: 100003, Vers: 3}.Encode) {
			t.Fatal("UNSET of nothing returned TRUE")
		}
	})
	t.Run("RemoteSetRefused", func(t *testing.T) {
		m := portmap.Mapping{Prog: 100099, Vers: 1, Prot: tcp, Port: 999}
		if pmBool(t, p, remoteCaller, 2, portmap.PmapProcSet, m.Encode) {
			t.Fatal("SET from a remote caller accepted")
		}
		if got := pmGetPort(t, p, 100099, 1, tcp); got != 0 {
			t.Fatalf("remote SET registered port %d", got)
		}
		if pmBool(t, p, netip.MustParseAddrPort("[::ffff:192.0.2.9]:700"), 2, portmap.PmapProcSet, m.Encode) {
			t.Fatal("SET from an IPv4-mapped remote caller accepted")
		}
		if !pmBool(t, p, netip.MustParseAddrPort("[::ffff:127.0.0.1]:700"), 2, portmap.PmapProcSet, m.Encode) {
			t.Fatal("SET from IPv4-mapped loopback refused")
		}
		if pmBool(t, p, remoteCaller, 2, portmap.PmapProcUnset, m.Encode) {
			t.Fatal("UNSET from a remote caller accepted")
		}
		if got := pmGetPort(t, p, 100099, 1, tcp); got != 999 {
			t.Fatalf("remote UNSET removed the mapping: %d", got)
		}
	})
	t.Run("SelfProtected", func(t *testing.T) {
		if pmBool(t, p, loopbackCaller, 2, portmap.PmapProcUnset, portmap.Mapping{Prog: 100000, Vers: 2}.Encode) {
			t.Fatal("UNSET of the portmapper accepted")
		}
		if pmBool(t, p, loopbackCaller, 2, portmap.PmapProcSet, portmap.Mapping{Prog: 100000, Vers: 5, Prot: tcp, Port: 1}.Encode) {
			t.Fatal("SET of program 100000 accepted")
		}
	})
	t.Run("BadSet", func(t *testing.T) {
		for _, m := range []portmap.Mapping{
			{Prog: 7, Vers: 1, Prot: 99, Port: 1},
			{Prog: 7, Vers: 1, Prot: tcp, Port: 0},
			{Prog: 7, Vers: 1, Prot: tcp, Port: 70000},
		} {
			if pmBool(t, p, loopbackCaller, 2, portmap.PmapProcSet, m.Encode) {
				t.Errorf("SET %+v accepted", m)
			}
		}
		if got := pmGetPort(t, p, 7, 1, 99); got != 0 {
			t.Errorf("GETPORT of unknown prot = %d", got)
		}
	})
	t.Run("Callit", func(t *testing.T) {
		args := portmap.CallArgs{Prog: 100003, Vers: 3, Proc: 0}.Encode
		if st, _ := pmCall(t, p, remoteCaller, localV4, 2, portmap.PmapProcCallit, args); st != StatusProcUnavail {
			t.Fatalf("CALLIT status %+v, want PROC_UNAVAIL", st)
		}
	})
	t.Run("UnknownProc", func(t *testing.T) {
		if st, _ := pmCall(t, p, remoteCaller, localV4, 2, 6, nil); st != StatusProcUnavail {
			t.Fatalf("proc 6 status %+v", st)
		}
	})
	t.Run("GarbageArgs", func(t *testing.T) {
		for _, proc := range []uint32{portmap.PmapProcNull, portmap.PmapProcSet, portmap.PmapProcUnset, portmap.PmapProcGetPort, portmap.PmapProcDump} {
			short := func(e *xdr.Encoder) { e.Uint32(1); e.Uint32(2); e.Uint32(3) }
			if proc == portmap.PmapProcNull || proc == portmap.PmapProcDump {
				short = func(e *xdr.Encoder) { e.Uint32(1) } // trailing bytes
			}
			if st, _ := pmCall(t, p, loopbackCaller, localV4, 2, proc, short); st != StatusGarbage {
				t.Errorf("proc %d with bad args: status %+v", proc, st)
			}
		}
	})
}

func TestPortmapRpcbind(t *testing.T) {
	p := NewPortmap(111)
	if err := p.SetLocal(100003, 3, "tcp6", 2049); err != nil {
		t.Fatal(err)
	}
	set := func(b portmap.RPCB) bool { return pmBool(t, p, loopbackCaller, 4, portmap.RpcbProcSet, b.Encode) }

	t.Run("Null", func(t *testing.T) {
		for _, v := range []uint32{3, 4} {
			pmDone(t, pmOK(t, p, remoteCaller, localV4, v, portmap.RpcbProcNull, nil))
		}
	})
	t.Run("SetGetAddr", func(t *testing.T) {
		if !set(portmap.RPCB{Prog: 100005, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.78.80", Owner: "x"}) {
			t.Fatal("SET refused")
		}
		if set(portmap.RPCB{Prog: 100005, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.78.81"}) {
			t.Fatal("second SET of the triple accepted")
		}
		for _, v := range []uint32{3, 4} {
			// The wildcard registration answers with the address the call
			// arrived on and the registered port (20048 = 78.80).
			if got := pmGetAddr(t, p, localV4, v, portmap.RpcbProcGetAddr, 100005, 3, "tcp"); got != "192.0.2.1.78.80" {
				t.Errorf("v%d GETADDR = %q", v, got)
			}
			if got := pmGetAddr(t, p, localV4, v, portmap.RpcbProcGetAddr, 100005, 3, "udp"); got != "" {
				t.Errorf("v%d GETADDR udp = %q, want empty", v, got)
			}
		}
		// Without a usable local address the registered one is returned.
		if got := pmGetAddr(t, p, netip.AddrPort{}, 4, portmap.RpcbProcGetAddr, 100005, 3, "tcp"); got != "0.0.0.0.78.80" {
			t.Errorf("GETADDR without Local = %q", got)
		}
		if got := pmGetAddr(t, p, netip.MustParseAddrPort("0.0.0.0:111"), 4, portmap.RpcbProcGetAddr, 100005, 3, "tcp"); got != "0.0.0.0.78.80" {
			t.Errorf("GETADDR with unspecified Local = %q", got)
		}
		// IPv6: the local IPv6 address for tcp6, never an IPv4 one.
		if got := pmGetAddr(t, p, netip.MustParseAddrPort("[2001:db8::5%eth0]:111"), 4, portmap.RpcbProcGetAddr, 100003, 3, "tcp6"); got != "2001:db8::5.8.1" {
			t.Errorf("GETADDR tcp6 = %q", got)
		}
		if got := pmGetAddr(t, p, localV4, 4, portmap.RpcbProcGetAddr, 100003, 3, "tcp6"); got != "::.8.1" {
			t.Errorf("GETADDR tcp6 over IPv4 = %q", got)
		}
		// An empty netid is the transport's (libnfs over IPv6 sends it).
		if got := pmGetAddr(t, p, netip.MustParseAddrPort("[2001:db8::5]:111"), 3, portmap.RpcbProcGetAddr, 100003, 3, ""); got != "2001:db8::5.8.1" {
			t.Errorf("GETADDR with no netid over tcp6 = %q", got)
		}
		if got := pmGetAddr(t, p, localV4, 4, portmap.RpcbProcGetAddr, 100005, 3, ""); got != "192.0.2.1.78.80" {
			t.Errorf("GETADDR with no netid over tcp = %q", got)
		}
		if got := pmGetAddr(t, p, localV4, 4, portmap.RpcbProcGetAddr, 100003, 3, ""); got != "" {
			t.Errorf("GETADDR with no netid over tcp of a tcp6-only program = %q", got)
		}
		// A specific registered address is returned as it is.
		if !set(portmap.RPCB{Prog: 100005, Vers: 1, Netid: "udp", Addr: "127.0.0.1.78.80"}) {
			t.Fatal("SET of a specific address refused")
		}
		if got := pmGetAddr(t, p, localV4, 3, portmap.RpcbProcGetAddr, 100005, 1, "udp"); got != "127.0.0.1.78.80" {
			t.Errorf("GETADDR of a specific address = %q", got)
		}
		// GETADDR falls back to another version; GETVERSADDR does not.
		if got := pmGetAddr(t, p, localV4, 4, portmap.RpcbProcGetAddr, 100005, 2, "tcp"); got != "192.0.2.1.78.80" {
			t.Errorf("GETADDR other version = %q", got)
		}
		if got := pmGetAddr(t, p, localV4, 4, portmap.RpcbProcGetVersAddr, 100005, 2, "tcp"); got != "" {
			t.Errorf("GETVERSADDR other version = %q", got)
		}
		if got := pmGetAddr(t, p, localV4, 4, portmap.RpcbProcGetVersAddr, 100005, 3, "tcp"); got != "192.0.2.1.78.80" {
			t.Errorf("GETVERSADDR = %q", got)
		}
		// v2 sees the v4 registration.
		if got := pmGetPort(t, p, 100005, 3, portmap.IPProtoTCP); got != 20048 {
			t.Errorf("GETPORT of a v4 registration = %d", got)
		}
	})
	t.Run("BadSet", func(t *testing.T) {
		for _, b := range []portmap.RPCB{
			{Prog: 8, Vers: 1, Netid: "local", Addr: "/run/x.sock"},
			{Prog: 8, Vers: 1, Netid: "tcp", Addr: "not-an-address"},
			{Prog: 8, Vers: 1, Netid: "tcp", Addr: "::1.8.1"},        // family mismatch
			{Prog: 8, Vers: 1, Netid: "udp6", Addr: "127.0.0.1.8.1"}, // family mismatch
			{Prog: 8, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.0.0"},    // port 0
			{Prog: 100000, Vers: 9, Netid: "tcp", Addr: "0.0.0.0.0.111"},
		} {
			if set(b) {
				t.Errorf("SET %+v accepted", b)
			}
		}
		if pmBool(t, p, remoteCaller, 3, portmap.RpcbProcSet, portmap.RPCB{Prog: 8, Vers: 1, Netid: "tcp", Addr: "0.0.0.0.0.8"}.Encode) {
			t.Error("v3 SET from a remote caller accepted")
		}
		if got := pmGetAddr(t, p, localV4, 4, portmap.RpcbProcGetAddr, 8, 1, "tcp"); got != "" {
			t.Errorf("refused SET registered %q", got)
		}
	})
	t.Run("AddrList", func(t *testing.T) {
		if err := p.SetLocal(100003, 3, "udp", 2049); err != nil {
			t.Fatal(err)
		}
		local := netip.MustParseAddrPort("[::1]:111")
		d := pmOK(t, p, remoteCaller, local, 4, portmap.RpcbProcGetAddrList, portmap.RPCB{Prog: 100003, Vers: 3, Netid: "tcp"}.Encode)
		got := portmap.DecodeEntryList(d)
		pmDone(t, d)
		want := []portmap.Entry{
			{MAddr: "::1.8.1", Netid: "tcp6", Semantics: portmap.SemanticsCOTSOrd, ProtoFmly: "inet6", Proto: "tcp"},
			{MAddr: "0.0.0.0.8.1", Netid: "udp", Semantics: portmap.SemanticsCLTS, ProtoFmly: "inet", Proto: "udp"},
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("GETADDRLIST = %+v\nwant %+v", got, want)
		}
		d = pmOK(t, p, remoteCaller, local, 4, portmap.RpcbProcGetAddrList, portmap.RPCB{Prog: 100003, Vers: 2}.Encode)
		if got := portmap.DecodeEntryList(d); len(got) != 0 {
			t.Fatalf("GETADDRLIST of an unregistered version = %+v", got)
		}
		pmDone(t, d)
		if st, _ := pmCall(t, p, remoteCaller, local, 3, portmap.RpcbProcGetAddrList, portmap.RPCB{}.Encode); st != StatusProcUnavail {
			t.Fatalf("v3 GETADDRLIST status %+v", st)
		}
	})
	t.Run("DumpAndUnset", func(t *testing.T) {
		d := pmOK(t, p, remoteCaller, localV4, 3, portmap.RpcbProcDump, nil)
		got := portmap.DecodeRPCBList(d)
		pmDone(t, d)
		if !reflect.DeepEqual(got, p.Mappings()) {
			t.Fatalf("DUMP = %+v\nMappings = %+v", got, p.Mappings())
		}
		want := portmap.RPCB{Prog: 100005, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.78.80", Owner: "x"}
		found := false
		for _, b := range got {
			found = found || b == want
			if b.Prog == 100000 && b.Owner != "mailnfsd" {
				t.Errorf("self entry %+v", b)
			}
		}
		if !found || len(got) != 6+4 {
			t.Fatalf("DUMP has %d entries, want 10 with %+v: %+v", len(got), want, got)
		}
		// UNSET with an empty netid removes the version on every netid.
		if !pmBool(t, p, loopbackCaller, 4, portmap.RpcbProcUnset, portmap.RPCB{Prog: 100003, Vers: 3}.Encode) {
			t.Fatal("UNSET returned FALSE")
		}
		if !pmBool(t, p, loopbackCaller, 3, portmap.RpcbProcUnset, portmap.RPCB{Prog: 100005, Vers: 3, Netid: "tcp"}.Encode) {
			t.Fatal("v3 UNSET returned FALSE")
		}
		if pmBool(t, p, remoteCaller, 3, portmap.RpcbProcUnset, portmap.RPCB{Prog: 100005, Vers: 1, Netid: "udp"}.Encode) {
			t.Fatal("remote UNSET accepted")
		}
		if got := p.Mappings(); len(got) != 7 || got[6].Prog != 100005 || got[6].Vers != 1 {
			t.Fatalf("after UNSETs: %+v", got)
		}
		if got := len(pmDumpV2(t, p)); got != 7 {
			t.Fatalf("v2 DUMP has %d entries, want 7", got)
		}
	})
	t.Run("GetTime", func(t *testing.T) {
		p.Clock = func() time.Time { return time.Unix(1_700_000_000, 0) }
		d := pmOK(t, p, remoteCaller, localV4, 4, portmap.RpcbProcGetTime, nil)
		if got := d.Uint32(); got != 1_700_000_000 {
			t.Fatalf("GETTIME = %d", got)
		}
		pmDone(t, d)
	})
	t.Run("Unavailable", func(t *testing.T) {
		for _, c := range []struct{ vers, proc uint32 }{
			{3, portmap.RpcbProcCallit}, {4, portmap.RpcbProcCallit}, {4, portmap.RpcbProcIndirect},
			{3, portmap.RpcbProcUaddr2Taddr}, {4, portmap.RpcbProcTaddr2Uaddr}, {4, portmap.RpcbProcGetStat},
			{3, portmap.RpcbProcGetVersAddr}, {4, 13}, {3, 99},
		} {
			if st, _ := pmCall(t, p, remoteCaller, localV4, c.vers, c.proc, nil); st != StatusProcUnavail {
				t.Errorf("v%d proc %d: status %+v, want PROC_UNAVAIL", c.vers, c.proc, st)
			}
		}
	})
	t.Run("GarbageArgs", func(t *testing.T) {
		long := func(e *xdr.Encoder) {
			portmap.RPCB{Prog: 1, Vers: 1, Netid: string(make([]byte, portmap.MaxNetid+1))}.Encode(e)
		}
		for _, proc := range []uint32{portmap.RpcbProcSet, portmap.RpcbProcUnset, portmap.RpcbProcGetAddr, portmap.RpcbProcGetVersAddr, portmap.RpcbProcGetAddrList} {
			if st, _ := pmCall(t, p, loopbackCaller, localV4, 4, proc, long); st != StatusGarbage {
				t.Errorf("proc %d with a too long netid: status %+v", proc, st)
			}
		}
		for _, proc := range []uint32{portmap.RpcbProcNull, portmap.RpcbProcDump, portmap.RpcbProcGetTime} {
			if st, _ := pmCall(t, p, loopbackCaller, localV4, 4, proc, func(e *xdr.Encoder) { e.Uint32(0) }); st != StatusGarbage {
				t.Errorf("proc %d with trailing bytes: status %+v", proc, st)
			}
		}
	})
}

func TestPortmapSetLocal(t *testing.T) {
	p := NewPortmap(111)
	if err := p.SetMappings(ServiceMappings(2049, 20048, true)); err != nil {
		t.Fatal(err)
	}
	// Replacing a registration keeps its place.
	if err := p.SetLocal(100003, 3, "tcp", 3049); err != nil {
		t.Fatal(err)
	}
	if err := p.SetLocal(1, 1, "local", 1); err == nil {
		t.Fatal("SetLocal accepted netid local")
	}
	ms := p.Mappings()
	if len(ms) != 6+12 {
		t.Fatalf("%d mappings, want 18: %+v", len(ms), ms)
	}
	if ms[6] != (portmap.RPCB{Prog: 100003, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.11.233", Owner: "mailnfsd"}) {
		t.Fatalf("first service mapping = %+v", ms[6])
	}
	if got := pmGetPort(t, p, 100005, 1, portmap.IPProtoUDP); got != 20048 {
		t.Fatalf("MOUNT v1 udp port = %d", got)
	}
	if !p.UnsetLocal(100005, 1) || p.UnsetLocal(100005, 1) {
		t.Fatal("UnsetLocal verdicts wrong")
	}
	if got := len(p.Mappings()); got != 14 {
		t.Fatalf("%d mappings after UnsetLocal, want 14", got)
	}
	if !p.NonIdempotent(2, portmap.PmapProcSet) || !p.NonIdempotent(4, portmap.RpcbProcUnset) || p.NonIdempotent(2, portmap.PmapProcGetPort) {
		t.Fatal("NonIdempotent wrong")
	}
}

// TestPortmapTableBound checks that SET stops at MaxPortmapRegistrations.
func TestPortmapTableBound(t *testing.T) {
	p := NewPortmap(111)
	n := 0
	for prog := uint32(1); prog <= MaxPortmapRegistrations+10; prog++ {
		if pmBool(t, p, loopbackCaller, 2, portmap.PmapProcSet, portmap.Mapping{Prog: 200000 + prog, Vers: 1, Prot: portmap.IPProtoTCP, Port: 1}.Encode) {
			n++
		}
	}
	if got := len(p.Mappings()); got != MaxPortmapRegistrations || n != MaxPortmapRegistrations-6 {
		t.Fatalf("table has %d entries after %d accepted SETs", got, n)
	}
}

// TestPortmapRpcinfo serves the portmapper on port 111 of a private network
// namespace, over TCP and UDP on 127.0.0.1 and ::1, and queries it with
// rpcinfo from the rpcbind package: portmap v2 DUMP (-p), rpcbind v3/v4 DUMP
// (-s, plain), GETPORT and GETADDR followed by NULL pings (-T, -t, -u),
// GETADDRLIST (-l) and UNSET (-d).
func TestPortmapRpcinfo(t *testing.T) {
	ns := netnstest.New(t, "pm")
	netnstest.RequireTool(t, "rpcinfo")
	p := NewPortmap(portmap.Port)
	for v := uint32(2); v <= 4; v++ {
		for _, n := range []string{"tcp6", "udp6"} {
			if err := p.SetLocal(portmap.Prog, v, n, portmap.Port); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := p.SetMappings(ServiceMappings(2049, 20048, true)); err != nil {
		t.Fatal(err)
	}
	for _, host := range []string{"127.0.0.1", "::1"} {
		var ln net.Listener
		var pc net.PacketConn
		err := ns.Do(func() error {
			var err error
			addr := net.JoinHostPort(host, "111")
			if ln, err = net.Listen("tcp", addr); err != nil {
				return err
			}
			pc, err = net.ListenPacket("udp", addr)
			return err
		})
		if err != nil {
			t.Fatalf("listen on %s port 111 in %s: %v", host, ns.Name, err)
		}
		servePortmap(t, p, ln, pc)
	}
	ctx := ctxT(t)

	out := rpcinfo(t, ctx, ns, "-p", "127.0.0.1")
	t.Logf("rpcinfo -p:\n%s", out)
	for _, want := range [][]string{
		{"100000", "2", "tcp", "111", "portmapper"}, {"100000", "3", "tcp", "111"}, {"100000", "4", "tcp", "111"},
		{"100000", "2", "udp", "111"}, {"100000", "3", "udp", "111"}, {"100000", "4", "udp", "111"},
		{"100003", "3", "tcp", "2049", "nfs"}, {"100003", "3", "udp", "2049"},
		{"100005", "1", "tcp", "20048", "mountd"}, {"100005", "3", "tcp", "20048"},
		{"100005", "1", "udp", "20048"}, {"100005", "3", "udp", "20048"},
	} {
		if !containsLine(out, want...) {
			t.Errorf("rpcinfo -p lacks %q", want)
		}
	}

	out = rpcinfo(t, ctx, ns, "-s", "127.0.0.1")
	t.Logf("rpcinfo -s:\n%s", out)
	for _, want := range [][]string{
		{"100000", "4,3,2", "udp6,tcp6,udp,tcp", "portmapper", "mailnfsd"},
		{"100003", "3", "udp6,tcp6,udp,tcp", "nfs", "mailnfsd"},
		{"100005", "3,1", "udp6,tcp6,udp,tcp", "mountd", "mailnfsd"},
	} {
		if !containsLine(out, want...) {
			t.Errorf("rpcinfo -s lacks %q", want)
		}
	}
	out = rpcinfo(t, ctx, ns, "127.0.0.1")
	t.Logf("rpcinfo:\n%s", out)
	for _, want := range [][]string{
		{"100000", "4", "udp6", "::.0.111", "portmapper", "mailnfsd"},
		{"100003", "3", "tcp", "0.0.0.0.8.1", "nfs", "mailnfsd"},
		{"100005", "1", "udp", "0.0.0.0.78.80", "mountd", "mailnfsd"},
	} {
		if !containsLine(out, want...) {
			t.Errorf("rpcinfo lacks %q", want)
		}
	}
	// The same over IPv6: rpcinfo -s ::1 sends rpcbind v4 DUMP on udp6 or tcp6.
	if out6 := rpcinfo(t, ctx, ns, "-s", "::1"); !containsLine(out6, "100003", "3", "udp6,tcp6,udp,tcp") {
		t.Errorf("rpcinfo -s ::1:\n%s", out6)
	}

	for _, args := range [][]string{
		{"-T", "tcp", "127.0.0.1", "100000", "4"},
		{"-T", "udp", "127.0.0.1", "100000", "3"},
		{"-T", "tcp6", "::1", "100000", "4"},
		{"-T", "udp6", "::1", "100000", "2"},
		{"-t", "127.0.0.1", "100000", "2"},
		{"-u", "127.0.0.1", "100000", "2"},
	} {
		out := rpcinfo(t, ctx, ns, args...)
		want := "program 100000 version " + args[len(args)-1] + " ready and waiting"
		if !strings.Contains(out, want) {
			t.Errorf("rpcinfo %q = %q, want %q", args, out, want)
		}
	}
	// All versions: rpcinfo learns the range from PROG_MISMATCH first.
	out = rpcinfo(t, ctx, ns, "-t", "127.0.0.1", "100000")
	for v := 2; v <= 4; v++ {
		if want := "program 100000 version " + strconv.Itoa(v) + " ready and waiting"; !strings.Contains(out, want) {
			t.Errorf("rpcinfo -t 127.0.0.1 100000 = %q, lacks %q", out, want)
		}
	}
	// GETADDRLIST: wildcard registrations come back with the address the
	// call arrived on (127.0.0.1) where the family matches.
	out = rpcinfo(t, ctx, ns, "-l", "127.0.0.1", "100003", "3")
	t.Logf("rpcinfo -l:\n%s", out)
	for _, want := range [][]string{
		{"100003", "3", "inet/tcp/cots_ord", "127.0.0.1.8.1", "nfs"},
		{"100003", "3", "inet/udp/clts", "127.0.0.1.8.1", "nfs"},
		{"100003", "3", "inet6/tcp/cots_ord", "::.8.1", "nfs"},
	} {
		if !containsLine(out, want...) {
			t.Errorf("rpcinfo -l lacks %q", want)
		}
	}
	out = rpcinfo(t, ctx, ns, "-l", "::1", "100005", "1")
	if !containsLine(out, "100005", "1", "inet6/udp/clts", "::1.78.80") || !containsLine(out, "100005", "1", "inet/tcp/cots_ord", "0.0.0.0.78.80") {
		t.Errorf("rpcinfo -l ::1 100005 1:\n%s", out)
	}

	// UNSET with rpcinfo -d. libtirpc tries the AF_LOCAL socket
	// /run/rpcbind.sock first; a private empty /run makes it fall back to
	// loopback, where this portmapper takes UNSET from a local caller.
	stdout, stderr, err := ns.Exec(ctx, "unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs tmpfs /run && exec rpcinfo -d 100005 1")
	if err != nil {
		t.Fatalf("rpcinfo -d: %v\n%s%s", err, stdout, stderr)
	}
	if port, _ := pmLookupV2(p, 100005, 1, portmap.IPProtoTCP); port != 0 {
		t.Errorf("MOUNT v1 still registered at %d after rpcinfo -d", port)
	}
	if port, _ := pmLookupV2(p, 100005, 3, portmap.IPProtoTCP); port != 20048 {
		t.Errorf("rpcinfo -d 100005 1 removed MOUNT v3 too")
	}
}

// pmLookupV2 returns the exact-version port of (prog, vers, prot).
func pmLookupV2(p *Portmap, prog, vers, prot uint32) (uint16, bool) {
	netid, ok := v2Netid(prot)
	if !ok {
		return 0, false
	}
	r, ok := p.lookup(prog, vers, netid, false)
	return r.addr.Port(), ok
}

// TestPortmapRemoteHost serves the portmapper on the wildcard address in one
// namespace and queries it from another over a private bridge
// (10.77.41.0/24): lookups answer with the server address the client
// reached, SET and UNSET from the remote host are refused, and rpcinfo -p
// works across hosts.
func TestPortmapRemoteHost(t *testing.T) {
	br := netnstest.NewBridge(t, 41)
	srv, srvAddr := br.Host("pmsrv", 1)
	cli, _ := br.Host("pmcli", 2)
	netnstest.RequireTool(t, "rpcinfo")

	p := NewPortmap(portmap.Port)
	if err := p.SetMappings(ServiceMappings(2049, 20048, false)); err != nil {
		t.Fatal(err)
	}
	var ln net.Listener
	var pc, pc1 net.PacketConn
	err := srv.Do(func() error {
		var err error
		if ln, err = net.Listen("tcp", "0.0.0.0:111"); err != nil {
			return err
		}
		if pc, err = net.ListenPacket("udp", "0.0.0.0:111"); err != nil {
			return err
		}
		// A UDP socket on the specific address, so Request.Local is that
		// address (a wildcard UDP socket does not tell the transport which
		// address a datagram arrived on).
		pc1, err = net.ListenPacket("udp", netip.AddrPortFrom(srvAddr, 112).String())
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	servePortmap(t, p, ln, pc)
	ln2, err := net.Listen("tcp", "127.0.0.1:0") // unused TCP side of the second server
	if err != nil {
		t.Fatal(err)
	}
	servePortmap(t, p, ln2, pc1)
	ctx := ctxT(t)

	server := netip.AddrPortFrom(srvAddr, portmap.Port).String()
	want := portmap.FormatUaddr(netip.AddrPortFrom(srvAddr, 2049))
	err = cli.Do(func() error {
		for _, c := range []*RpcbindClient{
			{Network: "tcp", Address: server},
			{Network: "udp", Address: netip.AddrPortFrom(srvAddr, 112).String()},
		} {
			if a, err := c.GetAddr(ctx, rpc.ProgNFS, 3, "tcp"); err != nil || a != want {
				t.Errorf("%s GETADDR = %q, %v; want %q", c.Network, a, err, want)
			}
			if port, err := c.GetPort(ctx, rpc.ProgMount, 1, portmap.IPProtoUDP); err != nil || port != 20048 {
				t.Errorf("%s GETPORT = %d, %v", c.Network, port, err)
			}
			if err := c.Register(ctx, []RpcbindMapping{{Prog: 100099, Vers: 1, Netid: "tcp", Port: 999}}); !errors.Is(err, ErrRpcbindRefused) {
				t.Errorf("%s remote Register: %v, want ErrRpcbindRefused", c.Network, err)
			}
			if ok, err := c.Unset(ctx, rpc.ProgNFS, 3, "tcp"); ok || err != nil {
				t.Errorf("%s remote UNSET = %v, %v; want FALSE", c.Network, ok, err)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if got := len(p.Mappings()); got != 6+6 {
		t.Fatalf("table changed by remote calls: %+v", p.Mappings())
	}
	out := rpcinfo(t, ctx, cli, "-p", srvAddr.String())
	if !containsLine(out, "100003", "3", "tcp", "2049", "nfs") || !containsLine(out, "100000", "2", "udp", "111", "portmapper") {
		t.Errorf("rpcinfo -p %s:\n%s", srvAddr, out)
	}
	out = rpcinfo(t, ctx, cli, "-l", srvAddr.String(), "100005", "3")
	if !containsLine(out, "100005", "3", "inet/tcp/cots_ord", portmap.FormatUaddr(netip.AddrPortFrom(srvAddr, 20048))) {
		t.Errorf("rpcinfo -l %s 100005 3:\n%s", srvAddr, out)
	}
}

// FuzzPortmapServe feeds arbitrary arguments to every procedure: Serve
// never panics, answers only SUCCESS, GARBAGE_ARGS or PROC_UNAVAIL, and a
// SUCCESS result decodes exactly as the procedure's result type.
func FuzzPortmapServe(f *testing.F) {
	var e xdr.Encoder
	portmap.RPCB{Prog: 100003, Vers: 3, Netid: "tcp", Addr: "0.0.0.0.8.1", Owner: "x"}.Encode(&e)
	rpcbArgs := append([]byte(nil), e.Bytes()...)
	e.Reset()
	portmap.Mapping{Prog: 100003, Vers: 3, Prot: 6, Port: 2049}.Encode(&e)
	pmapArgs := append([]byte(nil), e.Bytes()...)
	for proc := uint8(0); proc < 14; proc++ {
		f.Add(uint8(2), proc, pmapArgs, true)
		f.Add(uint8(4), proc, rpcbArgs, true)
		f.Add(uint8(3), proc, []byte{}, false)
	}
	f.Fuzz(func(t *testing.T, vers, proc uint8, args []byte, loopback bool) {
		v := 2 + uint32(vers)%3
		p := NewPortmap(111)
		_ = p.SetMappings(ServiceMappings(2049, 20048, true))
		from := remoteCaller
		if loopback {
			from = loopbackCaller
		}
		req := &Request{Prog: portmap.Prog, Vers: v, Proc: uint32(proc), Addr: from, Net: "udp", Local: localV4, Args: xdr.NewDecoder(args)}
		var res xdr.Encoder
		st := p.Serve(context.Background(), req, &res)
		switch st {
		case StatusGarbage, StatusProcUnavail:
			return
		case StatusOK:
		default:
			t.Fatalf("status %+v", st)
		}
		d := xdr.NewDecoder(res.Bytes())
		switch {
		case proc == 0:
		case proc == 1 || proc == 2:
			d.Bool()
		case v == 2 && proc == 3, v > 2 && proc == 6:
			d.Uint32()
		case v == 2 && proc == 4:
			portmap.DecodeMappingList(d)
		case v > 2 && (proc == 3 || proc == 9):
			if s := d.String(portmap.MaxUaddr); s != "" {
				if _, err := portmap.ParseUaddr(s); err != nil {
					t.Fatalf("GETADDR returned %q: %v", s, err)
				}
			}
		case v > 2 && proc == 4:
			portmap.DecodeRPCBList(d)
		case v == 4 && proc == 11:
			portmap.DecodeEntryList(d)
		default:
			t.Fatalf("v%d proc %d succeeded", v, proc)
		}
		if err := d.Done(); err != nil {
			t.Fatalf("v%d proc %d result: %v", v, proc, err)
		}
	})
}

// TestPortmapSetRetransmit checks that a retransmitted SET (same XID, over
// UDP) gets the original TRUE from the server's duplicate request cache,
// not FALSE for "already registered".
func TestPortmapSetRetransmit(t *testing.T) {
	p := NewPortmap(111)
	ln, pc := listenLoopback(t, 0)
	_, udpAddr := servePortmap(t, p, ln, pc)
	conn, err := net.Dial("udp", udpAddr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	var e xdr.Encoder
	rpc.CallHeader{XID: 0x5e7, Prog: portmap.Prog, Vers: portmap.V2, Proc: portmap.PmapProcSet}.Encode(&e)
	portmap.Mapping{Prog: 100099, Vers: 1, Prot: portmap.IPProtoUDP, Port: 999}.Encode(&e)
	buf := make([]byte, 1024)
	for i := range 2 {
		if _, err := conn.Write(e.Bytes()); err != nil {
			t.Fatal(err)
		}
		_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatal(err)
		}
		d := xdr.NewDecoder(buf[:n])
		if xid, err := rpc.DecodeReply(d); err != nil || xid != 0x5e7 {
			t.Fatalf("reply %d: xid %#x, %v", i, xid, err)
		}
		if ok := d.Bool(); !ok || d.Done() != nil {
			t.Fatalf("reply %d to SET = %v (%v), want TRUE", i, ok, d.Done())
		}
	}
	if got := pmGetPort(t, p, 100099, 1, portmap.IPProtoUDP); got != 999 {
		t.Fatalf("GETPORT = %d", got)
	}
}
