package main

import (
	"net/netip"
	"os"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
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
	d, err := nfsdtest.Dial(t, "tcp", addr).Call(nfs3.MountProgram, 3, uint32(nfs3.MountProcMnt), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
		(&nfs3.DirPath{Path: export}).Encode(e)
	})
	if err != nil {
		t.Fatal(err)
	}
	var mnt nfs3.MountRes3
	mnt.Decode(d)
	if mnt.Status != nfs3.MountOK {
		t.Fatalf("MNT: %v", mnt.Status)
	}
	getattr := func() nfs3.Status {
		d, err := nfsdtest.Dial(t, "tcp", addr).Call(nfs3.Program, nfs3.Version, uint32(nfs3.ProcGetattr), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
			e.Opaque(mnt.Handle)
		})
		if err != nil {
			t.Fatal(err)
		}
		return nfs3.Status(d.Uint32())
	}
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
// own key there. Each must be warned about, with the fix; the directory
// mailnfsd makes itself (0700, key 0600) gets no warning.
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
