package main

import (
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestLostStateDir restarts a real mailnfsd with its state directory, then
// without it (lost, or a fresh disk). A handle given out before must not
// work with the new key, and the log must say why clients fail: a new
// handle key was created. A restart with the state directory says nothing
// of the kind and keeps the handle working.
func TestLostStateDir(t *testing.T) {
	p, export, port, args := stormServerArgs(t)
	stateDir := args[3]
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	root := mountAsRoot(t, addr, export)
	getattr := func() nfs3.Status { return getattrStatus(t, addr, root) }
	const newKey = "no handle key in the state directory; created a new one"
	restart := func() string {
		if code := p.stop(t, os.Interrupt); code != 0 {
			t.Fatalf("exit %d\n%s", code, p.stderr.String())
		}
		p = startBinary(t, args...)
		p.waitListening(t, port)
		st := getattr()
		return st.String()
	}
	if !strings.Contains(p.stderr.String(), newKey) {
		t.Errorf("first start: the log does not say a handle key was created:\n%s", p.stderr.String())
	}
	if st := restart(); st != nfs3.StatusOK.String() {
		t.Errorf("GETATTR of the root after a restart: %s", st)
	}
	if strings.Contains(p.stderr.String(), newKey) {
		t.Errorf("a restart with the state directory says a new key was created:\n%s", p.stderr.String())
	}

	if err := os.RemoveAll(stateDir); err != nil {
		t.Fatal(err)
	}
	if st := restart(); st != nfs3.StatusBadHandle.String() {
		t.Errorf("GETATTR of a handle from before the state directory was lost: %s, want NFS3ERR_BADHANDLE", st)
	}
	log := p.stderr.String()
	if !strings.Contains(log, newKey) || !strings.Contains(log, stateDir) {
		t.Errorf("after the state directory was lost, the log does not say a new handle key was created in it:\n%s", log)
	}
}

// TestStateDirPermissions starts a real mailnfsd with a state directory
// others may write, then with a handle key others may read: whoever reads
// the key can forge handles, whoever writes the directory can put their
// own key there; a sticky one (like /tmp) keeps others from replacing
// the key, not from creating what is missing. Each must be warned about,
// with the fix; the directory mailnfsd makes itself (0700, key 0600) gets
// no warning.
func TestStateDirPermissions(t *testing.T) {
	p, _, port, args := stormServerArgs(t)
	stateDir := args[3]
	const dirWarn, keyWarn = "the state directory is writable by group or others (mode 0777)", "the handle key is readable or writable by group or others (mode 0644)"
	restart := func() string {
		if code := p.stop(t, os.Interrupt); code != 0 {
			t.Fatalf("exit %d\n%s", code, p.stderr.String())
		}
		p = startBinary(t, args...)
		p.waitListening(t, port)
		return p.stderr.String()
	}
	if log := p.stderr.String(); strings.Contains(log, "group or others") {
		t.Errorf("a state directory mailnfsd made itself is warned about:\n%s", log)
	}
	if err := os.Chmod(stateDir, 0o777); err != nil {
		t.Fatal(err)
	}
	if log := restart(); !strings.Contains(log, dirWarn) || strings.Contains(log, keyWarn) {
		t.Errorf("state directory 0777: want the directory warning only:\n%s", log)
	}
	// Sticky, like /tmp: others cannot replace the key, but can create
	// whatever is missing there.
	const stickyWarn = "the state directory is writable by group or others (mode 1777, sticky, like /tmp)"
	if err := os.Chmod(stateDir, 0o777|os.ModeSticky); err != nil {
		t.Fatal(err)
	}
	if log := restart(); !strings.Contains(log, stickyWarn) || strings.Contains(log, keyWarn) {
		t.Errorf("state directory 1777: want the sticky directory warning only:\n%s", log)
	}
	if err := os.Chmod(stateDir, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(stateDir+"/maildirfs-handle.key", 0o644); err != nil {
		t.Fatal(err)
	}
	if log := restart(); !strings.Contains(log, keyWarn) || strings.Contains(log, dirWarn) {
		t.Errorf("handle key 0644: want the key warning only:\n%s", log)
	}
}

// TestSecondServerSameStateDir starts a real mailnfsd compressing an
// export, then the same command line again, as an operator might by
// mistake while the first runs. The second must leave the first's
// compression journal alone: a failed-N.j there (which the first keeps
// for the files a failed rewrite left pending; a stand-in here) would
// otherwise be retired by the second's Open before it even finds the
// ports taken, and those files would answer EIO for good. It must fail
// saying why, and the first must go on serving.
func TestSecondServerSameStateDir(t *testing.T) {
	nfsdtest.RequireRoot(t)
	dir := t.TempDir()
	export, exports := compressingExport(t, dir)
	state := filepath.Join(dir, "state")
	ports := freePorts(t, 2)
	args := []string{"-exports", exports, "-state-dir", state,
		"-listen", "127.0.0.1", "-nfs-port", strconv.Itoa(ports[0]), "-portmap-port", strconv.Itoa(ports[1])}
	first := startBinary(t, args...)
	first.waitListening(t, ports...)
	jdirs, err := filepath.Glob(filepath.Join(state, "maildirfs-z", "*"))
	if err != nil || len(jdirs) != 1 {
		t.Fatalf("compression journal directories: %v, %v", jdirs, err)
	}
	kept := filepath.Join(jdirs[0], "failed-1.j")
	writeFile(t, kept, "records of a failed rewrite")

	second := startBinary(t, args...)
	select {
	case <-second.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("a second mailnfsd with the same state directory and ports did not exit:\n%s", second.stderr.String())
	}
	if second.err == nil {
		t.Errorf("the second mailnfsd exited 0:\n%s", second.stderr.String())
	}
	if _, err := os.Stat(kept); err != nil {
		t.Errorf("the running mailnfsd's kept compression journal after a second one started: %v\n%s", err, second.stderr.String())
	}
	if log := second.stderr.String(); !strings.Contains(log, "in use by another process") {
		t.Errorf("the second mailnfsd does not say its compression journal is in use:\n%s", log)
	}

	// The first serves on.
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ports[0]))
	mountAsRoot(t, addr, export) // fails the test unless MNT is answered OK
	if code := first.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("exit %d\n%s", code, first.stderr.String())
	}
}

// TestReloadAfterLostStateDir removes a real mailnfsd's state directory
// while it serves (a package purge, a mistaken cleanup) and reloads it
// with one more export. The process still signs handles with its key; a
// reload that opens a store must put that key back, not create a new
// one: with a new key on disk, the next restart fails every handle the
// front ends hold with NFS3ERR_BADHANDLE although no client ever saw the
// new key. After a restart, a handle from before must still work.
func TestReloadAfterLostStateDir(t *testing.T) {
	p, export, port, args := stormServerArgs(t)
	exports, stateDir := args[1], args[3]
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	root := mountAsRoot(t, addr, export)
	getattr := func() nfs3.Status { return getattrStatus(t, addr, root) }

	before := len(p.stderr.String())
	if err := os.RemoveAll(stateDir); err != nil {
		t.Fatal(err)
	}
	other := filepath.Join(filepath.Dir(export), "other")
	if err := os.Mkdir(other, 0o755); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(exports)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, exports, string(b)+other+" -maproot=0:0 -network 127.0.0.0/8\n")
	p.reload(t)
	if st := getattr(); st != nfs3.StatusOK {
		t.Fatalf("GETATTR after the reload: %v", st)
	}
	if code := p.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr.String())
	}
	log := p.stderr.String()[before:]
	if !strings.Contains(log, "wrote back the key this process signs handles with") || strings.Contains(log, "created a new one") {
		t.Errorf("the reload does not say it wrote the handle key back (or says it created a new one):\n%s", log)
	}
	p = startBinary(t, args...)
	p.waitListening(t, port)
	if st := getattr(); st != nfs3.StatusOK {
		t.Errorf("GETATTR of a handle from before the state directory was lost, after a reload and a restart: %v, want OK\n%s", st, log)
	}
}

// TestSighupAfterLostStateDir is TestReloadAfterLostStateDir with the
// exports unchanged, so the reload opens no store: the SIGHUP an operator
// sends after a cleanup (or the next state directory check, every 30 s)
// must still write the handle key back, and a restart must then accept
// the handles from before.
func TestSighupAfterLostStateDir(t *testing.T) {
	p, export, port, args := stormServerArgs(t)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	root := mountAsRoot(t, addr, export)
	stateDir := args[3]
	if err := os.RemoveAll(stateDir); err != nil {
		t.Fatal(err)
	}
	before := len(p.stderr.String())
	p.cmd.Process.Signal(syscall.SIGHUP)
	// The line comes after the key is written and synced: wait for it
	// (the file alone may be there before the line).
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.stderr.String()[before:], "wrote back the key this process signs handles with"); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("the SIGHUP does not say it wrote the handle key back within 10 s:\n%s", p.stderr.String()[before:])
		}
	}
	if _, err := os.Stat(filepath.Join(stateDir, "maildirfs-handle.key")); err != nil {
		t.Fatalf("no handle key in the state directory after the SIGHUP: %v", err)
	}
	if code := p.stop(t, syscall.SIGKILL); code != -1 {
		t.Fatalf("exit %d after SIGKILL", code)
	}
	p = startBinary(t, args...)
	p.waitListening(t, port)
	if st := getattrStatus(t, addr, root); st != nfs3.StatusOK {
		t.Errorf("GETATTR of a handle from before the state directory was lost, after a SIGHUP and a restart: %v, want OK\n%s", st, p.stderr.String())
	}
}

// TestCheckConfigHandleKey: a handle key of the wrong size (a truncated
// restore) fails mailnfsd's start, so it must fail -check-config too:
// the systemd unit runs the check as ExecStartPre (and ExecReload), and a
// check that passes a state directory the start refuses lets the unit
// into a Restart=on-failure loop. A good key, or none yet, passes.
func TestCheckConfigHandleKey(t *testing.T) {
	dir := t.TempDir()
	export := filepath.Join(dir, "mail")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "exports")
	writeFile(t, file, export+" 127.0.0.1(rw)\n")
	state := filepath.Join(dir, "state")
	check := func() (int, string) {
		p := startBinary(t, "-check-config", "-exports", file, "-listen", "127.0.0.1", "-state-dir", state)
		return p.exitCode(t), p.stderr.String()
	}
	if code, errOut := check(); code != 0 {
		t.Fatalf("no state directory yet: exit %d\n%s", code, errOut)
	}
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	key := filepath.Join(state, "maildirfs-handle.key")
	if err := os.WriteFile(key, make([]byte, 32), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, errOut := check(); code != 0 {
		t.Fatalf("a good handle key: exit %d\n%s", code, errOut)
	}
	if err := os.WriteFile(key, make([]byte, 31), 0o600); err != nil {
		t.Fatal(err)
	}
	code, errOut := check()
	if code != 1 || !strings.Contains(errOut, key+": 31 bytes, want 32") {
		t.Errorf("a handle key of 31 bytes: exit %d, want 1 naming the key\n%s", code, errOut)
	}
	if os.Geteuid() == 0 {
		ports := freePorts(t, 2)
		p := startBinary(t, "-exports", file, "-state-dir", state, "-listen", "127.0.0.1",
			"-nfs-port", strconv.Itoa(ports[0]), "-portmap-port", strconv.Itoa(ports[1]))
		if code := p.exitCode(t); code != 1 {
			t.Errorf("start with a handle key of 31 bytes: exit %d, want 1 (as the check)\n%s", code, p.stderr.String())
		}
	}
}

// TestHugeDRCLog restarts a real mailnfsd whose drc.log was extended to
// 1 TiB (sparse: a damaged file system's size, a tool writing at an
// offset). mailnfsd reads the ring the header names, 4 MiB, and starts;
// it read the whole file and died at start (out of memory).
func TestHugeDRCLog(t *testing.T) {
	p, _, port, args := stormServerArgs(t)
	stateDir := args[3]
	if code := p.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr.String())
	}
	if err := os.Truncate(filepath.Join(stateDir, "drc.log"), 1<<40); err != nil {
		t.Skipf("extend drc.log: %v", err)
	}
	p = startBinary(t, args...)
	p.waitListening(t, port)
	if code := p.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr.String())
	}
	st, err := os.Stat(filepath.Join(stateDir, "drc.log"))
	if err != nil || st.Size() > 8<<20 {
		t.Errorf("drc.log after the restart: %v, %v; want its 4 MiB ring", st.Size(), err)
	}
}

// compressingExport makes dir/export holding an empty Maildir and an
// exports file dir/exports that exports it compressed to loopback, root
// unsquashed; it returns both paths.
func compressingExport(t *testing.T, dir string) (export, exports string) {
	t.Helper()
	export = filepath.Join(dir, "export")
	for _, d := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(export, "Maildir", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exports = filepath.Join(dir, "exports")
	writeFile(t, exports, export+" -compress=zstd -maproot=0:0 -network 127.0.0.0/8\n")
	return export, exports
}

// TestDRCLogRemovedWhileRunning removes a real mailnfsd's drc.log while
// it runs (an operator cleaning up the state directory), sends SIGHUP,
// removes files over NFS and kills the server. The calls must be recorded
// where the next start reads them: before, they went into the removed
// file, and the restarted server answered their retransmissions
// NFS3ERR_NOENT (a delivery agent sees a failure for a call that
// succeeded, and delivers again). The log must say it created the file
// again.
func TestDRCLogRemovedWhileRunning(t *testing.T) {
	p, export, port, args := stormServerArgs(t)
	stateDir := args[3]
	const files = 5
	for i := range files {
		writeFile(t, filepath.Join(export, "f"+strconv.Itoa(i)), "x")
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	root := mountAsRoot(t, addr, export)
	if err := os.Remove(filepath.Join(stateDir, "drc.log")); err != nil {
		t.Fatal(err)
	}
	p.reload(t)
	for i := range files {
		if st := removeXID(t, addr, root, 7000+uint32(i), "f"+strconv.Itoa(i)); st != nfs3.StatusOK {
			t.Fatalf("REMOVE f%d: %v", i, st)
		}
	}
	p.cmd.Process.Kill()
	p.exitCode(t)
	if log := p.stderr.String(); !strings.Contains(log, "drc.log was removed or replaced while mailnfsd ran") {
		t.Errorf("the log does not say drc.log was created again:\n%s", log)
	}

	p = startBinary(t, args...)
	p.waitListening(t, port)
	for i := range files {
		if st := removeXID(t, addr, root, 7000+uint32(i), "f"+strconv.Itoa(i)); st != nfs3.StatusOK {
			t.Errorf("REMOVE f%d retransmitted after the restart: %v, want it answered as done", i, st)
		}
	}
}

// removeXID sends REMOVE of name in dir to addr as uid 0 with xid, on a
// TCP connection of its own, and returns the reply's status.
func removeXID(t *testing.T, addr netip.AddrPort, dir []byte, xid uint32, name string) nfs3.Status {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr.String(), 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return removeOn(t, c, rpc.NewRecordReader(c, 0), dir, xid, name)
}

// removeOn sends REMOVE of name in dir as uid 0 with xid on c, whose
// replies rr reads, and returns the reply's status.
func removeOn(t *testing.T, c net.Conn, rr *rpc.RecordReader, dir []byte, xid uint32, name string) nfs3.Status {
	t.Helper()
	c.SetDeadline(time.Now().Add(30 * time.Second))
	var e xdr.Encoder
	rpc.CallHeader{XID: xid, Prog: nfs3.Program, Vers: nfs3.Version, Proc: uint32(nfs3.ProcRemove), Cred: nfsdtest.AuthSys(0, 0), Verf: nfsdtest.AuthNone}.Encode(&e)
	(&nfs3.DirOpArgs{Dir: dir, Name: name}).Encode(&e)
	if _, err := c.Write(rpc.FrameRecord(e.Bytes())); err != nil {
		t.Fatal(err)
	}
	rec, err := rr.Next()
	if err != nil {
		t.Fatal(err)
	}
	var d xdr.Decoder
	d.Reset(rec)
	if got, err := rpc.DecodeReply(&d); err != nil || got != xid {
		t.Fatalf("REMOVE %s: reply to xid %d: %v, want %d", name, got, err, xid)
	}
	return nfs3.Status(d.Uint32())
}

// TestDRCLogCheckLeavesPlantedFiles: when drc.log is gone while mailnfsd
// runs and something else has its name (a symlink or a hard link to
// another file, which whoever may write the state directory can plant),
// the check at SIGHUP (and every 30 s) must not follow it: it opened the
// name O_RDWR|O_CREATE and truncated what it reached to a fresh ring, so a
// symlink to /etc/shadow had root overwrite /etc/shadow with zeros. The
// planted name is left alone and the failure logged; a start refuses a
// symlink there too.
func TestDRCLogCheckLeavesPlantedFiles(t *testing.T) {
	for _, tc := range []struct {
		name  string
		plant func(victim, name string) error
	}{
		{"Symlink", os.Symlink},
		{"HardLink", os.Link},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _, _, args := stormServerArgs(t)
			stateDir := args[3]
			victim := filepath.Join(filepath.Dir(stateDir), "victim")
			const content = "root:x:0:0:not a ring\n"
			writeFile(t, victim, content)
			log := filepath.Join(stateDir, "drc.log")
			if err := os.Remove(log); err != nil {
				t.Fatal(err)
			}
			if err := tc.plant(victim, log); err != nil {
				t.Fatal(err)
			}
			p.reload(t)
			if b, err := os.ReadFile(victim); err != nil || string(b) != content {
				t.Errorf("the file drc.log was made to name: %d bytes (%v), want its %d untouched", len(b), err, len(content))
			}
			if p.stop(t, syscall.SIGTERM); !strings.Contains(p.stderr.String(), "creating it again failed") {
				t.Errorf("the log does not say drc.log could not be created again:\n%s", p.stderr.String())
			}
			if tc.name != "Symlink" {
				return // a hard link is taken at start (cp -al backups)
			}
			// Nor does the next start follow the link it left.
			p = startBinary(t, args...)
			if code := p.exitCode(t); code == 0 || !strings.Contains(p.stderr.String(), "symbolic link") {
				t.Errorf("start with drc.log a symlink: exit %d\n%s", code, p.stderr.String())
			}
			if b, err := os.ReadFile(victim); err != nil || string(b) != content {
				t.Errorf("after a start, the file drc.log names: %d bytes (%v), want its %d untouched", len(b), err, len(content))
			}
		})
	}
}
