package nfsd

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/logtest"
	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/internal/rpc"
)

// servePortmap serves p on a new Server over TCP and UDP on listeners made
// by listen (in the caller's network namespace) and returns their
// addresses. The server is shut down at cleanup.
func servePortmap(t *testing.T, p Program, ln net.Listener, pc net.PacketConn) (tcpAddr, udpAddr string) {
	t.Helper()
	s := &Server{}
	s.Register(p)
	served := make(chan error, 2)
	go func() { served <- s.Serve(ln) }()
	go func() { served <- s.ServeUDP(pc) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		for range 2 {
			if err := <-served; !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve returned %v, want ErrServerClosed", err)
			}
		}
	})
	return ln.Addr().String(), pc.LocalAddr().String()
}

// listenLoopback opens TCP and UDP sockets on 127.0.0.1 at port (0: any).
func listenLoopback(t *testing.T, port int) (net.Listener, net.PacketConn) {
	t.Helper()
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		ln.Close()
		t.Fatal(err)
	}
	return ln, pc
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestRpcbindClientOverServer registers, looks up and unregisters through
// the RpcbindClient against a Portmap on a real Server, over TCP and UDP.
func TestRpcbindClientOverServer(t *testing.T) {
	p := NewPortmap(111)
	ln, pc := listenLoopback(t, 0)
	tcpAddr, udpAddr := servePortmap(t, p, ln, pc)
	for _, tc := range []struct{ network, addr string }{{"tcp", tcpAddr}, {"udp", udpAddr}} {
		t.Run(tc.network, func(t *testing.T) {
			ctx := ctxT(t)
			c := &RpcbindClient{Network: tc.network, Address: tc.addr}
			if err := c.Ping(ctx); err != nil {
				t.Fatal(err)
			}
			maps := ServiceMappings(2049, 20048, true)
			if err := c.Register(ctx, maps); err != nil {
				t.Fatal(err)
			}
			// A second Register replaces the stale registrations.
			maps2 := ServiceMappings(2050, 20048, true)
			if err := c.Register(ctx, maps2); err != nil {
				t.Fatal(err)
			}
			if port, err := c.GetPort(ctx, rpc.ProgNFS, 3, portmap.IPProtoTCP); err != nil || port != 2050 {
				t.Fatalf("GETPORT NFS = %d, %v", port, err)
			}
			if port, err := c.GetPort(ctx, rpc.ProgMount, 1, portmap.IPProtoUDP); err != nil || port != 20048 {
				t.Fatalf("GETPORT MOUNT v1 udp = %d, %v", port, err)
			}
			// GETADDR answers with the address the call arrived on.
			if a, err := c.GetAddr(ctx, rpc.ProgMount, 3, "tcp"); err != nil || a != "127.0.0.1.78.80" {
				t.Fatalf("GETADDR MOUNT v3 tcp = %q, %v", a, err)
			}
			if a, err := c.GetAddr(ctx, rpc.ProgNFS, 3, "udp"); err != nil || a != "127.0.0.1.8.2" {
				t.Fatalf("GETADDR NFS udp = %q, %v", a, err)
			}
			if a, err := c.GetAddr(ctx, 100021, 4, "tcp"); err != nil || a != "" {
				t.Fatalf("GETADDR NLM = %q, %v; want not registered", a, err)
			}
			dump, err := c.Dump(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if len(dump) != 6+len(maps2) {
				t.Fatalf("DUMP has %d entries, want %d: %+v", len(dump), 6+len(maps2), dump)
			}
			if err := c.Unregister(ctx, maps2); err != nil {
				t.Fatal(err)
			}
			if port, err := c.GetPort(ctx, rpc.ProgNFS, 3, portmap.IPProtoTCP); err != nil || port != 0 {
				t.Fatalf("GETPORT after Unregister = %d, %v", port, err)
			}
			if got := len(p.Mappings()); got != 6 {
				t.Fatalf("%d mappings left, want the portmapper's 6", got)
			}
		})
	}
}

// v2Only is a portmapper that speaks only portmap v2, like old portmap
// daemons.
type v2Only struct{ *Portmap }

func (v2Only) Versions() (low, high uint32) { return 2, 2 }

// TestRpcbindClientV2Fallback checks registration with a peer that answers
// PROG_MISMATCH to rpcbind v4.
func TestRpcbindClientV2Fallback(t *testing.T) {
	p := NewPortmap(111)
	ln, pc := listenLoopback(t, 0)
	tcpAddr, _ := servePortmap(t, v2Only{p}, ln, pc)
	ctx := ctxT(t)
	c := &RpcbindClient{Network: "tcp", Address: tcpAddr}
	maps := ServiceMappings(2049, 20048, false)
	// Twice: the second Register replaces the first run's registrations.
	for range 2 {
		if err := c.Register(ctx, maps); err != nil {
			t.Fatal(err)
		}
	}
	// v2 UNSET removes a (prog, vers) on tcp and udp at once: registering
	// udp must not remove the tcp mapping just set.
	for _, q := range []struct {
		prog, vers, prot uint32
		want             uint16
	}{
		{rpc.ProgNFS, 3, portmap.IPProtoTCP, 2049},
		{rpc.ProgNFS, 3, portmap.IPProtoUDP, 2049},
		{rpc.ProgMount, 1, portmap.IPProtoTCP, 20048},
		{rpc.ProgMount, 1, portmap.IPProtoUDP, 20048},
		{rpc.ProgMount, 3, portmap.IPProtoTCP, 20048},
		{rpc.ProgMount, 3, portmap.IPProtoUDP, 20048},
	} {
		if port, err := c.GetPort(ctx, q.prog, q.vers, q.prot); err != nil || port != q.want {
			t.Errorf("GETPORT prog %d vers %d prot %d = %d, %v; want %d", q.prog, q.vers, q.prot, port, err, q.want)
		}
	}
	if got := len(p.Mappings()); got != 6+len(maps) {
		t.Errorf("%d mappings after Register, want %d", got, 6+len(maps))
	}
	// v2 cannot register an IPv6 netid: the v4 version error surfaces.
	_, err := c.Set(ctx, RpcbindMapping{Prog: rpc.ProgNFS, Vers: 3, Netid: "tcp6", Port: 2049})
	var re *rpc.ReplyError
	if !errors.As(err, &re) || re.Accept != rpc.ProgMismatch {
		t.Fatalf("Set tcp6 on a v2-only peer: %v, want PROG_MISMATCH", err)
	}
	if err := c.Unregister(ctx, maps); err != nil {
		t.Fatal(err)
	}
	if got := len(p.Mappings()); got != 6 {
		t.Fatalf("%d mappings left after v2 UNSET, want 6", got)
	}
}

// TestRpcbindClientNoRpcbind checks the error when nothing listens.
func TestRpcbindClientNoRpcbind(t *testing.T) {
	// A TCP and a UDP port that were just free.
	ln, pc := listenLoopback(t, 0)
	tcpAddr, udpAddr := ln.Addr().String(), pc.LocalAddr().String()
	ln.Close()
	pc.Close()
	ctx := ctxT(t)
	for _, c := range []*RpcbindClient{
		{Network: "tcp", Address: tcpAddr},
		{Network: "udp", Address: udpAddr, Timeout: time.Second},
		{Network: "unix", Address: filepath.Join(t.TempDir(), "rpcbind.sock")},
	} {
		start := time.Now()
		err := c.Register(ctx, ServiceMappings(2049, 20048, false))
		if !errors.Is(err, ErrNoRpcbind) {
			t.Errorf("%s %s: err = %v, want ErrNoRpcbind", c.Network, c.Address, err)
		}
		if d := time.Since(start); d > 5*time.Second {
			t.Errorf("%s: took %v", c.Network, d)
		}
	}
	if err := (&RpcbindClient{Network: "tcp", Address: tcpAddr}).Ping(ctx); err == nil || !strings.Contains(err.Error(), "no rpcbind") {
		t.Errorf("Ping: %v", err)
	}
}

// TestRpcbindRegisterSystem registers with Debian's rpcbind, run inside a
// private network namespace and a private /run, and checks the result with
// rpcinfo.
func TestRpcbindRegisterSystem(t *testing.T) {
	ns := netnstest.New(t, "rpcbind")
	netnstest.RequireTool(t, "rpcbind")
	netnstest.RequireTool(t, "rpcinfo")
	netnstest.RequireTool(t, "unshare")
	// rpcbind creates /run/rpcbind.sock and /run/rpcbind/: give it a
	// private tmpfs there so the host's /run is untouched. "-f -w" keeps it
	// in the foreground (Debian's "-h 127.0.0.1" crashes). unshare and sh
	// exec in place, so the process's pid is rpcbind's.
	proc := ns.Start("unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs tmpfs /run && mkdir -p /run/rpcbind && exec rpcbind -f -w")
	sock := "/proc/" + strconv.Itoa(proc.Pid()) + "/root/run/rpcbind.sock"
	ctx := ctxT(t)
	pmWaitFor(t, ctx, func() bool {
		select {
		case <-proc.Done():
			t.Fatalf("rpcbind exited: %v\n%s", proc.Err(), proc.Log())
		default:
		}
		_, err := os.Stat(sock)
		return err == nil
	})

	maps := ServiceMappings(2049, 20048, true)
	c := &RpcbindClient{Network: "unix", Address: sock}
	if err := c.Register(ctx, maps); err != nil {
		t.Fatal(err)
	}
	out := rpcinfo(t, ctx, ns, "-p", "127.0.0.1")
	for _, want := range []string{
		"100003    3   tcp   2049", "100003    3   udp   2049",
		"100005    1   tcp  20048", "100005    3   udp  20048",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("rpcinfo -p lacks %q:\n%s", want, out)
		}
	}
	out = rpcinfo(t, ctx, ns, "-s", "127.0.0.1")
	t.Logf("rpcinfo -s:\n%s", out)
	// rpcbind lists netids newest first and owners from SO_PEERCRED.
	owner := "superuser"
	if os.Geteuid() != 0 {
		owner = strconv.Itoa(os.Geteuid())
	}
	for _, want := range [][]string{
		{"100003", "3", "udp6,tcp6,udp,tcp", "nfs", owner},
		{"100005", "3,1", "udp6,tcp6,udp,tcp", "mountd", owner},
	} {
		if !containsLine(out, want...) {
			t.Errorf("rpcinfo -s lacks %q:\n%s", want, out)
		}
	}

	// Linux rpcbind takes SET only from its AF_LOCAL socket: over loopback
	// TCP it answers FALSE, which Register reports as ErrRpcbindRefused.
	// The zero client (unix socket first) is not used here because the
	// socket lives in rpcbind's private /run.
	err := ns.Do(func() error {
		return (&RpcbindClient{Network: "tcp", Address: "127.0.0.1:111"}).Register(ctx, ServiceMappings(0, 30000, false))
	})
	if err != nil && !errors.Is(err, ErrRpcbindRefused) {
		t.Fatalf("Register over loopback TCP: %v", err)
	}
	t.Logf("Register over loopback TCP: %v", err)

	if err := c.Unregister(ctx, maps); err != nil {
		t.Fatal(err)
	}
	out = rpcinfo(t, ctx, ns, "-p", "127.0.0.1")
	if strings.Contains(out, "100003") || strings.Contains(out, "20048") {
		t.Errorf("registrations left after Unregister:\n%s", out)
	}
}

func rpcinfo(t *testing.T, ctx context.Context, ns *netnstest.NS, args ...string) string {
	t.Helper()
	stdout, stderr, err := ns.Exec(ctx, append([]string{"rpcinfo"}, args...)...)
	if err != nil {
		t.Fatalf("%v\n%s%s", err, stdout, stderr)
	}
	return string(stdout)
}

// containsLine reports whether some line of out has fields starting with
// want.
func containsLine(out string, want ...string) bool {
	for line := range strings.Lines(out) {
		f := strings.Fields(line)
		if len(f) >= len(want) && slices.Equal(f[:len(want)], want) {
			return true
		}
	}
	return false
}

func pmWaitFor(t *testing.T, ctx context.Context, cond func() bool) {
	t.Helper()
	for !cond() {
		select {
		case <-ctx.Done():
			t.Fatal("timed out waiting")
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// TestRpcbindClientTargets checks where the zero client looks: the AF_LOCAL
// socket first (Linux rpcbind takes SET only there), then loopback TCP.
func TestRpcbindClientTargets(t *testing.T) {
	got := (&RpcbindClient{}).targets()
	want := []target{{"unix", DefaultRpcbindSocket}, {"tcp", "127.0.0.1:111"}}
	if !slices.Equal(got, want) {
		t.Fatalf("targets = %v, want %v", got, want)
	}
	got = (&RpcbindClient{Network: "udp", Address: "127.0.0.1:1111"}).targets()
	if !slices.Equal(got, []target{{"udp", "127.0.0.1:1111"}}) {
		t.Fatalf("targets = %v", got)
	}
}

// TestRpcbindWatch: a daemon without a portmapper of its own registers
// with an rpcbind that starts after it, registers again when rpcbind
// loses its mappings, leaves another server's NFS mapping alone and
// removes its mappings at shutdown. rpcbind runs in a private network
// namespace and /run; the daemon reaches it through a symlink to its
// socket, made before rpcbind runs.
func TestRpcbindWatch(t *testing.T) {
	ns := netnstest.New(t, "rpcbindw")
	netnstest.RequireTool(t, "rpcbind")
	netnstest.RequireTool(t, "rpcinfo")
	netnstest.RequireTool(t, "unshare")
	dir := t.TempDir()
	gate := filepath.Join(dir, "go")
	proc := ns.Start("unshare", "-m", "--propagation", "private", "sh", "-c",
		"mount -t tmpfs tmpfs /run && mkdir -p /run/rpcbind && while [ ! -e "+gate+" ]; do sleep 0.05; done; exec rpcbind -f -w")
	sock := filepath.Join(dir, "rpcbind.sock")
	if err := os.Symlink("/proc/"+strconv.Itoa(proc.Pid())+"/root/run/rpcbind.sock", sock); err != nil {
		t.Fatal(err)
	}
	export := filepath.Join(dir, "export")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	var logs logtest.Buffer
	d, err := Start(context.Background(), Config{
		ExportsText:  export + " 127.0.0.1(rw)\n",
		Listen:       "127.0.0.1",
		StateDir:     filepath.Join(dir, "state"),
		NoPortmap:    true,
		Rpcbind:      &RpcbindClient{Network: "unix", Address: sock, Timeout: time.Second},
		RpcbindCheck: 50 * time.Millisecond,
		Logger:       slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	if !strings.Contains(logs.String(), "not registered with the system rpcbind") {
		t.Errorf("no warning that rpcbind was missing at start:\n%s", logs.String())
	}
	ctx := ctxT(t)
	nfsLine := "100003    3   tcp  " + strconv.Itoa(int(d.NFSAddr().Port()))
	registered := func() bool {
		select {
		case <-proc.Done():
			t.Fatalf("rpcbind exited: %v\n%s", proc.Err(), proc.Log())
		default:
		}
		stdout, _, err := ns.Exec(ctx, "rpcinfo", "-p", "127.0.0.1")
		return err == nil && strings.Contains(string(stdout), nfsLine)
	}

	// rpcbind starts after the daemon: the watch registers.
	if err := os.WriteFile(gate, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	pmWaitFor(t, ctx, registered)

	// rpcbind loses the mappings (as a restart without warm start does).
	c := &RpcbindClient{Network: "unix", Address: sock}
	if err := c.Unregister(ctx, d.mappings); err != nil {
		t.Fatal(err)
	}
	pmWaitFor(t, ctx, registered)
	if !strings.Contains(logs.String(), "registered with the system rpcbind again") {
		t.Errorf("re-registration not logged:\n%s", logs.String())
	}

	// MOUNT alone lost (a local mountd that stopped unregistered it):
	// registered again too, and NFS's mappings are left as they are.
	for _, m := range d.mappings {
		if m.Prog == rpc.ProgMount {
			if _, err := c.Unset(ctx, m.Prog, m.Vers, m.Netid); err != nil {
				t.Fatal(err)
			}
		}
	}
	mountLine := "100005    3   tcp  " + strconv.Itoa(int(d.MountAddr().Port()))
	pmWaitFor(t, ctx, func() bool {
		stdout, _, err := ns.Exec(ctx, "rpcinfo", "-p", "127.0.0.1")
		return err == nil && strings.Contains(string(stdout), mountLine) && strings.Contains(string(stdout), nfsLine)
	})

	// Another server's NFS mapping is left alone. The watch may register
	// ours again between the UNSET and the other server's SET (it ticks
	// every 50 ms): then the SET is refused, and tried again.
	other := RpcbindMapping{Prog: rpc.ProgNFS, Vers: 3, Netid: portmap.NetidTCP, Port: 2999}
	for try := 0; ; try++ {
		for _, m := range d.mappings {
			if m.Prog == rpc.ProgNFS {
				if _, err := c.Unset(ctx, m.Prog, m.Vers, m.Netid); err != nil {
					t.Fatal(err)
				}
			}
		}
		ok, err := c.Set(ctx, other)
		if err != nil || !ok && try == 50 {
			t.Fatalf("SET of another server's mapping: %v %v", ok, err)
		}
		if ok {
			break
		}
	}
	pmWaitFor(t, ctx, func() bool { return strings.Contains(logs.String(), "another server's port") })
	if port, err := c.GetPort(ctx, rpc.ProgNFS, 3, portmap.IPProtoTCP); err != nil || port != 2999 {
		t.Errorf("another server's mapping replaced: port %d, %v", port, err)
	}

	// Shutdown removes the daemon's mappings (MOUNT's among them).
	if err := d.Shutdown(context.Background()); err != nil {
		t.Fatal(err)
	}
	if port, err := c.GetPort(ctx, rpc.ProgMount, 3, portmap.IPProtoTCP); err != nil || port != 0 {
		t.Errorf("MOUNT still mapped after shutdown: port %d, %v", port, err)
	}
	if port, err := c.GetPort(ctx, rpc.ProgNFS, 3, portmap.IPProtoTCP); err != nil || port != 2999 {
		t.Errorf("another server's NFS mapping after shutdown: port %d, %v; want 2999 left alone", port, err)
	}
}
