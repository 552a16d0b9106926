package maildirfs_test

import (
	"errors"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// TestDirWccAtomic runs concurrent MKDIRs in one directory. A call that
// sends before attributes claims that the difference to its after
// attributes is its own change alone (RFC 1813 §2.6), so for those calls
// the parent's link count in the after attributes is that call's own and
// no other's, and, where each change gets its own ctime (multigrain
// timestamps, Linux 6.13 on ext4), the before attributes are exactly
// another call's after attributes or the initial state. A call that
// overlapped another sends none.
func TestDirWccAtomic(t *testing.T) {
	s := mdtest.New(t)
	dir, _, _, err := s.Mkdir(s.Root(), root, "d", maildirfs.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	a0 := getattr(t, s, dir)
	const n = 32
	wccs := make([]maildirfs.Wcc, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, _, wcc, err := s.Mkdir(dir, root, fmt.Sprint("s", i), maildirfs.SetAttr{})
			if err != nil {
				t.Error(err)
			}
			wccs[i] = wcc
		})
	}
	wg.Wait()
	type wattr struct {
		size         uint64
		mtime, ctime time.Time
	}
	links := map[uint32]int{}
	afters := map[wattr]int{{a0.Size, a0.Mtime, a0.Ctime}: 1}
	with := 0
	for i, w := range wccs {
		if w.After == nil {
			t.Fatalf("mkdir %d: no after attributes", i)
		}
		links[w.After.Nlink]++
		afters[wattr{w.After.Size, w.After.Mtime, w.After.Ctime}]++
		if w.Before != nil {
			with++
		}
	}
	for i, w := range wccs {
		if w.Before == nil {
			continue
		}
		if links[w.After.Nlink] != 1 {
			t.Errorf("mkdir %d sends before attributes, but its after attributes (%d links) are another call's too", i, w.After.Nlink)
		}
		if len(afters) == n+1 && afters[wattr{w.Before.Size, w.Before.Mtime, w.Before.Ctime}] == 0 {
			t.Errorf("mkdir %d: before attributes %+v are no state the directory had between two changes", i, w.Before)
		}
	}
	t.Logf("%d of %d calls sent before attributes", with, n)
}

// TestDirWccOverlap holds a REMOVE in the middle of its change (its
// unlink) while a CREATE in the same directory runs: the CREATE is not
// made to wait for it, and neither sends before attributes, as each one's
// window held the other's change.
func TestDirWccOverlap(t *testing.T) {
	hold := make(chan struct{})
	held := make(chan struct{})
	var once sync.Once
	s := mdtest.NewOpts(t, maildirfs.Options{Inject: func(op maildirfs.FaultOp) error {
		if op == maildirfs.FaultUnlink {
			once.Do(func() {
				close(held)
				<-hold
			})
		}
		return nil
	}})
	tmp := lookup(t, s, "Maildir", "tmp")
	create(t, s, tmp, root, "old", nil)
	rm := make(chan maildirfs.Wcc, 1)
	go func() {
		wcc, err := s.Remove(tmp, root, "old")
		if err != nil {
			t.Error(err)
		}
		rm <- wcc
	}()
	<-held
	done := make(chan maildirfs.Wcc, 1)
	go func() {
		_, _, wcc, err := s.Create(tmp, root, "new", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{})
		if err != nil {
			t.Error(err)
		}
		done <- wcc
	}()
	var cw maildirfs.Wcc
	select {
	case cw = <-done:
	case <-time.After(10 * time.Second):
		close(hold)
		t.Fatal("the CREATE waited for the REMOVE in another name")
	}
	close(hold)
	rw := <-rm
	if rw.Before != nil || cw.Before != nil {
		t.Errorf("overlapping changes sent before attributes: REMOVE %+v, CREATE %+v", rw.Before, cw.Before)
	}
	if rw.After == nil || cw.After == nil {
		t.Errorf("no after attributes: REMOVE %+v, CREATE %+v", rw.After, cw.After)
	}
	// Alone, a change sends both.
	if _, _, wcc, err := s.Create(tmp, root, "alone", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{}); err != nil || wcc.Before == nil || wcc.After == nil {
		t.Errorf("a CREATE alone: %v, wcc %+v", err, wcc)
	}
	for _, name := range []string{"new", "alone"} {
		if _, err := s.Remove(tmp, root, name); err != nil {
			t.Fatal(err)
		}
	}
}

// TestCreateWaitsForCreator: an UNCHECKED CREATE of a name that another
// CREATE has just made and is still setting up (here: held in its sync)
// waits for it, and then answers the finished file (its owner and mode,
// durable), not the root-owned 0600 file of the moment.
func TestCreateWaitsForCreator(t *testing.T) {
	hold := make(chan struct{})
	held := make(chan struct{})
	var once sync.Once
	var armed sync.Mutex
	armed.Lock() // unlocked when the first CREATE should be held
	s := mdtest.NewOpts(t, maildirfs.Options{Inject: func(op maildirfs.FaultOp) error {
		if op == maildirfs.FaultFsync && armed.TryLock() {
			once.Do(func() { close(held) })
			<-hold
		}
		return nil
	}})
	tmp := lookup(t, s, "Maildir", "tmp")
	alice := maildirfs.Cred{UID: 2001, GID: 2001}
	if _, err := s.SetAttr(tmp, root, maildirfs.SetAttr{Mode: u32(0o777)}, nil); err != nil {
		t.Fatal(err)
	}
	armed.Unlock()
	first := make(chan error, 1)
	go func() {
		_, _, _, err := s.Create(tmp, alice, "m", maildirfs.Unchecked, maildirfs.SetAttr{Mode: u32(0o640)}, [8]byte{})
		first <- err
	}()
	<-held
	type result struct {
		a   *maildirfs.Attr
		err error
	}
	second := make(chan result, 1)
	go func() {
		_, a, _, err := s.Create(tmp, alice, "m", maildirfs.Unchecked, maildirfs.SetAttr{}, [8]byte{})
		second <- result{a, err}
	}()
	select {
	case r := <-second:
		close(hold)
		t.Fatalf("the second CREATE answered (%+v, %v) while the first was still syncing the file", r.a, r.err)
	case <-time.After(200 * time.Millisecond):
	}
	close(hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	r := <-second
	if r.err != nil || r.a.UID != 2001 || r.a.Mode != 0o640 {
		t.Fatalf("second CREATE: %v %+v", r.err, r.a)
	}
	if _, err := s.Remove(tmp, alice, "m"); err != nil {
		t.Fatal(err)
	}
}

// TestCreateFailureRemovesObject: CREATE, MKDIR, SYMLINK and MKNOD that
// fail after making their object (here: its sync) remove it again, so
// nothing half made stays (a root-owned file in tmp/) and a GUARDED retry
// succeeds instead of answering EEXIST.
func TestCreateFailureRemovesObject(t *testing.T) {
	s := mdtest.New(t)
	tmp := lookup(t, s, "Maildir", "tmp")
	u := maildirfs.Cred{UID: 1000, GID: 1000}
	if _, err := s.SetAttr(tmp, root, maildirfs.SetAttr{Mode: u32(0o777)}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, entry string
		make        func() error
	}{
		{"create", "f", func() error {
			_, _, _, err := s.Create(tmp, u, "f", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{})
			return err
		}},
		{"mkdir", "d", func() error {
			_, _, _, err := s.Mkdir(tmp, u, "d", maildirfs.SetAttr{})
			return err
		}},
		{"symlink", "l", func() error {
			_, _, _, err := s.Symlink(tmp, u, "l", "target", maildirfs.SetAttr{})
			return err
		}},
		{"mknod", "p", func() error {
			_, _, _, err := s.Mknod(tmp, u, "p", maildirfs.TypeFifo, maildirfs.SetAttr{}, 0, 0)
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s.Faults.FailAll(maildirfs.FaultFsync, syscall.EIO)
			err := tc.make()
			s.Faults.Clear()
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("with failing syncs: %v, want EIO", err)
			}
			if _, a, _, err := s.Lookup(tmp, root, tc.entry); !errors.Is(err, syscall.ENOENT) {
				t.Fatalf("left behind: %+v (%v)", a, err)
			}
			if err := tc.make(); err != nil {
				t.Fatalf("retry: %v", err)
			}
		})
	}
	for _, name := range []string{"f", "l", "p"} {
		if _, err := s.Remove(tmp, u, name); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.Rmdir(tmp, u, "d"); err != nil {
		t.Fatal(err)
	}
}

// TestRenameWaitsForCreation: a RENAME onto a name that a MKDIR has just
// made and is still setting up (held in its sync) waits for it, so it
// cannot put another directory under the name before the MKDIR's chown
// (which would give that directory to the MKDIR's caller).
func TestRenameWaitsForCreation(t *testing.T) {
	hold := make(chan struct{})
	held := make(chan struct{})
	var armed sync.Mutex
	armed.Lock()
	s := mdtest.NewOpts(t, maildirfs.Options{Inject: func(op maildirfs.FaultOp) error {
		if op == maildirfs.FaultFsync && armed.TryLock() {
			close(held)
			<-hold
		}
		return nil
	}})
	r := s.Root()
	if _, err := s.SetAttr(r, root, maildirfs.SetAttr{Mode: u32(0o777)}, nil); err != nil {
		t.Fatal(err)
	}
	victim, _, _, err := s.Mkdir(r, maildirfs.Cred{UID: 2001, GID: 2001}, "victim", maildirfs.SetAttr{})
	if err != nil {
		t.Fatal(err)
	}
	armed.Unlock()
	made := make(chan error, 1)
	go func() {
		_, _, _, err := s.Mkdir(r, maildirfs.Cred{UID: 2002, GID: 2002}, "new", maildirfs.SetAttr{})
		made <- err
	}()
	<-held
	renamed := make(chan error, 1)
	go func() {
		_, _, err := s.Rename(r, "victim", r, "new", root)
		renamed <- err
	}()
	select {
	case err := <-renamed:
		close(hold)
		t.Fatalf("RENAME onto a name being created finished (%v) before the creation", err)
	case <-time.After(200 * time.Millisecond):
	}
	close(hold)
	if err := <-made; err != nil {
		t.Fatal(err)
	}
	if err := <-renamed; err != nil {
		t.Fatal(err)
	}
	if a := getattr(t, s, victim); a.UID != 2001 {
		t.Errorf("the renamed directory belongs to %d, want its owner 2001", a.UID)
	}
}
