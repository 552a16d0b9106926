package maildirfs_test

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// TestUnprivilegedWithCapability: an unprivileged server that holds only
// CAP_DAC_READ_SEARCH (setcap cap_dac_read_search+ep mailnfsd) works with
// NoChown on an export it owns.
func TestUnprivilegedWithCapability(t *testing.T) {
	if dir := os.Getenv("MAILDIRFS_CAP_DIR"); dir != "" {
		f, err := maildirfs.Open(dir, maildirfs.Options{StateDir: filepath.Join(dir, ".state"), NoChown: true})
		if err != nil {
			t.Fatalf("Open with CAP_DAC_READ_SEARCH: %v", err)
		}
		defer f.Close()
		c := maildirfs.Cred{UID: 65534, GID: 65534}
		tmp, _, _, err := f.Lookup(f.Root(), c, "tmp")
		if err != nil {
			t.Fatal(err)
		}
		h, _, _, err := f.Create(tmp, c, "m", maildirfs.Exclusive, maildirfs.SetAttr{}, [8]byte{1})
		if err != nil {
			t.Fatalf("create: %v", err)
		}
		if _, _, _, _, err := f.Write(h, c, 0, []byte("mail"), maildirfs.FileSync); err != nil {
			t.Fatalf("write: %v", err)
		}
		if _, _, err := f.Rename(tmp, "m", f.Root(), "delivered", c); err != nil {
			t.Fatalf("rename: %v", err)
		}
		if a, err := f.Getattr(h); err != nil || a.Size != 4 || a.UID != 65534 {
			t.Fatalf("getattr: %+v %v", a, err)
		}
		return
	}
	mdtest.RequireRoot(t)
	dir, err := os.MkdirTemp("", "maildirfs-cap")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(dir)
	os.Mkdir(filepath.Join(dir, "tmp"), 0o755)
	for _, p := range []string{dir, filepath.Join(dir, "tmp")} {
		os.Chown(p, 65534, 65534)
	}
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(dir, "maildirfs.test")
	data, err := os.ReadFile(exe)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	const capDacReadSearch = 2
	cmd := exec.Command(bin, "-test.run", "^TestUnprivilegedWithCapability$", "-test.v")
	cmd.Env = append(os.Environ(), "MAILDIRFS_CAP_DIR="+dir)
	cmd.SysProcAttr = &syscall.SysProcAttr{
		Credential:  &syscall.Credential{Uid: 65534, Gid: 65534},
		AmbientCaps: []uintptr{capDacReadSearch},
	}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "PASS") {
		t.Fatalf("child with CAP_DAC_READ_SEARCH: %v\n%s", err, out)
	}
}
