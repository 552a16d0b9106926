package maildirfs_test

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

var root = maildirfs.Cred{UID: 0, GID: 0}

func getattr(t testing.TB, s *mdtest.Store, h maildirfs.Handle) maildirfs.Attr {
	t.Helper()
	a, err := s.Getattr(h)
	if err != nil {
		t.Fatalf("getattr: %v", err)
	}
	return a
}

// lookup walks names from the export root as root.
func lookup(t testing.TB, s *mdtest.Store, names ...string) maildirfs.Handle {
	t.Helper()
	h := s.Root()
	for _, n := range names {
		nh, _, _, err := s.Lookup(h, root, n)
		if err != nil {
			t.Fatalf("lookup %q: %v", n, err)
		}
		h = nh
	}
	return h
}

func create(t testing.TB, s *mdtest.Store, dir maildirfs.Handle, c maildirfs.Cred, name string, data []byte) maildirfs.Handle {
	t.Helper()
	h, _, _, err := s.Create(dir, c, name, maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{})
	if err != nil {
		t.Fatalf("create %s: %v", name, err)
	}
	if len(data) > 0 {
		n, _, _, _, err := s.Write(h, c, 0, data, maildirfs.FileSync)
		if err != nil || n != len(data) {
			t.Fatalf("write %s: %d %v", name, n, err)
		}
	}
	return h
}

func TestOpenRootGetattr(t *testing.T) {
	s := mdtest.New(t)
	a := getattr(t, s, s.Root())
	fi, err := os.Stat(s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	if a.Type != maildirfs.TypeDir || a.FileID != st.Ino || a.FSID != s.FSID() || a.Mode != 0o755 {
		t.Fatalf("root attr %+v", a)
	}
	if len(s.Root()) > maildirfs.MaxHandle {
		t.Fatalf("handle %d bytes", len(s.Root()))
	}
	if id, ok := maildirfs.ExportIDOf(s.Root()); !ok || id != 0 {
		t.Fatalf("ExportIDOf = %d %v", id, ok)
	}
}

func TestLookupDots(t *testing.T) {
	s := mdtest.New(t)
	md := lookup(t, s, "Maildir")
	for _, tc := range []struct {
		dir  maildirfs.Handle
		name string
		want maildirfs.Handle
	}{
		{s.Root(), ".", s.Root()},
		{s.Root(), "..", s.Root()},
		{md, ".", md},
		{md, "..", s.Root()},
		{lookup(t, s, "Maildir", "new"), "..", md},
	} {
		h, _, _, err := s.Lookup(tc.dir, root, tc.name)
		if err != nil || !bytes.Equal(h, tc.want) {
			t.Errorf("lookup %q: %x %v want %x", tc.name, h, err, tc.want)
		}
	}
	if _, _, _, err := s.Lookup(s.Root(), root, "nope"); !errors.Is(err, syscall.ENOENT) {
		t.Errorf("missing: %v", err)
	}
	long := string(bytes.Repeat([]byte("x"), 256))
	if _, _, _, err := s.Lookup(s.Root(), root, long); !errors.Is(err, syscall.ENAMETOOLONG) {
		t.Errorf("long: %v", err)
	}
	for _, bad := range []string{"a/b", "a\x00b"} {
		if _, _, _, err := s.Lookup(s.Root(), root, bad); !errors.Is(err, syscall.EINVAL) {
			t.Errorf("%q: %v", bad, err)
		}
	}
}

func TestHandleSurvivesRenameAndRestart(t *testing.T) {
	s := mdtest.New(t)
	tmp, nw, cur := lookup(t, s, "Maildir", "tmp"), lookup(t, s, "Maildir", "new"), lookup(t, s, "Maildir", "cur")
	h := create(t, s, tmp, root, "1.M1P1.host", []byte("hello"))
	a0 := getattr(t, s, h)
	if _, _, err := s.Rename(tmp, "1.M1P1.host", nw, "1.M1P1.host", root); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.Rename(nw, "1.M1P1.host", cur, "1.M1P1.host:2,S", root); err != nil {
		t.Fatal(err)
	}
	a1 := getattr(t, s, h)
	if a1.FileID != a0.FileID || a1.Size != 5 {
		t.Fatalf("after rename: %+v", a1)
	}
	s.Reopen(t)
	a2 := getattr(t, s, h)
	if a2.FileID != a0.FileID {
		t.Fatalf("after restart: %+v", a2)
	}
	buf := make([]byte, 10)
	n, eof, _, err := s.Read(h, root, 0, buf)
	if err != nil || n != 5 || !eof || string(buf[:n]) != "hello" {
		t.Fatalf("read after restart: %d %v %v %q", n, eof, err, buf[:n])
	}
	h2, _, _, err := s.Lookup(cur, root, "1.M1P1.host:2,S")
	if err != nil || !bytes.Equal(h, h2) {
		t.Fatalf("lookup after restart gives %x %v, want %x", h2, err, h)
	}
}

func TestRemovedIsStale(t *testing.T) {
	s := mdtest.New(t)
	tmp := lookup(t, s, "Maildir", "tmp")
	h := create(t, s, tmp, root, "x", []byte("x"))
	if _, err := s.Remove(tmp, root, "x"); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Getattr(h); !errors.Is(err, maildirfs.ErrStale) {
		t.Fatalf("getattr removed: %v", err)
	}
	s.Reopen(t)
	if _, err := s.Getattr(h); !errors.Is(err, maildirfs.ErrStale) {
		t.Fatalf("getattr removed after restart: %v", err)
	}
	// A file removed behind the store's back (nlink 0 while cached).
	h = create(t, s, tmp, root, "y", nil)
	if err := os.Remove(filepath.Join(s.Dir, "Maildir/tmp/y")); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Getattr(h); !errors.Is(err, maildirfs.ErrStale) {
		t.Fatalf("getattr removed locally: %v", err)
	}
}

// TestLocalRemoveFreesSpace: a file a local process removes (an IMAP
// server on the box expunging, an operator's rm -r) is not held open by
// the store's cache, which would keep its blocks allocated (df unchanged)
// until the LRU evicted its node or a client used its handle again.
func TestLocalRemoveFreesSpace(t *testing.T) {
	defer maildirfs.SetUnlinkedSweep(10 * time.Millisecond)()
	s := mdtest.New(t)
	tmp := lookup(t, s, "Maildir", "tmp")
	h := create(t, s, tmp, root, "big", bytes.Repeat([]byte("x"), 1<<20))
	buf := make([]byte, 10)
	if _, _, _, err := s.Read(h, root, 0, buf); err != nil { // an I/O fd too
		t.Fatal(err)
	}
	p := filepath.Join(s.Dir, "Maildir/tmp/big")
	if err := os.Remove(p); err != nil {
		t.Fatal(err)
	}
	held := func() (fds []string) {
		ents, _ := os.ReadDir("/proc/self/fd")
		for _, e := range ents {
			if l, err := os.Readlink(filepath.Join("/proc/self/fd", e.Name())); err == nil && l == p+" (deleted)" {
				fds = append(fds, e.Name())
			}
		}
		return fds
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(held()) > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	if fds := held(); len(fds) > 0 {
		t.Fatalf("fds %v of the removed file still open: its blocks stay allocated", fds)
	}
	if _, err := s.Getattr(h); !errors.Is(err, maildirfs.ErrStale) {
		t.Fatalf("getattr removed locally: %v", err)
	}
}

func TestBadHandles(t *testing.T) {
	s := mdtest.New(t)
	h := create(t, s, s.Root(), root, "f", []byte("data"))
	other := mdtest.NewOpts(t, maildirfs.Options{ExportID: 7})
	otherKey := mdtest.NewOpts(t, maildirfs.Options{})
	cases := map[string]maildirfs.Handle{
		"empty":        nil,
		"truncated":    h[:len(h)-1],
		"short":        h[:6],
		"too long":     append(append(maildirfs.Handle(nil), h...), make([]byte, 64)...),
		"other key":    create(t, otherKey, otherKey.Root(), root, "f", nil),
		"other export": create(t, other, other.Root(), root, "f", nil),
	}
	for i := range h {
		e := append(maildirfs.Handle(nil), h...)
		e[i] ^= 0x01
		cases["flip byte "+string(rune('A'+i%26))+string(rune('0'+i/26))] = e
	}
	for name, bad := range cases {
		if _, err := s.Getattr(bad); !errors.Is(err, maildirfs.ErrBadHandle) {
			t.Errorf("%s: Getattr err = %v, want ErrBadHandle", name, err)
		}
		if _, _, _, err := s.Lookup(bad, root, "x"); !errors.Is(err, maildirfs.ErrBadHandle) {
			t.Errorf("%s: Lookup err = %v, want ErrBadHandle", name, err)
		}
	}
	if id, ok := maildirfs.ExportIDOf(cases["other export"]); !ok || id != 7 {
		t.Errorf("ExportIDOf other = %d %v", id, ok)
	}
	_ = time.Now
}
