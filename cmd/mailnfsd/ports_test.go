package main

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestPortInUse starts a real mailnfsd whose NFS or portmapper port is
// held by another process, as on a box where the kernel's NFS server or
// the system's rpcbind still runs. It must exit 1 with an error that names
// the port and says what to do.
func TestPortInUse(t *testing.T) {
	nfsdtest.RequireRoot(t) // the exports open before the ports
	dir := t.TempDir()
	export := filepath.Join(dir, "export")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	exports := filepath.Join(dir, "exports")
	writeFile(t, exports, export+" 127.0.0.1(rw)\n")
	for _, tc := range []struct {
		name, flag, want string
	}{
		{"NFS", "-nfs-port", "NFS port: listen tcp 127.0.0.1:%d: bind: address already in use; another NFS server"},
		{"portmap", "-portmap-port", "portmap port: listen tcp 127.0.0.1:%d: bind: address already in use; another portmapper (the system's rpcbind?) holds it: stop it, or serve no portmapper and register with it (mailnfsd -portmap-port 0)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ports := freePorts(t, 2)
			ln, err := net.Listen("tcp", "127.0.0.1:"+strconv.Itoa(ports[0]))
			if err != nil {
				t.Fatal(err)
			}
			defer ln.Close()
			other := "-portmap-port"
			if tc.flag == other {
				other = "-nfs-port"
			}
			p := startBinary(t, "-exports", exports, "-state-dir", filepath.Join(dir, "state"), "-listen", "127.0.0.1",
				tc.flag, strconv.Itoa(ports[0]), other, strconv.Itoa(ports[1]))
			if code := p.exitCode(t); code != 1 {
				t.Fatalf("exit %d, want 1\n%s", code, p.stderr.String())
			}
			want := strings.Replace(tc.want, "%d", strconv.Itoa(ports[0]), 1)
			if !strings.Contains(p.stderr.String(), want) {
				t.Errorf("stderr lacks %q:\n%s", want, p.stderr.String())
			}
		})
	}
}
