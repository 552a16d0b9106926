package maildirfs

import (
	"slices"

	"golang.org/x/sys/unix"
)

// Permission bits as in a mode triplet.
const (
	permR = 4
	permW = 2
	permX = 1
)

// ACCESS3 bits (RFC 1813 §3.3.4).
const (
	AccessRead    = 0x01 // read data / list directory
	AccessLookup  = 0x02 // look up names in a directory
	AccessModify  = 0x04 // rewrite data / modify directory entries
	AccessExtend  = 0x08 // append / add directory entries
	AccessDelete  = 0x10 // delete a directory entry
	AccessExecute = 0x20 // execute a file
)

func (c Cred) inGroup(g uint32) bool {
	return c.GID == g || slices.Contains(c.GIDs, g)
}

// may reports whether c has all of want (permR|permW|permX) on n, whose
// stat is st, by the owner/group/other rules or, for a caller other than
// root and the owner, n's access ACL (acl.go). UID 0 passes, except that
// execute on a non-directory needs some x bit, as for local root.
func may(n *node, st *unix.Stat_t, c Cred, want uint32) bool {
	return mayACL(st, c, want, n.accessACL)
}

// mayACL is may with the access ACL that acl returns, which it calls only
// for a caller other than root and the owner, and only if the mode has
// group bits: as in Linux's acl_permission_check, a file whose group bits
// (its ACL's mask) are all clear is judged by the mode alone.
func mayACL(st *unix.Stat_t, c Cred, want uint32, acl func(*unix.Stat_t) *posixACL) bool {
	if c.UID == 0 {
		if want&permX != 0 && st.Mode&unix.S_IFMT != unix.S_IFDIR && st.Mode&0o111 == 0 {
			return false
		}
		return true
	}
	if c.UID == st.Uid {
		return uint32(st.Mode)>>6&7&want == want
	}
	if posixACLs && st.Mode&0o070 != 0 && st.Mode&unix.S_IFMT != unix.S_IFLNK {
		if a := acl(st); a != nil {
			return a.permits(st, c, want)
		}
	}
	bits := uint32(st.Mode)
	if c.inGroup(st.Gid) {
		bits >>= 3
	}
	return bits&7&want == want
}

// owns reports whether c may act as the owner of st (chmod, utimes to a
// client time): the owner or root.
func owns(st *unix.Stat_t, c Cred) bool { return c.UID == 0 || c.UID == st.Uid }

// stickyOK reports whether c may remove or rename entry ent of directory
// dir: without the sticky bit anyone with write access may; with it only
// root, the directory's owner or the entry's owner. A refusal is EPERM,
// as Linux's may_delete returns (knfsd answers NFS3ERR_PERM), not EACCES.
func stickyOK(dir, ent *unix.Stat_t, c Cred) bool {
	if dir.Mode&unix.S_ISVTX == 0 || c.UID == 0 {
		return true
	}
	return c.UID == dir.Uid || c.UID == ent.Uid
}

// accessBits computes the ACCESS3 bits c has on st (before masking with
// the request). Like knfsd, it does not grant DELETE on non-directories
// (that depends on the parent) and grants no modify bits on a read-only
// export.
func accessBits(n *node, st *unix.Stat_t, c Cred, readOnly bool) uint32 {
	var g uint32
	isDir := st.Mode&unix.S_IFMT == unix.S_IFDIR
	if may(n, st, c, permR) {
		g |= AccessRead
	}
	if isDir {
		if may(n, st, c, permX) {
			g |= AccessLookup
		}
		if !readOnly && may(n, st, c, permW|permX) {
			g |= AccessModify | AccessExtend | AccessDelete
		}
		return g
	}
	if !readOnly && may(n, st, c, permW) {
		g |= AccessModify | AccessExtend
	}
	if may(n, st, c, permX) {
		g |= AccessExecute
	}
	return g
}
