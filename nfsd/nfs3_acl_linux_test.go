package nfsd_test

import (
	"encoding/binary"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
	"golang.org/x/sys/unix"
)

// aclEntry is one entry of a POSIX access ACL as setfacl writes it.
type aclEntry struct {
	tag  uint16 // 0x01 user::, 0x02 user:id:, 0x04 group::, 0x08 group:id:, 0x10 mask::, 0x20 other::
	perm uint16
	id   uint32
}

// setACL gives path the access ACL es (in the kernel's order), as
// setfacl does: the system.posix_acl_access xattr, version 2.
func setACL(t testing.TB, path string, es ...aclEntry) {
	t.Helper()
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range es {
		b = binary.LittleEndian.AppendUint16(b, e.tag)
		b = binary.LittleEndian.AppendUint16(b, e.perm)
		b = binary.LittleEndian.AppendUint32(b, e.id)
	}
	if err := unix.Setxattr(path, "system.posix_acl_access", b, 0); err != nil {
		t.Skipf("no POSIX ACLs on the test file system: %v", err)
	}
}

// TestNFS3PosixACL checks that the access ACL of a file decides for
// callers other than root and the owner, as the kernel (and so knfsd)
// does: a named user denied by it is refused although the other bits
// allow, a named user or group granted more than the mode's group and
// other bits is allowed, the mask limits a named user, and the owner and
// a file without an ACL keep the mode rules.
func TestNFS3PosixACL(t *testing.T) {
	const (
		rw = 6
		r  = 4
		rx = 5
	)
	_, e := edgeServer(t, func(t testing.TB, root string) {
		mk := func(name string, mode os.FileMode) string {
			p := filepath.Join(root, name)
			if err := os.WriteFile(p, []byte("data of "+name), mode); err != nil {
				t.Fatal(err)
			}
			if err := os.Chown(p, 1000, 1000); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, mode); err != nil {
				t.Fatal(err)
			}
			return p
		}
		// secret: 0644, but user 2000 is named with no rights.
		setACL(t, mk("secret", 0o644), aclEntry{0x01, rw, 0}, aclEntry{0x02, 0, 2000}, aclEntry{0x04, r, 0}, aclEntry{0x10, r, 0}, aclEntry{0x20, r, 0})
		// backup: 0600, but user 2000 is named with r-x.
		setACL(t, mk("backup", 0o600), aclEntry{0x01, rw, 0}, aclEntry{0x02, rx, 2000}, aclEntry{0x04, 0, 0}, aclEntry{0x10, rx, 0}, aclEntry{0x20, 0, 0})
		// shared: 0600, but group 3000 is named with rw-.
		setACL(t, mk("shared", 0o600), aclEntry{0x01, rw, 0}, aclEntry{0x04, 0, 0}, aclEntry{0x08, rw, 3000}, aclEntry{0x10, rw, 0}, aclEntry{0x20, 0, 0})
		// masked: user 2000 is named with rw-, the mask allows r--.
		setACL(t, mk("masked", 0o600), aclEntry{0x01, rw, 0}, aclEntry{0x02, rw, 2000}, aclEntry{0x04, 0, 0}, aclEntry{0x10, r, 0}, aclEntry{0x20, 0, 0})
		// plain: no ACL, 0640.
		mk("plain", 0o640)
		// dir: 0700, but user 2000 is named with r-x.
		d := filepath.Join(root, "dir")
		if err := os.Mkdir(d, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(d, "f"), nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(d, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		setACL(t, d, aclEntry{0x01, 7, 0}, aclEntry{0x02, rx, 2000}, aclEntry{0x04, 0, 0}, aclEntry{0x10, rx, 0}, aclEntry{0x20, 0, 0})
	})
	const all = nfs3.AccessRead | nfs3.AccessModify | nfs3.AccessExtend | nfs3.AccessExecute
	for _, tc := range []struct {
		name   string
		file   string
		cred   rpc.OpaqueAuth
		access uint32 // ACCESS answer to all
		read   bool
		write  bool
	}{
		{"NamedUserDenied", "secret", nfsdtest.AuthSys(2000, 2000), 0, false, false},
		{"OtherOfDeniedFile", "secret", nfsdtest.AuthSys(3000, 3000), nfs3.AccessRead, true, false},
		{"OwnerOfDeniedFile", "secret", nfsdtest.AuthSys(1000, 1000), nfs3.AccessRead | nfs3.AccessModify | nfs3.AccessExtend, true, true},
		{"NamedUserGranted", "backup", nfsdtest.AuthSys(2000, 2000), nfs3.AccessRead | nfs3.AccessExecute, true, false},
		{"OtherOfGrantedFile", "backup", nfsdtest.AuthSys(3000, 3000), 0, false, false},
		{"NamedGroupGranted", "shared", nfsdtest.AuthSys(4000, 5000, 3000), nfs3.AccessRead | nfs3.AccessModify | nfs3.AccessExtend, true, true},
		{"NamedGroupPrimary", "shared", nfsdtest.AuthSys(4000, 3000), nfs3.AccessRead | nfs3.AccessModify | nfs3.AccessExtend, true, true},
		{"NotInNamedGroup", "shared", nfsdtest.AuthSys(4000, 5000), 0, false, false},
		{"MaskLimitsNamedUser", "masked", nfsdtest.AuthSys(2000, 2000), nfs3.AccessRead, true, false},
		{"PlainGroup", "plain", nfsdtest.AuthSys(2000, 1000), nfs3.AccessRead, true, false},
		{"PlainOther", "plain", nfsdtest.AuthSys(2000, 2000), 0, false, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			fh := e.lookup(e.root, tc.file)
			var ar nfs3.AccessRes
			e.call(tc.cred, nfs3.ProcAccess, &nfs3.AccessArgs{Object: fh, Access: all}, &ar)
			if ar.Status != nfs3.StatusOK || ar.Access != tc.access {
				t.Errorf("ACCESS: %v %#x, want %#x", ar.Status, ar.Access, tc.access)
			}
			var rr nfs3.ReadRes
			e.call(tc.cred, nfs3.ProcRead, &nfs3.ReadArgs{File: fh, Count: uint32(len("data of " + tc.file))}, &rr)
			switch {
			case tc.read && (rr.Status != nfs3.StatusOK || string(rr.Data) != "data of "+tc.file):
				t.Errorf("READ: %v %q, want the data", rr.Status, rr.Data)
			case !tc.read && rr.Status != nfs3.StatusAcces:
				t.Errorf("READ: %v %q, want NFS3ERR_ACCES", rr.Status, rr.Data)
			}
			var wr nfs3.WriteRes
			e.call(tc.cred, nfs3.ProcWrite, &nfs3.WriteArgs{File: fh, Offset: 100, Count: 1, Stable: nfs3.FileSync, Data: []byte("x")}, &wr)
			switch {
			case tc.write && wr.Status != nfs3.StatusOK:
				t.Errorf("WRITE: %v, want NFS3_OK", wr.Status)
			case !tc.write && wr.Status != nfs3.StatusAcces:
				t.Errorf("WRITE: %v, want NFS3ERR_ACCES", wr.Status)
			}
		})
	}
	t.Run("NamedUserDirectory", func(t *testing.T) {
		dir := e.lookup(e.root, "dir")
		for _, c := range []struct {
			cred rpc.OpaqueAuth
			ok   bool
		}{{nfsdtest.AuthSys(2000, 2000), true}, {nfsdtest.AuthSys(3000, 3000), false}} {
			var lr nfs3.LookupRes
			e.call(c.cred, nfs3.ProcLookup, &nfs3.LookupArgs{Dir: dir, Name: "f"}, &lr)
			var rd nfs3.ReaddirRes
			e.call(c.cred, nfs3.ProcReaddir, &nfs3.ReaddirArgs{Dir: dir, Count: 4096}, &rd)
			var cr nfs3.CreateRes
			e.call(c.cred, nfs3.ProcCreate, &nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: dir, Name: "new"}, Mode: nfs3.Unchecked}, &cr)
			want := nfs3.StatusAcces
			if c.ok {
				want = nfs3.StatusOK
			}
			if lr.Status != want || rd.Status != want {
				t.Errorf("cred %v: LOOKUP %v, READDIR %v, want %v", c.cred, lr.Status, rd.Status, want)
			}
			if cr.Status != nfs3.StatusAcces {
				t.Errorf("cred %v: CREATE in an r-x directory: %v, want NFS3ERR_ACCES", c.cred, cr.Status)
			}
		}
	})
}
