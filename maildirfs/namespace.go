package maildirfs

import (
	"errors"
	"os"
	"strings"

	"golang.org/x/sys/unix"
)

// Mkdir creates a directory; the entry is durable on return.
func (f *FS) Mkdir(dir Handle, c Cred, name string, s SetAttr) (_ Handle, _ *Attr, wcc Wcc, _ error) {
	return f.mkdir(dir, c, name, s, false)
}

// FinishMkdir is Mkdir for a call that an earlier run of the server may
// have begun and been stopped in (see FinishCreate): an empty directory by
// that name, still the server's own or already the caller's, is taken as
// the one that run made and gets the owner and mode Mkdir gives.
func (f *FS) FinishMkdir(dir Handle, c Cred, name string, s SetAttr) (_ Handle, _ *Attr, wcc Wcc, _ error) {
	return f.mkdir(dir, c, name, s, true)
}

func (f *FS) mkdir(dir Handle, c Cred, name string, s SetAttr, finish bool) (_ Handle, _ *Attr, wcc Wcc, _ error) {
	d, dst, gen, err := f.getDir(dir, c, &wcc, true)
	if err != nil {
		return nil, nil, wcc, err
	}
	defer f.put(d)
	if err := checkNewName(name, unix.EEXIST); err != nil {
		return nil, nil, wcc, err
	}
	mode := uint32(0o755)
	if s.Mode != nil {
		mode = *s.Mode & 0o7777
	}
	var unfinished func() error
	if finish {
		unfinished = func() error {
			uid, _ := newOwner(dst, c, s)
			return unfinishedDir(d, name, uint32(uid))
		}
	}
	h, a, err := f.makeObject(d, dst, gen, c, name, s, mode, TypeDir, &wcc, func() error {
		return unix.Mkdirat(d.pathFd, name, 0o700)
	}, unfinished)
	return h, a, wcc, err
}

// Symlink creates a symlink holding target verbatim; the store never
// follows it. The entry is durable on return.
func (f *FS) Symlink(dir Handle, c Cred, name, target string, s SetAttr) (_ Handle, _ *Attr, wcc Wcc, _ error) {
	return f.symlink(dir, c, name, target, s, false)
}

// FinishSymlink is Symlink for a call that an earlier run of the server
// may have begun and been stopped in (see FinishCreate): a symlink by that
// name holding target, still the server's own or already the caller's, is
// taken as the one that run made and gets the owner Symlink gives.
func (f *FS) FinishSymlink(dir Handle, c Cred, name, target string, s SetAttr) (_ Handle, _ *Attr, wcc Wcc, _ error) {
	return f.symlink(dir, c, name, target, s, true)
}

func (f *FS) symlink(dir Handle, c Cred, name, target string, s SetAttr, finish bool) (_ Handle, _ *Attr, wcc Wcc, _ error) {
	d, dst, gen, err := f.getDir(dir, c, &wcc, true)
	if err != nil {
		return nil, nil, wcc, err
	}
	defer f.put(d)
	if err := checkNewName(name, unix.EEXIST); err != nil {
		return nil, nil, wcc, err
	}
	switch {
	case target == "":
		return nil, nil, wcc, unix.ENOENT
	case len(target) > maxSymlink:
		return nil, nil, wcc, unix.ENAMETOOLONG
	case strings.IndexByte(target, 0) >= 0:
		return nil, nil, wcc, unix.EINVAL
	}
	var unfinished func() error
	if finish {
		unfinished = func() error {
			uid, _ := newOwner(dst, c, s)
			return unfinishedSymlink(d, name, target, uint32(uid))
		}
	}
	h, a, err := f.makeObject(d, dst, gen, c, name, s, 0, TypeLnk, &wcc, func() error {
		return unix.Symlinkat(target, d.pathFd, name)
	}, unfinished)
	return h, a, wcc, err
}

// ownedForFinish reports whether an object owned by uid may be finished
// for a caller who would own it as owner: it is still the server's own
// (not yet given to its owner) or already the owner's.
func ownedForFinish(uid, owner uint32) bool {
	return uid == owner || uid == uint32(os.Geteuid())
}

// unfinishedDir checks name in d for FinishMkdir: an empty directory
// owned as ownedForFinish says, else EEXIST.
func unfinishedDir(d *node, name string, owner uint32) error {
	fd, err := unix.Openat(d.pathFd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return unix.EEXIST // not a directory (ENOTDIR, ELOOP), or unreadable
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil || !ownedForFinish(st.Uid, owner) {
		return unix.EEXIST
	}
	buf := make([]byte, 4096)
	for {
		n, err := unix.ReadDirent(fd, buf)
		if err != nil {
			return unix.EEXIST
		}
		if n <= 0 {
			return nil
		}
		_, _, names := unix.ParseDirent(buf[:n], -1, nil) // skips . and ..
		if len(names) > 0 {
			return unix.EEXIST
		}
	}
}

// unfinishedSymlink checks name in d for FinishSymlink: a symlink holding
// target, owned as ownedForFinish says, else EEXIST.
func unfinishedSymlink(d *node, name, target string, owner uint32) error {
	var st unix.Stat_t
	if err := unix.Fstatat(d.pathFd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil ||
		uint32(st.Mode)&unix.S_IFMT != unix.S_IFLNK || !ownedForFinish(st.Uid, owner) {
		return unix.EEXIST
	}
	buf := make([]byte, len(target)+1)
	n, err := unix.Readlinkat(d.pathFd, name, buf)
	if err != nil || n != len(target) || string(buf[:n]) != target {
		return unix.EEXIST
	}
	return nil
}

// makeObject creates name in d with mk (mkdirat, symlinkat, mknodat) and
// opens it, with name claimed throughout (claim: no RENAME of this server
// can put another object under it before the chown), then gives it its
// owner and mode, caches it and makes it and its entry durable
// (setupMade). unfinished, when not nil (FinishMkdir, FinishSymlink),
// accepts an existing name that an earlier run left, else EEXIST. On a
// failure after mk the object is removed again (undoCreate).
func (f *FS) makeObject(d *node, dst *unix.Stat_t, gen uint64, c Cred, name string, s SetAttr, mode uint32, typ FileType, wcc *Wcc, mk, unfinished func() error) (Handle, *Attr, error) {
	mine := d.claimWait(name)
	defer d.unclaim(name, mine)
	if err := f.inject(FaultCreate); err != nil {
		return nil, nil, err
	}
	made := false
	// Made as root, a directory or a long symlink's block could come out
	// of the reserve kept for root once users have no room left
	// (roomForUser). A name that exists is EEXIST first, as mkdir(2)
	// answers on a full disk (and a retransmission finishes its object).
	err := roomForUser(f.rootFd, c, 1)
	if err != nil {
		var st unix.Stat_t
		if unix.Fstatat(d.pathFd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil {
			err = unix.EEXIST
		}
	} else {
		err = f.dirChange(d, wcc, gen, func() error {
			err := mk()
			made = err == nil
			return err
		})
	}
	if errors.Is(err, unix.EEXIST) && unfinished != nil {
		err = unfinished()
	}
	if err != nil {
		return nil, nil, err
	}
	fd, st, err := openChild(d, name)
	if err == nil && uint32(st.Mode)&unix.S_IFMT != typeBits(typ) {
		unix.Close(fd)
		err = unix.EEXIST // replaced by a local process
	}
	if err != nil {
		return nil, nil, err
	}
	h, a, err := f.setupMade(d, dst, c, name, fd, st, s, mode, typ)
	if err != nil && made {
		f.undoCreate(d, name, st.Ino, typ == TypeDir, wcc)
	}
	return h, a, err
}

// setupMade sets owner and mode of the new object name in d (open as fd,
// stat st; setupMade owns fd), and for a directory the times asked for,
// caches it and syncs it and its entry (syncCreated; a symlink or device
// node has no fd to fsync, so its sync is a syncfs).
func (f *FS) setupMade(d *node, dst *unix.Stat_t, c Cred, name string, fd int, st *unix.Stat_t, s SetAttr, mode uint32, typ FileType) (Handle, *Attr, error) {
	if err := f.setupNew(d, dst, name, fd, c, s, mode, typ); err != nil {
		if fd >= 0 {
			unix.Close(fd)
		}
		return nil, nil, err
	}
	h, err := f.adopt(fd, st, d, name)
	if err == nil && typ == TypeDir {
		rest := SetAttr{Atime: s.Atime, AtimeVal: s.AtimeVal, Mtime: s.Mtime, MtimeVal: s.MtimeVal}
		if rest.Atime != DontChange || rest.Mtime != DontChange {
			err = f.withNode(h, func(n *node, nst *unix.Stat_t) error { return f.setAttrLocked(n, nst, c, rest, true) })
		}
	}
	if err == nil {
		// The new object's inode and the entry (see Create).
		err = f.withNode(h, func(n *node, _ *unix.Stat_t) error { return f.syncCreated(n, d) })
	}
	if err != nil {
		return nil, nil, err
	}
	a, err := f.Getattr(h)
	if err != nil {
		return nil, nil, err
	}
	return h, &a, nil
}

func typeBits(t FileType) uint32 {
	switch t {
	case TypeDir:
		return unix.S_IFDIR
	case TypeLnk:
		return unix.S_IFLNK
	case TypeBlk:
		return unix.S_IFBLK
	case TypeChr:
		return unix.S_IFCHR
	case TypeSock:
		return unix.S_IFSOCK
	case TypeFifo:
		return unix.S_IFIFO
	}
	return unix.S_IFREG
}

// Mknod creates a fifo, socket or (root only: EPERM otherwise) a character
// or block device; device numbers the system cannot hold (Linux: a major
// over 12 bits or a minor over 20) are EINVAL. Other types: EINVAL
// (NFS3ERR_BADTYPE is nfsd's choice).
func (f *FS) Mknod(dir Handle, c Cred, name string, typ FileType, s SetAttr, major, minor uint32) (_ Handle, _ *Attr, wcc Wcc, _ error) {
	d, dst, gen, err := f.getDir(dir, c, &wcc, true)
	if err != nil {
		return nil, nil, wcc, err
	}
	defer f.put(d)
	if err := checkNewName(name, unix.EEXIST); err != nil {
		return nil, nil, wcc, err
	}
	var dev uint64
	switch typ {
	case TypeChr, TypeBlk:
		if c.UID != 0 {
			return nil, nil, wcc, unix.EPERM
		}
		dev = unix.Mkdev(major, minor)
	case TypeFifo, TypeSock:
	default:
		return nil, nil, wcc, unix.EINVAL
	}
	mode := uint32(0o644)
	if s.Mode != nil {
		mode = *s.Mode & 0o7777
	}
	h, a, err := f.makeObject(d, dst, gen, c, name, s, mode, typ, &wcc, func() error {
		return mknodat(d.pathFd, name, typeBits(typ)|0o600, dev)
	}, nil)
	return h, a, wcc, err
}

// Remove removes a non-directory entry; the removal is durable on return.
func (f *FS) Remove(dir Handle, c Cred, name string) (wcc Wcc, _ error) {
	return f.remove(dir, c, name, false)
}

// Rmdir removes an empty directory; the removal is durable on return.
func (f *FS) Rmdir(dir Handle, c Cred, name string) (wcc Wcc, _ error) {
	return f.remove(dir, c, name, true)
}

func (f *FS) remove(dir Handle, c Cred, name string, isDir bool) (wcc Wcc, _ error) {
	d, dst, gen, err := f.getDir(dir, c, &wcc, true)
	if err != nil {
		return wcc, err
	}
	defer f.put(d)
	dotErr := unix.EINVAL
	if isDir && name == ".." {
		dotErr = unix.ENOTEMPTY
	}
	if err := checkNewName(name, dotErr); err != nil {
		return wcc, err
	}
	var vst unix.Stat_t
	err = f.dirChange(d, &wcc, gen, func() error {
		if err := unix.Fstatat(d.pathFd, name, &vst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		victimDir := vst.Mode&unix.S_IFMT == unix.S_IFDIR
		switch {
		case isDir && !victimDir:
			return unix.ENOTDIR
		case !isDir && victimDir:
			return unix.EISDIR
		case !stickyOK(dst, &vst, c):
			return unix.EPERM // may_delete: EPERM, as knfsd answers
		case victimDir && vst.Ino == f.rootIno && vst.Dev == f.rootDev:
			return unix.EBUSY
		}
		if err := f.inject(FaultUnlink); err != nil {
			return err
		}
		flags := 0
		if isDir {
			flags = unix.AT_REMOVEDIR
		}
		return unix.Unlinkat(d.pathFd, name, flags)
	})
	if err != nil {
		return wcc, err
	}
	if isDir || vst.Nlink <= 1 {
		f.cache.dropIno(vst.Ino)
		f.zgone(vst.Ino)
	}
	return wcc, f.syncDir(d)
}

// Link makes name in dir another link to file; durable on return.
func (f *FS) Link(file Handle, dir Handle, name string, c Cred) (_ *Attr, wcc Wcc, _ error) {
	n, nst, err := f.get(file)
	if err != nil {
		return nil, wcc, err
	}
	defer f.put(n)
	d, _, gen, err := f.getDir(dir, c, &wcc, true)
	if err != nil {
		return f.postAttr(n), wcc, err
	}
	defer f.put(d)
	if err := checkNewName(name, unix.EEXIST); err != nil {
		return f.postAttr(n), wcc, err
	}
	if n.typ == TypeDir {
		return f.postAttr(n), wcc, unix.EISDIR
	}
	if !mayLink(n, nst, c) {
		return f.postAttr(n), wcc, unix.EPERM
	}
	err = f.dirChange(d, &wcc, gen, func() error {
		if err := f.inject(FaultLink); err != nil {
			return err
		}
		return linkNode(n, d.pathFd, name)
	})
	if err != nil {
		return f.postAttr(n), wcc, err
	}
	// The new entry, and the inode's link count and ctime: the
	// directory's sync covers both only where one sync commits the
	// whole operation; ext4 without a journal would keep a count of 1
	// for two names, and a later unlink would free the inode under the
	// other.
	if f.commit().oneSync {
		err = f.syncDir(d)
	} else {
		err = syncBoth(func() error { return f.syncNode(n) }, func() error { return f.syncDir(d) })
	}
	if err == nil && n.typ == TypeReg {
		f.zdelivered(nil, d, func() (Handle, bool) { return append(Handle(nil), n.h...), true })
	}
	return f.postAttrStable(n), wcc, err
}

// mayLink applies Linux's protected_hardlinks rule, which the kernel does
// not enforce for us (we run as root): only the owner may link a file,
// unless it is a regular file that is not setuid or setgid-executable and
// c may read and write it.
func mayLink(n *node, st *unix.Stat_t, c Cred) bool {
	if owns(st, c) {
		return true
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Mode&unix.S_ISUID != 0 || st.Mode&(unix.S_ISGID|unix.S_IXGRP) == unix.S_ISGID|unix.S_IXGRP {
		return false
	}
	return may(n, st, c, permR|permW)
}

// Rename atomically moves fromName in fromDir to toName in toDir (renameat),
// replacing a compatible target. Same file (one name, or two links of one
// file): a no-op, even where the sticky bit would refuse a move. Both
// directories are durable on return: toDir first, so that a crash in
// between leaves two names, never none; where the file system commits the rename as one unit
// (commitModel.renameAtomic: ext4 with a journal, XFS, btrfs, ZFS) the
// order cannot matter and both are synced at once, and where one sync
// commits the whole operation (oneSync) toDir's is enough.
func (f *FS) Rename(fromDir Handle, fromName string, toDir Handle, toName string, c Cred) (from, to Wcc, err error) {
	fd, fdst, fgen, err := f.getDir(fromDir, c, &from, true)
	if err != nil {
		if td, tst, terr := f.get(toDir); terr == nil {
			to.Before, to.After = wccAttr(tst), f.attr(tst)
			f.put(td)
		}
		return from, to, err
	}
	defer f.put(fd)
	td, tdst, tgen, err := f.getDir(toDir, c, &to, true)
	if err != nil {
		return from, to, err
	}
	defer f.put(td)
	if err := checkNewName(fromName, unix.EINVAL); err != nil {
		return from, to, err
	}
	if err := checkNewName(toName, unix.EINVAL); err != nil {
		return from, to, err
	}
	// Claim the target name (claim): a creation of it in progress is
	// waited for, and none begins until the rename is done.
	mine := td.claimWait(toName)
	defer td.unclaim(toName, mine)
	var vst, tst unix.Stat_t
	exists, same := false, false
	err = f.dirChange2(fd, td, &from, &to, fgen, tgen, func() error {
		if err := unix.Fstatat(fd.pathFd, fromName, &vst, unix.AT_SYMLINK_NOFOLLOW); err != nil {
			return err
		}
		terr := unix.Fstatat(td.pathFd, toName, &tst, unix.AT_SYMLINK_NOFOLLOW)
		exists = terr == nil
		if terr != nil && terr != unix.ENOENT {
			return terr
		}
		if exists && tst.Ino == vst.Ino && tst.Dev == vst.Dev {
			// POSIX: same file, nothing to do; Linux's vfs_rename
			// says so before its sticky check (may_delete).
			same = true
			return nil
		}
		if !stickyOK(fdst, &vst, c) {
			return unix.EPERM // may_delete: EPERM, as knfsd answers
		}
		srcDir := vst.Mode&unix.S_IFMT == unix.S_IFDIR
		if exists {
			tgtDir := tst.Mode&unix.S_IFMT == unix.S_IFDIR
			switch {
			case !stickyOK(tdst, &tst, c):
				return unix.EPERM
			case srcDir && !tgtDir:
				return unix.ENOTDIR
			case !srcDir && tgtDir:
				return unix.EISDIR
			}
		}
		// The directory moved has no node here: its ACL, if one is
		// needed, is read by name.
		if srcDir && fd.ino != td.ino && !mayACL(&vst, c, permW, func(st *unix.Stat_t) *posixACL { return aclAt(fd.pathFd, fromName, st) }) {
			return unix.EACCES // its ".." entry changes
		}
		if err := f.inject(FaultRename); err != nil {
			return err
		}
		return unix.Renameat(fd.pathFd, fromName, td.pathFd, toName)
	})
	if err != nil || same {
		return from, to, err
	}
	if exists && (tst.Mode&unix.S_IFMT == unix.S_IFDIR || tst.Nlink <= 1) {
		f.cache.dropIno(tst.Ino)
		f.zgone(tst.Ino)
	}
	switch m := f.commit(); {
	case m.oneSync || td == fd:
		err = f.syncDir(td)
	case m.renameAtomic:
		err = syncBoth(func() error { return f.syncDir(td) }, func() error { return f.syncDir(fd) })
	default:
		if err = f.syncDir(td); err == nil {
			err = f.syncDir(fd)
		}
	}
	if err != nil {
		return from, to, err
	}
	if vst.Mode&unix.S_IFMT == unix.S_IFREG {
		f.zdelivered(fd, td, func() (Handle, bool) {
			k, mnt, err := nameHandle(td.pathFd, toName)
			if err != nil || mnt != f.mountID {
				return nil, false
			}
			return f.encodeHandle(k)
		})
	}
	return from, to, nil
}

// FSStat reports space and inode counts of the filesystem holding h.
func (f *FS) FSStat(h Handle) (FSStat, *Attr, error) {
	n, st, err := f.get(h)
	if err != nil {
		return FSStat{}, nil, err
	}
	defer f.put(n)
	fd := n.pathFd
	if fd < 0 {
		fd = f.rootFd // no path fd (FreeBSD special file): same filesystem
	}
	fs, err := fsStat(fd)
	if err != nil {
		return FSStat{}, f.attr(st), err
	}
	return fs, f.attr(st), nil
}

// LookupPath resolves rel (slash-separated, relative to the export root;
// a leading "/" is ignored) one component at a time, for MNT of a
// subdirectory. It refuses ".." (EACCES), symlinks and non-directories
// (ENOTDIR), and needs search permission on each directory.
func (f *FS) LookupPath(c Cred, rel string) (Handle, error) {
	h := f.Root()
	if len(rel) > 4096 {
		return nil, unix.ENAMETOOLONG
	}
	for comp := range strings.SplitSeq(rel, "/") {
		if comp == "" || comp == "." {
			continue
		}
		if comp == ".." {
			return nil, unix.EACCES
		}
		nh, a, _, err := f.Lookup(h, c, comp)
		if err != nil {
			return nil, err
		}
		if a.Type != TypeDir {
			return nil, unix.ENOTDIR
		}
		h = nh
	}
	return h, nil
}

// LinkMax returns the hard link limit of the export's filesystem for
// PATHCONF (nfsd.LinkMaxer): known limits by filesystem type, else 32000.
func (f *FS) LinkMax() uint32 { return linkMax(f.rootFd) }

// MaxFileSize returns the largest file size the export's filesystem
// allows, for FSINFO (nfsd.MaxFileSizer), so that a client refuses a larger
// write itself: (2^32-1) blocks on ext2/3/4 (an upper bound of the
// kernel's s_maxbytes), _PC_FILESIZEBITS on FreeBSD, else 2^63-1.
func (f *FS) MaxFileSize() uint64 { return maxFileSize(f.rootFd) }
