package nfsd

import (
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
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
