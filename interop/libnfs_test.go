package interop

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/internal/netnstest"
)

// libnfsSizes are the file sizes copied through libnfs: empty, one byte,
// one page, and just over the 1 MiB maximum transfer size.
var libnfsSizes = []int{0, 1, 4096, 1<<20 + 1}

// lsEntry is one line of nfs-ls output:
// "-rw-r--r--  1  1000  1000      4096 name".
type lsEntry struct {
	mode     string
	uid, gid int
	size     int64
}

func parseNfsLs(out string) map[string]lsEntry {
	m := map[string]lsEntry{}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) < 6 || len(f[0]) != 10 {
			continue
		}
		var e lsEntry
		e.mode = f[0]
		e.uid, _ = strconv.Atoi(f[2])
		e.gid, _ = strconv.Atoi(f[3])
		e.size, _ = strconv.ParseInt(f[4], 10, 64)
		m[strings.Join(f[5:], " ")] = e
	}
	return m
}

// diskEntry is the same facts read from the server's disk.
func diskEntry(t *testing.T, p string) lsEntry {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return lsEntry{mode: lsMode(fi.Mode()), uid: int(st.Uid), gid: int(st.Gid), size: fi.Size()}
}

// lsMode formats m as ls -l does (without setuid/sticky details, which the
// tests do not use).
func lsMode(m fs.FileMode) string {
	b := []byte("----------")
	switch {
	case m.IsDir():
		b[0] = 'd'
	case m&fs.ModeSymlink != 0:
		b[0] = 'l'
	}
	const rwx = "rwxrwxrwx"
	for i := 0; i < 9; i++ {
		if m&(1<<uint(8-i)) != 0 {
			b[1+i] = rwx[i]
		}
	}
	return string(b)
}

// TestLibnfsCopy: nfs-cp files of several sizes into the export, nfs-cat and
// nfs-cp them back byte-identical, check the server's disk, and check that
// nfs-ls shows the sizes, owners and modes the disk has.
func TestLibnfsCopy(t *testing.T) {
	nfsCp := netnstest.RequireTool(t, "nfs-cp")
	nfsCat := netnstest.RequireTool(t, "nfs-cat")
	nfsLs := netnstest.RequireTool(t, "nfs-ls")
	s := startServer(t, serverOpts{})
	local := t.TempDir()
	_ = os.Chmod(local, 0o755)

	want := map[string][]byte{}
	for _, size := range libnfsSizes {
		name := fmt.Sprintf("file-%d", size)
		data := make([]byte, size)
		_, _ = rand.Read(data)
		want[name] = data
		t.Run(fmt.Sprintf("Size%d", size), func(t *testing.T) {
			src := filepath.Join(local, name)
			if err := os.WriteFile(src, data, 0o644); err != nil {
				t.Fatal(err)
			}
			s.exec(nfsCp, src, s.url(name))

			onDisk, err := os.ReadFile(filepath.Join(s.root, name))
			if err != nil {
				t.Fatalf("file not on the server's disk: %v", err)
			}
			if !bytes.Equal(onDisk, data) {
				t.Fatalf("disk copy differs: %d bytes, want %d", len(onDisk), len(data))
			}

			got := s.exec(nfsCat, s.url(name))
			if !bytes.Equal([]byte(got), data) {
				t.Fatalf("nfs-cat returned %d bytes, want %d (or different content)", len(got), len(data))
			}

			back := filepath.Join(local, name+".back")
			s.exec(nfsCp, s.url(name), back)
			gotBack, err := os.ReadFile(back)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(gotBack, data) {
				t.Fatalf("nfs-cp back returned %d bytes, want %d (or different content)", len(gotBack), len(data))
			}
		})
	}

	t.Run("Listing", func(t *testing.T) {
		// Objects made on the server's side with known modes and owners.
		dir := filepath.Join(s.root, "private")
		if err := os.Mkdir(dir, 0o750); err != nil {
			t.Fatal(err)
		}
		f := filepath.Join(s.root, "readable")
		if err := os.WriteFile(f, []byte("x\n"), 0o640); err != nil {
			t.Fatal(err)
		}
		// Chmod again: the umask may have narrowed the modes.
		for p, mode := range map[string]fs.FileMode{dir: 0o750, f: 0o640} {
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, testUID, testGID+1); err != nil {
				t.Fatal(err)
			}
		}

		out := s.exec(nfsLs, s.url(""))
		ls := parseNfsLs(out)
		names := []string{"private", "readable"}
		for name := range want {
			names = append(names, name)
		}
		for _, name := range names {
			got, ok := ls[name]
			if !ok {
				t.Errorf("nfs-ls does not list %s:\n%s", name, out)
				continue
			}
			if w := diskEntry(t, filepath.Join(s.root, name)); got != w {
				t.Errorf("nfs-ls %s = %+v, disk has %+v", name, got, w)
			}
		}
		if got := ls["private"].mode; got != "drwxr-x---" {
			t.Errorf("private listed as %q, want drwxr-x---", got)
		}
		if got := ls["readable"].mode; got != "-rw-r-----" {
			t.Errorf("readable listed as %q, want -rw-r-----", got)
		}
		for name, data := range want {
			if ls[name].size != int64(len(data)) {
				t.Errorf("nfs-ls size of %s = %d, want %d", name, ls[name].size, len(data))
			}
		}
	})
}

// TestLibnfsPortmapperOnly: a URL without ports makes libnfs ask the
// portmapper for the MOUNT and NFS ports; it must reach the server that way.
func TestLibnfsPortmapperOnly(t *testing.T) {
	nfsLs := netnstest.RequireTool(t, "nfs-ls")
	nfsCat := netnstest.RequireTool(t, "nfs-cat")
	s := startServer(t, serverOpts{setup: func(t *testing.T, root string) {
		writeOwned(t, filepath.Join(root, "hello"), "hello through the portmapper\n")
	}})
	if u := s.url("hello"); strings.Contains(u, "port=") {
		t.Fatalf("URL %s names a port", u)
	}
	if got := s.exec(nfsCat, s.url("hello")); got != "hello through the portmapper\n" {
		t.Fatalf("nfs-cat = %q", got)
	}
	if out := s.exec(nfsLs, s.url("")); !strings.Contains(out, "hello") {
		t.Fatalf("nfs-ls does not list hello:\n%s", out)
	}
}

// TestLibnfsIPv6: a server listening on ::1 serves libnfs through the
// portmapper too. Over IPv6 libnfs asks with rpcbind v3 GETADDR and an
// empty netid, which rpcbind answers for the netid of the transport the
// call came on (tcp6): an empty netid must not read as "not registered".
func TestLibnfsIPv6(t *testing.T) {
	nfsCat := netnstest.RequireTool(t, "nfs-cat")
	s := startServer(t, serverOpts{
		listen:  "::1",
		exports: func(root string) string { return root + " ::1(rw)\n" },
		setup: func(t *testing.T, root string) {
			writeOwned(t, filepath.Join(root, "hello"), "hello over IPv6\n")
		},
	})
	if got := s.exec(nfsCat, s.urlPorts("hello")); got != "hello over IPv6\n" {
		t.Fatalf("nfs-cat with ports = %q", got)
	}
	if got := s.exec(nfsCat, s.url("hello")); got != "hello over IPv6\n" {
		t.Fatalf("nfs-cat through the portmapper = %q", got)
	}
}

// TestLibnfsWithoutPortmapper: with the portmapper off, libnfs reaches the
// server with explicit nfsport and mountport, and fails without them.
func TestLibnfsWithoutPortmapper(t *testing.T) {
	nfsLs := netnstest.RequireTool(t, "nfs-ls")
	nfsCp := netnstest.RequireTool(t, "nfs-cp")
	nfsCat := netnstest.RequireTool(t, "nfs-cat")
	s := startServer(t, serverOpts{noPortmap: true})

	local := filepath.Join(t.TempDir(), "msg")
	data := []byte("direct ports, no portmapper\n")
	if err := os.WriteFile(local, data, 0o644); err != nil {
		t.Fatal(err)
	}
	s.exec(nfsCp, local, s.urlPorts("msg"))
	if got := s.exec(nfsCat, s.urlPorts("msg")); got != string(data) {
		t.Fatalf("nfs-cat = %q, want %q", got, data)
	}
	if out := s.exec(nfsLs, s.urlPorts("")); !strings.Contains(out, "msg") {
		t.Fatalf("nfs-ls does not list msg:\n%s", out)
	}
	// Nothing listens on 111 in this namespace, so the portmapper URL fails.
	if out, errOut, err := s.execErr(nfsLs, s.url("")); err == nil {
		t.Fatalf("nfs-ls through a missing portmapper succeeded:\n%s%s", out, errOut)
	}
}

// writeOwned writes a file owned by the test identity.
func writeOwned(t *testing.T, p, content string) {
	t.Helper()
	if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, testUID, testGID); err != nil {
		t.Fatal(err)
	}
}
