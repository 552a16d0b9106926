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

func u32(v uint32) *uint32 { return &v }
func u64(v uint64) *uint64 { return &v }

func readAll(t testing.TB, s *mdtest.Store, h maildirfs.Handle) string {
	t.Helper()
	buf := make([]byte, 1<<16)
	n, _, _, err := s.Read(h, root, 0, buf)
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(buf[:n])
}

func TestCreateModes(t *testing.T) {
	s := mdtest.New(t)
	r := s.Root()
	h := create(t, s, r, root, "f", []byte("content"))

	t.Run("UncheckedDoesNotTruncate", func(t *testing.T) {
		h2, a, _, err := s.Create(r, root, "f", maildirfs.Unchecked, maildirfs.SetAttr{Mode: u32(0o600)}, [8]byte{})
		if err != nil || !bytes.Equal(h, h2) || a.Size != 7 {
			t.Fatalf("unchecked existing: %v %+v", err, a)
		}
		if got := readAll(t, s, h); got != "content" {
			t.Fatalf("content %q", got)
		}
	})
	t.Run("UncheckedSizeZeroTruncates", func(t *testing.T) {
		_, a, _, err := s.Create(r, root, "f", maildirfs.Unchecked, maildirfs.SetAttr{Size: u64(0)}, [8]byte{})
		if err != nil || a.Size != 0 {
			t.Fatalf("unchecked size 0: %v %+v", err, a)
		}
	})
	t.Run("GuardedExists", func(t *testing.T) {
		if _, _, wcc, err := s.Create(r, root, "f", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{}); !errors.Is(err, syscall.EEXIST) || wcc.Before == nil || wcc.After == nil {
			t.Fatalf("guarded: %v %+v", err, wcc)
		}
	})
	t.Run("GuardedAttrs", func(t *testing.T) {
		if _, err := s.SetAttr(r, root, maildirfs.SetAttr{Mode: u32(0o777)}, nil); err != nil {
			t.Fatal(err)
		}
		_, a, wcc, err := s.Create(r, maildirfs.Cred{UID: 3000, GID: 3001}, "g", maildirfs.Guarded, maildirfs.SetAttr{Mode: u32(0o640)}, [8]byte{})
		if err != nil || a.Mode != 0o640 || a.UID != 3000 || a.GID != 3001 || a.Type != maildirfs.TypeReg {
			t.Fatalf("guarded new: %v %+v", err, a)
		}
		if wcc.Before == nil || wcc.After == nil || !wcc.After.Mtime.After(wcc.Before.Mtime) && wcc.After.Mtime != wcc.Before.Mtime {
			t.Fatalf("wcc %+v", wcc)
		}
	})
	t.Run("NonRegularExisting", func(t *testing.T) {
		if _, _, _, err := s.Create(r, root, "Maildir", maildirfs.Unchecked, maildirfs.SetAttr{}, [8]byte{}); !errors.Is(err, syscall.EEXIST) {
			t.Fatalf("unchecked over dir: %v", err)
		}
	})
	t.Run("ExclusiveRetransmission", func(t *testing.T) {
		verf := [8]byte{0xff, 1, 2, 3, 4, 5, 6, 7}
		h1, a, _, err := s.Create(r, root, "x", maildirfs.Exclusive, maildirfs.SetAttr{}, verf)
		if err != nil {
			t.Fatal(err)
		}
		// The seconds hold the verifier; a root caller's file has 1 ns
		// (given: no other caller's CREATE finishes it).
		if a.Mtime.Unix() != 0x7f010203 || a.Atime.Unix() != 0x04050607 || a.Mtime.Nanosecond() != 1 {
			t.Fatalf("verifier times: %v %v", a.Mtime, a.Atime)
		}
		h2, _, _, err := s.Create(r, root, "x", maildirfs.Exclusive, maildirfs.SetAttr{}, verf)
		if err != nil || !bytes.Equal(h1, h2) {
			t.Fatalf("retransmission: %v", err)
		}
		verf[7]++
		if _, _, _, err := s.Create(r, root, "x", maildirfs.Exclusive, maildirfs.SetAttr{}, verf); !errors.Is(err, syscall.EEXIST) {
			t.Fatalf("other verifier: %v", err)
		}
		verf[7]--
		if _, _, _, _, err := s.Write(h1, root, 0, []byte("a"), maildirfs.Unstable); err != nil {
			t.Fatal(err)
		}
		if _, _, _, err := s.Create(r, root, "x", maildirfs.Exclusive, maildirfs.SetAttr{}, verf); !errors.Is(err, syscall.EEXIST) {
			t.Fatalf("non-empty: %v", err)
		}
		if st := s.Stats(); st.FileSyncCalls == 0 {
			t.Fatal("exclusive create did not sync the file")
		}
	})
	t.Run("BadNames", func(t *testing.T) {
		for name, want := range map[string]error{".": syscall.EEXIST, "..": syscall.EEXIST, "a/b": syscall.EINVAL, string(make([]byte, 256)): syscall.ENAMETOOLONG} {
			if _, _, _, err := s.Create(r, root, name, maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{}); !errors.Is(err, want) {
				t.Errorf("%q: %v want %v", name, err, want)
			}
		}
	})
}

func TestWriteCommitStats(t *testing.T) {
	s := mdtest.New(t)
	h, _, _, err := s.Create(s.Root(), root, "f", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{})
	if err != nil {
		t.Fatal(err)
	}
	verf := s.WriteVerifier()
	for _, tc := range []struct {
		how       maildirfs.StableHow
		wantSyncs uint64
	}{{maildirfs.Unstable, 0}, {maildirfs.DataSync, 1}, {maildirfs.FileSync, 1}} {
		before := s.Stats()
		n, committed, v, wcc, err := s.Write(h, root, 0, []byte("hello"), tc.how)
		after := s.Stats()
		if err != nil || n != 5 || committed != tc.how || v != verf || wcc.Before == nil || wcc.After == nil || wcc.After.Size != 5 {
			t.Fatalf("write %d: n=%d committed=%d err=%v wcc=%+v", tc.how, n, committed, err, wcc)
		}
		if d := after.FileSyncs - before.FileSyncs; d != tc.wantSyncs {
			t.Errorf("write %d: %d file syncs, want %d", tc.how, d, tc.wantSyncs)
		}
	}
	before := s.Stats()
	v, wcc, err := s.Commit(h, root, 0, 0)
	if err != nil || v != verf || wcc.After == nil {
		t.Fatalf("commit: %v", err)
	}
	if d := s.Stats().FileSyncs - before.FileSyncs; d != 1 {
		t.Fatalf("commit: %d syncs", d)
	}
	// Sparse write far away, read back with EOF.
	if _, _, _, _, err := s.Write(h, root, 1<<20, []byte("end"), maildirfs.Unstable); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 10)
	n, eof, post, err := s.Read(h, root, 1<<20, buf)
	if err != nil || n != 3 || !eof || post.Size != 1<<20+3 {
		t.Fatalf("read tail: %d %v %v", n, eof, err)
	}
	n, eof, _, err = s.Read(h, root, 0, buf[:5])
	if err != nil || n != 5 || eof || string(buf[:5]) != "hello" {
		t.Fatalf("read head: %d %v %v %q", n, eof, err, buf[:5])
	}
	// Directory sync on create, rename (both dirs), remove; where one sync
	// commits an operation (journalled file systems), create syncs the new
	// file only and a rename its target directory only.
	createDirSyncs, renameDirSyncs := uint64(1), uint64(2)
	if s.CommitModel().OneSync {
		createDirSyncs, renameDirSyncs = 0, 1
	}
	md := lookup(t, s, "Maildir")
	tmp, nw := lookup(t, s, "Maildir", "tmp"), lookup(t, s, "Maildir", "new")
	before = s.Stats()
	create(t, s, tmp, root, "m", nil)
	if d := s.Stats().DirSyncs - before.DirSyncs; d != createDirSyncs {
		t.Fatalf("create: %d dir syncs, want %d", d, createDirSyncs)
	}
	before = s.Stats()
	if _, _, err := s.Rename(tmp, "m", nw, "m", root); err != nil {
		t.Fatal(err)
	}
	if d := s.Stats().DirSyncs - before.DirSyncs; d != renameDirSyncs {
		t.Fatalf("rename across dirs: %d dir syncs, want %d", d, renameDirSyncs)
	}
	before = s.Stats()
	if _, _, err := s.Rename(nw, "m", nw, "m2", root); err != nil {
		t.Fatal(err)
	}
	if d := s.Stats().DirSyncs - before.DirSyncs; d != 1 {
		t.Fatalf("rename in one dir: %d dir syncs, want 1", d)
	}
	before = s.Stats()
	if _, err := s.Remove(nw, root, "m2"); err != nil {
		t.Fatal(err)
	}
	if d := s.Stats().DirSyncs - before.DirSyncs; d != 1 {
		t.Fatalf("remove: %d dir syncs", d)
	}
	_ = md
	before = s.Stats()
	if _, err := s.SetAttr(h, root, maildirfs.SetAttr{Mode: u32(0o600)}, nil); err != nil {
		t.Fatal(err)
	}
	if d := s.Stats().FileSyncs - before.FileSyncs; d != 1 {
		t.Fatalf("setattr: %d file syncs", d)
	}
	// Writes to a directory or symlink fail.
	if _, _, _, _, err := s.Write(md, root, 0, []byte("x"), maildirfs.Unstable); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("write dir: %v", err)
	}
}

func TestSyncFailureRotatesVerifier(t *testing.T) {
	s := mdtest.New(t)
	h := create(t, s, s.Root(), root, "f", nil)
	v0 := s.WriteVerifier()
	s.Faults.FailNth(maildirfs.FaultFsync, 1, syscall.EIO)
	_, _, _, _, err := s.Write(h, root, 0, []byte("x"), maildirfs.FileSync)
	if !errors.Is(err, syscall.EIO) {
		t.Fatalf("write with failing fsync: %v", err)
	}
	if s.WriteVerifier() == v0 {
		t.Fatal("verifier not rotated")
	}
	if s.Stats().SyncErrors != 1 {
		t.Fatalf("SyncErrors = %d", s.Stats().SyncErrors)
	}
	v1 := s.WriteVerifier()
	if v, _, err := s.Commit(h, root, 0, 0); err != nil || v != v1 {
		t.Fatalf("commit after: %v", err)
	}
	// A failing directory fsync fails the namespace operation.
	tmp, nw := lookup(t, s, "Maildir", "tmp"), lookup(t, s, "Maildir", "new")
	create(t, s, tmp, root, "m", nil)
	s.Faults.FailNth(maildirfs.FaultFsync, 1, syscall.EIO)
	if _, _, err := s.Rename(tmp, "m", nw, "m", root); !errors.Is(err, syscall.EIO) {
		t.Fatalf("rename with failing dir sync: %v", err)
	}
	// A failing rename moves nothing.
	create(t, s, tmp, root, "n", nil)
	s.Faults.FailNth(maildirfs.FaultRename, 1, syscall.EIO)
	if _, _, err := s.Rename(tmp, "n", nw, "n", root); !errors.Is(err, syscall.EIO) {
		t.Fatalf("failing rename: %v", err)
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "Maildir/tmp/n")); err != nil {
		t.Fatalf("source gone after failed rename: %v", err)
	}
	if _, err := s.Remove(tmp, root, "n"); err != nil {
		t.Fatal(err)
	}
}

func TestSetAttr(t *testing.T) {
	s := mdtest.New(t)
	h := create(t, s, s.Root(), root, "f", []byte("0123456789"))
	a := getattr(t, s, h)
	mt := time.Unix(1000000000, 123456789)
	wcc, err := s.SetAttr(h, root, maildirfs.SetAttr{Mode: u32(0o4751), UID: u32(5), GID: u32(6), Size: u64(4), Mtime: maildirfs.ClientTime, MtimeVal: mt, Atime: maildirfs.ServerTime}, a.Ctime.Equal)
	if err != nil {
		t.Fatal(err)
	}
	b := getattr(t, s, h)
	if b.Mode != 0o4751 || b.UID != 5 || b.GID != 6 || b.Size != 4 || !b.Mtime.Equal(mt) || wcc.Before.Size != 10 || wcc.After.Size != 4 {
		t.Fatalf("after setattr %+v", b)
	}
	if _, err := s.SetAttr(h, root, maildirfs.SetAttr{Mode: u32(0o600)}, a.Ctime.Equal); !errors.Is(err, maildirfs.ErrNotSync) {
		t.Fatalf("stale guard: %v", err)
	}
	if _, err := s.SetAttr(s.Root(), root, maildirfs.SetAttr{Size: u64(0)}, nil); !errors.Is(err, syscall.EISDIR) {
		t.Fatalf("truncate dir: %v", err)
	}
}

func TestNamespaceOps(t *testing.T) {
	s := mdtest.New(t)
	r := s.Root()
	if _, err := s.SetAttr(r, root, maildirfs.SetAttr{Mode: u32(0o777)}, nil); err != nil {
		t.Fatal(err)
	}
	d, a, _, err := s.Mkdir(r, maildirfs.Cred{UID: 2001, GID: 2001}, "d", maildirfs.SetAttr{Mode: u32(0o750)})
	if err != nil || a.Type != maildirfs.TypeDir || a.Mode != 0o750 || a.UID != 2001 {
		t.Fatalf("mkdir: %v %+v", err, a)
	}
	if _, _, _, err := s.Mkdir(r, root, "d", maildirfs.SetAttr{}); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("mkdir exists: %v", err)
	}
	f := create(t, s, d, root, "f", []byte("x"))
	t.Run("Link", func(t *testing.T) {
		a, wcc, err := s.Link(f, r, "f2", root)
		if err != nil || a.Nlink != 2 || wcc.After == nil {
			t.Fatalf("link: %v %+v", err, a)
		}
		if _, _, err := s.Link(f, r, "f2", root); !errors.Is(err, syscall.EEXIST) {
			t.Fatalf("link exists: %v", err)
		}
		if _, _, err := s.Link(d, r, "d2", root); !errors.Is(err, syscall.EISDIR) {
			t.Fatalf("link dir: %v", err)
		}
		h2, _, _, _ := s.Lookup(r, root, "f2")
		if !bytes.Equal(h2, f) {
			t.Fatal("hard link has another handle")
		}
	})
	t.Run("Symlink", func(t *testing.T) {
		h, a, _, err := s.Symlink(r, maildirfs.Cred{UID: 2001, GID: 2001}, "l", "../../etc/passwd", maildirfs.SetAttr{})
		if err != nil || a.Type != maildirfs.TypeLnk || a.UID != 2001 {
			t.Fatalf("symlink: %v %+v", err, a)
		}
		tgt, _, err := s.Readlink(h, root)
		if err != nil || tgt != "../../etc/passwd" {
			t.Fatalf("readlink %q %v", tgt, err)
		}
		if _, _, err := s.Readlink(f, root); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("readlink file: %v", err)
		}
	})
	t.Run("Mknod", func(t *testing.T) {
		for _, typ := range []maildirfs.FileType{maildirfs.TypeFifo, maildirfs.TypeSock, maildirfs.TypeChr, maildirfs.TypeBlk} {
			name := "n" + string(rune('0'+typ))
			h, a, _, err := s.Mknod(r, root, name, typ, maildirfs.SetAttr{Mode: u32(0o640)}, 1, 3)
			if err != nil || a.Type != typ || a.Mode != 0o640 {
				t.Fatalf("mknod %d: %v %+v", typ, err, a)
			}
			if typ == maildirfs.TypeChr && (a.RdevMajor != 1 || a.RdevMinor != 3) {
				t.Fatalf("rdev %+v", a)
			}
			// Operations on special files never open them.
			if _, err := s.SetAttr(h, root, maildirfs.SetAttr{Mode: u32(0o600)}, nil); err != nil {
				t.Fatalf("chmod %d: %v", typ, err)
			}
			if _, _, _, err := s.Read(h, root, 0, make([]byte, 1)); !errors.Is(err, syscall.EINVAL) {
				t.Fatalf("read special: %v", err)
			}
		}
		if _, _, _, err := s.Mknod(d, maildirfs.Cred{UID: 2001, GID: 2001}, "c", maildirfs.TypeChr, maildirfs.SetAttr{}, 1, 3); !errors.Is(err, syscall.EPERM) {
			t.Fatalf("non-root chr: %v", err)
		}
		if _, _, _, err := s.Mknod(d, root, "r", maildirfs.TypeReg, maildirfs.SetAttr{}, 0, 0); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("mknod reg: %v", err)
		}
	})
	t.Run("Rename", func(t *testing.T) {
		e, _, _, _ := s.Mkdir(r, root, "e", maildirfs.SetAttr{})
		create(t, s, e, root, "inside", nil)
		if _, _, err := s.Rename(r, "d", r, "e", root); !errors.Is(err, syscall.ENOTEMPTY) && !errors.Is(err, syscall.EEXIST) {
			t.Fatalf("dir onto non-empty dir: %v", err)
		}
		if _, _, err := s.Rename(r, "d", d, "sub", root); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("into own subtree: %v", err)
		}
		if _, _, err := s.Rename(r, "f2", d, "f", root); err != nil {
			t.Fatalf("same file: %v", err)
		}
		if _, err := os.Lstat(filepath.Join(s.Dir, "f2")); err != nil {
			t.Fatal("same-file rename removed the source")
		}
		if _, _, err := s.Rename(r, "f2", r, "e", root); !errors.Is(err, syscall.EISDIR) {
			t.Fatalf("file onto dir: %v", err)
		}
		if _, _, err := s.Rename(r, "nope", r, "x", root); !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("missing source: %v", err)
		}
		from, to, err := s.Rename(r, "f2", e, "inside", root)
		if err != nil || from.Before == nil || to.After == nil {
			t.Fatalf("rename over file: %v", err)
		}
		if h, _, _, _ := s.Lookup(e, root, "inside"); !bytes.Equal(h, f) {
			t.Fatal("rename over file: wrong target")
		}
	})
	t.Run("RemoveRmdir", func(t *testing.T) {
		if _, err := s.Remove(r, root, "d"); !errors.Is(err, syscall.EISDIR) {
			t.Fatalf("remove dir: %v", err)
		}
		if _, err := s.Rmdir(r, root, "d"); !errors.Is(err, syscall.ENOTEMPTY) {
			t.Fatalf("rmdir non-empty: %v", err)
		}
		if _, err := s.Rmdir(d, root, "f"); !errors.Is(err, syscall.ENOTDIR) {
			t.Fatalf("rmdir file: %v", err)
		}
		if _, err := s.Remove(d, root, "f"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Rmdir(r, root, "d"); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Getattr(d); !errors.Is(err, maildirfs.ErrStale) {
			t.Fatalf("removed dir: %v", err)
		}
		if _, err := s.Rmdir(r, root, "."); !errors.Is(err, syscall.EINVAL) {
			t.Fatalf("rmdir .: %v", err)
		}
	})
	t.Run("FSStat", func(t *testing.T) {
		st, _, err := s.FSStat(r)
		if err != nil || st.TotalBytes == 0 || st.AvailBytes > st.TotalBytes || st.TotalFiles == 0 {
			t.Fatalf("fsstat %+v %v", st, err)
		}
	})
	t.Run("LookupPath", func(t *testing.T) {
		h, err := s.LookupPath(root, "/Maildir/new")
		if err != nil || !bytes.Equal(h, lookup(t, s, "Maildir", "new")) {
			t.Fatalf("lookuppath: %v", err)
		}
		for p, want := range map[string]error{"Maildir/..": syscall.EACCES, "l": syscall.ENOTDIR, "e/inside": syscall.ENOTDIR, "zz": syscall.ENOENT} {
			if _, err := s.LookupPath(root, p); !errors.Is(err, want) {
				t.Errorf("%s: %v want %v", p, err, want)
			}
		}
		if h, err := s.LookupPath(root, ""); err != nil || !bytes.Equal(h, r) {
			t.Errorf("empty path: %v", err)
		}
	})
}

func TestReadOnly(t *testing.T) {
	s := mdtest.New(t)
	f := create(t, s, s.Root(), root, "f", []byte("x"))
	rs, err := maildirfs.Open(s.Dir, maildirfs.Options{ReadOnly: true, StateDir: s.StateDir})
	if err != nil {
		t.Fatal(err)
	}
	defer rs.Close()
	r := rs.Root()
	checks := map[string]error{}
	_, _, _, checks["create"] = rs.Create(r, root, "g", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{})
	_, _, _, checks["mkdir"] = rs.Mkdir(r, root, "g", maildirfs.SetAttr{})
	_, _, _, checks["symlink"] = rs.Symlink(r, root, "g", "x", maildirfs.SetAttr{})
	_, _, _, checks["mknod"] = rs.Mknod(r, root, "g", maildirfs.TypeFifo, maildirfs.SetAttr{}, 0, 0)
	_, checks["remove"] = rs.Remove(r, root, "f")
	_, checks["rmdir"] = rs.Rmdir(r, root, "Maildir")
	_, _, checks["rename"] = rs.Rename(r, "f", r, "g", root)
	_, _, checks["link"] = rs.Link(f, r, "g", root)
	_, _, _, _, checks["write"] = rs.Write(f, root, 0, []byte("y"), maildirfs.FileSync)
	_, checks["setattr"] = rs.SetAttr(f, root, maildirfs.SetAttr{Mode: u32(0)}, nil)
	for op, err := range checks {
		if !errors.Is(err, syscall.EROFS) {
			t.Errorf("%s: %v, want EROFS", op, err)
		}
	}
	if g, _, _ := rs.Access(f, root, 0x3f); g&(maildirfs.AccessModify|maildirfs.AccessExtend) != 0 {
		t.Errorf("read-only access grants %#x", g)
	}
	buf := make([]byte, 4)
	if n, _, _, err := rs.Read(f, root, 0, buf); err != nil || n != 1 {
		t.Fatalf("read on ro: %v", err)
	}
}

// TestFinishCreate plays a CREATE sent again after the server was killed
// inside the first run of it: the file exists, empty, but without the
// owner, mode or verifier that run was about to give it.
func TestFinishCreate(t *testing.T) {
	s := mdtest.New(t)
	r := s.Root()
	if _, err := s.SetAttr(r, root, maildirfs.SetAttr{Mode: u32(0o777)}, nil); err != nil {
		t.Fatal(err)
	}
	user := maildirfs.Cred{UID: 3000, GID: 3001}
	unfinished := func(name string) {
		t.Helper()
		// As openat(O_CREAT|O_EXCL, 0600) leaves it: owned by the server.
		if err := os.WriteFile(filepath.Join(s.Dir, name), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	verf := [8]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}
	unfinished("x")
	if _, _, _, err := s.Create(r, user, "x", maildirfs.Exclusive, maildirfs.SetAttr{}, verf); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("Create over the unfinished file: %v, want EEXIST", err)
	}
	h, a, _, err := s.FinishCreate(r, user, "x", maildirfs.Exclusive, maildirfs.SetAttr{}, verf)
	if err != nil {
		t.Fatalf("FinishCreate EXCLUSIVE: %v", err)
	}
	if a.UID != 3000 || a.GID != 3001 || a.Mode != 0o600 || a.Mtime.Unix() != 0x12345678 || a.Atime.Unix() != 0x1abcdef0 {
		t.Fatalf("finished file: %+v", a)
	}
	// Now it is what the first run would have made: a retransmission of
	// that EXCLUSIVE CREATE matches it.
	h2, _, _, err := s.Create(r, user, "x", maildirfs.Exclusive, maildirfs.SetAttr{}, verf)
	if err != nil || !bytes.Equal(h, h2) {
		t.Fatalf("EXCLUSIVE retransmission after FinishCreate: %v", err)
	}

	// Another client's EXCLUSIVE file of the same uid (a lock file held
	// by another process) is not this call's: its verifier differs.
	other := [8]byte{0, 0, 0, 2, 0, 0, 0, 2}
	if _, _, _, err := s.FinishCreate(r, user, "x", maildirfs.Exclusive, maildirfs.SetAttr{}, other); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("FinishCreate EXCLUSIVE with another verifier over a given file: %v, want EEXIST", err)
	}
	// Nor is an empty file of the caller's made another way (no verifier).
	if _, _, _, err := s.Create(r, user, "plain", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{}); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.FinishCreate(r, user, "plain", maildirfs.Exclusive, maildirfs.SetAttr{}, verf); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("FinishCreate EXCLUSIVE over the caller's GUARDED file: %v, want EEXIST", err)
	}

	// The same for a root client not squashed, whose files are the
	// server's own: the verifier tells them apart.
	rootCred := maildirfs.Cred{}
	rh, _, _, err := s.Create(r, rootCred, "rlock", maildirfs.Exclusive, maildirfs.SetAttr{}, verf)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.FinishCreate(r, rootCred, "rlock", maildirfs.Exclusive, maildirfs.SetAttr{}, other); !errors.Is(err, syscall.EEXIST) {
		t.Errorf("FinishCreate EXCLUSIVE with another verifier over root's stamped file: %v, want EEXIST", err)
	}
	if h, _, _, err := s.FinishCreate(r, rootCred, "rlock", maildirfs.Exclusive, maildirfs.SetAttr{}, verf); err != nil || !bytes.Equal(h, rh) {
		t.Errorf("root's own EXCLUSIVE retransmission: %v", err)
	}

	unfinished("g")
	_, a, _, err = s.FinishCreate(r, user, "g", maildirfs.Guarded, maildirfs.SetAttr{Mode: u32(0o640)}, [8]byte{})
	if err != nil || a.UID != 3000 || a.Mode != 0o640 {
		t.Fatalf("FinishCreate GUARDED: %v %+v", err, a)
	}
	syncs := s.Stats().FileSyncCalls
	if _, _, _, err := s.FinishCreate(r, user, "new", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{}); err != nil {
		t.Fatalf("FinishCreate of a missing name: %v", err)
	}
	if s.Stats().FileSyncCalls == syncs {
		t.Fatal("FinishCreate did not sync")
	}

	// Anything but an empty regular file is not ours.
	if err := os.WriteFile(filepath.Join(s.Dir, "full"), []byte("mail"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("x", filepath.Join(s.Dir, "link")); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(s.Dir, "fifo"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"full", "link", "Maildir", "fifo"} {
		if _, _, _, err := s.FinishCreate(r, user, name, maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{}); !errors.Is(err, syscall.EEXIST) {
			t.Errorf("FinishCreate over %s: %v, want EEXIST", name, err)
		}
	}
	if b, err := os.ReadFile(filepath.Join(s.Dir, "full")); err != nil || string(b) != "mail" {
		t.Errorf("full: %q %v", b, err)
	}
}

// TestFinishCreateOthers: an empty file that another user made is not
// taken over.
func TestFinishCreateOthers(t *testing.T) {
	s := mdtest.New(t)
	r := s.Root()
	if _, err := s.SetAttr(r, root, maildirfs.SetAttr{Mode: u32(0o777)}, nil); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(s.Dir, "theirs")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 4000, 4000); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := s.FinishCreate(r, maildirfs.Cred{UID: 3000, GID: 3001}, "theirs", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{}); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("FinishCreate over another user's file: %v, want EEXIST", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(p, &st); err != nil || st.Uid != 4000 {
		t.Fatalf("owner now %d (%v)", st.Uid, err)
	}
}

// TestFinishMkdirSymlink: MKDIR and SYMLINK sent again after a kill that
// left the directory or symlink made but not yet given to its owner.
func TestFinishMkdirSymlink(t *testing.T) {
	s := mdtest.New(t)
	r := s.Root()
	if _, err := s.SetAttr(r, root, maildirfs.SetAttr{Mode: u32(0o777)}, nil); err != nil {
		t.Fatal(err)
	}
	user := maildirfs.Cred{UID: 3000, GID: 3001}
	at := func(name string) string { return filepath.Join(s.Dir, name) }
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}

	must(os.Mkdir(at("d"), 0o700)) // as mkdirat leaves it: the server's
	if _, _, _, err := s.Mkdir(r, user, "d", maildirfs.SetAttr{Mode: u32(0o750)}); !errors.Is(err, syscall.EEXIST) {
		t.Fatalf("Mkdir over the unfinished directory: %v", err)
	}
	_, a, _, err := s.FinishMkdir(r, user, "d", maildirfs.SetAttr{Mode: u32(0o750)})
	if err != nil || a.UID != 3000 || a.GID != 3001 || a.Mode != 0o750 || a.Type != maildirfs.TypeDir {
		t.Fatalf("FinishMkdir: %v %+v", err, a)
	}
	must(os.Symlink("new/x", at("l")))
	_, a, _, err = s.FinishSymlink(r, user, "l", "new/x", maildirfs.SetAttr{})
	if err != nil || a.UID != 3000 || a.Type != maildirfs.TypeLnk {
		t.Fatalf("FinishSymlink: %v %+v", err, a)
	}
	if _, _, _, err := s.FinishMkdir(r, user, "missing", maildirfs.SetAttr{}); err != nil {
		t.Fatalf("FinishMkdir of a missing name: %v", err)
	}

	// Not ours: a directory with something in it, another user's, a file;
	// a symlink elsewhere or another user's.
	must(os.Mkdir(at("full"), 0o700))
	must(os.WriteFile(at("full/mail"), nil, 0o600))
	must(os.Mkdir(at("theirs"), 0o700))
	must(os.Chown(at("theirs"), 4000, 4000))
	must(os.WriteFile(at("file"), nil, 0o600))
	for _, name := range []string{"full", "theirs", "file", "l"} {
		if _, _, _, err := s.FinishMkdir(r, user, name, maildirfs.SetAttr{}); !errors.Is(err, syscall.EEXIST) {
			t.Errorf("FinishMkdir over %s: %v, want EEXIST", name, err)
		}
	}
	must(os.Symlink("x", at("l2")))
	must(os.Lchown(at("l2"), 4000, 4000))
	for name, target := range map[string]string{"l": "new/y", "l2": "x", "d": "x"} {
		if _, _, _, err := s.FinishSymlink(r, user, name, target, maildirfs.SetAttr{}); !errors.Is(err, syscall.EEXIST) {
			t.Errorf("FinishSymlink over %s -> %s: %v, want EEXIST", name, target, err)
		}
	}
	var st syscall.Stat_t
	if err := syscall.Stat(at("theirs"), &st); err != nil || st.Uid != 4000 {
		t.Errorf("theirs now owned by %d (%v)", st.Uid, err)
	}
}

// TestCreateExclusiveStampedNotGiven: a server killed inside an EXCLUSIVE
// CREATE after it stamped the verifier and before it gave the file to its
// owner leaves an empty file of its own carrying the verifier. The
// kernel's retransmission (after the restart, with the same verifier)
// must get the file finished and given to the caller, not the root-owned
// file as it is: Linux follows an EXCLUSIVE create with a SETATTR of the
// mode, which the caller may make only on its own file (a guest's
// open(O_CREAT|O_EXCL) failed with EPERM in the kernel test's restart run).
func TestCreateExclusiveStampedNotGiven(t *testing.T) {
	s := mdtest.New(t)
	r := s.Root()
	if _, err := s.SetAttr(r, root, maildirfs.SetAttr{Mode: u32(0o777)}, nil); err != nil {
		t.Fatal(err)
	}
	user := maildirfs.Cred{UID: 3000, GID: 3001}
	verf := [8]byte{0x12, 0x34, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0}
	// As setupFile leaves it when stopped after futimens: the server's,
	// 0600, empty, the verifier in its times.
	p := filepath.Join(s.Dir, "x")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, time.Unix(0x1abcdef0, 0), time.Unix(0x12345678, 0)); err != nil {
		t.Fatal(err)
	}
	for _, create := range []struct {
		name string
		fn   func(maildirfs.Handle, maildirfs.Cred, string, maildirfs.CreateMode, maildirfs.SetAttr, [8]byte) (maildirfs.Handle, *maildirfs.Attr, maildirfs.Wcc, error)
	}{{"Create", s.Create}, {"FinishCreate", s.FinishCreate}} {
		h, a, _, err := create.fn(r, user, "x", maildirfs.Exclusive, maildirfs.SetAttr{}, verf)
		if err != nil {
			t.Fatalf("%s: EXCLUSIVE retransmission over the stamped file: %v", create.name, err)
		}
		if a.UID != 3000 || a.GID != 3001 || a.Mode != 0o600 || a.Mtime.Unix() != 0x12345678 || a.Atime.Unix() != 0x1abcdef0 {
			t.Fatalf("%s: file after the retransmission: uid %d gid %d mode %o mtime %v atime %v; want 3000:3001 0600 and the verifier",
				create.name, a.UID, a.GID, a.Mode, a.Mtime.Unix(), a.Atime.Unix())
		}
		// What Linux sends next, as the caller.
		if _, err := s.SetAttr(h, user, maildirfs.SetAttr{Mode: u32(0o600), Atime: maildirfs.ServerTime, Mtime: maildirfs.ServerTime}, nil); err != nil {
			t.Fatalf("%s: the client's SETATTR after the create: %v", create.name, err)
		}
		// Back to the cut-short state for the next round.
		if err := os.Chown(p, 0, 0); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, time.Unix(0x1abcdef0, 0), time.Unix(0x12345678, 0)); err != nil {
			t.Fatal(err)
		}
	}
}
