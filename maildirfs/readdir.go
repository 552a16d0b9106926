package maildirfs

import (
	"golang.org/x/sys/unix"
)

// direntBuf is the getdents64 buffer size: a page of typical Maildir names
// is ~60 entries per 4 KiB, so one call serves one reply.
const direntBuf = 8 << 10

// ReadDir lists dir from cookie on (0 = start), calling emit for each entry
// until emit returns false (that entry is not consumed: its predecessor's
// cookie resumes at it) or the directory ends (eof). Cookies are the
// filesystem's own d_off values (getdents64 + lseek), so a call costs
// O(entries returned) and cookies survive unrelated changes and restarts.
// "." and ".." are included (".." of the export root is the root). With
// plus, each entry carries Attr and Handle; an entry that vanishes between
// getdents and the stat is skipped. Names with the same ext4 hash begin at
// the same cookie, so an entry's cookie may equal its predecessor's, and
// a listing resumed at it starts at the predecessor again: a caller that
// stops there lists it twice (nfsd's replies never end there).
func (f *FS) ReadDir(dir Handle, c Cred, cookie uint64, plus bool, emit func(e *DirEntry) bool) (bool, *Attr, error) {
	d, dst, err := f.get(dir)
	if err != nil {
		return false, nil, err
	}
	defer f.put(d)
	switch {
	case d.typ != TypeDir:
		return false, f.attr(dst), unix.ENOTDIR
	case !may(d, dst, c, permR):
		return false, f.attr(dst), unix.EACCES
	case cookie > 1<<63-1:
		return false, f.attr(dst), ErrBadCookie
	}
	cur, err := f.cursor(d)
	if err != nil {
		return false, f.attr(dst), err
	}
	defer cur.mu.Unlock()
	fd := cur.fd
	isRoot := d.ino == f.rootIno
	canLookup := may(d, dst, c, permX)
	buf := make([]byte, direntBuf)

	if _, err := unix.Seek(fd, int64(cookie), 0); err != nil {
		if err == unix.EINVAL {
			return false, f.attr(dst), ErrBadCookie
		}
		return false, f.attr(dst), err
	}
	eof, err := eachDirent(fd, buf, func(ino, next uint64, nameb []byte) bool {
		name := string(nameb)
		e := DirEntry{Name: name, FileID: ino, Cookie: next}
		if name == ".." && isRoot {
			e.FileID = f.rootIno
		}
		if plus && canLookup {
			if !f.fillPlus(d, isRoot, &e) {
				return true // vanished
			}
		}
		return emit(&e)
	})
	if err == unix.ENOENT { // directory removed under us
		err = ErrStale
	}
	return eof, f.postAttr(d), err
}

// eachDirent reads the entries of the directory fd from its offset on
// with getdents into buf and calls fn with each one's inode, its d_off
// (the cookie of the entry after it) and its name, skipping deleted
// entries (inode 0), until fn returns false (eof false) or the directory
// ends (eof true). The name is only valid during the call. Errors are
// getdents's, or ErrCorrupt for a record that does not parse.
func eachDirent(fd int, buf []byte, fn func(ino, next uint64, name []byte) bool) (eof bool, err error) {
	for {
		nb, err := unix.Getdents(fd, buf)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return false, err
		}
		if nb == 0 {
			return true, nil
		}
		for off := 0; off < nb; {
			// The record layout is the system's (sysparse.go).
			ino, next, reclen, name, ok := parseDirent(buf[off:nb])
			if !ok {
				return false, ErrCorrupt
			}
			off += reclen
			if ino == 0 {
				continue // deleted entry (some filesystems)
			}
			if !fn(ino, next, name) {
				return false, nil
			}
		}
	}
}

// fillPlus stats e.Name in d and fills Attr and Handle. False: the entry is
// gone (skip it).
func (f *FS) fillPlus(d *node, isRoot bool, e *DirEntry) bool {
	if e.Name == "." || (e.Name == ".." && isRoot) {
		e.Handle = append(Handle(nil), d.h...)
		e.Attr = f.postAttr(d)
		if e.Attr != nil {
			e.FileID = e.Attr.FileID
		}
		return e.Attr != nil
	}
	if e.Name == ".." && f.connected(d.pathFd) != nil {
		return true // d was moved out of the export: nothing about its parent
	}
	// Two system calls per entry (fstatat, and name_to_handle_at or
	// getfhat), no open: syscalls dominate READDIRPLUS. If the name is
	// replaced between the two, the attributes may describe the replaced
	// object; clients revalidate with GETATTR, and the handle is still one
	// we issued for an object in this directory.
	var st unix.Stat_t
	if err := unix.Fstatat(d.pathFd, e.Name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return err != unix.ENOENT
	}
	k, mnt, err := nameHandle(d.pathFd, e.Name)
	if err != nil {
		return err != unix.ENOENT
	}
	if mnt != f.mountID || st.Dev != f.rootDev {
		// A mount point inside the export: both calls saw the root of
		// the file system mounted there, whose inode number means
		// nothing under our fsid. As knfsd: no handle, no attributes,
		// and the fileid getdents gave (the directory it covers), as
		// READDIR has it.
		return true
	}
	f.zfixStable(&st, func(st *unix.Stat_t) { f.zfixAt(d.pathFd, e.Name, st) })
	e.Attr = f.attr(&st)
	e.FileID = st.Ino
	if h, ok := f.encodeHandle(k); ok {
		e.Handle = h
	}
	return true
}
