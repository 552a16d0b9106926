package maildirfs_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// TestNoEscape plants symlinks that point outside the export and tries
// every way through them; the outside file must stay untouched and
// unread.
func TestNoEscape(t *testing.T) {
	s := mdtest.New(t)
	outsideDir := t.TempDir()
	secret := filepath.Join(outsideDir, "secret")
	if err := os.WriteFile(secret, []byte("SECRET"), 0o600); err != nil {
		t.Fatal(err)
	}
	rel, err := filepath.Rel(s.Dir, outsideDir)
	if err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{
		"abs":     outsideDir,
		"absfile": secret,
		"rel":     rel,
		"relfile": filepath.Join(rel, "secret"),
		"dotdot":  "../../../../../../../../..",
	} {
		if err := os.Symlink(target, filepath.Join(s.Dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	r := s.Root()
	for _, name := range []string{"abs", "absfile", "rel", "relfile", "dotdot"} {
		h, a, _, err := s.Lookup(r, root, name)
		if err != nil || a.Type != maildirfs.TypeLnk {
			t.Fatalf("%s: lookup gives %v %+v, want the symlink itself", name, err, a)
		}
		if _, _, _, err := s.Lookup(h, root, "secret"); !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("%s: lookup through symlink: %v", name, err)
		}
		if _, _, _, err := s.Read(h, root, 0, make([]byte, 10)); err == nil {
			t.Errorf("%s: read through symlink succeeded", name)
		}
		if _, _, _, _, err := s.Write(h, root, 0, []byte("pwned"), maildirfs.FileSync); err == nil {
			t.Errorf("%s: write through symlink succeeded", name)
		}
		if _, _, _, err := s.Create(r, root, name, maildirfs.Unchecked, maildirfs.SetAttr{Size: u64(0)}, [8]byte{}); !errors.Is(err, syscall.EEXIST) {
			t.Errorf("%s: unchecked create over symlink: %v", name, err)
		}
		if _, _, _, err := s.Create(h, root, "secret", maildirfs.Unchecked, maildirfs.SetAttr{Size: u64(0)}, [8]byte{}); !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("%s: create inside symlink: %v", name, err)
		}
		if _, err := s.SetAttr(h, root, maildirfs.SetAttr{Mode: u32(0o777), Size: nil}, nil); err != nil {
			t.Errorf("%s: chmod symlink: %v", name, err)
		}
		if _, err := s.LookupPath(root, name+"/secret"); err == nil {
			t.Errorf("%s: LookupPath followed the symlink", name)
		}
		if _, err := s.LookupPath(root, name); !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("%s: LookupPath of symlink: %v", name, err)
		}
		if _, _, err := s.Link(h, r, name+"-link", root); err != nil {
			t.Errorf("%s: link of symlink: %v", name, err)
		}
		if _, _, err := s.ReadDir(h, root, 0, false, func(*maildirfs.DirEntry) bool { return true }); !errors.Is(err, syscall.ENOTDIR) {
			t.Errorf("%s: readdir symlink: %v", name, err)
		}
	}
	// ".." chains never leave the root.
	h := r
	for range 5 {
		h, _, _, err = s.Lookup(h, root, "..")
		if err != nil || !bytes.Equal(h, r) {
			t.Fatalf(".. from root: %v", err)
		}
	}
	// Renaming onto a symlink replaces the link, not its target.
	create(t, s, r, root, "payload", []byte("pwned"))
	if _, _, err := s.Rename(r, "payload", r, "absfile", root); err != nil {
		t.Fatal(err)
	}
	// A handle crafted for the outside file with a wrong MAC.
	fhType, fhBytes, err := maildirfs.KernelHandle(secret)
	if err != nil {
		t.Fatal(err)
	}
	forged := []byte{1}
	forged = binary.BigEndian.AppendUint32(forged, 0)
	forged = append(forged, fhType)
	forged = append(forged, fhBytes...)
	forged = append(forged, make([]byte, 16)...)
	if _, err := s.Getattr(forged); !errors.Is(err, maildirfs.ErrBadHandle) {
		t.Fatalf("forged handle: %v", err)
	}
	// Splice the outside kernel handle into a genuine handle's MAC.
	good := r
	spliced := append(append(append([]byte(nil), good[:5]...), fhType), fhBytes...)
	spliced = append(spliced, good[len(good)-16:]...)
	if _, err := s.Getattr(spliced); !errors.Is(err, maildirfs.ErrBadHandle) {
		t.Fatalf("spliced handle: %v", err)
	}
	got, err := os.ReadFile(secret)
	if err != nil || string(got) != "SECRET" {
		t.Fatalf("outside file changed: %q %v", got, err)
	}
	fi, err := os.Stat(secret)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("outside file mode changed: %v", fi.Mode())
	}
	if fi, err := os.Stat(outsideDir); err != nil || fi.Mode().Perm() == 0o777 {
		t.Fatalf("outside dir mode changed")
	}
}

// TestHandleKeyPersists: the key file is created 0600 and reused.
func TestHandleKeyPersists(t *testing.T) {
	s := mdtest.New(t)
	fi, err := os.Stat(filepath.Join(s.StateDir, "maildirfs-handle.key"))
	if err != nil || fi.Mode().Perm() != 0o600 || fi.Size() != 32 {
		t.Fatalf("key file: %v %v", err, fi)
	}
	r1, fsid := s.Root(), s.FSID()
	s.Reopen(t)
	if !bytes.Equal(r1, s.Root()) || fsid != s.FSID() {
		t.Fatal("root handle or fsid changed across restart")
	}
	other, err := maildirfs.Open(s.Dir, maildirfs.Options{StateDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	if _, err := other.Getattr(r1); !errors.Is(err, maildirfs.ErrBadHandle) {
		t.Fatalf("handle under another key: %v", err)
	}
	if _, err := maildirfs.Open(s.Dir, maildirfs.Options{}); err == nil {
		t.Fatal("Open without StateDir succeeded")
	}
}

// TestMountInsideExport: a filesystem mounted inside the export is not
// crossed (its kernel handles would decode against the export's
// filesystem).
func TestMountInsideExport(t *testing.T) {
	s := mdtest.New(t)
	mnt := filepath.Join(s.Dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mountTmpfs(mnt); err != nil {
		t.Skipf("cannot mount tmpfs (%v): skipping", err)
	}
	t.Cleanup(func() { unmountDetach(mnt) })
	os.WriteFile(filepath.Join(mnt, "inner"), []byte("inner"), 0o644)
	if _, _, _, err := s.Lookup(s.Root(), root, "mnt"); !errors.Is(err, syscall.EXDEV) {
		t.Fatalf("lookup of mount point: %v", err)
	}
	var entry, plain *maildirfs.DirEntry
	for _, plus := range []bool{false, true} {
		s.ReadDir(s.Root(), root, 0, plus, func(e *maildirfs.DirEntry) bool {
			if e.Name == "mnt" && plus {
				entry = e
			} else if e.Name == "mnt" {
				plain = e
			}
			return true
		})
	}
	if plain == nil || entry == nil || entry.Handle != nil {
		t.Fatalf("readdirplus of mount point: %+v", entry)
	}
	// Nor the attributes of the mounted root (tmpfs: inode 1) under the
	// export's fsid: the fileid is the covered directory's, as READDIR
	// gives it and knfsd answers.
	if entry.Attr != nil || entry.FileID != plain.FileID {
		t.Errorf("readdirplus of mount point: fileid %d attributes %+v, want fileid %d (READDIR's) and none", entry.FileID, entry.Attr, plain.FileID)
	}
	if _, err := s.LookupPath(root, "mnt/inner"); !errors.Is(err, syscall.EXDEV) {
		t.Fatalf("LookupPath across mount: %v", err)
	}
}

// TestMountWithoutHandlesInsideExport: a file system that has no file
// handles (ramfs, proc) mounted inside the export is refused as any other
// mount point, with EXDEV (NFS3ERR_XDEV), not the EOPNOTSUPP of
// name_to_handle_at (NFS3ERR_NOTSUPP, "Unknown error 524" on a Linux
// client).
func TestMountWithoutHandlesInsideExport(t *testing.T) {
	s := mdtest.New(t)
	mnt := filepath.Join(s.Dir, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := mountRamfs(mnt); err != nil {
		t.Skipf("cannot mount ramfs (%v): skipping", err)
	}
	t.Cleanup(func() { unmountDetach(mnt) })
	if _, _, _, err := s.Lookup(s.Root(), root, "mnt"); !errors.Is(err, syscall.EXDEV) {
		t.Errorf("lookup of mount point: %v, want EXDEV", err)
	}
	if _, err := s.LookupPath(root, "mnt"); !errors.Is(err, syscall.EXDEV) {
		t.Errorf("LookupPath of mount point: %v, want EXDEV", err)
	}
}

// TestMovedOutDirectory: a local process moves a directory out of the
// export (same file system). Its handle stops resolving, as knfsd's does
// (nfsd_acceptable): at once when it is not cached, on its first ".."
// (LOOKUP, and READDIRPLUS gives no handle for it), and within
// dirRecheck otherwise; ".." never leads outside. A file moved out keeps
// resolving (as with no_subtree_check), and a directory moved back in
// resolves again.
func TestMovedOutDirectory(t *testing.T) {
	setup := func(t *testing.T) (*mdtest.Store, maildirfs.Handle, maildirfs.Handle, func()) {
		s := mdtest.New(t)
		outside := filepath.Join(filepath.Dir(s.Dir), "outside")
		if err := os.Mkdir(outside, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("outside the export"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(s.Dir, "olduser", "Maildir"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(s.Dir, "olduser", "Maildir", "m"), []byte("mail"), 0o600); err != nil {
			t.Fatal(err)
		}
		dh := lookup(t, s, "olduser")
		fh := lookup(t, s, "olduser", "Maildir", "m")
		move := func() {
			if err := os.Rename(filepath.Join(s.Dir, "olduser"), filepath.Join(outside, "olduser")); err != nil {
				t.Fatal(err)
			}
		}
		return s, dh, fh, move
	}
	stale := func(t *testing.T, s *mdtest.Store, dh maildirfs.Handle) {
		t.Helper()
		if _, err := s.Getattr(dh); !errors.Is(err, maildirfs.ErrStale) {
			t.Errorf("GETATTR of the moved directory: %v, want ErrStale", err)
		}
		if h, _, _, err := s.Lookup(dh, root, ".."); !errors.Is(err, maildirfs.ErrStale) {
			t.Errorf(`LOOKUP "..": %x %v, want ErrStale`, h, err)
		}
		if _, _, _, err := s.Lookup(dh, root, "Maildir"); !errors.Is(err, maildirfs.ErrStale) {
			t.Errorf("LOOKUP in it: %v, want ErrStale", err)
		}
	}
	t.Run("Uncached", func(t *testing.T) {
		s, dh, _, move := setup(t)
		move()
		s.Reopen(t) // a restart: nothing cached
		stale(t, s, dh)
	})
	t.Run("CachedDotDot", func(t *testing.T) {
		s, dh, fh, move := setup(t)
		move()
		if h, _, _, err := s.Lookup(dh, root, ".."); !errors.Is(err, maildirfs.ErrStale) {
			t.Fatalf(`LOOKUP ".." of a cached moved directory: %x %v, want ErrStale`, h, err)
		}
		stale(t, s, dh)
		// A file moved out with it still resolves (no_subtree_check).
		buf := make([]byte, 10)
		if n, _, _, err := s.Read(fh, root, 0, buf); err != nil || string(buf[:n]) != "mail" {
			t.Errorf("READ of a file moved out: %q %v", buf[:n], err)
		}
	})
	t.Run("CachedReaddirplus", func(t *testing.T) {
		s, dh, _, move := setup(t)
		move()
		var dotdot *maildirfs.DirEntry
		s.ReadDir(dh, root, 0, true, func(e *maildirfs.DirEntry) bool {
			if e.Name == ".." {
				dotdot = e
			}
			return true
		})
		if dotdot == nil {
			t.Fatal(`READDIRPLUS of a moved directory: no ".."`)
		}
		if dotdot.Handle != nil || dotdot.Attr != nil {
			t.Errorf(`READDIRPLUS of a moved directory: ".." has handle %x attributes %+v`, dotdot.Handle, dotdot.Attr)
		}
	})
	t.Run("CachedRecheck", func(t *testing.T) {
		defer maildirfs.SetDirRecheck(10 * time.Millisecond)()
		s, dh, _, move := setup(t)
		md := lookup(t, s, "olduser", "Maildir")
		move()
		time.Sleep(20 * time.Millisecond)
		stale(t, s, dh)
		if _, err := s.Getattr(md); !errors.Is(err, maildirfs.ErrStale) {
			t.Errorf("GETATTR of a cached subdirectory of the moved one: %v, want ErrStale", err)
		}
	})
	t.Run("MovedBack", func(t *testing.T) {
		s, dh, _, move := setup(t)
		move()
		s.Reopen(t)
		if _, err := s.Getattr(dh); !errors.Is(err, maildirfs.ErrStale) {
			t.Fatalf("GETATTR while outside: %v", err)
		}
		if err := os.Rename(filepath.Join(filepath.Dir(s.Dir), "outside", "olduser"), filepath.Join(s.Dir, "back")); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Getattr(dh); err != nil {
			t.Fatalf("GETATTR after moving it back: %v", err)
		}
		if up, _, _, err := s.Lookup(dh, root, ".."); err != nil || !bytes.Equal(up, s.Root()) {
			t.Fatalf(`LOOKUP "..": %v, want the root`, err)
		}
	})
}
