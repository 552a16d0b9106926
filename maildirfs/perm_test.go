package maildirfs_test

import (
	"errors"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

var (
	alice = maildirfs.Cred{UID: 2001, GID: 2001}
	bob   = maildirfs.Cred{UID: 2002, GID: 2002}
	carol = maildirfs.Cred{UID: 2003, GID: 2003, GIDs: []uint32{2001}} // in alice's group
)

func TestPermissions(t *testing.T) {
	s := mdtest.New(t)
	r := s.Root()
	// /home 0755 root; /home/alice 0750 alice:2001.
	home, _, _, err := s.Mkdir(r, root, "home", maildirfs.SetAttr{Mode: u32(0o755)})
	if err != nil {
		t.Fatal(err)
	}
	ad, _, _, err := s.Mkdir(home, root, "alice", maildirfs.SetAttr{Mode: u32(0o750), UID: u32(2001), GID: u32(2001)})
	if err != nil {
		t.Fatal(err)
	}
	if a := getattr(t, s, ad); a.UID != 2001 || a.GID != 2001 {
		t.Fatalf("owner %+v", a)
	}

	t.Run("OwnerWritesOwnDir", func(t *testing.T) {
		f, a, _, err := s.Create(ad, alice, "m", maildirfs.Guarded, maildirfs.SetAttr{Mode: u32(0o444)}, [8]byte{})
		if err != nil || a.UID != 2001 || a.GID != 2001 {
			t.Fatalf("alice create: %v %+v", err, a)
		}
		// Owner override: a file created 0444 still takes its owner's writes.
		if _, _, _, _, err := s.Write(f, alice, 0, []byte("hi"), maildirfs.FileSync); err != nil {
			t.Fatalf("owner write to 0444: %v", err)
		}
		if _, _, err := s.Commit(f, alice, 0, 0); err != nil {
			t.Fatalf("owner commit: %v", err)
		}
	})
	t.Run("OtherCannot", func(t *testing.T) {
		if _, _, _, err := s.Create(ad, bob, "b", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{}); !errors.Is(err, syscall.EACCES) {
			t.Fatalf("bob create: %v", err)
		}
		if _, _, _, err := s.Lookup(ad, bob, "m"); !errors.Is(err, syscall.EACCES) {
			t.Fatalf("bob lookup: %v", err)
		}
		if _, _, err := s.ReadDir(ad, bob, 0, false, func(*maildirfs.DirEntry) bool { return true }); !errors.Is(err, syscall.EACCES) {
			t.Fatalf("bob readdir: %v", err)
		}
		if _, err := s.Remove(ad, bob, "m"); !errors.Is(err, syscall.EACCES) {
			t.Fatalf("bob remove: %v", err)
		}
		if _, _, _, err := s.Mkdir(home, bob, "bob", maildirfs.SetAttr{}); !errors.Is(err, syscall.EACCES) {
			t.Fatalf("bob mkdir in root-owned 0755: %v", err)
		}
	})
	t.Run("GroupMemberReadsNotWrites", func(t *testing.T) {
		m, _, _, err := s.Lookup(ad, carol, "m")
		if err != nil {
			t.Fatalf("carol lookup: %v", err)
		}
		if _, _, _, err := s.Create(ad, carol, "c", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{}); !errors.Is(err, syscall.EACCES) {
			t.Fatalf("carol create in g=rx dir: %v", err)
		}
		if _, _, _, _, err := s.Write(m, carol, 0, []byte("x"), maildirfs.Unstable); !errors.Is(err, syscall.EACCES) {
			t.Fatalf("carol write 0444: %v", err)
		}
		if _, _, _, err := s.Read(m, carol, 0, make([]byte, 4)); err != nil {
			t.Fatalf("carol read 0444: %v", err)
		}
	})
	t.Run("AttrChanges", func(t *testing.T) {
		m, _, _, _ := s.Lookup(ad, alice, "m")
		for name, tc := range map[string]struct {
			c    maildirfs.Cred
			s    maildirfs.SetAttr
			want error
		}{
			"bob chmod":            {bob, maildirfs.SetAttr{Mode: u32(0o777)}, syscall.EPERM},
			"alice chown":          {alice, maildirfs.SetAttr{UID: u32(2002)}, syscall.EPERM},
			"alice chgrp foreign":  {alice, maildirfs.SetAttr{GID: u32(2002)}, syscall.EPERM},
			"bob utimes client":    {bob, maildirfs.SetAttr{Mtime: maildirfs.ClientTime}, syscall.EPERM},
			"bob utimes server":    {bob, maildirfs.SetAttr{Mtime: maildirfs.ServerTime}, syscall.EACCES},
			"bob truncate":         {bob, maildirfs.SetAttr{Size: u64(0)}, syscall.EACCES},
			"alice chmod":          {alice, maildirfs.SetAttr{Mode: u32(0o640)}, nil},
			"alice chown to self":  {alice, maildirfs.SetAttr{UID: u32(2001)}, nil},
			"alice utimes client":  {alice, maildirfs.SetAttr{Mtime: maildirfs.ClientTime}, nil},
			"alice truncate owned": {alice, maildirfs.SetAttr{Size: u64(1)}, nil},
		} {
			if _, err := s.SetAttr(m, tc.c, tc.s, nil); !errors.Is(err, tc.want) && !(tc.want == nil && err == nil) {
				t.Errorf("%s: %v, want %v", name, err, tc.want)
			}
		}
		// alice may chgrp to a group she is in.
		if _, err := s.SetAttr(m, maildirfs.Cred{UID: 2001, GID: 2001, GIDs: []uint32{7}}, maildirfs.SetAttr{GID: u32(7)}, nil); err != nil {
			t.Errorf("chgrp to own group: %v", err)
		}
		if _, err := s.SetAttr(m, root, maildirfs.SetAttr{UID: u32(2002)}, nil); err != nil {
			t.Errorf("root chown: %v", err)
		}
		if a := getattr(t, s, m); a.UID != 2002 || a.GID != 7 {
			t.Errorf("after chown: %+v", a)
		}
	})
	t.Run("Sticky", func(t *testing.T) {
		sp, _, _, err := s.Mkdir(r, root, "spool", maildirfs.SetAttr{Mode: u32(0o1777)})
		if err != nil {
			t.Fatal(err)
		}
		create(t, s, sp, alice, "a", nil)
		create(t, s, sp, bob, "b", nil)
		// Linux's may_delete refuses with EPERM (knfsd: NFS3ERR_PERM).
		if _, err := s.Remove(sp, bob, "a"); !errors.Is(err, syscall.EPERM) {
			t.Fatalf("bob removes alice's file in sticky dir: %v, want EPERM", err)
		}
		if _, _, err := s.Rename(sp, "a", sp, "x", bob); !errors.Is(err, syscall.EPERM) {
			t.Fatalf("bob renames alice's file: %v, want EPERM", err)
		}
		if _, _, err := s.Rename(sp, "b", sp, "a", bob); !errors.Is(err, syscall.EPERM) {
			t.Fatalf("bob renames over alice's file: %v, want EPERM", err)
		}
		if _, _, _, err := s.Mkdir(sp, alice, "ad", maildirfs.SetAttr{}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Rmdir(sp, bob, "ad"); !errors.Is(err, syscall.EPERM) {
			t.Fatalf("bob removes alice's directory in sticky dir: %v, want EPERM", err)
		}
		if _, err := s.Remove(sp, bob, "b"); err != nil {
			t.Fatalf("bob removes his own: %v", err)
		}
		if _, err := s.Remove(sp, root, "a"); err != nil {
			t.Fatalf("root removes: %v", err)
		}
	})
}

// TestAccessAgrees: Access grants exactly what the operations allow.
func TestAccessAgrees(t *testing.T) {
	s := mdtest.New(t)
	r := s.Root()
	dir, _, _, _ := s.Mkdir(r, root, "d", maildirfs.SetAttr{Mode: u32(0o750), UID: u32(2001), GID: u32(2001)})
	f, _, _, _ := s.Create(dir, root, "f", maildirfs.Guarded, maildirfs.SetAttr{Mode: u32(0o640), UID: u32(2001), GID: u32(2001)}, [8]byte{})
	x, _, _, _ := s.Create(dir, root, "x", maildirfs.Guarded, maildirfs.SetAttr{Mode: u32(0o750), UID: u32(2001), GID: u32(2001)}, [8]byte{})
	const all = 0x3f
	for _, tc := range []struct {
		name string
		h    maildirfs.Handle
		c    maildirfs.Cred
		want uint32
	}{
		{"root dir", dir, root, maildirfs.AccessRead | maildirfs.AccessLookup | maildirfs.AccessModify | maildirfs.AccessExtend | maildirfs.AccessDelete},
		{"owner dir", dir, alice, maildirfs.AccessRead | maildirfs.AccessLookup | maildirfs.AccessModify | maildirfs.AccessExtend | maildirfs.AccessDelete},
		{"group dir", dir, carol, maildirfs.AccessRead | maildirfs.AccessLookup},
		{"other dir", dir, bob, 0},
		{"owner file", f, alice, maildirfs.AccessRead | maildirfs.AccessModify | maildirfs.AccessExtend},
		{"group file", f, carol, maildirfs.AccessRead},
		{"other file", f, bob, 0},
		{"root file", f, root, maildirfs.AccessRead | maildirfs.AccessModify | maildirfs.AccessExtend},
		{"root exec", x, root, maildirfs.AccessRead | maildirfs.AccessModify | maildirfs.AccessExtend | maildirfs.AccessExecute},
		{"group exec", x, carol, maildirfs.AccessRead | maildirfs.AccessExecute},
	} {
		g, post, err := s.Access(tc.h, tc.c, all)
		if err != nil || g != tc.want || post == nil {
			t.Errorf("%s: granted %#x err %v, want %#x", tc.name, g, err, tc.want)
		}
		if g2, _, _ := s.Access(tc.h, tc.c, maildirfs.AccessRead); g2 != tc.want&maildirfs.AccessRead {
			t.Errorf("%s: masked %#x", tc.name, g2)
		}
		// Agreement with the operations.
		a := getattr(t, s, tc.h)
		if a.Type == maildirfs.TypeDir {
			_, _, _, err := s.Create(tc.h, tc.c, "probe", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{})
			if (err == nil) != (g&maildirfs.AccessExtend != 0) {
				t.Errorf("%s: create err %v vs EXTEND %v", tc.name, err, g&maildirfs.AccessExtend != 0)
			}
			if err == nil {
				s.Remove(tc.h, root, "probe")
			}
			_, _, _, err = s.Lookup(tc.h, tc.c, "f")
			if (err == nil) != (g&maildirfs.AccessLookup != 0) {
				t.Errorf("%s: lookup err %v vs LOOKUP", tc.name, err)
			}
			_, _, err = s.ReadDir(tc.h, tc.c, 0, false, func(*maildirfs.DirEntry) bool { return true })
			if (err == nil) != (g&maildirfs.AccessRead != 0) {
				t.Errorf("%s: readdir err %v vs READ", tc.name, err)
			}
		} else if tc.c.UID != a.UID { // owners get an override
			_, _, _, _, err := s.Write(tc.h, tc.c, 0, nil, maildirfs.Unstable)
			if (err == nil) != (g&maildirfs.AccessModify != 0) {
				t.Errorf("%s: write err %v vs MODIFY", tc.name, err)
			}
		}
	}
}

// TestPrivilegeRules: protected_hardlinks and setuid clearing, which the
// kernel does not enforce for a root server.
func TestPrivilegeRules(t *testing.T) {
	s := mdtest.New(t)
	r := s.Root()
	if _, err := s.SetAttr(r, root, maildirfs.SetAttr{Mode: u32(0o1777)}, nil); err != nil {
		t.Fatal(err)
	}
	secret, _, _, _ := s.Create(r, alice, "secret", maildirfs.Guarded, maildirfs.SetAttr{Mode: u32(0o600)}, [8]byte{})
	shared, _, _, _ := s.Create(r, alice, "shared", maildirfs.Guarded, maildirfs.SetAttr{Mode: u32(0o666)}, [8]byte{})
	suid, _, _, _ := s.Create(r, alice, "suid", maildirfs.Guarded, maildirfs.SetAttr{Mode: u32(0o4777)}, [8]byte{})
	if _, _, err := s.Link(secret, r, "mine", bob); !errors.Is(err, syscall.EPERM) {
		t.Errorf("bob links alice's 0600 file: %v", err)
	}
	if _, _, err := s.Link(suid, r, "mine", bob); !errors.Is(err, syscall.EPERM) {
		t.Errorf("bob links a setuid file: %v", err)
	}
	if _, _, err := s.Link(shared, r, "mine", bob); err != nil {
		t.Errorf("bob links a 0666 file: %v", err)
	}
	if _, _, err := s.Link(secret, r, "alice2", alice); err != nil {
		t.Errorf("owner links: %v", err)
	}
	if _, _, _, _, err := s.Write(suid, bob, 0, []byte("#!/bin/sh\n"), maildirfs.Unstable); err != nil {
		t.Fatal(err)
	}
	if a := getattr(t, s, suid); a.Mode != 0o777 {
		t.Errorf("setuid kept after a write by another user: %o", a.Mode)
	}
	// chmod g+s by a non-member drops the setgid bit.
	if _, err := s.SetAttr(shared, alice, maildirfs.SetAttr{Mode: u32(0o2755), GID: u32(7)}, nil); !errors.Is(err, syscall.EPERM) {
		t.Errorf("chgrp to foreign group: %v", err)
	}
	if _, err := s.SetAttr(shared, root, maildirfs.SetAttr{GID: u32(7)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := s.SetAttr(shared, alice, maildirfs.SetAttr{Mode: u32(0o2755)}, nil); err != nil {
		t.Fatal(err)
	}
	if a := getattr(t, s, shared); a.Mode != 0o755 {
		t.Errorf("setgid set by non-member: %o", a.Mode)
	}
}

// TestTruncateClearsSetid: a size change by a caller other than root
// clears setuid, and setgid when group-executable, as the kernel's
// truncate(2) does for a process without CAP_FSETID (the store truncates
// as root, and the Linux NFS client leaves the clearing to the server).
func TestTruncateClearsSetid(t *testing.T) {
	s := mdtest.New(t)
	r := s.Root()
	if _, err := s.SetAttr(r, root, maildirfs.SetAttr{Mode: u32(0o1777)}, nil); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name       string
		owner, by  maildirfs.Cred
		mode, want uint32
	}{
		{"SetuidByOther", alice, bob, 0o4777, 0o777},
		{"SetuidSetgidByOwner", alice, alice, 0o6775, 0o775},
		{"SetgidNotGroupExec", alice, alice, 0o2664, 0o2664},
		{"SetuidByRoot", alice, root, 0o4777, 0o4777},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, _, _, err := s.Create(r, tc.owner, tc.name, maildirfs.Guarded, maildirfs.SetAttr{Mode: u32(tc.mode)}, [8]byte{})
			if err != nil {
				t.Fatal(err)
			}
			if a := getattr(t, s, h); a.Mode != tc.mode {
				t.Fatalf("mode after create: %o, want %o", a.Mode, tc.mode)
			}
			if _, err := s.SetAttr(h, tc.by, maildirfs.SetAttr{Size: u64(10)}, nil); err != nil {
				t.Fatal(err)
			}
			if a := getattr(t, s, h); a.Mode != tc.want || a.Size != 10 {
				t.Errorf("after SETATTR size 10: mode %o size %d, want mode %o size 10", a.Mode, a.Size, tc.want)
			}
		})
	}
}
