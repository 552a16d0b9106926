package nfsd_test

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/internal/rpc"
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
