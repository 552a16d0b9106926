package maildirfs

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// maxName is the longest name accepted (NAME_MAX).
const maxName = 255

// maxSymlink bounds a symlink target (NFS3 path max used by Linux).
const maxSymlink = 4096

// checkName validates a directory entry name. "." and ".." pass; each
// operation decides what they mean.
func checkName(name string) error {
	switch {
	case name == "":
		return unix.ENOENT
	case len(name) > maxName:
		return unix.ENAMETOOLONG
	case strings.ContainsAny(name, "/\x00"):
		return unix.EINVAL
	}
	return nil
}

// checkNewName validates a name that an operation creates or removes:
// "." and ".." are refused.
func checkNewName(name string, dotErr unix.Errno) error {
	if err := checkName(name); err != nil {
		return err
	}
	if name == "." || name == ".." {
		return dotErr
	}
	return nil
}

// getDir resolves a directory handle for a namespace operation and fills
// wcc with the directory's attributes from one stat, before and after: an
// operation that fails before it changes anything reports no change. One
// that changes the directory refills wcc around the change (dirChange),
// which takes gen (node.wseq read before the stat) to know whether the
// stat can still be its before attributes. Errors: ENOTDIR, EROFS,
// EACCES (needs w+x).
func (f *FS) getDir(h Handle, c Cred, wcc *Wcc, modify bool) (*node, *unix.Stat_t, uint64, error) {
	d, st, gen, err := f.getGen(h)
	if err != nil {
		return nil, nil, 0, err
	}
	wcc.Before, wcc.After = wccAttr(st), f.attr(st)
	switch {
	case d.typ != TypeDir:
		err = unix.ENOTDIR
	case modify && f.opts.ReadOnly:
		err = unix.EROFS
	case modify && !may(d, st, c, permW|permX):
		err = unix.EACCES
	case !modify && !may(d, st, c, permX):
		err = unix.EACCES
	}
	if err != nil {
		f.put(d)
		return nil, nil, 0, err
	}
	return d, st, gen, nil
}

// adopt turns a path fd from openChild (name in d) into a handle and caches
// it as a node, taking ownership of fd.
func (f *FS) adopt(fd int, st *unix.Stat_t, d *node, name string) (Handle, error) {
	k, _, err := fdHandle(fd, d.pathFd, name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", handleCall, err)
	}
	k.bytes = append([]byte(nil), k.bytes...)
	h, ok := f.encodeHandle(k)
	if !ok {
		unix.Close(fd)
		return nil, fmt.Errorf("kernel file handle too large: %w", unix.EOVERFLOW)
	}
	if st.Dev != f.rootDev {
		// Another filesystem mounted inside the export: its handles would
		// not resolve against our root; refuse to hand them out.
		unix.Close(fd)
		return nil, unix.EXDEV
	}
	n := f.cache.insert(f.newNode(k, h, fd, st))
	f.put(n)
	return h, nil
}

// openChild opens name in directory d as a path fd (openChildPath) without
// following a symlink, and stats it.
func openChild(d *node, name string) (int, *unix.Stat_t, error) {
	fd, err := openChildPath(d.pathFd, name)
	if err != nil {
		return -1, nil, err
	}
	st := new(unix.Stat_t)
	if err := childStat(fd, d.pathFd, name, st); err != nil {
		unix.Close(fd)
		return -1, nil, err
	}
	return fd, st, nil
}

// Getattr returns the attributes of h.
func (f *FS) Getattr(h Handle) (Attr, error) {
	n, st, err := f.get(h)
	if err != nil {
		return Attr{}, err
	}
	f.put(n)
	return *f.attr(st), nil
}

// Lookup finds name in dir without following symlinks. "." is dir itself,
// ".." its parent, and ".." of the export root is the root.
func (f *FS) Lookup(dir Handle, c Cred, name string) (Handle, Attr, *Attr, error) {
	var wcc Wcc
	d, dst, _, err := f.getDir(dir, c, &wcc, false)
	if err != nil {
		return nil, Attr{}, wcc.After, err
	}
	defer f.put(d)
	if err := checkName(name); err != nil {
		return nil, Attr{}, f.attr(dst), err
	}
	if name == "." || (name == ".." && d.ino == f.rootIno) {
		return append(Handle(nil), d.h...), *f.attr(dst), f.attr(dst), nil
		// (".." of the root: d is the root, so d.h is the root handle.)
	}
	if name == ".." {
		// Walk up from d now, whenever it was last checked: ".." of a
		// directory a local process moved out of the export is outside
		// it, and its handle is never given out (d is stale).
		if err := f.connected(d.pathFd); err != nil {
			f.cache.drop(d)
			return nil, Attr{}, nil, err
		}
	}
	h, st, err := f.lookupChild(d, name)
	if err != nil {
		return nil, Attr{}, f.attr(dst), err
	}
	// Lookup changes nothing: the directory stat taken on entry is its
	// post-op attribute.
	return h, *f.attr(st), f.attr(dst), nil
}

// lookupChild returns the handle and stat of name in d without following
// a symlink: name_to_handle_at (getfhat) names the inode, then the cached
// node or open_by_handle_at (fhstat, fhopen), which opens exactly that
// inode, gives its stat. Two or three system calls, and no window in which
// name could be swapped.
func (f *FS) lookupChild(d *node, name string) (Handle, *unix.Stat_t, error) {
	k, mnt, err := nameHandle(d.pathFd, name)
	if err != nil {
		if err != unix.ENOENT && f.mountedOn(d, name) {
			// A file system without file handles (ramfs, proc:
			// EOPNOTSUPP) mounted there: refused as any other.
			return nil, nil, unix.EXDEV
		}
		return nil, nil, err
	}
	if mnt != f.mountID {
		// Another filesystem mounted inside the export: its handles would
		// decode against our filesystem; refuse to hand them out.
		return nil, nil, unix.EXDEV
	}
	h, ok := f.encodeHandle(k)
	if !ok {
		return nil, nil, fmt.Errorf("kernel file handle too large: %w", unix.EOVERFLOW)
	}
	st := new(unix.Stat_t)
	key := k.key()
	if n := f.cache.lookup(key); n != nil {
		// Hold the reference until the last use of n.pathFd: once put, a
		// concurrent REMOVE may drop and close the node, and the fd
		// number could be reused for another file.
		defer f.put(n)
		if err := n.stat(st); err != nil {
			return nil, nil, err
		}
		if st.Nlink == 0 {
			return nil, nil, unix.ENOENT // removed since name_to_handle_at
		}
		fd := n.pathFd
		f.zfixStable(st, func(st *unix.Stat_t) { f.zfixFd(fd, st) })
		return h, st, nil
	}
	fd, err := f.openChildK(d, name, k)
	if err != nil {
		if handleOpenErr(err) == ErrStale {
			return nil, nil, unix.ENOENT // removed since name_to_handle_at
		}
		return nil, nil, err
	}
	if err := pathStat(fd, k, st); err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	f.zfixStable(st, func(st *unix.Stat_t) { f.zfixFd(fd, st) })
	k.bytes = append([]byte(nil), k.bytes...)
	n := f.cache.insert(f.newNode(k, h, fd, st))
	f.put(n)
	return h, st, nil
}

// mountedOn reports whether name in d is the root of another file system
// mounted there: stat crosses into the mount and finds another device.
func (f *FS) mountedOn(d *node, name string) bool {
	var st unix.Stat_t
	return unix.Fstatat(d.pathFd, name, &st, unix.AT_SYMLINK_NOFOLLOW) == nil && st.Dev != f.rootDev
}

// Access reports which of the ACCESS3 bits in want c has on h.
func (f *FS) Access(h Handle, c Cred, want uint32) (uint32, *Attr, error) {
	n, st, err := f.get(h)
	if err != nil {
		return 0, nil, err
	}
	f.put(n)
	return accessBits(n, st, c, f.opts.ReadOnly) & want, f.attr(st), nil
}

// Readlink returns a symlink's target (never followed by the store).
func (f *FS) Readlink(h Handle, c Cred) (string, *Attr, error) {
	n, st, err := f.get(h)
	if err != nil {
		return "", nil, err
	}
	defer f.put(n)
	if n.typ != TypeLnk {
		return "", f.attr(st), unix.EINVAL
	}
	buf := make([]byte, maxSymlink+1)
	k, err := readlinkNode(n, buf)
	if err != nil {
		return "", f.attr(st), err
	}
	if k > maxSymlink {
		return "", f.attr(st), unix.ENAMETOOLONG
	}
	return string(buf[:k]), f.attr(st), nil
}

// Read reads up to len(buf) bytes at off. Like knfsd, the owner may read
// regardless of the mode, and execute permission suffices (clients execute
// by reading).
func (f *FS) Read(h Handle, c Cred, off uint64, buf []byte) (int, bool, *Attr, error) {
	n, st, err := f.get(h)
	if err != nil {
		return 0, false, nil, err
	}
	defer f.put(n)
	switch {
	case n.typ == TypeDir:
		return 0, false, f.attr(st), unix.EISDIR
	case n.typ != TypeReg:
		return 0, false, f.attr(st), unix.EINVAL
	case !owns(st, c) && !may(n, st, c, permR) && !may(n, st, c, permX):
		return 0, false, f.attr(st), unix.EACCES
	}
	if off >= uint64(st.Size) || len(buf) == 0 {
		return 0, off >= uint64(st.Size), f.attr(st), nil
	}
	if f.z != nil {
		// A rewrite that failed is finished first (zready).
		pst, e, err := f.zready(n)
		if err != nil {
			return 0, false, f.attr(st), err
		}
		defer n.zmu.RUnlock()
		if e.usize >= 0 {
			total, err := f.zread(n, pst, off, buf)
			pst.Size = e.usize
			return total, err == nil && off+uint64(total) >= uint64(e.usize), f.attr(pst), err
		}
	}
	fd, err := f.io(n, false)
	if err != nil {
		return 0, false, f.attr(st), err
	}
	total := 0
	for total < len(buf) {
		k, err := unix.Pread(fd, buf[total:], int64(off)+int64(total))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return total, false, f.postAttr(n), err
		}
		if k == 0 {
			break
		}
		total += k
	}
	post := f.postAttr(n)
	eof := post != nil && off+uint64(total) >= post.Size
	return total, eof, post, nil
}

// Write writes data at off. UNSTABLE only writes (pwrite); DATA_SYNC adds
// fdatasync and FILE_SYNC fsync before returning. verf is the verifier read
// before the write, so a sync failure after it changes what COMMIT returns.
// A DATA_SYNC or FILE_SYNC write fails with EIO, even when its own sync
// succeeds, if another sync of the file failed meanwhile: that one may
// have been the writeback of this data, and Linux reports a writeback
// error to one fsync only.
func (f *FS) Write(h Handle, c Cred, off uint64, data []byte, stable StableHow) (int, StableHow, [8]byte, Wcc, error) {
	var wcc Wcc
	verf := f.WriteVerifier()
	n, st, w0, err := f.getGen(h)
	if err != nil {
		return 0, 0, verf, wcc, err
	}
	defer f.put(n)
	wcc.Before = wccAttr(st)
	switch {
	case f.opts.ReadOnly:
		err = unix.EROFS
	case n.typ == TypeDir:
		err = unix.EISDIR
	case n.typ != TypeReg:
		err = unix.EINVAL
	case !owns(st, c) && !may(n, st, c, permW):
		err = unix.EACCES
	case off > 1<<63-1 || uint64(len(data)) > 1<<63-1-off:
		err = unix.EFBIG
	}
	if err != nil {
		wcc.After = f.attr(st)
		return 0, 0, verf, wcc, err
	}
	release, err := f.zplain(n, c, -1)
	if err != nil {
		wcc.After = f.postAttr(n)
		return 0, 0, verf, wcc, err
	}
	defer release()
	total := 0
	committed := Unstable
	// wcc as for a directory change (dirchange.go): the before attributes
	// only if no other WRITE or SETATTR of the file fell between them and
	// the after attributes.
	err = f.dirChange(n, &wcc, w0, func() error {
		fd, err := f.io(n, true)
		if err == nil {
			err = f.inject(FaultWrite)
		}
		fails := n.syncFails.Load()
		if err == nil {
			// As the caller: a full disk or quota stops the caller's
			// writes, not the reserve kept for root (asCaller).
			err = asCaller(c, func() error {
				for total < len(data) {
					k, err := unix.Pwrite(fd, data[total:], int64(off)+int64(total))
					switch {
					case err == unix.EINTR:
						continue
					case err != nil:
						return err
					case k == 0:
						return unix.EIO
					}
					total += k
				}
				return nil
			})
		}
		if err == nil && total > 0 && c.UID != 0 && st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
			// The kernel would drop setuid/setgid on a write by a
			// process without CAP_FSETID; we write as root, so do it
			// ourselves.
			err = f.killPriv(n, st)
		}
		if err != nil {
			return err
		}
		switch stable {
		case DataSync:
			err = f.syncFile(n, false)
			committed = DataSync
		case FileSync:
			err = f.syncFile(n, true)
			committed = FileSync
		}
		if err == nil && stable != Unstable && n.syncFails.Load() != fails {
			err = fmt.Errorf("maildirfs: another sync of the file failed during the write: %w", unix.EIO)
		}
		return err
	})
	if err != nil {
		return total, 0, verf, wcc, err
	}
	return total, committed, verf, wcc, nil
}

// killPriv clears setuid, and setgid when group-executable, as
// file_remove_privs does.
func (f *FS) killPriv(n *node, st *unix.Stat_t) error {
	mode := uint32(st.Mode) & 0o7777
	nm := mode &^ unix.S_ISUID
	if mode&unix.S_IXGRP != 0 {
		nm &^= unix.S_ISGID
	}
	if nm == mode {
		return nil
	}
	return f.chmod(n, nm)
}

// Commit makes the file's data and metadata durable (fsync; the range is
// not used) and returns the write verifier, read after the sync: a sync
// of the file that failed before it (perhaps the writeback of the data
// this COMMIT is for, whose error Linux reports to that one fsync only)
// rotated the verifier, so the client sees it change and sends its
// UNSTABLE writes again.
func (f *FS) Commit(h Handle, c Cred, off uint64, count uint32) ([8]byte, Wcc, error) {
	var wcc Wcc
	n, st, w0, err := f.getGen(h)
	if err != nil {
		return f.WriteVerifier(), wcc, err
	}
	defer f.put(n)
	wcc.Before = wccAttr(st)
	switch {
	case n.typ == TypeDir:
		err = unix.EISDIR
	case n.typ != TypeReg:
		err = unix.EINVAL
	case !owns(st, c) && !may(n, st, c, permW) && !f.opts.ReadOnly:
		err = unix.EACCES
	}
	if err == nil && !f.opts.ReadOnly {
		err = f.syncFile(n, true)
	}
	wcc.After = f.postAttrStable(n)
	if !unchanged(w0, n.wseq.Load()) {
		// A WRITE or SETATTR fell between the two stats: the
		// difference is not the COMMIT's (none), so no before
		// attributes (dirchange.go).
		wcc.Before = nil
	}
	return f.WriteVerifier(), wcc, err
}

// SetAttr changes attributes. The owner (or root) may chmod and set times
// to a client time; anyone with write access may set times to the server
// time and (regular files) the size; only root may change the owner; the
// owner may change the group to one of its groups. Naming the current
// owner or group is a chown too, which clears setuid and setgid: only the
// owner or root may (as chown(2)). The change is fsynced before
// returning. A SETATTR guard, if not nil, must pass the current ctime, or
// the SETATTR fails with ErrNotSync and changes nothing (the caller
// compares as its protocol carries the time: NFSv3's nfstime3 cannot
// carry every ctime a disk holds). The ctime is from a stat taken under
// the node's attrMu, which every SETATTR of the object holds until its
// change is made, so of SETATTRs racing with one guard only the first
// succeeds.
func (f *FS) SetAttr(h Handle, c Cred, s SetAttr, guard func(ctime time.Time) bool) (Wcc, error) {
	var wcc Wcc
	n, st, w0, err := f.getGen(h)
	if err != nil {
		return wcc, err
	}
	defer f.put(n)
	n.attrMu.Lock()
	if guard != nil {
		if st, err = f.statStable(n); err != nil {
			n.attrMu.Unlock()
			return wcc, err
		}
	}
	wcc.Before = wccAttr(st)
	if guard != nil && !guard(ts(st.Ctim)) {
		n.attrMu.Unlock()
		wcc.After = f.attr(st)
		return wcc, ErrNotSync
	}
	// wcc as for a directory change (dirchange.go): the before attributes
	// only if no WRITE or other SETATTR of the object fell between them
	// and the after attributes, which are taken under zmu (never in the
	// middle of a rewrite, compress.go).
	unlock := func() {}
	err = f.dirChange(n, &wcc, w0, func() error {
		err := f.setAttrLocked(n, st, c, s, false)
		n.attrMu.Unlock()
		if err == nil && (s.Mode != nil || s.UID != nil || s.GID != nil || s.Size != nil || s.Atime != DontChange || s.Mtime != DontChange) {
			err = f.syncNode(n)
		}
		if f.z != nil && n.typ == TypeReg {
			n.zmu.RLock()
			unlock = n.zmu.RUnlock
		}
		return err
	})
	unlock()
	return wcc, err
}

// syncNode makes n's inode durable: fsync for files and directories,
// syncSpecial for other types (no fd can be opened on them safely).
func (f *FS) syncNode(n *node) error {
	switch n.typ {
	case TypeReg:
		return f.syncFile(n, true)
	case TypeDir:
		return f.syncDir(n)
	}
	f.stats.fileSyncCalls.Add(1)
	f.stats.fileSyncs.Add(1)
	err := f.inject(FaultFsync)
	if err == nil {
		err = syncSpecial(f.rootFd)
	}
	if err != nil {
		f.syncFailed(err)
	}
	return err
}

// Sync makes the object h durable: a file's data and inode, a directory's
// entries, a symlink's or device node's inode (syncfs; nothing on
// FreeBSD). The server uses it when it answers a call that an earlier run
// carried out, which may have been stopped before its syncs.
func (f *FS) Sync(h Handle) error {
	return f.withNode(h, func(n *node, _ *unix.Stat_t) error { return f.syncNode(n) })
}

// setAttrLocked checks and applies s to n (no sync). created: n was just
// created by c, so owner and group were already chosen.
func (f *FS) setAttrLocked(n *node, st *unix.Stat_t, c Cred, s SetAttr, created bool) error {
	empty := s.Mode == nil && s.UID == nil && s.GID == nil && s.Size == nil && s.Atime == DontChange && s.Mtime == DontChange
	if empty {
		return nil
	}
	if f.opts.ReadOnly {
		return unix.EROFS
	}
	owner := owns(st, c)
	if !created {
		// A uid or gid equal to the current one is still a chown, which
		// clears setuid and setgid (we chown as root): only those
		// chown(2) lets do it may, as Linux's chown_ok and chgrp_ok.
		if s.UID != nil && c.UID != 0 && (*s.UID != st.Uid || c.UID != st.Uid) {
			return unix.EPERM
		}
		if s.GID != nil && c.UID != 0 && (c.UID != st.Uid || (*s.GID != st.Gid && !c.inGroup(*s.GID))) {
			return unix.EPERM
		}
		if s.Mode != nil && !owner {
			return unix.EPERM
		}
		if (s.Atime == ClientTime || s.Mtime == ClientTime) && !owner {
			return unix.EPERM
		}
		if (s.Atime == ServerTime || s.Mtime == ServerTime) && !owner && !may(n, st, c, permW) {
			return unix.EACCES
		}
	}
	times := s.Atime != DontChange || s.Mtime != DontChange
	if s.Size != nil {
		switch {
		case n.typ == TypeDir:
			return unix.EISDIR
		case n.typ != TypeReg:
			return unix.EINVAL
		case !owner && !may(n, st, c, permW):
			return unix.EACCES
		case *s.Size > 1<<63-1:
			return unix.EFBIG
		}
	}
	// Compression (compress.go): a size change needs the file plain, a
	// change of the times a failed rewrite finished and the marker given
	// a new id, before anything changes.
	switch {
	case s.Size != nil:
		release, err := f.zplain(n, c, int64(*s.Size)) // at most 2^63-1 (EFBIG above)
		if err != nil {
			return err
		}
		defer release()
	case times:
		release, err := f.zforTimes(n)
		if err != nil {
			return err
		}
		defer release()
	}
	// The size first, as knfsd's __nfsd_setattr: the file system may
	// still refuse it after every check here passed (EFBIG past its
	// largest file: 16 TiB on ext4), and a SETATTR that fails must not
	// have changed the owner or mode on the way.
	if s.Size != nil {
		fd, err := f.io(n, true)
		if err != nil {
			return err
		}
		if err := unix.Ftruncate(fd, int64(*s.Size)); err != nil {
			return err
		}
		// truncate(2) by a process without CAP_FSETID drops setuid
		// and setgid (do_truncate); we truncate as root, so do it
		// ourselves, as after a WRITE. The Linux client leaves this to
		// the server: it sends the size without the mode. A mode in
		// the same call is applied below instead.
		if !created && s.Mode == nil && c.UID != 0 && st.Mode&(unix.S_ISUID|unix.S_ISGID) != 0 {
			if err := f.killPriv(n, st); err != nil {
				return err
			}
		}
	}
	// chown before chmod: chown clears setuid/setgid bits.
	if (s.UID != nil || s.GID != nil) && !created {
		uid, gid := -1, -1
		if s.UID != nil {
			uid = int(*s.UID)
		}
		if s.GID != nil {
			gid = int(*s.GID)
		}
		if err := chownNode(n, uid, gid); err != nil {
			return err
		}
	}
	if s.Mode != nil && n.typ != TypeLnk {
		mode := *s.Mode & 0o7777
		gid := st.Gid
		if s.GID != nil {
			gid = *s.GID
		}
		if c.UID != 0 && !c.inGroup(gid) {
			// As chmod(2) without CAP_FSETID (setattr_copy), for
			// directories too.
			mode &^= unix.S_ISGID
		}
		if err := f.chmod(n, mode); err != nil {
			return err
		}
	}
	if times {
		ts := []unix.Timespec{timeSpec(s.Atime, s.AtimeVal), timeSpec(s.Mtime, s.MtimeVal)}
		if err := utimesNode(n, ts); err != nil {
			return err
		}
	}
	return nil
}

func timeSpec(how TimeHow, t time.Time) unix.Timespec {
	switch how {
	case ServerTime:
		return unix.Timespec{Nsec: unix.UTIME_NOW}
	case ClientTime:
		return unix.NsecToTimespec(t.UnixNano())
	}
	return unix.Timespec{Nsec: unix.UTIME_OMIT}
}

// newOwner returns the owner and group for an object c creates in a
// directory with stat dst (BSD group semantics under a setgid directory).
func newOwner(dst *unix.Stat_t, c Cred, s SetAttr) (uid, gid int) {
	uid, gid = int(c.UID), int(c.GID)
	if dst.Mode&unix.S_ISGID != 0 {
		gid = int(dst.Gid)
	}
	if s.UID != nil && c.UID == 0 {
		uid = int(*s.UID)
	}
	if s.GID != nil && (c.UID == 0 || c.inGroup(*s.GID)) {
		gid = int(*s.GID)
	}
	return uid, gid
}

// setupNew chowns and chmods a freshly created object (open as fd, or
// named name in d when fd < 0, e.g. symlinks and device nodes on FreeBSD).
func (f *FS) setupNew(d *node, dst *unix.Stat_t, name string, fd int, c Cred, s SetAttr, mode uint32, typ FileType) error {
	uid, gid := newOwner(dst, c, s)
	if f.opts.NoChown {
		// The kernel chose the group: the directory's when it is
		// setgid, else the server's.
		var st unix.Stat_t
		var err error
		if fd >= 0 {
			err = unix.Fstat(fd, &st)
		} else {
			err = unix.Fstatat(d.pathFd, name, &st, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			return err
		}
		gid = int(st.Gid)
	} else {
		var err error
		if fd >= 0 {
			err = fchownFd(fd, uid, gid)
		} else {
			err = unix.Fchownat(d.pathFd, name, uid, gid, unix.AT_SYMLINK_NOFOLLOW)
		}
		if err != nil {
			return err
		}
	}
	if typ == TypeLnk {
		return nil
	}
	mode = createMode(mode, typ, dst, c, uint32(gid))
	if fd >= 0 {
		return fchmodFd(fd, mode)
	}
	return unix.Fchmodat(d.pathFd, name, mode, unix.AT_SYMLINK_NOFOLLOW)
}

// createMode returns the mode a new object of type typ gets when c asks
// for mode in a directory with stat dst, the object's group being gid.
// The mode is set as root (chmod after the create), so the kernel's rules
// for an unprivileged creator are applied here: a directory keeps only
// the permissions and S_ISVTX asked, and is setgid in a setgid directory
// (inode_init_owner), and a non-directory that would
// be setgid and group-executable loses S_ISGID unless c is in its group
// or root (mode_strip_sgid; c lacks CAP_FSETID unless root). The group is
// the setgid directory's, or c's own, or one c is in (newOwner), so this
// strips exactly where Linux does: in a setgid directory whose group c is
// not in.
func createMode(mode uint32, typ FileType, dst *unix.Stat_t, c Cred, gid uint32) uint32 {
	if typ == TypeDir {
		// mkdir(2) keeps only the permissions and S_ISVTX of the
		// mode asked (vfs_mkdir); S_ISGID comes from the parent alone.
		mode &= 0o1777
		if dst.Mode&unix.S_ISGID != 0 {
			mode |= unix.S_ISGID // setgid directories propagate
		}
		return mode
	}
	if mode&(unix.S_ISGID|unix.S_IXGRP) == unix.S_ISGID|unix.S_IXGRP && c.UID != 0 && !c.inGroup(gid) {
		mode &^= unix.S_ISGID
	}
	return mode
}

// Create creates a regular file (RFC 1813 CREATE). UNCHECKED creates or
// opens an existing regular file, truncating it only when s.Size is 0;
// GUARDED fails with EEXIST if the name exists; EXCLUSIVE stores verf in the
// times as knfsd does (verf[0:4]&0x7fffffff in mtime.sec, verf[4:8]&0x7fffffff
// in atime.sec) and answers a retransmission (times match, size 0) with the
// same handle, first finishing the file (owner, mode) if the first run was
// stopped after stamping the verifier and before giving it away
// (stampedNotGiven). The new file and directory entry are durable on return. A
// CREATE of a name that another CREATE (MKDIR, ...) of this server has
// just made and is still setting up waits for it. A CREATE that fails
// after making the file removes it again.
func (f *FS) Create(dir Handle, c Cred, name string, how CreateMode, s SetAttr, verf [8]byte) (_ Handle, _ *Attr, wcc Wcc, _ error) {
	return f.create(dir, c, name, how, s, verf, false)
}

// FinishCreate is Create for a call that an earlier run of the server may
// have begun and been stopped in (a GUARDED or EXCLUSIVE CREATE sent again
// after a restart, which Create answers EEXIST when it meets the file that
// run made). If name exists as an empty regular file, it is taken as that
// file: it gets what Create gives a new file (owner, mode, the EXCLUSIVE
// verifier, the attributes asked for), is made durable and is returned. A
// name that does not exist is created; anything else is EEXIST.
func (f *FS) FinishCreate(dir Handle, c Cred, name string, how CreateMode, s SetAttr, verf [8]byte) (_ Handle, _ *Attr, wcc Wcc, _ error) {
	return f.create(dir, c, name, how, s, verf, true)
}

func (f *FS) create(dir Handle, c Cred, name string, how CreateMode, s SetAttr, verf [8]byte, finish bool) (_ Handle, _ *Attr, wcc Wcc, _ error) {
	d, dst, gen, err := f.getDir(dir, c, &wcc, true)
	if err != nil {
		return nil, nil, wcc, err
	}
	defer f.put(d)
	if err := checkNewName(name, unix.EEXIST); err != nil {
		return nil, nil, wcc, err
	}
	if how > Exclusive {
		return nil, nil, wcc, unix.EINVAL
	}
	mtimeSec := int64(uint32(verf[0])<<24|uint32(verf[1])<<16|uint32(verf[2])<<8|uint32(verf[3])) & 0x7fffffff
	atimeSec := int64(uint32(verf[4])<<24|uint32(verf[5])<<16|uint32(verf[6])<<8|uint32(verf[7])) & 0x7fffffff
	// The name is claimed until the file is set up or removed again
	// (claim): another CREATE of it waits, and so does a RENAME onto it.
	mine := d.claimWait(name)
	defer d.unclaim(name, mine)
	if err := f.inject(FaultCreate); err != nil {
		return nil, nil, wcc, err
	}
	var fd int
	var st unix.Stat_t
	err = f.dirChange(d, &wcc, gen, func() error {
		var err error
		fd, err = unix.Openat(d.pathFd, name, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		if outOfFds(err) {
			ShedUnused()
			fd, err = unix.Openat(d.pathFd, name, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o600)
		}
		if err != nil {
			return err
		}
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			unix.Unlinkat(d.pathFd, name, 0) // just made, and claimed
			return err
		}
		return nil
	})
	switch {
	case err == nil:
		h, a, err := f.setupFile(d, dst, c, name, fd, &st, how, s, atimeSec, mtimeSec)
		if err != nil {
			f.undoCreate(d, name, st.Ino, false, &wcc)
		}
		return h, a, wcc, err
	case errors.Is(err, unix.EEXIST) && (finish || how == Exclusive && stampedNotGiven(d, dst, c, name, s, mtimeSec, atimeSec)):
		// (A retransmission of an EXCLUSIVE CREATE whose first run
		// was stopped after the verifier and before the owner comes
		// here even without finish: createExisting would answer with
		// the server's file, and the client's SETATTR that follows,
		// made as the caller, would fail with EPERM.)
		uid, _ := newOwner(dst, c, s)
		owner := uint32(uid)
		if how == Exclusive {
			// setupFile stamps the verifier (whole seconds) before it
			// gives the file to its owner. So a file already given is
			// this call's only if it carries this call's verifier
			// (createExisting checks): an empty file of the caller's
			// without it is another client's, say a lock file held by
			// a process of the same uid. A file still the server's is
			// a first run cut short, unless it carries another
			// verifier (both times with no nanoseconds: stamped by
			// another EXCLUSIVE create; the server's own files, with
			// root not squashed or NoChown, look like that). A file
			// of the server's made another way, not stamped, cannot
			// be told from a cut-short first run: only root clients
			// not squashed, and servers not run as root, meet that.
			var est unix.Stat_t
			if unix.Fstatat(d.pathFd, name, &est, unix.AT_SYMLINK_NOFOLLOW) == nil {
				stamped := est.Atim.Nsec == 0 && est.Mtim.Nsec == 0
				if est.Uid != uint32(os.Geteuid()) || !serverUnfinished(&est) || stamped && (est.Mtim.Sec != mtimeSec || est.Atim.Sec != atimeSec) {
					h, a, err := f.createExisting(d, c, name, how, s, mtimeSec, atimeSec)
					return h, a, wcc, err
				}
			}
			owner = uint32(os.Geteuid())
		}
		if fd, err = openUnfinished(d, name, owner); err != nil {
			return nil, nil, wcc, err
		}
		if err := unix.Fstat(fd, &st); err != nil {
			unix.Close(fd)
			return nil, nil, wcc, err
		}
		h, a, err := f.setupFile(d, dst, c, name, fd, &st, how, s, atimeSec, mtimeSec)
		return h, a, wcc, err
	case errors.Is(err, unix.EEXIST) && how != Guarded:
		h, a, err := f.createExisting(d, c, name, how, s, mtimeSec, atimeSec)
		return h, a, wcc, err
	}
	return nil, nil, wcc, err
}

// stampedNotGiven reports whether name in d is an empty regular file that
// an EXCLUSIVE CREATE with this verifier (mtimeSec, atimeSec) began and
// did not finish: stamped with the verifier, which setupFile does first,
// but still the server's own where c's file would belong to another uid.
// Only a retransmission of that very call carries the verifier.
func stampedNotGiven(d *node, dst *unix.Stat_t, c Cred, name string, s SetAttr, mtimeSec, atimeSec int64) bool {
	var st unix.Stat_t
	if unix.Fstatat(d.pathFd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil {
		return false
	}
	euid := uint32(os.Geteuid())
	uid, _ := newOwner(dst, c, s)
	return st.Mode&unix.S_IFMT == unix.S_IFREG && st.Size == 0 && st.Uid == euid && uint32(uid) != euid && serverUnfinished(&st) &&
		st.Atim.Nsec == 0 && st.Mtim.Nsec == 0 && st.Mtim.Sec == mtimeSec && st.Atim.Sec == atimeSec
}

// setupFile gives a regular file just created (open O_RDWR as fd, stat
// st, name in d; setupFile owns fd) what CREATE promises: owner, mode,
// the EXCLUSIVE verifier or the other attributes asked for, a cached
// node, and durability of the file and its entry.
func (f *FS) setupFile(d *node, dst *unix.Stat_t, c Cred, name string, fd int, st *unix.Stat_t, how CreateMode, s SetAttr, atimeSec, mtimeSec int64) (Handle, *Attr, error) {
	mode := uint32(0o644)
	if how == Exclusive {
		mode = 0o600
	} else if s.Mode != nil {
		mode = *s.Mode & 0o7777
	}
	var err error
	if how == Exclusive {
		// The verifier first, while the file is still the server's: a
		// file given to its owner always carries it, which is how
		// FinishCreate tells this call's file from another's. A file
		// whose owner is the server's own uid (a root caller not
		// squashed) is never given away: its times carry givenNsec, so
		// that no other caller, who can read the verifier with GETATTR,
		// takes it for a first run of theirs cut short (serverUnfinished).
		ts := []unix.Timespec{{Sec: atimeSec}, {Sec: mtimeSec}}
		if uid, _ := newOwner(dst, c, s); uint32(uid) == uint32(os.Geteuid()) {
			ts[0].Nsec, ts[1].Nsec = givenNsec, givenNsec
		}
		err = futimensFd(fd, ts)
	}
	if err == nil {
		err = f.setupNew(d, dst, name, fd, c, s, mode, TypeReg)
	}
	if err != nil {
		unix.Close(fd)
		return nil, nil, err
	}
	h, err := f.adoptOpen(fd, st, d, name) // (only the inode number of st is used)
	if err == nil && how != Exclusive {
		rest := s
		rest.Mode, rest.UID, rest.GID = nil, nil, nil
		if rest.Size != nil || rest.Atime != DontChange || rest.Mtime != DontChange {
			err = f.withNode(h, func(n *node, nst *unix.Stat_t) error {
				return f.setAttrLocked(n, nst, c, rest, true)
			})
		}
	}
	if err == nil {
		// Sync the new inode (owner, mode; for EXCLUSIVE the verifier in
		// its times, RFC 1813 §3.3.8) and the entry. The directory's
		// fsync alone does not write the new inode on ext4 without a
		// journal, nor on ext4 with one if a commit started between the
		// create and the chown; the file's fsync alone is enough where
		// the commit model says so (syncCreated).
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

// givenNsec is the nanoseconds of both times of a file that an EXCLUSIVE
// CREATE stamped for the server's own uid (serverUnfinished). A first run
// cut short stamps whole seconds (setupFile) or none.
const givenNsec = 1

// serverUnfinished reports whether a regular file owned by the server's
// uid, with stat st, can be one that CREATE made and had not given to
// its owner yet: its permission bits are within the 0600 it was opened
// with (the server's umask may take more), and it is not a root caller's
// finished EXCLUSIVE file (givenNsec). Root's other files (0644, or
// stamped by another EXCLUSIVE CREATE whose verifier any caller can read
// with GETATTR) are then not handed to the caller of a CREATE that
// retransmits, or pretends to.
func serverUnfinished(st *unix.Stat_t) bool {
	return st.Mode&0o7777&^0o600 == 0 && (st.Atim.Nsec != givenNsec || st.Mtim.Nsec != givenNsec)
}

// openUnfinished opens name in d for FinishCreate: an empty regular file
// owned by the server itself (not yet given to its owner) or by owner
// (given, not yet replied to), else EEXIST.
func openUnfinished(d *node, name string, owner uint32) (int, error) {
	// Look before opening: opening a device node or fifo can have effects.
	var st unix.Stat_t
	if err := unix.Fstatat(d.pathFd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return -1, err
	}
	if uint32(st.Mode)&unix.S_IFMT != unix.S_IFREG {
		return -1, unix.EEXIST
	}
	fd, err := unix.Openat(d.pathFd, name, unix.O_RDWR|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, unix.EEXIST // replaced since (ELOOP, EISDIR, ...)
	}
	if err := unix.Fstat(fd, &st); err != nil || uint32(st.Mode)&unix.S_IFMT != unix.S_IFREG || st.Size != 0 || !ownedForFinish(st.Uid, owner) ||
		st.Uid != owner && !serverUnfinished(&st) {
		unix.Close(fd)
		if err == nil {
			err = unix.EEXIST
		}
		return -1, err
	}
	return fd, nil
}

// adoptOpen caches a freshly created regular file opened O_RDWR as fd
// (name in d), taking ownership of fd, and returns its handle.
func (f *FS) adoptOpen(fd int, st *unix.Stat_t, d *node, name string) (Handle, error) {
	k, _, err := fdHandle(fd, d.pathFd, name)
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("%s: %w", handleCall, err)
	}
	k.bytes = append([]byte(nil), k.bytes...)
	h, ok := f.encodeHandle(k)
	if !ok {
		unix.Close(fd)
		return nil, fmt.Errorf("kernel file handle too large: %w", unix.EOVERFLOW)
	}
	io, err := unix.Dup(fd)
	if err != nil {
		unix.Close(fd)
		return nil, err
	}
	unix.CloseOnExec(io)
	n := f.cache.insert(&node{key: k.key(), kfh: k, h: h, pathFd: fd, ioFd: io, ioWritable: true, typ: TypeReg, ino: st.Ino})
	f.put(n)
	return h, nil
}

// withNode runs fn on the node of h.
func (f *FS) withNode(h Handle, fn func(n *node, st *unix.Stat_t) error) error {
	n, st, err := f.get(h)
	if err != nil {
		return err
	}
	defer f.put(n)
	return fn(n, st)
}

// createExisting handles CREATE of an existing name in UNCHECKED and
// EXCLUSIVE mode.
func (f *FS) createExisting(d *node, c Cred, name string, how CreateMode, s SetAttr, mtimeSec, atimeSec int64) (Handle, *Attr, error) {
	fd, st, err := openChild(d, name)
	if err != nil {
		return nil, nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG {
		unix.Close(fd)
		return nil, nil, unix.EEXIST
	}
	if how == Exclusive {
		if st.Size != 0 || st.Mtim.Sec != mtimeSec || st.Atim.Sec != atimeSec {
			unix.Close(fd)
			return nil, nil, unix.EEXIST
		}
		h, err := f.adopt(fd, st, d, name)
		if err != nil {
			return nil, nil, err
		}
		// A retransmission: the first run may have stopped before its
		// sync (a server killed after the verifier was stamped).
		if err := f.withNode(h, func(n *node, _ *unix.Stat_t) error { return f.syncCreated(n, d) }); err != nil {
			return nil, nil, err
		}
		return h, f.attr(st), nil
	}
	h, err := f.adopt(fd, st, d, name)
	if err != nil {
		return nil, nil, err
	}
	// UNCHECKED on an existing file applies only a size of 0, as knfsd.
	if s.Size != nil && *s.Size == 0 && st.Size != 0 {
		err = f.withNode(h, func(n *node, nst *unix.Stat_t) error {
			// A change of the file as a SETATTR's: under attrMu, so no
			// guarded SETATTR passes across it, and counted in wseq, so
			// no WRITE's wcc hides it (dirchange.go).
			n.attrMu.Lock()
			wAdd(&n.wseq, wBegin)
			err := f.setAttrLocked(n, nst, c, SetAttr{Size: s.Size}, false)
			wAdd(&n.wseq, wEnd)
			n.attrMu.Unlock()
			if err != nil {
				return err
			}
			return f.syncFile(n, true)
		})
		if err != nil {
			return nil, nil, err
		}
	}
	a, err := f.Getattr(h)
	if err != nil {
		return nil, nil, err
	}
	return h, &a, nil
}
