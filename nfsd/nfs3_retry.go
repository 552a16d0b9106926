package nfsd

import (
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
)

// Retransmissions of calls that may have run. A call marked
// Request.MayHaveRun was begun by an earlier run of the server, which may
// have carried it out before it stopped, leaving the client without a
// reply, or by this run, which has since evicted its reply from the
// duplicate request cache for room. Run again, such a call meets its own
// effect and fails: a RENAME finds its source gone, a REMOVE its name
// gone, a LINK or an exclusive create its name taken. Told
// so, a delivery agent delivers the message a second time. So RENAME,
// REMOVE, RMDIR and LINK answer that one error as success when the state
// is what the call's own success leaves, after syncing what the call
// changed (the earlier run may have stopped before its syncs). A GUARDED
// or EXCLUSIVE CREATE, a MKDIR or a SYMLINK that meets an object it could
// have made (an empty file or directory, a symlink to its target, still
// the server's own or already the caller's) takes it as the one the
// earlier run made, which may have been stopped before it set the owner,
// mode or verifier, and finishes and syncs it (maildirfs FinishCreate,
// FinishMkdir, FinishSymlink). Any other outcome stands. The procedures
// not named here are safe to run twice: WRITE, SETATTR without a guard and
// UNCHECKED CREATE.

// retryDone reports whether err, from running a MayHaveRun call again, is
// the error want that the call's own earlier success would cause.
func retryDone(req *Request, err error, want nfs3.Status) bool {
	return req.MayHaveRun && err != nil && statusFromError(err) == want
}

// callersOwn reports whether the object at name in dir may be finished
// for a retransmitted call that met it (maildirfs FinishCreate and its
// kin take one still the server's own, as a run stopped before the chown
// leaves it): always for a call an earlier run began, but for one this
// run completed (Request.Completed) only when the object is already the
// caller's, since that run gave what it made to its caller; a user who
// pushed their own call out of the cache could otherwise resend it and be
// given an empty file, directory or symlink root has made at that name
// since. One LOOKUP, on that path only.
func callersOwn(req *Request, acc Access, dir []byte, name string) bool {
	if !req.Completed {
		return true
	}
	_, attr, _, err := acc.Store.Lookup(dir, acc.Cred, name)
	return err == nil && attr.UID == acc.Cred.UID
}

// answerDone answers a call whose effect is there as done: it makes
// durable, in turn, the objects the call changed (the earlier run may have
// been stopped after the change and before its syncs, and the reply
// promises stable storage, RFC 1813 §3.3), logs the call and returns
// NFS3_OK, or the status of the sync that failed.
func (n *NFS3) answerDone(req *Request, name string, st Store, hs ...[]byte) nfs3.Status {
	for _, h := range hs {
		if err := st.Sync(h); err != nil {
			return n.status(req, err)
		}
	}
	n.logRetry(req, name)
	return nfs3.StatusOK
}

// logRetry records that a retransmitted call was answered as done, up to
// retryLogLines a minute per client address (held_back: the calls not
// logged since the previous line), as Server.logRetransmission.
func (n *NFS3) logRetry(req *Request, name string) {
	ok, held := n.retries.AllowN(req.Addr.Addr(), time.Now(), retryLogLines)
	if !ok {
		return
	}
	attrs := []any{"proc", nfs3.Proc(req.Proc).String(), "name", name}
	if held > 0 {
		attrs = append(attrs, "held_back", held)
	}
	n.logger(req).Info("nfs3: retransmission of a call that may have run answered as done", attrs...)
}
