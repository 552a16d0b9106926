package mdtest

import (
	"errors"
	"fmt"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/maildirfs"
)

func TestFaultsFailNth(t *testing.T) {
	var f Faults
	hook := f.Hook()
	hook(maildirfs.FaultFsync)
	f.FailNth(maildirfs.FaultFsync, 2, nil)
	f.FailNth(maildirfs.FaultRename, 1, syscall.ENOSPC)
	var got []bool
	for range 4 {
		got = append(got, hook(maildirfs.FaultFsync) != nil)
	}
	if want := []bool{false, true, false, false}; fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("fsync failures %v, want %v", got, want)
	}
	if err := hook(maildirfs.FaultRename); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("rename: %v", err)
	}
	if f.Count(maildirfs.FaultFsync) != 5 || f.Count(maildirfs.FaultRename) != 1 {
		t.Fatalf("counts %d %d", f.Count(maildirfs.FaultFsync), f.Count(maildirfs.FaultRename))
	}
	f.FailAll(maildirfs.FaultLink, nil)
	for range 3 {
		if err := hook(maildirfs.FaultLink); !errors.Is(err, syscall.EIO) {
			t.Fatalf("link: %v", err)
		}
	}
	f.Clear()
	if err := hook(maildirfs.FaultLink); err != nil {
		t.Fatalf("after Clear: %v", err)
	}
}

// TestStoreInjectsIntoFS: the Store's Faults reach the FS.
func TestStoreInjectsIntoFS(t *testing.T) {
	s := New(t)
	s.Faults.FailNth(maildirfs.FaultCreate, 1, syscall.ENOSPC)
	if _, _, _, err := s.Create(s.Root(), maildirfs.Cred{}, "f", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{}); !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("create: %v", err)
	}
	if _, _, _, err := s.Create(s.Root(), maildirfs.Cred{}, "f", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{}); err != nil {
		t.Fatalf("second create: %v", err)
	}
	s.Reopen(t)
	if _, _, _, err := s.Lookup(s.Root(), maildirfs.Cred{}, "f"); err != nil {
		t.Fatalf("after reopen: %v", err)
	}
}

// TestCheckFlagsBrokenMaildir runs Check on a tree with a stray tmp file
// through a sub-test whose failure is expected.
func TestCheckFlagsBrokenMaildir(t *testing.T) {
	s := New(t)
	s.SkipCheck = true
	if _, _, _, err := s.Create(s.mustLookup(t, "Maildir", "tmp"), maildirfs.Cred{}, "stray", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{}); err != nil {
		t.Fatal(err)
	}
	rec := &recorder{TB: t}
	Check(rec, s.Dir)
	if rec.errors != 1 {
		t.Fatalf("Check reported %d errors, want 1", rec.errors)
	}
}

type recorder struct {
	testing.TB
	errors int
}

func (r *recorder) Errorf(string, ...any) { r.errors++ }
func (r *recorder) Helper()               {}

func (s *Store) mustLookup(t *testing.T, names ...string) maildirfs.Handle {
	h := s.Root()
	for _, n := range names {
		nh, _, _, err := s.Lookup(h, maildirfs.Cred{}, n)
		if err != nil {
			t.Fatal(err)
		}
		h = nh
	}
	return h
}
