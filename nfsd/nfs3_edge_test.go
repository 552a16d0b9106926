package nfsd_test

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// edgeClient is a raw NFSv3 connection to a real mailnfsd with the export
// root's handle, for calls at the edges of RFC 1813.
type edgeClient struct {
	t    *testing.T
	c    *nfsdtest.Caller
	root []byte
}

// edgeServer starts a mailnfsd whose export setup prepares, mounts it as
// root and returns a TCP client.
func edgeServer(t *testing.T, setup func(t testing.TB, root string)) (*nfsdtest.TestServer, *edgeClient) {
	t.Helper()
	s := nfsdtest.StartServer(t, nfsdtest.WithSetup(setup))
	r, _ := mnt(t, nfsdtest.Dial(t, "tcp", s.MountAddr), nfs3.MountV3, s.Export)
	if r.Status != nfs3.MountOK {
		t.Fatalf("MNT: %v", r.Status)
	}
	return s, &edgeClient{t: t, c: nfsdtest.Dial(t, "tcp", s.NFSAddr), root: r.Handle}
}

// call makes one call with cred and decodes its whole reply into res.
func (e *edgeClient) call(cred rpc.OpaqueAuth, proc nfs3.Proc, args interface{ Encode(*xdr.Encoder) }, res interface{ Decode(*xdr.Decoder) }) {
	e.t.Helper()
	d, err := e.c.Call(nfs3.Program, nfs3.Version, uint32(proc), cred, args.Encode)
	if err != nil {
		e.t.Fatalf("%v: %v", proc, err)
	}
	res.Decode(d)
	if err := d.Done(); err != nil {
		e.t.Fatalf("%v: reply: %v", proc, err)
	}
}

// lookup returns the handle of name in dir, looked up as root.
func (e *edgeClient) lookup(dir []byte, name string) []byte {
	e.t.Helper()
	var r nfs3.LookupRes
	e.call(nfsdtest.AuthSys(0, 0), nfs3.ProcLookup, &nfs3.LookupArgs{Dir: dir, Name: name}, &r)
	if r.Status != nfs3.StatusOK {
		e.t.Fatalf("LOOKUP %s: %v", name, r.Status)
	}
	return r.Object
}

// TestNFS3SetattrOwnerUnchanged checks that a SETATTR naming the file's
// current owner or group is still a chown: only the owner (with a group
// it is in, or the file's own) or root may send it, as chown_ok and
// chgrp_ok decide on Linux. The server chowns as root, and a chown of a
// regular file clears setuid and setgid, so a stranger's no-op chown
// must not strip them from someone else's program.
func TestNFS3SetattrOwnerUnchanged(t *testing.T) {
	s, e := edgeServer(t, func(t testing.TB, root string) {
		p := filepath.Join(root, "prog")
		if err := os.WriteFile(p, []byte("#!/bin/sh\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, 1000, 1000); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(p, 0o755|os.ModeSetuid|os.ModeSetgid); err != nil {
			t.Fatal(err)
		}
	})
	prog := e.lookup(e.root, "prog")
	for _, tc := range []struct {
		name string
		cred rpc.OpaqueAuth
		attr nfs3.SetAttr
		want nfs3.Status
	}{
		{"StrangerSameUID", nfsdtest.AuthSys(2000, 2000), nfs3.SetAttr{UID: ptrU32(1000)}, nfs3.StatusPerm},
		{"StrangerSameGID", nfsdtest.AuthSys(2000, 2000), nfs3.SetAttr{GID: ptrU32(1000)}, nfs3.StatusPerm},
		{"GroupMemberSameGID", nfsdtest.AuthSys(2000, 1000), nfs3.SetAttr{GID: ptrU32(1000)}, nfs3.StatusPerm},
		{"StrangerSameBoth", nfsdtest.AuthSys(2000, 2000, 1000), nfs3.SetAttr{UID: ptrU32(1000), GID: ptrU32(1000)}, nfs3.StatusPerm},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := os.Chmod(filepath.Join(s.Root, "prog"), 0o755|os.ModeSetuid|os.ModeSetgid); err != nil {
				t.Fatal(err)
			}
			var r nfs3.SetattrRes
			e.call(tc.cred, nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: prog, NewAttr: tc.attr}, &r)
			if r.Status != tc.want {
				t.Errorf("SETATTR: %v, want %v", r.Status, tc.want)
			}
			fi, err := os.Stat(filepath.Join(s.Root, "prog"))
			if err != nil {
				t.Fatal(err)
			}
			if fi.Mode()&(os.ModeSetuid|os.ModeSetgid) != os.ModeSetuid|os.ModeSetgid {
				t.Errorf("mode after a refused SETATTR: %v, want setuid and setgid kept", fi.Mode())
			}
		})
	}
	// The owner may name itself and its file's group (a chown that
	// changes nothing but, as on Linux, clears setuid and setgid).
	var r nfs3.SetattrRes
	e.call(nfsdtest.AuthSys(1000, 3000), nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: prog, NewAttr: nfs3.SetAttr{UID: ptrU32(1000), GID: ptrU32(1000)}}, &r)
	if r.Status != nfs3.StatusOK {
		t.Errorf("SETATTR by the owner of its own uid and the file's gid: %v", r.Status)
	}
}

// TestNFS3RenameSameFile checks RENAME of a name onto itself and onto
// another link of the same file: POSIX makes both a successful no-op, and
// Linux answers before its sticky-directory check (vfs_rename returns 0
// when source and target are the same inode), so a caller who could not
// delete the entry still gets NFS3_OK and both names stay.
func TestNFS3RenameSameFile(t *testing.T) {
	s, e := edgeServer(t, func(t testing.TB, root string) {
		dir := filepath.Join(root, "shared")
		if err := os.Mkdir(dir, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(dir, 0o777|os.ModeSticky); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "a"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(dir, "a"), 1000, 1000); err != nil {
			t.Fatal(err)
		}
		if err := os.Link(filepath.Join(dir, "a"), filepath.Join(dir, "b")); err != nil {
			t.Fatal(err)
		}
	})
	dir := e.lookup(e.root, "shared")
	for _, cred := range []struct {
		name string
		auth rpc.OpaqueAuth
	}{{"Owner", nfsdtest.AuthSys(1000, 1000)}, {"Stranger", nfsdtest.AuthSys(2000, 2000)}} {
		for _, to := range []string{"a", "b"} {
			t.Run(cred.name+"/OntoLink_"+to, func(t *testing.T) {
				var r nfs3.RenameRes
				e.call(cred.auth, nfs3.ProcRename, &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: dir, Name: "a"}, To: nfs3.DirOpArgs{Dir: dir, Name: to}}, &r)
				if r.Status != nfs3.StatusOK {
					t.Errorf("RENAME a -> %s: %v, want NFS3_OK (same file)", to, r.Status)
				}
				for _, name := range []string{"a", "b"} {
					if _, err := os.Lstat(filepath.Join(s.Root, "shared", name)); err != nil {
						t.Errorf("after RENAME a -> %s: %v", to, err)
					}
				}
			})
		}
	}
	// A stranger still may not move the entry anywhere else.
	var r nfs3.RenameRes
	e.call(nfsdtest.AuthSys(2000, 2000), nfs3.ProcRename, &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: dir, Name: "a"}, To: nfs3.DirOpArgs{Dir: dir, Name: "c"}}, &r)
	if r.Status != nfs3.StatusPerm {
		t.Errorf("RENAME of another's entry in a sticky directory: %v, want NFS3ERR_PERM", r.Status)
	}
}

// TestNFS3SetattrSizeRefusedChangesNothing checks that a SETATTR whose
// size the file system refuses (EFBIG: 2^63-1 bytes is past ext4's
// largest file, though within what FSINFO and the store's own check
// allow) fails without having changed the owner and mode sent with it,
// as knfsd does by setting the size first.
func TestNFS3SetattrSizeRefusedChangesNothing(t *testing.T) {
	s, e := edgeServer(t, func(t testing.TB, root string) {
		if err := os.WriteFile(filepath.Join(root, "f"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	})
	f := e.lookup(e.root, "f")
	var r nfs3.SetattrRes
	e.call(nfsdtest.AuthSys(0, 0), nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: f, NewAttr: nfs3.SetAttr{
		Mode: ptrU32(0o4777), UID: ptrU32(5), GID: ptrU32(6), Size: ptrU64(1<<63 - 1),
	}}, &r)
	if r.Status == nfs3.StatusOK {
		t.Skip("the export's file system holds a file of 2^63-1 bytes")
	}
	if r.Status != nfs3.StatusFBig {
		t.Errorf("SETATTR of size 2^63-1: %v, want NFS3ERR_FBIG", r.Status)
	}
	fi, err := os.Stat(filepath.Join(s.Root, "f"))
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if fi.Mode() != 0o644 || st.Uid != 0 || st.Gid != 0 || fi.Size() != 1 {
		t.Errorf("after a failed SETATTR: mode %v owner %d:%d size %d, want -rw-r--r-- 0:0 1", fi.Mode(), st.Uid, st.Gid, fi.Size())
	}
	if r.Wcc.After == nil || r.Wcc.After.Mode != 0o644 || r.Wcc.After.UID != 0 {
		t.Errorf("wcc after of the failed SETATTR: %+v", r.Wcc.After)
	}
}

func ptrU64(v uint64) *uint64 { return &v }
