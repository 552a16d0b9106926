package interop

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/internal/netnstest"
)

// rpcinfoEntry is one line of `rpcinfo -p`.
type rpcinfoEntry struct {
	prog, vers int
	proto      string
	port       int
}

func parseRpcinfoP(out string) []rpcinfoEntry {
	var es []rpcinfoEntry
	for _, line := range strings.Split(out, "\n") {
		var e rpcinfoEntry
		if n, _ := fmt.Sscanf(line, "%d %d %s %d", &e.prog, &e.vers, &e.proto, &e.port); n == 4 {
			es = append(es, e)
		}
	}
	return es
}

// TestPortmapRpcinfo: rpcinfo (rpcbind package) lists and pings our
// programs through the built-in portmapper on 127.0.0.1:111.
func TestPortmapRpcinfo(t *testing.T) {
	rpcinfo := netnstest.RequireTool(t, "rpcinfo")
	s := startServer(t, serverOpts{})

	t.Run("DumpV2", func(t *testing.T) {
		out := s.exec(rpcinfo, "-p", "127.0.0.1")
		got := map[rpcinfoEntry]bool{}
		for _, e := range parseRpcinfoP(out) {
			got[e] = true
		}
		var missing []string
		for _, proto := range []string{"tcp", "udp"} {
			for _, want := range []rpcinfoEntry{
				{100000, 2, proto, portmapPort},
				{100005, 1, proto, mountPort},
				{100005, 3, proto, mountPort},
				{100003, 3, proto, nfsPort},
			} {
				if !got[want] {
					missing = append(missing, fmt.Sprintf("%d v%d %s port %d", want.prog, want.vers, want.proto, want.port))
				}
			}
		}
		if len(missing) > 0 {
			t.Fatalf("rpcinfo -p lacks %s; output:\n%s", strings.Join(missing, ", "), out)
		}
		// NFSv2 is not served, so it must not be advertised.
		for e := range got {
			if e.prog == 100003 && e.vers != 3 {
				t.Errorf("rpcinfo -p advertises NFS v%d: %+v", e.vers, e)
			}
		}
	})

	// Without -p, rpcinfo speaks rpcbind v3/v4 and prints universal
	// addresses. A wildcard host part (0.0.0.0) is what rpcbind shows for a
	// service bound to every address; GETADDR merges it with the address the
	// caller used. The port must be right either way.
	t.Run("DumpRpcbind", func(t *testing.T) {
		out := s.exec(rpcinfo, "127.0.0.1")
		for _, want := range []struct {
			prog string
			port int
		}{{"100003", nfsPort}, {"100005", mountPort}} {
			for _, netid := range []string{"tcp", "udp"} {
				suffix := fmt.Sprintf(".%d.%d", want.port>>8, want.port&255)
				found := false
				for _, line := range strings.Split(out, "\n") {
					f := strings.Fields(line)
					if len(f) >= 4 && f[0] == want.prog && f[2] == netid &&
						(f[3] == "127.0.0.1"+suffix || f[3] == "0.0.0.0"+suffix) {
						found = true
					}
				}
				if !found {
					t.Errorf("rpcinfo (rpcbind dump) has no %s line for %s at port %d:\n%s", netid, want.prog, want.port, out)
				}
			}
		}
	})

	// GETADDR through rpcbind v3/v4 (-T), then a NULL call to the address
	// it returned.
	for _, netid := range []string{"tcp", "udp"} {
		t.Run("GetaddrNull/"+netid, func(t *testing.T) {
			out := s.exec(rpcinfo, "-T", netid, "127.0.0.1", "100003", "3")
			if !strings.Contains(out, "ready and waiting") {
				t.Fatalf("rpcinfo -T %s 127.0.0.1 100003 3: %s", netid, out)
			}
		})
	}

	// NULL calls to each program and version, on both transports.
	for _, proto := range []string{"-t", "-u"} {
		for _, pv := range [][2]string{{"100003", "3"}, {"100005", "1"}, {"100005", "3"}, {"100000", "2"}} {
			t.Run(fmt.Sprintf("Null%s/%s.v%s", proto, pv[0], pv[1]), func(t *testing.T) {
				out := s.exec(rpcinfo, proto, "127.0.0.1", pv[0], pv[1])
				if !strings.Contains(out, "ready and waiting") {
					t.Fatalf("rpcinfo %s 127.0.0.1 %s %s: %s", proto, pv[0], pv[1], out)
				}
			})
		}
	}

	// An unregistered version must be refused (PROG_MISMATCH), not answered.
	t.Run("NFSv2Refused", func(t *testing.T) {
		out, errOut, err := s.execErr(rpcinfo, "-t", "127.0.0.1", "100003", "2")
		if err == nil {
			t.Fatalf("rpcinfo -t ... 100003 2 succeeded: %s", out)
		}
		if !strings.Contains(out+errOut, "version") {
			t.Errorf("unexpected refusal text: %s %s", out, errOut)
		}
	})
}

// TestShowmount: showmount (nfs-common) lists the exports through the
// portmapper and MOUNT EXPORT.
func TestShowmount(t *testing.T) {
	showmount := netnstest.RequireTool(t, "showmount")
	var second string
	s := startServer(t, serverOpts{
		setup: func(t *testing.T, root string) {
			second = filepath.Join(filepath.Dir(root), "archive")
			if err := os.Mkdir(second, 0o755); err != nil {
				t.Fatal(err)
			}
		},
		exports: func(root string) string {
			return root + " 127.0.0.1(rw)\n" + second + " 127.0.0.0/8(ro)\n"
		},
	})
	out := s.exec(showmount, "-e", "127.0.0.1")
	lines := map[string]string{}
	for _, line := range strings.Split(out, "\n") {
		if f := strings.Fields(line); len(f) >= 2 && strings.HasPrefix(f[0], "/") {
			lines[f[0]] = strings.Join(f[1:], " ")
		}
	}
	if got := lines[s.root]; !strings.Contains(got, "127.0.0.1") {
		t.Errorf("export %s: clients %q, want 127.0.0.1; output:\n%s", s.root, got, out)
	}
	if got := lines[second]; !strings.Contains(got, "127.0.0.0/8") {
		t.Errorf("export %s: clients %q, want 127.0.0.0/8; output:\n%s", second, got, out)
	}
	if len(lines) != 2 {
		t.Errorf("showmount -e lists %d exports, want 2:\n%s", len(lines), out)
	}
}
