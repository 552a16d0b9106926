package nfsd

import (
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/logtest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/internal/rpc"
)

func testHostsLookup(name string) ([]netip.Addr, error) {
	switch strings.ToLower(name) {
	case "localhost":
		return []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("::1")}, nil
	case "front1":
		return []netip.Addr{netip.MustParseAddr("10.1.2.11")}, nil
	}
	return nil, errors.New("no such host")
}

func mustHosts(t *testing.T, allow, deny string) *HostsAccess {
	t.Helper()
	opts := &HostsOptions{LookupHost: testHostsLookup}
	h := &HostsAccess{}
	r, err := ParseHostsAccess("hosts.allow", []byte(allow), HostsAllow, opts)
	if err != nil {
		t.Fatalf("hosts.allow: %v", err)
	}
	h.Rules = append(h.Rules, r...)
	r, err = ParseHostsAccess("hosts.deny", []byte(deny), HostsDeny, opts)
	if err != nil {
		t.Fatalf("hosts.deny: %v", err)
	}
	h.Rules = append(h.Rules, r...)
	return h
}

var pmNames = []string{DaemonRpcbind, DaemonPortmap}

func TestHostsAccessMatch(t *testing.T) {
	srv := netip.MustParseAddr("10.1.2.1")
	srv2 := netip.MustParseAddr("10.9.0.1")
	tests := []struct {
		name        string
		allow, deny string
		daemons     []string
		server      string
		client      string
		want        HostsVerdict
	}{
		// The seed's line and FreeBSD's single-file policy.
		{"seed allow", "rpcbind : 10.1.2.0/255.255.255.0 : allow\nrpcbind : ALL : deny\n", "", pmNames, "", "10.1.2.7", HostsAllow},
		{"seed deny", "rpcbind : 10.1.2.0/255.255.255.0 : allow\nrpcbind : ALL : deny\n", "", pmNames, "", "10.1.3.7", HostsDeny},
		{"portmap alias", "portmap : ALL : deny\n", "", pmNames, "", "10.1.3.7", HostsDeny},
		{"other daemon", "sshd : ALL : deny\n", "", pmNames, "", "10.1.3.7", HostsAllow},
		{"daemon case", "RPCBIND : ALL : deny\n", "", pmNames, "", "10.1.3.7", HostsDeny},
		{"first match wins", "ALL : 10.1.3.7 : allow\nALL : ALL : deny\n", "", pmNames, "", "10.1.3.7", HostsAllow},
		// Classic pair: allow file grants, deny file refuses, default grants.
		{"pair allowed", "rpcbind: 10.1.2.\n", "rpcbind: ALL\n", pmNames, "", "10.1.2.200", HostsAllow},
		{"pair denied", "rpcbind: 10.1.2.\n", "rpcbind: ALL\n", pmNames, "", "10.1.22.5", HostsDeny},
		{"pair default", "rpcbind: 10.1.2.\n", "mountd: ALL\n", pmNames, "", "10.1.22.5", HostsAllow},
		{"deny file allow option", "", "ALL: 10.1.22.5: allow\nALL: ALL\n", pmNames, "", "10.1.22.5", HostsAllow},
		// Patterns.
		{"cidr", "ALL : 10.1.2.0/24 : allow\nALL : ALL : deny", "", mountdNames, "", "10.1.2.9", HostsAllow},
		{"cidr out", "ALL : 10.1.2.0/24 : allow\nALL : ALL : deny", "", mountdNames, "", "10.1.3.9", HostsDeny},
		{"exact", "ALL : 10.1.2.9 : deny", "", nfsdNames, "", "10.1.2.9", HostsDeny},
		{"exact other", "ALL : 10.1.2.9 : deny", "", nfsdNames, "", "10.1.2.10", HostsAllow},
		{"prefix a.", "ALL : 10. : deny", "", nfsdNames, "", "10.200.2.10", HostsDeny},
		{"prefix not substring", "ALL : 10.1.2. : deny", "", nfsdNames, "", "10.1.20.1", HostsAllow},
		{"mapped caller", "ALL : 10.1.2.0/24 : deny", "", nfsdNames, "", "::ffff:10.1.2.3", HostsDeny},
		{"v6 prefix", "ALL : [fd00:1::]/64 : deny", "", nfsdNames, "", "fd00:1::5", HostsDeny},
		{"v6 prefix out", "ALL : [fd00:1::]/64 : deny", "", nfsdNames, "", "fd00:2::5", HostsAllow},
		{"v6 exact", "ALL : [fd00:1::5] : deny", "", nfsdNames, "", "fd00:1::5", HostsDeny},
		{"host name", "ALL : front1 : allow\nALL : ALL : deny", "", nfsdNames, "", "10.1.2.11", HostsAllow},
		{"localhost", "ALL : localhost : allow\nALL : ALL : deny", "", nfsdNames, "", "::1", HostsAllow},
		{"LOCAL is loopback", "ALL : LOCAL : allow\nALL : ALL : deny", "", nfsdNames, "", "127.0.0.1", HostsAllow},
		{"LOCAL not remote", "ALL : LOCAL : allow\nALL : ALL : deny", "", nfsdNames, "", "10.1.2.1", HostsDeny},
		{"client EXCEPT", "ALL : 10.1.2.0/24 EXCEPT 10.1.2.66 : allow\nALL : ALL : deny", "", nfsdNames, "", "10.1.2.66", HostsDeny},
		{"client EXCEPT other", "ALL : 10.1.2.0/24 EXCEPT 10.1.2.66 : allow\nALL : ALL : deny", "", nfsdNames, "", "10.1.2.65", HostsAllow},
		{"nested EXCEPT", "ALL : 10. EXCEPT 10.1. EXCEPT 10.1.2.3 : deny", "", nfsdNames, "", "10.1.2.3", HostsDeny},
		{"nested EXCEPT mid", "ALL : 10. EXCEPT 10.1. EXCEPT 10.1.2.3 : deny", "", nfsdNames, "", "10.1.2.4", HostsAllow},
		{"daemon EXCEPT", "ALL EXCEPT rpcbind : ALL : deny", "", pmNames, "", "10.1.2.4", HostsAllow},
		{"daemon EXCEPT other", "ALL EXCEPT rpcbind : ALL : deny", "", mountdNames, "", "10.1.2.4", HostsDeny},
		{"commas and blanks", "mountd,nfsd rpcbind : 10.1.3.1,10.1.3.2 : deny", "", nfsdNames, "", "10.1.3.2", HostsDeny},
		{"continuation", "nfsd : \\\n  10.1.3.2 : \\\n deny\n", "", nfsdNames, "", "10.1.3.2", HostsDeny},
		{"comments", "# all ours\n\n  # indented\nnfsd : 10.1.3.2 : deny   # trailing\n", "", nfsdNames, "", "10.1.3.2", HostsDeny},
		{"daemon@server", "nfsd@10.9.0.1 : ALL : deny", "", nfsdNames, "10.9.0.1", "10.1.2.3", HostsDeny},
		{"daemon@other server", "nfsd@10.9.0.1 : ALL : deny", "", nfsdNames, "10.1.2.1", "10.1.2.3", HostsAllow},
		{"ignored options", "nfsd : ALL : severity auth.info : deny", "", nfsdNames, "", "10.1.2.3", HostsDeny},
		{"escaped colon in option", "nfsd : ALL : spawn echo a\\:b : deny", "", nfsdNames, "", "10.1.2.3", HostsDeny},
		{"empty files", "", "", pmNames, "", "10.1.2.3", HostsAllow},
		// Link-local callers carry their zone; rules match without it.
		{"zoned link-local deny", "rpcbind : [fe80::]/10 : deny\nALL : ALL : allow", "", pmNames, "", "fe80::1%eth0", HostsDeny},
		{"zoned link-local exact", "ALL : [fe80::1] : deny", "", nfsdNames, "", "fe80::1%eth0", HostsDeny},
		{"zoned server", "nfsd@[fe80::2] : ALL : deny", "", nfsdNames, "fe80::2%eth0", "fd00::7", HostsDeny},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mustHosts(t, tt.allow, tt.deny)
			server := srv
			if tt.server != "" {
				server = netip.MustParseAddr(tt.server)
			}
			_ = srv2
			got, r := h.Check(tt.daemons, server, netip.MustParseAddr(tt.client))
			if got != tt.want {
				t.Fatalf("Check(%v, %s) = %v (rule %v), want %v", tt.daemons, tt.client, got, r, tt.want)
			}
			if got == HostsDeny && r == nil {
				t.Fatalf("deny without a deciding rule")
			}
		})
	}
}

func TestHostsAccessNames(t *testing.T) {
	h := mustHosts(t, "ALL : localhost : allow\nrpcbind : 10.1.2.0/24 : allow\nALL : ALL : deny\n", "")
	if h.Names(DaemonMountd) || h.Names(DaemonNFSD) || !h.Names(DaemonRpcbind) {
		t.Fatalf("Names: mountd %v nfsd %v rpcbind %v", h.Names(DaemonMountd), h.Names(DaemonNFSD), h.Names(DaemonRpcbind))
	}
	h = mustHosts(t, "mountd nfsd : 10.1.2.0/24 : allow\n", "")
	if !h.Names(DaemonMountd) || !h.Names(DaemonNFSD) {
		t.Fatal("mountd/nfsd not named")
	}
	if (*HostsAccess)(nil).Names(DaemonNFSD) {
		t.Fatal("nil names nfsd")
	}
}

func TestHostsAccessErrors(t *testing.T) {
	tests := []struct{ in, want string }{
		{"rpcbind 10.1.2.0/24\n", "hosts.allow:1:20: expected \":\" and a client list"},
		{"\n\nrpcbind : \n", "hosts.allow:3:11: expected a client list"},
		{" : ALL\n", "hosts.allow:1:2: expected a daemon list"},
		{"ALL : 10.1.2.0/255.0.255.0\n", "hosts.allow:1:16: network \"10.1.2.0/255.0.255.0\": expected a netmask"},
		{"ALL : 10.1.2.1/24\n", "hosts.allow:1:7: network 10.1.2.1/24 has host bits set beyond the mask (did you mean 10.1.2.0/24?)"},
		{"ALL : 10.1.2.0/33\n", "hosts.allow:1:16: network"},
		{"ALL : [fd00::1\n", "hosts.allow:1:7: expected \"]\""},
		{"ALL : [10.1.2.3]/8\n", "hosts.allow:1:8: expected an IPv6 address inside []"},
		{"ALL : [fd00::]/200\n", "hosts.allow:1:15: expected /len (0..128)"},
		{"nfsd : fd00::5 : deny\n", "hosts.allow:1:8: IPv6 address fd00::5 must be written in brackets in hosts_access files: [fd00::5]"},
		{"ALL : 10.1.2.0/24, fd00::/64\n", "hosts.allow:1:20: IPv6 address fd00::/64 must be written in brackets in hosts_access files: [fd00::]/64"},
		{"ALL : ::ffff:10.1.2.3\n", "hosts.allow:1:7: IPv6 address ::ffff:10.1.2.3 must be written in brackets"},
		{"ALL : .example.com\n", "hosts.allow:1:7: domain pattern .example.com needs the caller's host name"},
		{"ALL : PARANOID\n", "hosts.allow:1:7: PARANOID needs the caller's host name"},
		{"ALL : @mailhosts\n", "hosts.allow:1:7: NIS netgroups"},
		{"ALL : /etc/nfs.hosts\n", "hosts.allow:1:7: pattern files"},
		{"ALL : fred@10.1.2.3\n", "hosts.allow:1:7: user@host"},
		{"ALL : 10.1.*\n", "hosts.allow:1:7: wildcards"},
		{"ALL : nosuchhost\n", "hosts.allow:1:7: host name \"nosuchhost\" does not resolve"},
		{"ALL : ALL : allow : severity x\n", "hosts.allow:1:13: option allow must be the last option"},
		{"ALL : ALL : frobnicate\n", "hosts.allow:1:13: unknown option \"frobnicate\""},
		{"ALL : ALL : twist /bin/false\n", "hosts.allow:1:13: option twist"},
		{"ALL : ALL : deny now\n", "hosts.allow:1:18: option deny takes no value"},
		{"ALL : ALL :\n", "hosts.allow:1:12: expected an option after \":\""},
		{"ALL : 10.1.2.0/24 EXCEPT\n", "hosts.allow:1:19: expected a client pattern after EXCEPT"},
		{"EXCEPT rpcbind : ALL\n", "hosts.allow:1:1: expected a daemon pattern before EXCEPT"},
		{"nfsd : \\\n 10.1.2.3 : \\\n  bogus\n", "hosts.allow:3:3: unknown option \"bogus\""},
		{"@host : ALL\n", "hosts.allow:1:1: expected a daemon name before \"@\""},
	}
	for _, tt := range tests {
		_, err := ParseHostsAccess("hosts.allow", []byte(tt.in), HostsAllow, &HostsOptions{LookupHost: testHostsLookup})
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%q: error %v\nwant it to contain %q", tt.in, err, tt.want)
		}
	}
	// Without a resolver, names are refused with advice.
	_, err := ParseHostsAccess("h", []byte("ALL : front1\n"), HostsAllow, nil)
	if err == nil || !strings.Contains(err.Error(), "h:1:7: host name \"front1\" cannot be resolved here") {
		t.Errorf("no resolver: %v", err)
	}
	// Several errors are all reported, in file order.
	_, err = ParseHostsAccess("h", []byte("ALL : 1.2.3.4/40\nALL : ALL : x\n"), HostsAllow, nil)
	var pe ParseErrors
	if !errors.As(err, &pe) || len(pe) != 2 || pe[0].Pos.Line != 1 || pe[1].Pos.Line != 2 {
		t.Errorf("two errors: %v", err)
	}
}

func TestLoadHostsConfig(t *testing.T) {
	dir := t.TempDir()
	allow := filepath.Join(dir, "hosts.allow")
	if err := os.WriteFile(allow, []byte("rpcbind : 10.1.2.0/24\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// No hosts.deny beside it: only the allow rules.
	h, err := LoadHostsConfig(allow, "", nil)
	if err != nil || len(h.Rules) != 1 || len(h.Files) != 1 {
		t.Fatalf("allow only: %v %+v", err, h)
	}
	if err := os.WriteFile(filepath.Join(dir, "hosts.deny"), []byte("rpcbind : ALL\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	h, err = LoadHostsConfig(allow, "", nil)
	if err != nil || len(h.Rules) != 2 {
		t.Fatalf("pair: %v %+v", err, h)
	}
	if v, _ := h.Check(pmNames, netip.Addr{}, netip.MustParseAddr("10.1.3.1")); v != HostsDeny {
		t.Fatalf("pair: 10.1.3.1 %v", v)
	}
	h, err = LoadHostsConfig(allow, "none", nil)
	if err != nil || len(h.Rules) != 1 {
		t.Fatalf("none: %v %+v", err, h)
	}
	if _, err := LoadHostsConfig(filepath.Join(dir, "missing"), "", nil); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("missing hosts.allow: %v", err)
	}
	if h, err := LoadHostsConfig("", "", nil); h != nil || err != nil {
		t.Fatalf("none configured: %v %v", h, err)
	}
	if _, err := LoadHostsConfig("", "/x", nil); err == nil {
		t.Fatal("deny without allow accepted")
	}
}

func TestHostsGate(t *testing.T) {
	var logs logtest.Buffer
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	var clockMu sync.Mutex
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	h := mustHosts(t, "ALL : localhost : allow\nrpcbind : 10.1.2.0/255.255.255.0 : allow\nrpcbind : ALL : deny\nALL : ALL : allow\n", "")
	g := NewHostsGate(h, slog.New(slog.NewTextHandler(&logs, nil)), clock)
	rules := map[string]int{}
	g.OnDenied = func(rule string) { rules[rule]++ }
	req := func(prog uint32, client string) *Request {
		return &Request{Prog: prog, Addr: netip.AddrPortFrom(netip.MustParseAddr(client), 700),
			Local: netip.MustParseAddrPort("10.1.2.1:111"), Net: "udp"}
	}
	tooWeak := Status{Auth: rpc.AuthTooWeak}
	if st := g.Gate(req(portmap.Prog, "10.1.2.5")); st != (Status{}) {
		t.Fatalf("allowed portmap caller: %+v", st)
	}
	if st := g.Gate(req(portmap.Prog, "127.0.0.1")); st != (Status{}) {
		t.Fatalf("loopback portmap caller: %+v", st)
	}
	for range 100 {
		if st := g.Gate(req(portmap.Prog, "10.1.3.5")); st != tooWeak {
			t.Fatalf("denied portmap caller: %+v", st)
		}
	}
	// mountd and nfsd are not named: MOUNT and NFS are left to exports.
	if st := g.Gate(req(nfs3.MountProgram, "10.1.3.5")); st != (Status{}) {
		t.Fatalf("MOUNT checked without a mountd rule: %+v", st)
	}
	if st := g.Gate(req(nfs3.Program, "10.1.3.5")); st != (Status{}) {
		t.Fatalf("NFS checked without an nfsd rule: %+v", st)
	}
	if n := strings.Count(logs.String(), "unauthorized host"); n != 1 {
		t.Fatalf("100 denials logged %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), "client=10.1.3.5") || !strings.Contains(logs.String(), "rule=hosts.allow:3:1") {
		t.Fatalf("log lacks client or rule:\n%s", logs.String())
	}
	// Another host is logged on its own; the first again after a minute.
	g.Gate(req(portmap.Prog, "10.1.4.5"))
	clockMu.Lock()
	now = now.Add(59 * time.Second)
	clockMu.Unlock()
	g.Gate(req(portmap.Prog, "10.1.3.5"))
	if n := strings.Count(logs.String(), "unauthorized host"); n != 2 {
		t.Fatalf("after 59 s: %d log lines, want 2", n)
	}
	clockMu.Lock()
	now = now.Add(2 * time.Second)
	clockMu.Unlock()
	g.Gate(req(portmap.Prog, "10.1.3.5"))
	if n := strings.Count(logs.String(), "unauthorized host"); n != 3 {
		t.Fatalf("after 61 s: %d log lines, want 3", n)
	}
	if g.Denied() != 103 {
		t.Fatalf("Denied = %d, want 103", g.Denied())
	}
	if len(rules) != 1 || rules["hosts_access:hosts.allow:3:1"] != 103 {
		t.Fatalf("OnDenied saw %v, want 103 of hosts_access:hosts.allow:3:1", rules)
	}

	// Naming mountd and nfsd switches their checks on, loopback included.
	g.Set(mustHosts(t, "mountd nfsd : 10.1.2.0/24 : allow\nmountd nfsd : ALL : deny\n", ""))
	for _, c := range []struct {
		prog   uint32
		client string
		want   Status
	}{
		{nfs3.MountProgram, "10.1.2.5", Status{}},
		{nfs3.MountProgram, "10.1.3.5", tooWeak},
		{nfs3.Program, "10.1.3.5", tooWeak},
		{nfs3.Program, "::ffff:10.1.2.5", Status{}},
		{nfs3.Program, "127.0.0.1", tooWeak},
		{portmap.Prog, "10.1.3.5", Status{}},
		{4242, "10.1.3.5", Status{}},
	} {
		if st := g.Gate(req(c.prog, c.client)); st != c.want {
			t.Errorf("prog %d from %s: %+v, want %+v", c.prog, c.client, st, c.want)
		}
	}
	g.Set(nil)
	if st := g.Gate(req(nfs3.Program, "10.1.3.5")); st != (Status{}) || g.Access() != nil {
		t.Fatalf("no rules: %+v", st)
	}
}

// TestHostsGateLinkLocal: a link-local peer, with the zone the transport
// keeps in its address, is denied by a [fe80::]/10 deny rule (it failed
// open while the zone made the prefix never match).
func TestHostsGateLinkLocal(t *testing.T) {
	peer := addrPort(&net.TCPAddr{IP: net.ParseIP("fe80::1"), Port: 700, Zone: "eth0"})
	exEqual(t, "eth0", peer.Addr().Zone(), "the transport keeps the zone")
	g := NewHostsGate(mustHosts(t, "rpcbind mountd nfsd : [fe80::]/10 : deny\nALL : ALL : allow\n", ""), nil, nil)
	for _, prog := range []uint32{portmap.Prog, nfs3.MountProgram, nfs3.Program} {
		st := g.Gate(&Request{Prog: prog, Addr: peer, Local: netip.MustParseAddrPort("[fe80::2%eth0]:111"), Net: "tcp"})
		exEqual(t, Status{Auth: rpc.AuthTooWeak}, st, "prog", prog)
	}
	other := addrPort(&net.TCPAddr{IP: net.ParseIP("fd00::1"), Port: 700})
	exEqual(t, Status{}, g.Gate(&Request{Prog: nfs3.Program, Addr: other, Net: "tcp"}), "a peer outside fe80::/10")
	// The connection gate refuses it at accept too.
	exTrue(t, !g.AcceptConn(peer, netip.MustParseAddrPort("[fe80::2%eth0]:2049")), "AcceptConn let the link-local peer in")
	exTrue(t, g.AcceptConn(other, netip.MustParseAddrPort("[fd00::2]:2049")), "AcceptConn refused a peer outside fe80::/10")
}

// TestHostsGateConcurrent checks the gate and Set under the race detector.
func TestHostsGateConcurrent(t *testing.T) {
	a := mustHosts(t, "ALL : ALL : deny\n", "")
	b := mustHosts(t, "ALL : ALL : allow\n", "")
	g := NewHostsGate(a, nil, nil)
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := &Request{Prog: portmap.Prog, Addr: netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i), 1}), 1)}
			for {
				select {
				case <-stop:
					return
				default:
				}
				g.Gate(r)
			}
		}()
	}
	// The rules change for 200 ms, and on until a call was refused: on a
	// loaded machine under -race the gating goroutines may not run at all
	// in the first 200 ms (3 runs in 300 failed so).
	start := time.Now()
	for time.Since(start) < 200*time.Millisecond || (g.Denied() == 0 && time.Since(start) < time.Minute) {
		g.Set(b)
		g.Set(a)
	}
	close(stop)
	wg.Wait()
	if g.Denied() == 0 {
		t.Fatalf("no call was denied in %v", time.Since(start).Round(time.Millisecond))
	}
}

func FuzzParseHostsAccess(f *testing.F) {
	for _, s := range []string{
		"rpcbind : 10.1.2.0/255.255.255.0 : allow\n",
		"ALL : localhost : allow\nrpcbind : 192.0.2.0/255.255.255.0 : allow\nrpcbind : ALL : deny\nALL : ALL : allow\n",
		"mountd, nfsd : 10.1.2. EXCEPT 10.1.2.66 : deny\n",
		"nfsd@[fd00::1] : [fd00::]/64 [::ffff:10.0.0.0]/104 : severity x : allow\n",
		"a : b \\\n : c\\:d : deny # c\n",
		"ALL : LOCAL, front1\n", "[ : ] : [\n", "\\", ":::::", "ALL EXCEPT EXCEPT : ALL\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, err := ParseHostsAccess("f", data, HostsAllow, &HostsOptions{LookupHost: testHostsLookup})
		if err != nil {
			var pe ParseErrors
			if !errors.As(err, &pe) || len(pe) == 0 || len(pe) > maxParseErrors {
				t.Fatalf("error is not 1..%d ParseErrors: %v", maxParseErrors, err)
			}
			for _, e := range pe {
				if e.Pos.Line < 1 || e.Pos.Col < 1 {
					t.Fatalf("bad position %v", e.Pos)
				}
			}
			return
		}
		h := &HostsAccess{Rules: rules}
		for _, a := range []string{"10.1.2.3", "::1", "fd00::1", "::ffff:10.0.0.1"} {
			v, r := h.Check(pmNames, netip.MustParseAddr("10.1.2.1"), netip.MustParseAddr(a))
			if v != HostsAllow && r == nil {
				t.Fatal("deny without rule")
			}
		}
	})
}

func TestPublicExposure(t *testing.T) {
	for _, c := range []struct {
		p    string
		want bool
	}{
		{"10.1.2.0/24", true}, {"10.0.0.0/8", true}, {"8.0.0.0/7", false}, {"0.0.0.0/0", false},
		{"172.16.0.0/12", true}, {"172.16.0.0/11", false}, {"192.168.1.7/32", true}, {"84.201.31.0/24", false},
		{"127.0.0.1/32", true}, {"::1/128", true}, {"fd00:1::/64", true}, {"fe80::/64", true},
		{"2001:db8::/32", false}, {"::ffff:10.1.2.0/120", true}, {"::ffff:84.201.31.0/120", false}, {"::/0", false},
	} {
		if got := IsPrivatePrefix(netip.MustParsePrefix(c.p)); got != c.want {
			t.Errorf("IsPrivatePrefix(%s) = %v, want %v", c.p, got, c.want)
		}
	}
	lookup := func(name string) ([]netip.Addr, error) {
		return map[string][]netip.Addr{"pub": {netip.MustParseAddr("84.201.31.9")}, "priv": {netip.MustParseAddr("10.1.2.9")}}[name], nil
	}
	table, err := ParseExports("exports", []byte(
		"/usr/mail1 -network 10.1.2.0 -mask 255.255.255.0\n"+
			"/usr/mail2 -network 84.201.31.0 -mask 255.255.255.0\n"+
			"/usr/mail3\n"+
			"/usr/mail4 *(ro) priv(rw) pub(rw) fd00::/64(rw)\n"), &ParseOptions{LookupHost: lookup})
	if err != nil {
		t.Fatal(err)
	}
	ifaces := []netip.Addr{netip.MustParseAddr("127.0.0.1"), netip.MustParseAddr("10.1.2.1"), netip.MustParseAddr("203.0.113.5")}
	got := strings.Join(PublicExposure("", table, ifaces), "\n")
	for _, want := range []string{
		"listening on every address, including public address 203.0.113.5",
		"exports:2:1: export /usr/mail2 admits 84.201.31.0/24, outside private networks",
		"exports:3:1: export /usr/mail3 admits everyone (no hosts given), which counts as public",
		"exports:4:12: export /usr/mail4 admits everyone",
		"export /usr/mail4 admits host pub at public address 84.201.31.9",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("PublicExposure lacks %q:\n%s", want, got)
		}
	}
	for _, bad := range []string{"mail1", "10.1.2.1", "host priv", "fd00"} {
		if strings.Contains(got, bad) {
			t.Errorf("PublicExposure warns about private %q:\n%s", bad, got)
		}
	}
	if w := PublicExposure("10.1.2.1", table.subset("/usr/mail1"), ifaces); len(w) != 0 {
		t.Errorf("private listen and exports warned: %v", w)
	}
	if w := PublicExposure("84.201.31.1", nil, nil); len(w) != 1 || !strings.Contains(w[0], "listening on public address 84.201.31.1") {
		t.Errorf("public listen: %v", w)
	}
	if w := PublicExposure("0.0.0.0", nil, ifaces); len(w) != 1 {
		t.Errorf("0.0.0.0 listen: %v", w)
	}
}

// subset returns a table with only the export at path.
func (t *ExportTable) subset(path string) *ExportTable {
	return &ExportTable{Exports: []*Export{t.Lookup(path)}}
}
