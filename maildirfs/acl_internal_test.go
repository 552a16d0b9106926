package maildirfs

import (
	"bytes"
	"encoding/binary"
	"testing"

	"golang.org/x/sys/unix"
)

// encodeACL is the xattr value of a (the inverse of parseACL).
func encodeACL(a *posixACL) []byte {
	b := binary.LittleEndian.AppendUint32(nil, aclVersion)
	ent := func(tag uint16, perm, id uint32) {
		b = binary.LittleEndian.AppendUint16(b, tag)
		b = binary.LittleEndian.AppendUint16(b, uint16(perm))
		b = binary.LittleEndian.AppendUint32(b, id)
	}
	ent(aclUserObj, a.userObj, 0)
	for _, u := range a.users {
		ent(aclUser, u.perm, u.id)
	}
	ent(aclGroupObj, a.groupObj, 0)
	for _, g := range a.groups {
		ent(aclGroup, g.perm, g.id)
	}
	if a.hasMask {
		ent(aclMask, a.mask, 0)
	}
	ent(aclOther, a.other, 0)
	return b
}

// unnamedIDsZeroed is b with the ids of entries other than user:ID: and
// group:ID: cleared (the kernel ignores them, and so does parseACL).
func unnamedIDsZeroed(b []byte) []byte {
	b = bytes.Clone(b)
	for e := b[4:]; len(e) >= aclEntrySize; e = e[aclEntrySize:] {
		if tag := binary.LittleEndian.Uint16(e); tag != aclUser && tag != aclGroup {
			clear(e[4:8])
		}
	}
	return b
}

// aclBytes builds an xattr value from {tag, perm, id} entries.
func aclBytes(version uint32, es ...[3]uint32) []byte {
	b := binary.LittleEndian.AppendUint32(nil, version)
	for _, e := range es {
		b = binary.LittleEndian.AppendUint16(b, uint16(e[0]))
		b = binary.LittleEndian.AppendUint16(b, uint16(e[1]))
		b = binary.LittleEndian.AppendUint32(b, e[2])
	}
	return b
}

func TestParseACL(t *testing.T) {
	minimal := [][3]uint32{{aclUserObj, 6, 0}, {aclGroupObj, 4, 0}, {aclOther, 4, 0}}
	named := [][3]uint32{{aclUserObj, 6, 0}, {aclUser, 0, 2000}, {aclGroupObj, 4, 0}, {aclGroup, 7, 30}, {aclMask, 4, 0}, {aclOther, 4, 0}}
	for _, tc := range []struct {
		name string
		b    []byte
		ok   bool
	}{
		{"Minimal", aclBytes(2, minimal...), true},
		{"Named", aclBytes(2, named...), true},
		{"UnnamedIDsIgnored", aclBytes(2, [3]uint32{aclUserObj, 6, 7}, [3]uint32{aclGroupObj, 4, 8}, [3]uint32{aclOther, 4, 9}), true},
		{"MinimalWithMask", aclBytes(2, minimal[0], minimal[1], [3]uint32{aclMask, 4, 0}, minimal[2]), true},
		{"Empty", nil, false},
		{"VersionOnly", aclBytes(2), false},
		{"Version1", aclBytes(1, minimal...), false},
		{"Truncated", aclBytes(2, minimal...)[:27], false},
		{"TrailingByte", append(aclBytes(2, minimal...), 0), false},
		{"PermBeyondRWX", aclBytes(2, [3]uint32{aclUserObj, 8, 0}, minimal[1], minimal[2]), false},
		{"UnknownTag", aclBytes(2, minimal[0], minimal[1], [3]uint32{0x40, 0, 0}, minimal[2]), false},
		{"NamedWithoutMask", aclBytes(2, named[0], named[1], named[2], named[5]), false},
		{"NoOther", aclBytes(2, minimal[0], minimal[1]), false},
		{"NoUserObj", aclBytes(2, minimal[1], minimal[2]), false},
		{"TwoOthers", aclBytes(2, minimal[0], minimal[1], minimal[2], minimal[2]), false},
		{"OutOfOrder", aclBytes(2, minimal[1], minimal[0], minimal[2]), false},
		{"UserAfterGroup", aclBytes(2, named[0], named[2], named[1], named[4], named[5]), false},
		{"EntryAfterOther", aclBytes(2, named[0], named[2], named[4], named[5], named[1]), false},
		{"TooLarge", make([]byte, aclMaxSize+4), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := parseACL(tc.b)
			if a.bad == tc.ok {
				t.Fatalf("parseACL(%x): bad %v, want %v", tc.b, a.bad, !tc.ok)
			}
			if !a.bad && !bytes.Equal(encodeACL(a), unnamedIDsZeroed(tc.b)) {
				t.Fatalf("parseACL(%x) = %+v, which encodes as %x", tc.b, a, encodeACL(a))
			}
		})
	}
}

// TestMayACL checks may's use of an ACL: only for callers other than
// root and the owner, not when the mode has no group bits, and a bad ACL
// grants nothing.
func TestMayACL(t *testing.T) {
	st := &unix.Stat_t{Mode: unix.S_IFREG | 0o640, Uid: 1000, Gid: 1000}
	bad := &posixACL{bad: true}
	calls := 0
	acl := func(*unix.Stat_t) *posixACL { calls++; return bad }
	if !mayACL(st, Cred{UID: 1000, GID: 9}, permR|permW, acl) || !mayACL(st, Cred{}, permR|permW, acl) || calls != 0 {
		t.Fatalf("owner or root: ACL consulted %d times", calls)
	}
	if mayACL(st, Cred{UID: 5, GID: 1000}, permR, acl) || calls != 1 {
		t.Fatalf("group member with a bad ACL: allowed (%d calls)", calls)
	}
	st.Mode = unix.S_IFREG | 0o604
	if !mayACL(st, Cred{UID: 5, GID: 5}, permR, acl) || calls != 1 {
		t.Fatalf("mode without group bits: ACL consulted %d times", calls)
	}
	none := func(*unix.Stat_t) *posixACL { return nil }
	st.Mode = unix.S_IFREG | 0o640
	if !mayACL(st, Cred{UID: 5, GID: 1000}, permR, none) || mayACL(st, Cred{UID: 5, GID: 5}, permR, none) {
		t.Fatal("no ACL: the mode rules changed")
	}
}

// FuzzParseACL: arbitrary bytes never panic; an accepted value
// re-encodes to itself but for ignored ids (it was a valid ACL in the
// kernel's order), and a
// rejected one grants nothing.
func FuzzParseACL(f *testing.F) {
	f.Add(aclBytes(2, [3]uint32{aclUserObj, 6, 0}, [3]uint32{aclGroupObj, 4, 0}, [3]uint32{aclOther, 4, 0}), uint32(5), uint32(5))
	f.Add(aclBytes(2, [3]uint32{aclUserObj, 6, 0}, [3]uint32{aclUser, 5, 2000}, [3]uint32{aclGroupObj, 0, 0}, [3]uint32{aclGroup, 7, 30}, [3]uint32{aclMask, 5, 0}, [3]uint32{aclOther, 0, 0}), uint32(2000), uint32(30))
	f.Add([]byte{2, 0, 0, 0, 1, 0}, uint32(0), uint32(0))
	f.Fuzz(func(t *testing.T, b []byte, uid, gid uint32) {
		a := parseACL(b)
		if !a.bad && !bytes.Equal(encodeACL(a), unnamedIDsZeroed(b)) {
			t.Fatalf("parseACL(%x) = %+v, which encodes as %x", b, a, encodeACL(a))
		}
		st := &unix.Stat_t{Mode: unix.S_IFREG | 0o777, Uid: 1, Gid: 1}
		for want := uint32(1); want <= 7; want++ {
			if ok := a.permits(st, Cred{UID: uid, GID: gid}, want); ok && a.bad {
				t.Fatalf("bad ACL %x grants %o", b, want)
			}
		}
	})
}
