package nfsd

import (
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/maildirfs"
)

// TestRetryAnsweredAsDone: calls marked MayHaveRun whose effect is there
// are answered NFS3_OK after the objects they changed are synced; when a
// sync fails they get its error; unmarked, the same calls keep their
// errors.
func TestRetryAnsweredAsDone(t *testing.T) {
	e := newN3Env(t)
	md := e.mustLookup(e.root, "Maildir")
	tmp, newDir := e.mustLookup(md, "tmp"), e.mustLookup(md, "new")
	f := e.mustCreate(tmp, "a")
	var rn nfs3.RenameRes
	renameArgs := &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: tmp, Name: "a"}, To: nfs3.DirOpArgs{Dir: newDir, Name: "a"}}
	e.call(nfs3.ProcRename, renameArgs, &rn)
	e.wantStatus("RENAME", rn.Status, nfs3.StatusOK)
	var ln nfs3.LinkRes
	linkArgs := &nfs3.LinkArgs{File: f, Link: nfs3.DirOpArgs{Dir: md, Name: "a-link"}}
	e.call(nfs3.ProcLink, linkArgs, &ln)
	e.wantStatus("LINK", ln.Status, nfs3.StatusOK)
	var rm nfs3.RemoveRes
	removeArgs := &nfs3.RemoveArgs{Dir: md, Name: "a-link"}
	e.call(nfs3.ProcRemove, removeArgs, &rm)
	e.wantStatus("REMOVE", rm.Status, nfs3.StatusOK)
	// LINK again, for its retransmission below (the name is there).
	e.call(nfs3.ProcLink, linkArgs, &ln)
	e.wantStatus("LINK", ln.Status, nfs3.StatusOK)

	type retry struct {
		what      string
		proc      nfs3.Proc
		args      n3Encoder
		res       func() (n3Decoder, func() nfs3.Status)
		dir, file uint64 // syncs the retransmission must add
		err       nfs3.Status
	}
	retries := []retry{
		{"RENAME", nfs3.ProcRename, renameArgs, func() (n3Decoder, func() nfs3.Status) {
			r := &nfs3.RenameRes{}
			return r, func() nfs3.Status { return r.Status }
		}, 2, 0, nfs3.StatusNoEnt},
		{"LINK", nfs3.ProcLink, linkArgs, func() (n3Decoder, func() nfs3.Status) {
			r := &nfs3.LinkRes{}
			return r, func() nfs3.Status { return r.Status }
		}, 1, 1, nfs3.StatusExist},
		{"REMOVE", nfs3.ProcRemove, &nfs3.RemoveArgs{Dir: tmp, Name: "gone"}, func() (n3Decoder, func() nfs3.Status) {
			r := &nfs3.RemoveRes{}
			return r, func() nfs3.Status { return r.Status }
		}, 1, 0, nfs3.StatusNoEnt},
	}
	for _, r := range retries {
		send := func() nfs3.Status {
			res, st := r.res()
			e.call(r.proc, r.args, res)
			return st()
		}
		e.mayHaveRun = false
		if st := send(); st != r.err {
			t.Errorf("%s not marked: %v, want %v", r.what, st, r.err)
		}
		e.mayHaveRun = true
		before := e.st.Stats()
		if st := send(); st != nfs3.StatusOK {
			t.Errorf("%s marked MayHaveRun: %v, want NFS3_OK", r.what, st)
		}
		after := e.st.Stats()
		if d, f := after.DirSyncCalls-before.DirSyncCalls, after.FileSyncCalls-before.FileSyncCalls; d != r.dir || f != r.file {
			t.Errorf("%s answered as done after %d directory and %d file syncs, want %d and %d", r.what, d, f, r.dir, r.file)
		}
		e.st.Faults.FailAll(maildirfs.FaultFsync, syscall.EIO)
		if st := send(); st != nfs3.StatusIO {
			t.Errorf("%s marked MayHaveRun, sync failing: %v, want NFS3ERR_IO", r.what, st)
		}
		e.st.Faults.Clear()
	}
	e.mayHaveRun = false
}

// TestRetryUncheckedCreateCutShort: a server stopped inside an UNCHECKED
// CREATE (Linux's open(O_CREAT) without O_EXCL) after it made the file and
// before it gave it to its owner leaves an empty 0600 file of its own. The
// retransmission after the restart (MayHaveRun) must finish that file and
// answer with the caller's; answered as it is, the caller's file would
// stay root's, and its writes would fail with EACCES. A call not marked
// opens an existing file as it is.
func TestRetryUncheckedCreateCutShort(t *testing.T) {
	e := newN3Env(t)
	var sa nfs3.SetattrRes
	e.call(nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: e.root, NewAttr: nfs3.SetAttr{Mode: ptr[uint32](0o777)}}, &sa)
	e.wantStatus("SETATTR root", sa.Status, nfs3.StatusOK)
	// As openat(O_CREAT|O_EXCL, 0600) leaves it: owned by the server.
	for _, name := range []string{"cut", "kept"} {
		if err := os.WriteFile(filepath.Join(e.st.Dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	e.cred = &rpc.AuthSysParms{MachineName: "test", UID: 3000, GID: 3001}
	create := func(name string) *nfs3.CreateRes {
		var r nfs3.CreateRes
		e.call(nfs3.ProcCreate, &nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: e.root, Name: name}, Mode: nfs3.Unchecked,
			Attr: nfs3.SetAttr{Mode: ptr[uint32](0o644)}}, &r)
		e.wantStatus("CREATE UNCHECKED "+name, r.Status, nfs3.StatusOK)
		return &r
	}
	e.mayHaveRun = true
	r := create("cut")
	e.mayHaveRun = false
	if r.ObjAttr == nil || r.ObjAttr.UID != 3000 || r.ObjAttr.GID != 3001 || r.ObjAttr.Mode != 0o644 {
		t.Fatalf("retransmitted UNCHECKED CREATE over the cut-short file: attributes %+v, want 3000:3001 0644", r.ObjAttr)
	}
	var w nfs3.WriteRes
	e.call(nfs3.ProcWrite, &nfs3.WriteArgs{File: r.Object, Count: 5, Stable: nfs3.FileSync, Data: []byte("mail\n")}, &w)
	e.wantStatus("WRITE as the caller", w.Status, nfs3.StatusOK)
	if r := create("kept"); r.ObjAttr == nil || r.ObjAttr.UID != 0 {
		t.Errorf("UNCHECKED CREATE not marked over the server's file: attributes %+v, want it as it is", r.ObjAttr)
	}
}

// TestRetryCompletedTakesOnlyOwn: a retransmission of a call this run
// completed (its reply evicted from the duplicate request cache, as a user
// can force by flooding it) that meets an empty object of root's at its
// name (made there since the user removed their own) leaves it root's and
// keeps its EXIST; it was finished for the caller, chowned to them, as
// after a restart. The caller's own object is still answered as done.
func TestRetryCompletedTakesOnlyOwn(t *testing.T) {
	e := newN3Env(t)
	var sa nfs3.SetattrRes
	e.call(nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: e.root, NewAttr: nfs3.SetAttr{Mode: ptr[uint32](0o1777)}}, &sa)
	e.wantStatus("SETATTR root", sa.Status, nfs3.StatusOK)
	// Root's empty 0600 file, directory and symlink, as root makes them
	// (and as a run stopped before the chown leaves them).
	for _, err := range []error{
		os.WriteFile(filepath.Join(e.st.Dir, "lock"), nil, 0o600),
		os.Mkdir(filepath.Join(e.st.Dir, "dir"), 0o700),
		os.Symlink("t", filepath.Join(e.st.Dir, "link")),
	} {
		if err != nil {
			t.Fatal(err)
		}
	}
	e.cred = &rpc.AuthSysParms{MachineName: "test", UID: 3000, GID: 3001}
	where := func(name string) nfs3.DirOpArgs { return nfs3.DirOpArgs{Dir: e.root, Name: name} }
	send := func() map[string]nfs3.Status {
		var c nfs3.CreateRes
		e.call(nfs3.ProcCreate, &nfs3.CreateArgs{Where: where("lock"), Mode: nfs3.Guarded, Attr: nfs3.SetAttr{Mode: ptr[uint32](0o600)}}, &c)
		var m nfs3.MkdirRes
		e.call(nfs3.ProcMkdir, &nfs3.MkdirArgs{Where: where("dir"), Attr: nfs3.SetAttr{Mode: ptr[uint32](0o700)}}, &m)
		var s nfs3.SymlinkRes
		e.call(nfs3.ProcSymlink, &nfs3.SymlinkArgs{Where: where("link"), Attr: nfs3.SetAttr{}, Target: "t"}, &s)
		var u nfs3.CreateRes
		e.call(nfs3.ProcCreate, &nfs3.CreateArgs{Where: where("lock"), Mode: nfs3.Unchecked, Attr: nfs3.SetAttr{Mode: ptr[uint32](0o600)}}, &u)
		return map[string]nfs3.Status{"CREATE": c.Status, "MKDIR": m.Status, "SYMLINK": s.Status}
	}
	e.completed = true
	for proc, st := range send() {
		if st != nfs3.StatusExist {
			t.Errorf("%s resent after its reply was evicted, over root's object: %v, want NFS3ERR_EXIST", proc, st)
		}
	}
	for _, name := range []string{"lock", "dir", "link"} {
		var st syscall.Stat_t
		if err := syscall.Lstat(filepath.Join(e.st.Dir, name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 0 {
			t.Errorf("root's %s given to uid %d by a resent call", name, st.Uid)
		}
	}
	// The caller's own empty file: answered as done.
	if err := os.WriteFile(filepath.Join(e.st.Dir, "mine"), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(filepath.Join(e.st.Dir, "mine"), 3000, 3001); err != nil {
		t.Fatal(err)
	}
	var c nfs3.CreateRes
	e.call(nfs3.ProcCreate, &nfs3.CreateArgs{Where: where("mine"), Mode: nfs3.Guarded, Attr: nfs3.SetAttr{Mode: ptr[uint32](0o600)}}, &c)
	e.wantStatus("CREATE resent over the caller's own file", c.Status, nfs3.StatusOK)
	e.completed = false
}
