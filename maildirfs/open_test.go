package maildirfs_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// TestOpenWithoutCapability re-runs this test binary as an unprivileged
// user: Open must fail with an error telling the operator to run as root.
func TestOpenWithoutCapability(t *testing.T) {
	if dir := os.Getenv("MAILDIRFS_UNPRIV_DIR"); dir != "" {
		_, err := maildirfs.Open(dir, maildirfs.Options{StateDir: filepath.Join(dir, "state")})
		if err == nil || !strings.Contains(err.Error(), "run mailnfsd as root") {
			t.Fatalf("unprivileged Open: %v", err)
		}
		return
	}
	mdtest.RequireRoot(t)
	dir, err := os.MkdirTemp("", "maildirfs-unpriv")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Chmod(dir, 0o777)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	// The test binary may live in a 0700 build directory: copy it.
	bin := filepath.Join(dir, "maildirfs.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(bin, "-test.run", "^TestOpenWithoutCapability$", "-test.v")
	cmd.Env = append(os.Environ(), "MAILDIRFS_UNPRIV_DIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: 65534, Gid: 65534}}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("unprivileged child: %v\n%s", err, out)
	}
}

func TestLinkMax(t *testing.T) {
	s := mdtest.New(t)
	if s.LinkMax() < 1000 {
		t.Fatalf("LinkMax = %d", s.LinkMax())
	}
}

func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skipf("no /proc/self/fd: %v", err)
	}
	return len(ents)
}

// TestCloseReleasesFds: after a workload that opens nodes, io fds, directory
// cursors and evicts some, Close leaves no fd behind.
func TestCloseReleasesFds(t *testing.T) {
	mdtest.RequireRoot(t)
	dir := t.TempDir()
	for _, d := range []string{"Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"} {
		os.Mkdir(filepath.Join(dir, d), 0o755)
	}
	before := openFds(t)
	f, err := maildirfs.Open(dir, maildirfs.Options{StateDir: t.TempDir(), MaxOpenNodes: 8})
	if err != nil {
		t.Fatal(err)
	}
	r := f.Root()
	for i := range 30 {
		name := fmt.Sprintf("f%d", i)
		h, _, _, err := f.Create(r, root, name, maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{})
		if err != nil {
			t.Fatal(err)
		}
		f.Write(h, root, 0, []byte("x"), maildirfs.FileSync)
		f.Read(h, root, 0, make([]byte, 1))
		if i%3 == 0 {
			f.Remove(r, root, name)
		}
	}
	for range 3 {
		f.ReadDir(r, root, 0, true, func(*maildirfs.DirEntry) bool { return true })
	}
	if err := f.Close(); err != nil {
		t.Fatal(err)
	}
	if after := openFds(t); after != before {
		t.Fatalf("%d fds open before Open, %d after Close", before, after)
	}
	if _, err := f.Getattr(r); err == nil {
		t.Fatal("Getattr after Close succeeded")
	}
}

// TestMaxFileSize checks FSINFO's maxfilesize against the kernel: a file
// can be made exactly that long (sparse), and one byte more is EFBIG when
// the limit is below 2^63-1. Run on TMPDIR's filesystem and on tmpfs.
func TestMaxFileSize(t *testing.T) {
	s := mdtest.New(t)
	dirs := map[string]uint64{s.Dir: s.MaxFileSize()}
	if st, err := os.Stat("/dev/shm"); err == nil && st.IsDir() {
		shm, err := os.MkdirTemp("/dev/shm", "maxfilesize")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.RemoveAll(shm) })
		fsys, err := maildirfs.Open(shm, maildirfs.Options{StateDir: filepath.Join(t.TempDir(), "state"), Logger: slog.New(slog.DiscardHandler)})
		if err != nil {
			t.Fatal(err)
		}
		dirs[shm] = fsys.MaxFileSize()
		if err := fsys.Close(); err != nil {
			t.Fatal(err)
		}
	}
	for dir, max := range dirs {
		var sfs syscall.Statfs_t
		if err := syscall.Statfs(dir, &sfs); err != nil {
			t.Fatal(err)
		}
		t.Logf("%s (type %#x): maxfilesize %d", dir, sfs.Type, max)
		if sfs.Type == 0xEF53 && max >= 1<<63-1 {
			t.Errorf("%s is ext2/3/4 but maxfilesize is %d", dir, max)
		}
		f, err := os.CreateTemp(dir, "big")
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(int64(max)); err != nil {
			t.Errorf("%s: truncate to maxfilesize %d: %v", dir, max, err)
		}
		if max < 1<<63-1 {
			if err := f.Truncate(int64(max) + 1); !errors.Is(err, syscall.EFBIG) {
				t.Errorf("%s: truncate to maxfilesize+1: %v, want EFBIG", dir, err)
			}
		}
		f.Close()
		os.Remove(f.Name())
	}
}
