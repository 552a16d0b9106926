package maildirfs

import (
	"encoding/binary"
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// POSIX access ACLs. The server runs as root, so the kernel never checks
// a file's ACL for a client: may does, as Linux's acl_permission_check and
// posix_acl_permission do, for callers other than root and the owner
// (deliveries run as the mailbox owner and never read it). The ACL is
// read from the xattr system.posix_acl_access (Linux only: posixACLs) and
// kept in the node, keyed by the ctime it was read at; any change of an
// ACL changes the ctime. Default ACLs need nothing here: the kernel
// applies a directory's default ACL when a file is created in it.

// aclXattr is the xattr holding a file's access ACL (Linux).
const aclXattr = "system.posix_acl_access"

// Xattr format of an ACL (include/uapi/linux/posix_acl_xattr.h): little
// endian, a 32-bit version, then 8-byte entries of tag (16 bits), perm
// (16 bits) and id (32 bits).
const (
	aclVersion   = 2
	aclEntrySize = 8
	aclMaxSize   = 64 << 10 // XATTR_SIZE_MAX: no xattr is larger

	aclUserObj  = 0x01
	aclUser     = 0x02
	aclGroupObj = 0x04
	aclGroup    = 0x08
	aclMask     = 0x10
	aclOther    = 0x20
)

// aclReads counts reads of the ACL xattr (a test hook: deliveries must
// not cause any).
var aclReads atomic.Uint64

// posixACL is a parsed access ACL. A malformed one is bad and grants
// nothing to anyone it is consulted for (the kernel fails the check too).
type posixACL struct {
	bad                            bool
	userObj, groupObj, mask, other uint32     // userObj: the mode's owner bits, which may uses
	users, groups                  []aclNamed // in xattr order; the first match counts
	hasMask                        bool
}

// aclNamed is an ACL_USER or ACL_GROUP entry.
type aclNamed struct {
	id, perm uint32
}

// aclCache is a node's ACL (nil: none) as read at ctime.
type aclCache struct {
	ctime unix.Timespec
	acl   *posixACL
}

// parseACL decodes an access ACL xattr, checking it as the kernel's
// posix_acl_valid does: perms of rwx only, entries in the order user::,
// user:ID:..., group::, group:ID:..., mask::, other::, and a mask when
// there are named entries. The ids of entries other than user:ID: and
// group:ID: are ignored, as by the kernel. A malformed value is a bad ACL.
func parseACL(b []byte) *posixACL {
	bad := &posixACL{bad: true}
	if len(b) < 4 || len(b) > aclMaxSize || (len(b)-4)%aclEntrySize != 0 || binary.LittleEndian.Uint32(b) != aclVersion {
		return bad
	}
	// state is the next tag allowed, as in posix_acl_valid; 0: done.
	a := new(posixACL)
	state, named := uint16(aclUserObj), false
	for e := b[4:]; len(e) > 0; e = e[aclEntrySize:] {
		tag, perm, id := binary.LittleEndian.Uint16(e), uint32(binary.LittleEndian.Uint16(e[2:])), binary.LittleEndian.Uint32(e[4:])
		if perm&^7 != 0 {
			return bad
		}
		switch {
		case tag == aclUserObj && state == aclUserObj:
			a.userObj, state = perm, aclUser
		case tag == aclUser && state == aclUser:
			a.users = append(a.users, aclNamed{id, perm})
			named = true
		case tag == aclGroupObj && state == aclUser:
			a.groupObj, state = perm, aclGroup
		case tag == aclGroup && state == aclGroup:
			a.groups = append(a.groups, aclNamed{id, perm})
			named = true
		case tag == aclMask && state == aclGroup:
			a.mask, a.hasMask, state = perm, true, aclOther
		case tag == aclOther && (state == aclOther || state == aclGroup && !named):
			a.other, state = perm, 0
		default:
			return bad
		}
	}
	if state != 0 {
		return bad
	}
	return a
}

// permits reports whether a grants c all of want (permR|permW|permX) on
// the file with stat st, c being neither root nor its owner: the first
// named user entry for c.UID, masked; else, if c is in the file's group
// or a named group, whether one of those entries grants want (masked);
// else the other entry (posix_acl_permission).
func (a *posixACL) permits(st *unix.Stat_t, c Cred, want uint32) bool {
	if a.bad {
		return false
	}
	for _, u := range a.users {
		if u.id == c.UID {
			return a.masked(u.perm, want)
		}
	}
	found := false
	if c.inGroup(st.Gid) {
		found = true
		if a.groupObj&want == want {
			return a.masked(a.groupObj, want)
		}
	}
	for _, g := range a.groups {
		if c.inGroup(g.id) {
			found = true
			if g.perm&want == want {
				return a.masked(g.perm, want)
			}
		}
	}
	if found {
		return false
	}
	return a.other&want == want
}

// masked reports whether perm limited by the mask grants want.
func (a *posixACL) masked(perm, want uint32) bool {
	if a.hasMask {
		perm &= a.mask
	}
	return perm&want == want
}

// accessACL returns the access ACL of n, whose stat is st (nil: none),
// from the node while st's ctime is the one it was read at.
func (n *node) accessACL(st *unix.Stat_t) *posixACL {
	if e := n.acl.Load(); e != nil && e.ctime == st.Ctim {
		return e.acl
	}
	a, ok := readACL(n.pathFd)
	if ok {
		n.acl.Store(&aclCache{ctime: st.Ctim, acl: a})
	}
	return a
}

// readACL reads and parses the access ACL of the object open as fd (nil:
// none). A read that failed (not for want of an ACL) is a bad ACL and not
// to be cached (ok false).
func readACL(fd int) (a *posixACL, ok bool) {
	aclReads.Add(1)
	b := make([]byte, 4+8*aclEntrySize)
	k, err := getxattrFd(fd, aclXattr, b)
	if err == unix.ERANGE {
		// Larger than a typical ACL: ask for its size (bounded).
		if k, err = getxattrFd(fd, aclXattr, nil); err == nil {
			if k > aclMaxSize {
				return &posixACL{bad: true}, true
			}
			b = make([]byte, k)
			k, err = getxattrFd(fd, aclXattr, b)
		}
	}
	switch err {
	case nil:
		return parseACL(b[:k]), true
	case errNoAttr, unix.EOPNOTSUPP:
		return nil, true
	}
	return &posixACL{bad: true}, false
}

// aclAt returns the access ACL of name in directory dirfd, whose stat is
// st, read afresh: for an object without a node. If name no longer names
// st's inode, the ACL is bad (it grants nothing).
func aclAt(dirfd int, name string, st *unix.Stat_t) *posixACL {
	fd, err := openChildPath(dirfd, name)
	if err != nil || fd < 0 {
		return &posixACL{bad: true}
	}
	defer unix.Close(fd)
	var now unix.Stat_t
	if err := unix.Fstat(fd, &now); err != nil || now.Ino != st.Ino || now.Dev != st.Dev {
		return &posixACL{bad: true}
	}
	a, _ := readACL(fd)
	return a
}
