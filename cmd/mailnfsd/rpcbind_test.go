package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestNoPortmapServingLine runs the real mailnfsd with -portmap-port 0
// (register with the system's rpcbind) in a network namespace with a
// private /run, once with Debian's rpcbind running there and once without
// one. The "mailnfsd serving" line must say where clients find the ports:
// the system rpcbind only when the registration succeeded.
func TestNoPortmapServingLine(t *testing.T) {
	netnstest.RequireRoot(t)
	netnstest.RequireTool(t, "unshare")
	netnstest.RequireTool(t, "rpcbind")
	bin := nfsdtest.Binary(t)
	dir := t.TempDir()
	export := filepath.Join(dir, "export")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	exports := filepath.Join(dir, "exports")
	writeFile(t, exports, export+" 127.0.0.1(rw)\n")
	for _, tc := range []struct {
		name, rpcbind, want string
	}{
		{"WithRpcbind", "rpcbind -f -w & sleep 1; ", `portmap="system rpcbind"`},
		{"WithoutRpcbind", "", `portmap="none (not registered with a system rpcbind`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ns := netnstest.New(t, "pm0")
			// rpcbind creates /run/rpcbind.sock: a private tmpfs keeps the
			// host's /run untouched, and a host's rpcbind out of sight.
			p := ns.Start("unshare", "-m", "--propagation", "private", "sh", "-c",
				"mount -t tmpfs tmpfs /run && mkdir -p /run/rpcbind && "+tc.rpcbind+
					"exec "+bin+" -exports "+exports+" -state-dir "+filepath.Join(dir, "state-"+tc.name)+
					" -listen 127.0.0.1 -nfs-port 2049 -portmap-port 0")
			deadline := time.Now().Add(30 * time.Second)
			for !strings.Contains(p.Log(), "mailnfsd serving") {
				select {
				case <-p.Done():
					t.Fatalf("mailnfsd exited: %v\n%s", p.Err(), p.Log())
				default:
				}
				if time.Now().After(deadline) {
					t.Fatalf("no serving line:\n%s", p.Log())
				}
				time.Sleep(20 * time.Millisecond)
			}
			for _, line := range strings.Split(p.Log(), "\n") {
				if strings.Contains(line, "mailnfsd serving") && !strings.Contains(line, tc.want) {
					t.Errorf("serving line %q lacks %q", line, tc.want)
				}
			}
		})
	}
}
