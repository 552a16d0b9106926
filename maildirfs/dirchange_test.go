package maildirfs_test

import (
	"errors"
	"fmt"
	"slices"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// TestDirWccAtomic runs concurrent MKDIRs in one directory. Each one's
// after attributes are taken right after its own mkdir, before any other
// change there (RFC 1813 §2.6: a client takes the difference between the
// before and after attributes as the operation's own change), so the
// parent's link count in them goes up by exactly one from call to call:
// every count from 3 to N+2 is seen once. Where each change gets its own
// ctime (multigrain timestamps, Linux 6.13 on ext4), every call's before
// attributes are also exactly some other call's after attributes (or the
// initial state): a chain, with nothing in between.
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
	var links []uint32
	for i, w := range wccs {
		if w.Before == nil || w.After == nil {
			t.Fatalf("mkdir %d: wcc %+v", i, w)
		}
		links = append(links, w.After.Nlink)
	}
	slices.Sort(links)
	for i, l := range links {
		if l != uint32(i)+3 {
			t.Fatalf("parent link counts in the after attributes: %v, want 3..%d once each", links, n+2)
		}
	}
	type wattr struct {
		size         uint64
		mtime, ctime time.Time
	}
	afters := map[wattr]int{}
	for _, w := range wccs {
		afters[wattr{w.After.Size, w.After.Mtime, w.After.Ctime}]++
	}
	if len(afters) < n {
		t.Logf("changes share ctimes (no multigrain timestamps): the chain of before/after is not checked")
		return
	}
	afters[wattr{a0.Size, a0.Mtime, a0.Ctime}]++
	for i, w := range wccs {
		b := wattr{w.Before.Size, w.Before.Mtime, w.Before.Ctime}
		if afters[b] != 1 {
			t.Fatalf("mkdir %d: before attributes %+v are no other call's after attributes", i, b)
		}
		afters[b]--
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
