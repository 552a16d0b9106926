package interop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"golang.org/x/sys/unix"
)

// TestRetransmitAcrossRestart plays a client whose replies were lost when
// mailnfsd stopped: it sends a Maildir delivery's namespace calls, the
// server is restarted (SIGTERM, then SIGKILL: a crash of the process), and
// on a new connection it sends the same calls again with the same XIDs, as
// a Linux client does after it reconnects. The calls' effects are already
// on disk, so run again each would fail (RENAME and REMOVE: NOENT; LINK,
// GUARDED CREATE, MKDIR, SYMLINK: EXIST) and a delivery agent would deliver
// the message twice. The duplicate request log in the state directory
// makes the new process answer them as done. The same calls with new
// XIDs still get their errors.
func TestRetransmitAcrossRestart(t *testing.T) {
	for _, sig := range []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL} {
		t.Run(sig.String(), func(t *testing.T) { testRetransmitAcrossRestart(t, sig) })
	}
}

// retryCall is a call a client sends, loses the reply to, and sends again.
type retryCall struct {
	what   string
	proc   nfs3.Proc
	args   interface{ Encode(*xdr.Encoder) }
	xid    uint32      // of the first send
	status nfs3.Status // for the same call with a new XID
}

// sendRetryCall sends cl on c and decodes the whole result, so that a call
// answered as done must carry a well-formed reply (for the creates, a
// handle and attributes).
func sendRetryCall(t *testing.T, c *rawConn, cl *retryCall) nfs3.Status {
	t.Helper()
	var (
		res interface{ Decode(*xdr.Decoder) }
		st  func() nfs3.Status
	)
	switch cl.proc {
	case nfs3.ProcCreate, nfs3.ProcMkdir, nfs3.ProcSymlink:
		r := &nfs3.CreateRes{}
		res, st = r, func() nfs3.Status {
			if r.Status == nfs3.StatusOK && (r.Object == nil || r.ObjAttr == nil) {
				t.Errorf("%s: NFS3_OK without a handle and attributes", cl.what)
			}
			return r.Status
		}
	case nfs3.ProcRename:
		r := &nfs3.RenameRes{}
		res, st = r, func() nfs3.Status { return r.Status }
	case nfs3.ProcLink:
		r := &nfs3.LinkRes{}
		res, st = r, func() nfs3.Status { return r.Status }
	case nfs3.ProcRemove:
		r := &nfs3.RemoveRes{}
		res, st = r, func() nfs3.Status { return r.Status }
	default:
		t.Fatalf("%s: procedure %v not handled", cl.what, cl.proc)
	}
	if err := c.nfs(cl.proc, cl.args, res); err != nil {
		t.Fatalf("%s: %v", cl.what, err)
	}
	return st()
}

// mountMaildirRaw mounts s's export on a raw connection and looks up its
// Maildir and the Maildir's tmp/ and new/.
func mountMaildirRaw(ctx context.Context, t *testing.T, s *server) (c *rawConn, md, tmp, newDir []byte) {
	t.Helper()
	root, c := mountRaw(ctx, t, s)
	var err error
	if md, err = c.lookup(root, "Maildir"); err != nil {
		t.Fatal(err)
	}
	if tmp, err = c.lookup(md, "tmp"); err != nil {
		t.Fatal(err)
	}
	if newDir, err = c.lookup(md, "new"); err != nil {
		t.Fatal(err)
	}
	return c, md, tmp, newDir
}

// deliveryRetryCalls are a Maildir delivery's namespace calls, each
// already run once: RENAME tmp/a to new/a, REMOVE tmp/b, LINK of fc (tmp/c)
// as new/c and a GUARDED CREATE of tmp/d; status is what each gets when
// sent anew.
func deliveryRetryCalls(tmp, newDir, fc []byte) []*retryCall {
	mode := uint32(0o600)
	return []*retryCall{
		{what: "RENAME tmp/a new/a", proc: nfs3.ProcRename, status: nfs3.StatusNoEnt,
			args: &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: tmp, Name: "a"}, To: nfs3.DirOpArgs{Dir: newDir, Name: "a"}}},
		{what: "REMOVE tmp/b", proc: nfs3.ProcRemove, status: nfs3.StatusNoEnt,
			args: &nfs3.RemoveArgs{Dir: tmp, Name: "b"}},
		{what: "LINK tmp/c new/c", proc: nfs3.ProcLink, status: nfs3.StatusExist,
			args: &nfs3.LinkArgs{File: fc, Link: nfs3.DirOpArgs{Dir: newDir, Name: "c"}}},
		{what: "GUARDED CREATE tmp/d", proc: nfs3.ProcCreate, status: nfs3.StatusExist,
			args: &nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: tmp, Name: "d"}, Mode: nfs3.Guarded, Attr: nfs3.SetAttr{Mode: &mode}}},
	}
}

func testRetransmitAcrossRestart(t *testing.T, sig syscall.Signal) {
	s := startServer(t, serverOpts{setup: func(t *testing.T, root string) { makeMaildir(t, root) }})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, md, tmp, newDir := mountMaildirRaw(ctx, t, s)

	// A client retransmits only the calls it has no reply to: the last
	// one of each stream. Each call below is such a last call, sent once
	// before the restart and again after it with the same XID; status is
	// the answer the same call with a new XID gets after the restart.
	mode := uint32(0o600)
	type call = retryCall
	body := []byte("Subject: once\r\n\r\nbody\r\n")
	fa, err := c.create(tmp, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.write(fa, 0, body, nfs3.FileSync); err != nil {
		t.Fatal(err)
	}
	fb, err := c.create(tmp, "b")
	if err != nil {
		t.Fatal(err)
	}
	var lres nfs3.LinkRes
	if err := c.nfs(nfs3.ProcLink, &nfs3.LinkArgs{File: fb, Link: nfs3.DirOpArgs{Dir: newDir, Name: "b"}}, &lres); err != nil || lres.Status != nfs3.StatusOK {
		t.Fatalf("LINK tmp/b new/b: %v %v", err, lres.Status)
	}
	fc, err := c.create(tmp, "c")
	if err != nil {
		t.Fatal(err)
	}
	calls := append(deliveryRetryCalls(tmp, newDir, fc),
		&call{what: "MKDIR sub", proc: nfs3.ProcMkdir, status: nfs3.StatusExist,
			args: &nfs3.MkdirArgs{Where: nfs3.DirOpArgs{Dir: md, Name: "sub"}, Attr: nfs3.SetAttr{Mode: &mode}}},
		&call{what: "SYMLINK link", proc: nfs3.ProcSymlink, status: nfs3.StatusExist,
			args: &nfs3.SymlinkArgs{Where: nfs3.DirOpArgs{Dir: md, Name: "link"}, Target: "new/a"}},
	)
	send := func(c *rawConn, cl *call) nfs3.Status { t.Helper(); return sendRetryCall(t, c, cl) }
	for _, cl := range calls {
		cl.xid = c.nextXID()
		if st := send(c, cl); st != nfs3.StatusOK {
			t.Fatalf("%s: %v", cl.what, st)
		}
	}

	// An EXCLUSIVE CREATE whose first run was cut short after the file was
	// made: on disk it is still the server's, mode 0600, without the
	// verifier in its times (as if mailnfsd was killed inside setupNew).
	excl := &call{what: "EXCLUSIVE CREATE tmp/e (cut short)", proc: nfs3.ProcCreate,
		args: &nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: tmp, Name: "e"}, Mode: nfs3.Exclusive, Verf: [8]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}}}
	excl.xid = c.nextXID()
	if st := send(c, excl); st != nfs3.StatusOK {
		t.Fatalf("%s: %v", excl.what, st)
	}
	ePath := filepath.Join(s.root, "Maildir", "tmp", "e")
	if err := os.Chown(ePath, 0, 0); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(ePath, time.Now(), time.Now()); err != nil {
		t.Fatal(err)
	}
	// And the MKDIR cut short before its chown.
	subPath := filepath.Join(s.root, "Maildir", "sub")
	if err := os.Chown(subPath, 0, 0); err != nil {
		t.Fatal(err)
	}

	// Calls whose effect something else undid or replaced while the server
	// was down: run again, they keep their error (status).
	xPath := filepath.Join(s.root, "Maildir", "x")
	if err := os.Mkdir(xPath, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(xPath, testUID, testGID); err != nil {
		t.Fatal(err)
	}
	x, err := c.lookup(md, "x")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.create(x, "e"); err != nil {
		t.Fatal(err)
	}
	ff, err := c.create(x, "f")
	if err != nil {
		t.Fatal(err)
	}
	onDisk := func(name string) string { return filepath.Join(xPath, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	changed := []struct {
		*call
		change func()
	}{
		{&call{what: "RENAME x/e x/e2 (x/e2 removed since)", proc: nfs3.ProcRename, status: nfs3.StatusNoEnt,
			args: &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: x, Name: "e"}, To: nfs3.DirOpArgs{Dir: x, Name: "e2"}}},
			func() { must(os.Remove(onDisk("e2"))) }},
		{&call{what: "LINK x/f x/f2 (x/f2 another file since)", proc: nfs3.ProcLink, status: nfs3.StatusExist,
			args: &nfs3.LinkArgs{File: ff, Link: nfs3.DirOpArgs{Dir: x, Name: "f2"}}},
			func() { must(os.Remove(onDisk("f2"))); must(os.WriteFile(onDisk("f2"), nil, 0o600)) }},
		{&call{what: "GUARDED CREATE x/g (written since)", proc: nfs3.ProcCreate, status: nfs3.StatusExist,
			args: &nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: x, Name: "g"}, Mode: nfs3.Guarded, Attr: nfs3.SetAttr{Mode: &mode}}},
			func() { must(os.WriteFile(onDisk("g"), []byte("data"), 0o600)) }},
		{&call{what: "SYMLINK x/l (pointed elsewhere since)", proc: nfs3.ProcSymlink, status: nfs3.StatusExist,
			args: &nfs3.SymlinkArgs{Where: nfs3.DirOpArgs{Dir: x, Name: "l"}, Target: "one"}},
			func() { must(os.Remove(onDisk("l"))); must(os.Symlink("two", onDisk("l"))) }},
		{&call{what: "EXCLUSIVE CREATE x/h (written since)", proc: nfs3.ProcCreate, status: nfs3.StatusExist,
			args: &nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: x, Name: "h"}, Mode: nfs3.Exclusive, Verf: [8]byte{1, 2, 3, 4, 5, 6, 7, 8}}},
			func() { must(os.WriteFile(onDisk("h"), []byte("data"), 0o600)) }},
		{&call{what: "MKDIR x/m (a file since)", proc: nfs3.ProcMkdir, status: nfs3.StatusExist,
			args: &nfs3.MkdirArgs{Where: nfs3.DirOpArgs{Dir: x, Name: "m"}, Attr: nfs3.SetAttr{Mode: &mode}}},
			func() { must(os.Remove(onDisk("m"))); must(os.WriteFile(onDisk("m"), nil, 0o600)) }},
	}
	for _, cl := range changed {
		cl.xid = c.nextXID()
		if st := send(c, cl.call); st != nfs3.StatusOK {
			t.Fatalf("%s: %v", cl.what, st)
		}
		cl.change()
	}

	if sig == syscall.SIGTERM {
		s.restart()
	} else {
		s.proc.Signal(syscall.SIGKILL)
		<-s.proc.Done()
		s.start()
	}

	_, c2 := mountRaw(ctx, t, s)
	for _, cl := range calls {
		c2.xid = cl.xid - 1 // the same XID as before
		if st := send(c2, cl); st != nfs3.StatusOK {
			t.Errorf("%s retransmitted after %v: %v, want NFS3_OK", cl.what, sig, st)
		}
	}
	c2.xid = excl.xid - 1
	if st := send(c2, excl); st != nfs3.StatusOK {
		t.Errorf("%s retransmitted after %v: %v, want NFS3_OK", excl.what, sig, st)
	}
	var est unix.Stat_t
	if err := unix.Stat(ePath, &est); err != nil || est.Uid != testUID || est.Mode&0o7777 != 0o600 || est.Mtim.Sec != 0x12345678 || est.Atim.Sec != 0x1abcdef0 {
		t.Errorf("tmp/e after the retransmission: uid %d mode %o mtime %d atime %d (%v); want uid %d, 0600 and the verifier in its times",
			est.Uid, est.Mode&0o7777, est.Mtim.Sec, est.Atim.Sec, err, testUID)
	}
	if err := unix.Stat(subPath, &est); err != nil || est.Uid != testUID {
		t.Errorf("Maildir/sub after the retransmission: uid %d (%v), want %d", est.Uid, err, testUID)
	}
	for _, cl := range changed {
		c2.xid = cl.xid - 1
		if st := send(c2, cl.call); st != cl.status {
			t.Errorf("%s retransmitted after %v: %v, want %v", cl.what, sig, st, cl.status)
		}
	}
	for _, cl := range calls {
		if st := send(c2, cl); st != cl.status { // a new XID
			t.Errorf("%s sent anew after %v: %v, want %v", cl.what, sig, st, cl.status)
		}
	}

	// The disk holds each effect once, and the message its content.
	if got, err := os.ReadFile(filepath.Join(s.root, "Maildir/new/a")); err != nil || string(got) != string(body) {
		t.Errorf("new/a: %q, %v; want %q", got, err, body)
	}
	for _, p := range []string{"Maildir/new/b", "Maildir/new/c", "Maildir/tmp/c", "Maildir/tmp/d", "Maildir/tmp/e", "Maildir/sub"} {
		if _, err := os.Stat(filepath.Join(s.root, p)); err != nil {
			t.Errorf("%s: %v", p, err)
		}
	}
	if target, err := os.Readlink(filepath.Join(s.root, "Maildir/link")); err != nil || target != "new/a" {
		t.Errorf("Maildir/link: %q, %v", target, err)
	}
	for dir, want := range map[string]int{"tmp": 3, "new": 3} {
		if ents, err := os.ReadDir(filepath.Join(s.root, "Maildir", dir)); err != nil || len(ents) != want {
			t.Errorf("%s/ holds %d entries (%v), want %d", dir, len(ents), err, want)
		}
	}
	if n := strings.Count(s.proc.Log(), "retransmission of a call that may have run answered as done"); n != len(calls)+1 {
		t.Errorf("the server logged %d retransmissions answered as done, want %d:\n%s", n, len(calls)+1, s.proc.Log())
	}
	if errors.Is(ctx.Err(), context.DeadlineExceeded) {
		t.Fatal("timed out")
	}
}

// TestRetransmitAfterEviction plays a client that retransmits long after
// its call ran, on the same server process: a Linux client over TCP sends
// its unanswered calls again once it has reconnected, and its reconnect
// delay grows from 3 s, by which time a busy server has evicted the
// reply from its duplicate request cache (4,096 entries, about a second
// at 32 deliverers). The cache keeps the keys of evicted calls longer
// than their replies, so the RENAME of tmp/x to new/x, the REMOVE, the
// LINK and the GUARDED CREATE sent again after more than 4,096 other
// non-idempotent calls are answered NFS3_OK, as done; the same calls with
// new XIDs keep their errors.
func TestRetransmitAfterEviction(t *testing.T) {
	s := startServer(t, serverOpts{setup: func(t *testing.T, root string) { makeMaildir(t, root) }})
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, _, tmp, newDir := mountMaildirRaw(ctx, t, s)
	body := []byte("Subject: late\r\n\r\nbody\r\n")
	fa, err := c.create(tmp, "a")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.write(fa, 0, body, nfs3.FileSync); err != nil {
		t.Fatal(err)
	}
	if _, err := c.create(tmp, "b"); err != nil {
		t.Fatal(err)
	}
	fc, err := c.create(tmp, "c")
	if err != nil {
		t.Fatal(err)
	}
	type call = retryCall
	calls := deliveryRetryCalls(tmp, newDir, fc)
	send := func(c *rawConn, cl *call) nfs3.Status { t.Helper(); return sendRetryCall(t, c, cl) }
	for _, cl := range calls {
		cl.xid = c.nextXID()
		if st := send(c, cl); st != nfs3.StatusOK {
			t.Fatalf("%s: %v", cl.what, st)
		}
	}
	// Other deliveries' calls push the replies out of the cache: REMOVEs
	// of names that are not there (each is cached like any other reply).
	const others = 4096 + 200
	for i := range others {
		var r nfs3.RemoveRes
		if err := c.nfs(nfs3.ProcRemove, &nfs3.RemoveArgs{Dir: tmp, Name: fmt.Sprintf("none.%d", i)}, &r); err != nil || r.Status != nfs3.StatusNoEnt {
			t.Fatalf("REMOVE tmp/none.%d: %v %v", i, err, r.Status)
		}
	}
	// The client reconnects and retransmits.
	_, c2 := mountRaw(ctx, t, s)
	for _, cl := range calls {
		c2.xid = cl.xid - 1 // the same XID as before
		if st := send(c2, cl); st != nfs3.StatusOK {
			t.Errorf("%s retransmitted after %d other calls: %v, want NFS3_OK", cl.what, others, st)
		}
	}
	for _, cl := range calls {
		if st := send(c2, cl); st != cl.status { // a new XID
			t.Errorf("%s sent anew: %v, want %v", cl.what, st, cl.status)
		}
	}
	if got, err := os.ReadFile(filepath.Join(s.root, "Maildir/new/a")); err != nil || string(got) != string(body) {
		t.Errorf("new/a: %q, %v; want %q", got, err, body)
	}
	for dir, want := range map[string]int{"tmp": 2, "new": 2} { // tmp/c, tmp/d; new/a, new/c
		if ents, err := os.ReadDir(filepath.Join(s.root, "Maildir", dir)); err != nil || len(ents) != want {
			t.Errorf("%s/ holds %d entries (%v), want %d", dir, len(ents), err, want)
		}
	}
	log := s.proc.Log()
	if n := strings.Count(log, "retransmission of a call whose reply had left the duplicate request cache"); n != len(calls) {
		t.Errorf("the server logged %d retransmissions of evicted calls, want %d", n, len(calls))
	}
	if n := strings.Count(log, "retransmission of a call that may have run answered as done"); n != len(calls) {
		t.Errorf("the server logged %d retransmissions answered as done, want %d:\n%s", n, len(calls), log)
	}
}
