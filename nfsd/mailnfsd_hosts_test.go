package nfsd_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestDaemonReloadHostsAndExports: Reload swaps the exports and the
// hosts_access rules together, and a broken file in either keeps the old
// rules of both.
func TestDaemonReloadHostsAndExports(t *testing.T) {
	nfsdtest.RequireRoot(t)
	dir := t.TempDir()
	a, b := filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exports, allow := filepath.Join(dir, "exports"), filepath.Join(dir, "hosts.allow")
	write := func(p, s string) {
		t.Helper()
		if err := os.WriteFile(p, []byte(s), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write(exports, a+" 127.0.0.1(rw)\n")
	write(allow, "nfsd : 127.0.0.1 : allow\nnfsd : ALL : deny\n")
	d, err := nfsd.Start(context.Background(), nfsd.Config{
		ExportsFile: exports, HostsAllow: allow, HostsDeny: "none",
		Listen: "127.0.0.1", StateDir: filepath.Join(dir, "state"),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	state := func() (int, int) { return len(d.Exports.Table().Exports), len(d.Hosts.Access().Rules) }
	if e, h := state(); e != 1 || h != 2 {
		t.Fatalf("start: %d exports, %d hosts rules", e, h)
	}

	write(exports, a+" 127.0.0.1(rw)\n"+b+" 127.0.0.1(rw)\n")
	write(allow, "nfsd : 127.0.0.1 : allow\nnfsd : ALL : deny\nALL : ALL : allow\n")
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if e, h := state(); e != 2 || h != 3 {
		t.Fatalf("after reload: %d exports, %d hosts rules, want 2 and 3", e, h)
	}

	// Broken hosts.allow, good new exports: neither changes.
	write(exports, a+" 127.0.0.1(rw)\n")
	write(allow, "nfsd : 127.0.0.1/99\n")
	err = d.Reload()
	if err == nil || !strings.Contains(err.Error(), allow+":1:18:") {
		t.Fatalf("Reload with a broken hosts.allow: %v", err)
	}
	if e, h := state(); e != 2 || h != 3 {
		t.Fatalf("after a broken hosts.allow: %d exports, %d hosts rules, want 2 and 3", e, h)
	}
	// Broken exports, good new hosts.allow: neither changes.
	write(exports, a+" -mask foo\n")
	write(allow, "ALL : ALL : allow\n")
	if err := d.Reload(); err == nil {
		t.Fatal("Reload with broken exports succeeded")
	}
	if e, h := state(); e != 2 || h != 3 {
		t.Fatalf("after broken exports: %d exports, %d hosts rules, want 2 and 3", e, h)
	}

	// The rules are enforced on the wire: loopback is allowed by nfsd's
	// rule and the portmapper always answers loopback.
	c := nfsdtest.Dial(t, "tcp", d.PortmapAddr())
	c.Null(t, portmap.Prog, portmap.V2)
	n := nfsdtest.Dial(t, "udp", d.NFSAddr())
	if _, err := n.Call(100003, 3, 0, nfsdtest.AuthSys(1, 1), nil); err != nil {
		t.Fatalf("NFS NULL from an allowed host: %v", err)
	}
	// Deny loopback for nfsd: the call is refused with AUTH_TOOWEAK.
	write(exports, a+" 127.0.0.1(rw)\n")
	write(allow, "nfsd : ALL : deny\n")
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	_, err = n.Call(100003, 3, 0, nfsdtest.AuthSys(1, 1), nil)
	var re *rpc.ReplyError
	if !errors.As(err, &re) || re.Auth != rpc.AuthTooWeak {
		t.Fatalf("NFS NULL from a denied host: %v, want AUTH_TOOWEAK", err)
	}
}

// TestDaemonClosesDeniedHostAtAccept: when the hosts_access rules refuse a
// host every call (portmapper, mountd and nfsd), the daemon closes its TCP
// connections as soon as they are accepted, so a denied host holds none; an
// allowed host is served. It runs in a private network namespace with
// non-loopback addresses, since loopback callers may always use the
// portmapper.
func TestDaemonClosesDeniedHostAtAccept(t *testing.T) {
	nfsdtest.RequireRoot(t)
	netnstest.RequireTool(t, "ip")
	ns := netnstest.New(t, "accept")
	const server, allowed, denied = "10.9.0.1", "10.9.0.2", "10.9.0.3"
	for _, a := range []string{server, allowed, denied} {
		ns.IP("addr", "add", a+"/32", "dev", "lo")
	}
	dir := t.TempDir()
	export := filepath.Join(dir, "export")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	exports, allow := filepath.Join(dir, "exports"), filepath.Join(dir, "hosts.allow")
	if err := os.WriteFile(exports, []byte(export+" 10.9.0.0/24(rw)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(allow, []byte("rpcbind mountd nfsd : "+allowed+" : allow\nALL : ALL : deny\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var d *nfsd.Daemon
	if err := ns.Do(func() error {
		var err error
		d, err = nfsd.Start(context.Background(), nfsd.Config{
			ExportsFile: exports, HostsAllow: allow, HostsDeny: "none",
			Listen: server, StateDir: filepath.Join(dir, "state"),
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
	dial := func(src string, to netip.AddrPort) net.Conn {
		t.Helper()
		var c net.Conn
		if err := ns.Do(func() error {
			var err error
			dl := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
			c, err = dl.Dial("tcp", to.String())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		c.SetDeadline(time.Now().Add(10 * time.Second))
		return c
	}
	for _, to := range []netip.AddrPort{d.NFSAddr(), d.PortmapAddr()} {
		c := dial(denied, to)
		var b [1]byte
		if n, err := c.Read(b[:]); n != 0 || err == nil || errors.Is(err, os.ErrDeadlineExceeded) {
			t.Errorf("denied host's connection to %s: read %d bytes, %v; want it closed at once", to, n, err)
		}
	}
	c := dial(allowed, d.NFSAddr())
	var e xdr.Encoder
	rpc.CallHeader{XID: 7, Prog: 100003, Vers: 3, Proc: 0}.Encode(&e)
	if _, err := c.Write(rpc.FrameRecord(e.Bytes())); err != nil {
		t.Fatal(err)
	}
	rec, err := rpc.NewRecordReader(c, 0).Next()
	if err != nil {
		t.Fatalf("allowed host: %v", err)
	}
	if xid, err := rpc.DecodeReply(xdr.NewDecoder(rec)); xid != 7 || err != nil {
		t.Fatalf("allowed host's NFS NULL: xid %d, %v", xid, err)
	}
	if st := d.Server.Stats(); st.ConnsDenied != 2 || st.ConnsAccepted != 1 {
		t.Errorf("ConnsDenied %d ConnsAccepted %d, want 2 and 1", st.ConnsDenied, st.ConnsAccepted)
	}
}
