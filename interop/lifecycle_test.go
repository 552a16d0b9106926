package interop

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
)

// TestHandlesSurviveRestart: file handles name inodes and are signed with a
// key kept in -state-dir, so a handle taken before a restart works after it
// (same file, same content); with a different state directory the old
// handles are refused as STALE or BADHANDLE, never served.
func TestHandlesSurviveRestart(t *testing.T) {
	s := startServer(t, serverOpts{setup: func(t *testing.T, root string) { makeMaildir(t, root) }})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	root, c := mountRaw(ctx, t, s)
	tmp, err := c.lookupPath(root, "Maildir", "tmp")
	if err != nil {
		t.Fatal(err)
	}
	newDir, err := c.lookupPath(root, "Maildir", "new")
	if err != nil {
		t.Fatal(err)
	}
	const name = "1700000000.M1P1.restart"
	body := []byte("Subject: survives a restart\r\n\r\nbody\r\n")
	fh, err := c.create(tmp, name)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.write(fh, 0, body, nfs3.FileSync); err != nil {
		t.Fatal(err)
	}
	// The handle must also survive the move from tmp/ to new/.
	if err := c.rename(tmp, name, newDir, name); err != nil {
		t.Fatal(err)
	}
	before, err := c.getattr(fh)
	if err != nil {
		t.Fatalf("GETATTR after RENAME: %v", err)
	}
	c.Close()

	s.restart()
	_, c = mountRaw(ctx, t, s)
	after, err := c.getattr(fh)
	if err != nil {
		t.Fatalf("GETATTR of a pre-restart handle: %v", err)
	}
	if after.FileID != before.FileID || after.Size != uint64(len(body)) {
		t.Fatalf("after restart: fileid %d size %d, want fileid %d size %d", after.FileID, after.Size, before.FileID, len(body))
	}
	got, err := c.readAll(fh)
	if err != nil {
		t.Fatalf("READ of a pre-restart handle: %v", err)
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("READ after restart = %q", got)
	}
	if _, err := c.lookup(newDir, name); err != nil {
		t.Fatalf("LOOKUP in a pre-restart directory handle: %v", err)
	}
	c.Close()

	// A new key: the old handles must not be honoured.
	if err := s.stop(); err != nil {
		t.Fatalf("mailnfsd did not exit cleanly: %v", err)
	}
	fresh := filepath.Join(s.base, "state2")
	if err := os.Mkdir(fresh, 0o755); err != nil {
		t.Fatal(err)
	}
	for i, a := range s.argv {
		if a == s.stateDir {
			s.argv[i] = fresh
		}
	}
	s.start()
	_, c = mountRaw(ctx, t, s)
	_, err = c.getattr(fh)
	if !errors.Is(err, nfs3.StatusStale) && !errors.Is(err, nfs3.StatusBadHandle) {
		t.Fatalf("GETATTR of a handle signed with another key: %v, want NFS3ERR_STALE or NFS3ERR_BADHANDLE", err)
	}
}

// TestSIGTERMExitsCleanly: SIGTERM drains and exits with status 0 and
// logs that it stopped.
func TestSIGTERMExitsCleanly(t *testing.T) {
	s := startServer(t, serverOpts{})
	if err := s.stop(); err != nil {
		t.Fatalf("exit after SIGTERM: %v\n%s", err, s.proc.Log())
	}
	if !strings.Contains(s.proc.Log(), "stopped") {
		t.Errorf("no stop message in the log:\n%s", s.proc.Log())
	}
}

// TestSIGHUPReloadsExports: a second export appears in showmount after
// SIGHUP, and an export removed from the file can no longer be mounted.
func TestSIGHUPReloadsExports(t *testing.T) {
	showmount := netnstest.RequireTool(t, "showmount")
	var second string
	s := startServer(t, serverOpts{setup: func(t *testing.T, root string) {
		second = filepath.Join(filepath.Dir(root), "second")
		if err := os.Mkdir(second, 0o755); err != nil {
			t.Fatal(err)
		}
	}})
	if out := s.exec(showmount, "-e", "127.0.0.1"); strings.Contains(out, second) {
		t.Fatalf("second export listed before reload:\n%s", out)
	}
	s.writeExports(second + " 127.0.0.1(rw)\n")
	if err := s.proc.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(15 * time.Second)
	for {
		out := s.exec(showmount, "-e", "127.0.0.1")
		if strings.Contains(out, second) && !strings.Contains(out, s.root+" ") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("exports not reloaded 15 s after SIGHUP:\n%s\nserver log:\n%s", out, s.proc.Log())
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	mc, err := dialRaw(ctx, s.ns, mountPort, testUID, testGID)
	if err != nil {
		t.Fatal(err)
	}
	defer mc.Close()
	if _, err := mc.mnt(second); err != nil {
		t.Errorf("MNT of the new export: %v", err)
	}
	if _, err := mc.mnt(s.root); err == nil {
		t.Errorf("MNT of the removed export succeeded")
	}
}

// TestReadOnlyExport: libnfs reads from an (ro) export but cannot write,
// and nothing appears on disk.
func TestReadOnlyExport(t *testing.T) {
	nfsCat := netnstest.RequireTool(t, "nfs-cat")
	nfsCp := netnstest.RequireTool(t, "nfs-cp")
	s := startServer(t, serverOpts{
		setup:   func(t *testing.T, root string) { writeOwned(t, filepath.Join(root, "motd"), "read only\n") },
		exports: func(root string) string { return root + " 127.0.0.1(ro)\n" },
	})
	if got := s.exec(nfsCat, s.url("motd")); got != "read only\n" {
		t.Fatalf("nfs-cat = %q", got)
	}
	local := filepath.Join(t.TempDir(), "x")
	if err := os.WriteFile(local, []byte("must not land\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errOut, err := s.execErr(nfsCp, local, s.url("x")); err == nil {
		t.Fatalf("nfs-cp into a read-only export succeeded: %s%s", out, errOut)
	}
	if _, err := os.Lstat(filepath.Join(s.root, "x")); !os.IsNotExist(err) {
		t.Fatalf("file appeared in a read-only export: %v", err)
	}
}

// TestCheckConfig: -check-config accepts a good exports file and reports a
// bad one as file:line:col with a non-zero exit, without serving.
func TestCheckConfig(t *testing.T) {
	bin := mailnfsdBinary(t)
	dir := t.TempDir()
	good := filepath.Join(dir, "good")
	bad := filepath.Join(dir, "bad")
	if err := os.WriteFile(good, []byte("# mail\n"+dir+" 127.0.0.1(rw) 10.0.0.0/8(ro)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bad, []byte("# mail\n"+dir+" 127.0.0.1(rw,frobnicate)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, "-check-config", "-exports", good).CombinedOutput()
	if err != nil {
		t.Fatalf("-check-config on a good file: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), "OK") {
		t.Errorf("-check-config on a good file printed %q", out)
	}
	out, err = exec.CommandContext(ctx, bin, "-check-config", "-exports", bad).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() == 0 {
		t.Fatalf("-check-config on a bad file: %v\n%s", err, out)
	}
	if !strings.Contains(string(out), bad+":2:") || !strings.Contains(string(out), "frobnicate") {
		t.Errorf("-check-config error does not point at line 2 and the option:\n%s", out)
	}
}
