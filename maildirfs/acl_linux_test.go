package maildirfs_test

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
	"golang.org/x/sys/unix"
)

// ACL entry tags of the system.posix_acl_access xattr.
const (
	tagUserObj  = 0x01
	tagUser     = 0x02
	tagGroupObj = 0x04
	tagGroup    = 0x08
	tagMask     = 0x10
	tagOther    = 0x20
)

// setACL gives path the access ACL of entries {tag, perm, id}, in the
// kernel's order, as setfacl does.
func setACL(t testing.TB, path string, es ...[3]uint32) {
	t.Helper()
	b := binary.LittleEndian.AppendUint32(nil, 2)
	for _, e := range es {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	if err := unix.Setxattr(path, "system.posix_acl_access", b, 0); err != nil {
		t.Skipf("no POSIX ACLs on the test file system: %v", err)
	}
}

// aclFile creates name in the export root owned by 2001:2001 with mode
// and the access ACL es (none if empty), and returns its handle.
func aclFile(t *testing.T, s *mdtest.Store, name string, mode os.FileMode, es ...[3]uint32) maildirfs.Handle {
	t.Helper()
	p := filepath.Join(s.Dir, name)
	if err := os.WriteFile(p, []byte("mail"), mode); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 2001, 2001); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(p, mode); err != nil {
		t.Fatal(err)
	}
	if len(es) > 0 {
		setACL(t, p, es...)
	}
	return lookup(t, s, name)
}

// TestPosixACL checks that the access ACL decides for callers other than
// root and the owner, as Linux's acl_permission_check does, in Access,
// Read and Write.
func TestPosixACL(t *testing.T) {
	s := mdtest.New(t)
	dave := maildirfs.Cred{UID: 2004, GID: 2004}                       // named in the ACLs
	erin := maildirfs.Cred{UID: 2005, GID: 2005, GIDs: []uint32{3000}} // in named group 3000
	const rw, r, rx = 6, 4, 5
	all := uint32(maildirfs.AccessRead | maildirfs.AccessModify | maildirfs.AccessExtend | maildirfs.AccessExecute)
	for _, tc := range []struct {
		name   string
		mode   os.FileMode
		acl    [][3]uint32
		cred   maildirfs.Cred
		access uint32
	}{
		{"NamedUserDenied", 0o644, [][3]uint32{{tagUserObj, rw, 0}, {tagUser, 0, 2004}, {tagGroupObj, r, 0}, {tagMask, r, 0}, {tagOther, r, 0}}, dave, 0},
		{"OtherOfDenied", 0o644, [][3]uint32{{tagUserObj, rw, 0}, {tagUser, 0, 2004}, {tagGroupObj, r, 0}, {tagMask, r, 0}, {tagOther, r, 0}}, bob, maildirfs.AccessRead},
		{"OwnerUnaffected", 0o644, [][3]uint32{{tagUserObj, rw, 0}, {tagUser, 0, 2001}, {tagGroupObj, r, 0}, {tagMask, r, 0}, {tagOther, r, 0}}, alice, maildirfs.AccessRead | maildirfs.AccessModify | maildirfs.AccessExtend},
		{"NamedUserGranted", 0o600, [][3]uint32{{tagUserObj, rw, 0}, {tagUser, rx, 2004}, {tagGroupObj, 0, 0}, {tagMask, rx, 0}, {tagOther, 0, 0}}, dave, maildirfs.AccessRead | maildirfs.AccessExecute},
		{"NamedGroupGranted", 0o600, [][3]uint32{{tagUserObj, rw, 0}, {tagGroupObj, 0, 0}, {tagGroup, rw, 3000}, {tagMask, rw, 0}, {tagOther, 0, 0}}, erin, maildirfs.AccessRead | maildirfs.AccessModify | maildirfs.AccessExtend},
		{"FileGroupWithNamedGroups", 0o600, [][3]uint32{{tagUserObj, rw, 0}, {tagGroupObj, r, 0}, {tagGroup, 0, 3000}, {tagMask, rw, 0}, {tagOther, rw, 0}}, carol, maildirfs.AccessRead},
		{"MaskLimitsNamedUser", 0o600, [][3]uint32{{tagUserObj, rw, 0}, {tagUser, rw, 2004}, {tagGroupObj, 0, 0}, {tagMask, r, 0}, {tagOther, 0, 0}}, dave, maildirfs.AccessRead},
		{"MaskLimitsNamedGroup", 0o600, [][3]uint32{{tagUserObj, rw, 0}, {tagGroupObj, 0, 0}, {tagGroup, rw, 3000}, {tagMask, r, 0}, {tagOther, 0, 0}}, erin, maildirfs.AccessRead},
		// Linux reads no ACL when the mode's group bits (the mask) are
		// clear: the other bits decide, even for a named user.
		{"ZeroMaskOtherBits", 0o604, [][3]uint32{{tagUserObj, rw, 0}, {tagUser, rw, 2004}, {tagGroupObj, 0, 0}, {tagMask, 0, 0}, {tagOther, r, 0}}, dave, maildirfs.AccessRead},
		{"NoACLGroup", 0o640, nil, carol, maildirfs.AccessRead},
		{"NoACLOther", 0o640, nil, bob, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := aclFile(t, s, tc.name, tc.mode, tc.acl...)
			got, _, err := s.Access(h, tc.cred, all)
			if err != nil || got != tc.access {
				t.Errorf("Access: %#x %v, want %#x", got, err, tc.access)
			}
			_, _, _, err = s.Read(h, tc.cred, 0, make([]byte, 4))
			if want := tc.access&maildirfs.AccessRead != 0 || tc.cred.UID == 2001; (err == nil) != want || err != nil && !errors.Is(err, syscall.EACCES) {
				t.Errorf("Read: %v, want allowed %v", err, want)
			}
			_, _, _, _, err = s.Write(h, tc.cred, 0, []byte("M"), maildirfs.Unstable)
			if want := tc.access&maildirfs.AccessModify != 0; (err == nil) != want || err != nil && !errors.Is(err, syscall.EACCES) {
				t.Errorf("Write: %v, want allowed %v", err, want)
			}
		})
	}
}

// TestPosixACLDirectory checks a directory's ACL in Lookup, ReadDir,
// Create and a Rename of it to another directory (which rewrites its
// "..": it needs write permission on the directory itself).
func TestPosixACLDirectory(t *testing.T) {
	s := mdtest.New(t)
	dave := maildirfs.Cred{UID: 2004, GID: 2004}
	for _, d := range []string{"a", "a/sub", "b"} {
		if err := os.Mkdir(filepath.Join(s.Dir, d), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(filepath.Join(s.Dir, d), 2001, 2001); err != nil {
			t.Fatal(err)
		}
	}
	// a and b: dave may do everything; a/sub: dave may list only.
	setACL(t, filepath.Join(s.Dir, "a"), [3]uint32{tagUserObj, 7, 0}, [3]uint32{tagUser, 7, 2004}, [3]uint32{tagGroupObj, 0, 0}, [3]uint32{tagMask, 7, 0}, [3]uint32{tagOther, 0, 0})
	setACL(t, filepath.Join(s.Dir, "b"), [3]uint32{tagUserObj, 7, 0}, [3]uint32{tagUser, 7, 2004}, [3]uint32{tagGroupObj, 0, 0}, [3]uint32{tagMask, 7, 0}, [3]uint32{tagOther, 0, 0})
	setACL(t, filepath.Join(s.Dir, "a/sub"), [3]uint32{tagUserObj, 7, 0}, [3]uint32{tagUser, 5, 2004}, [3]uint32{tagGroupObj, 0, 0}, [3]uint32{tagMask, 7, 0}, [3]uint32{tagOther, 0, 0})
	a, b := lookup(t, s, "a"), lookup(t, s, "b")
	if _, _, _, err := s.Lookup(a, dave, "sub"); err != nil {
		t.Fatalf("Lookup in a directory the ACL opens: %v", err)
	}
	if _, _, _, err := s.Lookup(a, bob, "sub"); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("Lookup by another: %v, want EACCES", err)
	}
	if _, _, err := s.ReadDir(a, dave, 0, true, func(*maildirfs.DirEntry) bool { return true }); err != nil {
		t.Fatalf("ReadDir: %v", err)
	}
	if _, _, _, err := s.Create(a, dave, "m", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{}); err != nil {
		t.Fatalf("Create: %v", err)
	}
	// sub grants dave r-x only: its ".." cannot be rewritten.
	if _, _, err := s.Rename(a, "sub", b, "sub", dave); !errors.Is(err, syscall.EACCES) {
		t.Fatalf("Rename of a directory the ACL keeps read-only: %v, want EACCES", err)
	}
	setACL(t, filepath.Join(s.Dir, "a/sub"), [3]uint32{tagUserObj, 7, 0}, [3]uint32{tagUser, 7, 2004}, [3]uint32{tagGroupObj, 0, 0}, [3]uint32{tagMask, 7, 0}, [3]uint32{tagOther, 0, 0})
	if _, _, err := s.Rename(a, "sub", b, "sub", dave); err != nil {
		t.Fatalf("Rename of a directory the ACL lets dave write: %v", err)
	}
}

// TestPosixACLCost checks that a Maildir delivery by the mailbox owner
// never reads an ACL, that a repeated check by another reads it once,
// and that a changed ACL (a new ctime) is read again.
func TestPosixACLCost(t *testing.T) {
	s := mdtest.New(t)
	dave := maildirfs.Cred{UID: 2004, GID: 2004}
	full := [][3]uint32{{tagUserObj, 7, 0}, {tagUser, 5, 2004}, {tagGroupObj, 5, 0}, {tagMask, 5, 0}, {tagOther, 0, 0}}
	for _, d := range []string{"Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"} {
		p := filepath.Join(s.Dir, d)
		if err := os.Chown(p, 2001, 2001); err != nil {
			t.Fatal(err)
		}
		setACL(t, p, full...)
	}
	tmp, nw := lookup(t, s, "Maildir", "tmp"), lookup(t, s, "Maildir", "new")
	before := maildirfs.ACLReads()
	for _, u := range []string{"1700000000.M1P1.host", "1700000000.M2P1.host"} {
		if err := deliver(s, tmp, nw, alice, u, []byte("message\n")); err != nil {
			t.Fatal(err)
		}
	}
	if n := maildirfs.ACLReads() - before; n != 0 {
		t.Fatalf("two deliveries by the owner read %d ACLs, want 0", n)
	}
	before = maildirfs.ACLReads()
	for range 3 {
		if got, _, err := s.Access(nw, dave, maildirfs.AccessRead|maildirfs.AccessModify); err != nil || got != maildirfs.AccessRead {
			t.Fatalf("Access by a named user: %#x %v", got, err)
		}
	}
	if n := maildirfs.ACLReads() - before; n != 1 {
		t.Fatalf("three checks by a named user read %d ACLs, want 1", n)
	}
	full[1][1] = 7
	full[3][1] = 7
	setACL(t, filepath.Join(s.Dir, "Maildir/new"), full...)
	if got, _, err := s.Access(nw, dave, maildirfs.AccessRead|maildirfs.AccessModify); err != nil || got != maildirfs.AccessRead|maildirfs.AccessModify {
		t.Fatalf("Access after the ACL granted more: %#x %v", got, err)
	}
}
