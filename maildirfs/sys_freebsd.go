package maildirfs

// FreeBSD system interface, the counterpart of sys_linux.go: kernel file
// handles from getfhat(2) resolved with fhopen(2), fhstat(2),
// fhreadlink(2) and fhlinkat(2). golang.org/x/sys/unix has their syscall
// numbers but no wrappers, so they are called here with unix.Syscall.
// All of them need root outside a jail (PRIV_VFS_GETFH, PRIV_VFS_FHOPEN).
//
// There is no O_PATH fd for a handle (fhopen opens for reading or
// writing), so a node's path fd is an O_RDONLY fd for directories and
// regular files, and -1 for symlinks, fifos, sockets and device nodes,
// which are reached through their handle alone: fhstat for attributes,
// fhreadlink, fhlinkat. Their owner, mode and times are set when they are
// created (by name in the parent), but a later SETATTR of them fails with
// EOPNOTSUPP: no system call changes them by handle.
//
// Written against FreeBSD 13 and 14 (struct dirent with d_off, the
// 64-bit-inode stat and fhstat syscalls of FreeBSD 12+). This code is
// cross-compiled and vetted, and its pure parts are unit-tested on Linux,
// but it has not been run on FreeBSD (docs/operations.md, Portability).

import (
	"encoding/binary"
	"errors"
	"fmt"
	"unsafe"

	"golang.org/x/sys/unix"
)

// parseDirent is the getdirentries record parser of this system
// (sysparse.go).
var parseDirent = parseFreeBSDDirent

// posixACLs: FreeBSD's ACLs are not read; the mode bits alone decide
// (acl.go).
const posixACLs = false

// errNoAttr is the errno for "no such extended attribute".
const errNoAttr = unix.ENOATTR

// handleCall and handleOpenCall name the system calls that make and open
// kernel handles, for errors.
const (
	handleCall     = "getfhat"
	handleOpenCall = "fhopen"
)

// handlePrivilegeHint completes the error of an Open whose probe of handle
// resolution was refused.
const handlePrivilegeHint = "file handles not permitted (getfhat and fhopen need root, and not in a jail: PRIV_VFS_GETFH, PRIV_VFS_FHOPEN; run mailnfsd as root on the host)"

// fhandleSize is sizeof(fhandle_t) (sys/mount.h): fsid_t fh_fsid (two
// int32), then struct fid { u_short fid_len; u_short fid_data0; char
// fid_data[MAXFIDSZ = 16]; }. The kernel zeroes the handle before filling
// it, so the bytes past fid_len are zero and the whole 28 bytes are the
// handle (a stable cache key).
const fhandleSize = 28

// fhandle is a fhandle_t as raw bytes (alignment 4 is all it needs; a Go
// array of bytes inside a struct with an int32 field gets it).
type fhandle struct {
	_ [0]int32
	b [fhandleSize]byte
}

// fhOf turns k back into a fhandle. EINVAL: not a FreeBSD handle (the MAC
// makes this impossible for handles we issued).
func fhOf(k kernelFH) (*fhandle, error) {
	if k.typ != 0 || len(k.bytes) != fhandleSize {
		return nil, unix.EINVAL
	}
	fh := new(fhandle)
	copy(fh.b[:], k.bytes)
	return fh, nil
}

// fhKernelFH turns a fhandle into a kernelFH (type 0, all 28 bytes) and
// the identity of its filesystem (the fsid, its first 8 bytes).
func fhKernelFH(fh *fhandle) (kernelFH, uint64) {
	return kernelFH{typ: 0, bytes: append([]byte(nil), fh.b[:]...)}, fsidOf(fh.b[:])
}

// fsidOf returns the fsid at the start of a fhandle_t as one number.
func fsidOf(b []byte) uint64 { return binary.NativeEndian.Uint64(b[0:8]) }

func errnoErr(e unix.Errno) error {
	if e == 0 {
		return nil
	}
	return e
}

// getfhat is getfhat(2).
func getfhat(dirfd int, path string, fh *fhandle, flags int) error {
	p, err := unix.BytePtrFromString(path)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall6(unix.SYS_GETFHAT, uintptr(dirfd), uintptr(unsafe.Pointer(p)), uintptr(unsafe.Pointer(fh)), uintptr(flags), 0, 0)
	return errnoErr(e)
}

// fhopen is fhopen(2).
func fhopen(fh *fhandle, flags int) (int, error) {
	fd, _, e := unix.Syscall(unix.SYS_FHOPEN, uintptr(unsafe.Pointer(fh)), uintptr(flags), 0)
	if e != 0 {
		return -1, e
	}
	return int(fd), nil
}

// fhstat is fhstat(2) (the FreeBSD 12+ syscall, whose struct stat is
// unix.Stat_t).
func fhstat(fh *fhandle, st *unix.Stat_t) error {
	_, _, e := unix.Syscall(unix.SYS_FHSTAT, uintptr(unsafe.Pointer(fh)), uintptr(unsafe.Pointer(st)), 0)
	return errnoErr(e)
}

// fhreadlink is fhreadlink(2).
func fhreadlink(fh *fhandle, buf []byte) (int, error) {
	if len(buf) == 0 {
		return 0, unix.EINVAL
	}
	n, _, e := unix.Syscall(unix.SYS_FHREADLINK, uintptr(unsafe.Pointer(fh)), uintptr(unsafe.Pointer(&buf[0])), uintptr(len(buf)))
	if e != 0 {
		return 0, e
	}
	return int(n), nil
}

// fhlinkat is fhlinkat(2).
func fhlinkat(fh *fhandle, dirfd int, name string) error {
	p, err := unix.BytePtrFromString(name)
	if err != nil {
		return err
	}
	_, _, e := unix.Syscall(unix.SYS_FHLINKAT, uintptr(unsafe.Pointer(fh)), uintptr(dirfd), uintptr(unsafe.Pointer(p)))
	return errnoErr(e)
}

// handleOpenErr maps an error of openPath for a handle with a valid MAC to
// ErrStale or ErrBadHandle; nil: neither (the caller wraps it). UFS reports
// a freed inode as ESTALE; ZFS reports a freed object as ENOENT, or EINVAL
// when its number was reused (generation mismatch). The MAC proves that we
// issued the handle, so EINVAL means stale here.
func handleOpenErr(err error) error {
	switch {
	case errors.Is(err, unix.ESTALE), errors.Is(err, unix.ENOENT), errors.Is(err, unix.EINVAL):
		return ErrStale
	case errors.Is(err, unix.EOPNOTSUPP):
		return ErrBadHandle
	}
	return nil
}

// openHandle opens the object of k with open(2) flags (O_RDONLY, O_RDWR,
// O_DIRECTORY, O_CLOEXEC). rootFd is unused: the handle names its
// filesystem.
func openHandle(rootFd int, k kernelFH, flags int) (int, error) {
	fh, err := fhOf(k)
	if err != nil {
		return -1, err
	}
	fd, err := fhopen(fh, flags)
	if outOfFds(err) {
		ShedUnused()
		fd, err = fhopen(fh, flags)
	}
	if err != nil {
		return -1, err
	}
	if flags&unix.O_CLOEXEC != 0 {
		unix.CloseOnExec(fd) // fhopen honours O_CLOEXEC; make sure
	}
	return fd, nil
}

// pathOpenFlags returns the fhopen/openat flags of a path fd for an
// object of the given S_IFMT type, or false for types that get none: a
// symlink cannot be opened, a fifo would block or take part in the pipe,
// a socket cannot be opened, and opening a device opens the device.
func pathOpenFlags(ifmt uint32) (int, bool) {
	switch ifmt {
	case unix.S_IFDIR:
		return unix.O_RDONLY | unix.O_DIRECTORY | unix.O_CLOEXEC, true
	case unix.S_IFREG:
		return unix.O_RDONLY | unix.O_NONBLOCK | unix.O_CLOEXEC, true
	}
	return 0, false
}

// openPath opens the object of k as a node's path fd: O_RDONLY for a
// directory or regular file, none (-1, nil) for other types (see the top
// of this file).
func openPath(rootFd int, k kernelFH) (int, error) {
	fh, err := fhOf(k)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := fhstat(fh, &st); err != nil {
		return -1, err
	}
	flags, ok := pathOpenFlags(uint32(st.Mode) & unix.S_IFMT)
	if !ok {
		return -1, nil
	}
	return openHandle(rootFd, k, flags)
}

// pathStat stats the object of a path fd, or through its handle k when it
// has none (fd < 0).
func pathStat(fd int, k kernelFH, st *unix.Stat_t) error {
	if fd >= 0 {
		return unix.Fstat(fd, st)
	}
	fh, err := fhOf(k)
	if err != nil {
		return err
	}
	return fhstat(fh, st)
}

// openChildPath opens name in directory dirfd as a path fd without
// following a symlink: -1 (no error) for a type that gets no fd. EAGAIN:
// name was replaced between the stat and the open.
func openChildPath(dirfd int, name string) (int, error) {
	var st unix.Stat_t
	if err := unix.Fstatat(dirfd, name, &st, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return -1, err
	}
	flags, ok := pathOpenFlags(uint32(st.Mode) & unix.S_IFMT)
	if !ok {
		return -1, nil
	}
	fd, err := unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW, 0)
	if outOfFds(err) {
		ShedUnused()
		fd, err = unix.Openat(dirfd, name, flags|unix.O_NOFOLLOW, 0)
	}
	if err != nil {
		return -1, err
	}
	var st2 unix.Stat_t
	if err := unix.Fstat(fd, &st2); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if st2.Ino != st.Ino || st2.Dev != st.Dev {
		unix.Close(fd)
		return -1, unix.EAGAIN
	}
	return fd, nil
}

// childStat stats the object openChildPath opened as fd (name in dirfd),
// by name when it has no fd.
func childStat(fd, dirfd int, name string, st *unix.Stat_t) error {
	if fd >= 0 {
		return unix.Fstat(fd, st)
	}
	return unix.Fstatat(dirfd, name, st, unix.AT_SYMLINK_NOFOLLOW)
}

// nameHandle returns the kernel handle of name in dirfd (not following a
// symlink) and the identity (fsid) of the filesystem it is on.
func nameHandle(dirfd int, name string) (kernelFH, uint64, error) {
	var fh fhandle
	if err := getfhat(dirfd, name, &fh, unix.AT_SYMLINK_NOFOLLOW); err != nil {
		return kernelFH{}, 0, err
	}
	k, fsid := fhKernelFH(&fh)
	return k, fsid, nil
}

// fdHandle returns the kernel handle of the object open as fd, opened as
// name in dirfd (FreeBSD has no handle-of-fd call: getfhat takes a name).
// The handle is checked against fd (inode, device, generation), so a name
// replaced since the open is ESTALE, never another object's handle. With
// fd < 0 (an object without a path fd) the name is all there is.
func fdHandle(fd, dirfd int, name string) (kernelFH, uint64, error) {
	k, fsid, err := nameHandle(dirfd, name)
	if err != nil || fd < 0 {
		return k, fsid, err
	}
	var a, b unix.Stat_t
	if err := unix.Fstat(fd, &a); err != nil {
		return kernelFH{}, 0, err
	}
	fh, _ := fhOf(k)
	if err := fhstat(fh, &b); err != nil {
		return kernelFH{}, 0, err
	}
	if a.Ino != b.Ino || a.Dev != b.Dev || a.Gen != b.Gen {
		return kernelFH{}, 0, unix.ESTALE
	}
	return k, fsid, nil
}

// linkNode makes a new link name in dirfd to the object of n (fhlinkat).
func linkNode(n *node, dirfd int, name string) error {
	fh, err := fhOf(n.kfh)
	if err != nil {
		return err
	}
	return fhlinkat(fh, dirfd, name)
}

// readlinkNode reads the target of the symlink n into buf (fhreadlink).
func readlinkNode(n *node, buf []byte) (int, error) {
	fh, err := fhOf(n.kfh)
	if err != nil {
		return 0, err
	}
	return fhreadlink(fh, buf)
}

// oWalk is how connected opens each ancestor: FreeBSD's x/sys/unix has
// no O_PATH, so a directory is opened for reading (the server reads
// every directory of its exports anyway).
const oWalk = unix.O_RDONLY

// errNoPathFd is the error of an attribute change of an object without a
// path fd (symlink, fifo, socket, device): FreeBSD has no call that
// changes owner, mode or times by file handle.
var errNoPathFd = fmt.Errorf("maildirfs: changing attributes of a special file is not supported on FreeBSD: %w", unix.EOPNOTSUPP)

// chownNode changes the owner of n.
func chownNode(n *node, uid, gid int) error {
	if n.pathFd < 0 {
		return errNoPathFd
	}
	return unix.Fchown(n.pathFd, uid, gid)
}

// utimesNode sets n's times (utimensat semantics: UTIME_NOW, UTIME_OMIT).
func utimesNode(n *node, times []unix.Timespec) error {
	if n.pathFd < 0 {
		return errNoPathFd
	}
	return futimensFd(n.pathFd, times)
}

// chmod sets n's mode.
func (f *FS) chmod(n *node, mode uint32) error {
	if n.pathFd < 0 {
		return errNoPathFd
	}
	return unix.Fchmod(n.pathFd, mode)
}

// fchownFd, fchmodFd and futimensFd change the object open as fd (a file
// or directory just created).
func fchownFd(fd, uid, gid int) error { return unix.Fchown(fd, uid, gid) }

func fchmodFd(fd int, mode uint32) error { return unix.Fchmod(fd, mode) }

func futimensFd(fd int, times []unix.Timespec) error {
	if len(times) != 2 {
		return unix.EINVAL
	}
	_, _, e := unix.Syscall(unix.SYS_FUTIMENS, uintptr(fd), uintptr(unsafe.Pointer(&times[0])), 0)
	return errnoErr(e)
}

// mknodat creates a special file; dev is from unix.Mkdev. FreeBSD's
// mknodat makes fifos and (root only) device nodes, not sockets (EINVAL).
func mknodat(dirfd int, name string, mode uint32, dev uint64) error {
	return unix.Mknodat(dirfd, name, mode, dev)
}

// fdatasync is fdatasync(2) (FreeBSD 11.1+; x/sys has no wrapper).
func fdatasync(fd int) error {
	_, _, e := unix.Syscall(unix.SYS_FDATASYNC, uintptr(fd), 0, 0)
	return errnoErr(e)
}

// syncSpecial would make the inode of a special file durable after a
// SETATTR. On FreeBSD no SETATTR changes one (chownNode, chmod and
// utimesNode refuse), so there is nothing to write: the change that
// created it was made durable by its parent's fsync.
func syncSpecial(rootFd int) error { return nil }

// syncRewritten makes the files just rewritten in place (open as fds)
// durable: FreeBSD has no syncfs, so each is fsynced; all run, and the
// first error is returned.
func syncRewritten(rootFd int, fds []int) error {
	var first error
	for _, fd := range fds {
		if err := unix.Fsync(fd); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// getxattrFd reads attr of the object open as fd (extattr_get_fd in the
// user namespace). fd < 0 (no path fd: never a regular file) has none.
func getxattrFd(fd int, attr string, b []byte) (int, error) {
	if fd < 0 {
		return 0, errNoAttr
	}
	return unix.Fgetxattr(fd, attr, b)
}

// lgetxattrAt reads attr of name in directory dirfd, not following a
// symlink. There is no extattr call relative to a directory fd, so the
// file is opened (the caller only asks for regular files; O_NONBLOCK in
// case it was replaced by a fifo).
func lgetxattrAt(dirfd int, name, attr string, b []byte) (int, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return 0, err
	}
	defer unix.Close(fd)
	return unix.Fgetxattr(fd, attr, b)
}

// maildirDirs are the names dirName can report: the only ones its callers
// (the compression trigger) ask about.
var maildirDirs = [...]string{"tmp", "new", "cur"}

// dirName returns the name of the directory open as fd when it is one of
// tmp, new or cur, else "". FreeBSD has no /proc/self/fd link to read:
// the directory is named X when its parent's entry X is the same inode.
func dirName(fd int) string {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		return ""
	}
	for _, name := range maildirDirs {
		var pst unix.Stat_t
		if unix.Fstatat(fd, "../"+name, &pst, unix.AT_SYMLINK_NOFOLLOW) == nil && pst.Ino == st.Ino && pst.Dev == st.Dev {
			return name
		}
	}
	return ""
}

// fsStat reports the space and inode counts of the filesystem holding fd.
func fsStat(fd int) (FSStat, error) {
	var s unix.Statfs_t
	if err := unix.Fstatfs(fd, &s); err != nil {
		return FSStat{}, err
	}
	return fsStatOf(s.Bsize, s.Blocks, s.Bfree, s.Bavail, s.Files, s.Ffree), nil
}

// pcLinkMax is _PC_LINK_MAX (unistd.h), missing from x/sys for FreeBSD.
const pcLinkMax = 1

// linkMax returns the hard link limit of the filesystem of rootFd
// (fpathconf _PC_LINK_MAX: UFS 65530, ZFS and tmpfs far more), else 32000.
func linkMax(rootFd int) uint32 {
	v, err := unix.Fpathconf(rootFd, pcLinkMax)
	if err != nil || v <= 0 {
		return 32000
	}
	return clampLinkMax(int64(v))
}

// pcFileSizeBits is _PC_FILESIZEBITS (sys/unistd.h), missing from x/sys
// for FreeBSD.
const pcFileSizeBits = 12

// maxFileSize returns the largest file size the filesystem of rootFd
// allows: 2^(bits-1)-1 for its _PC_FILESIZEBITS (UFS and ZFS say 64),
// else 2^63-1.
func maxFileSize(rootFd int) uint64 {
	bits, err := unix.Fpathconf(rootFd, pcFileSizeBits)
	if err != nil || bits < 2 || bits >= 64 {
		return 1<<63 - 1
	}
	return 1<<(bits-1) - 1
}

// commitModelFS tells the commit model of the filesystem of rootFd. ZFS
// commits a rename between two directories as one unit (one transaction,
// one intent log record); UFS (soft updates, with or without the journal)
// orders the two directory writes but does not make them one, and tmpfs
// keeps nothing, so both are synced in turn. No FreeBSD file system is
// trusted with oneSync (not measured there): every changed
// inode is synced.
func commitModelFS(rootFd int, dev uint64) commitModel {
	var s unix.Statfs_t
	if unix.Fstatfs(rootFd, &s) != nil {
		return commitModel{}
	}
	return commitModel{renameAtomic: fsTypeName(s.Fstypename[:]) == "zfs"}
}

// asCaller runs fn with the server's credentials: FreeBSD has no
// per-thread file system uid, so writes through mailnfsd running as root
// may use UFS's minfree reserve and are not refused at a user's quota
// (docs/operations.md, Portability).
func asCaller(_ Cred, fn func() error) error { return fn() }

// roomForUser is nil: users' writes may use UFS's minfree reserve here
// (asCaller), and so may the objects they make.
func roomForUser(int, Cred, int64) error { return nil }

// UserWriteLimits reports whether users' writes are held to the file
// system's limits for users: not on FreeBSD (asCaller).
func UserWriteLimits() (ok bool, why string) {
	return false, "FreeBSD has no per-thread file system uid: users' writes run as the server's uid and may use the blocks UFS reserves for root (minfree)"
}

// reopenFd is not needed here: without root, FreeBSD makes no file
// handles either (getfhat), so a store never resolves them by search
// (Options.HandleSearch).
func reopenFd(fd, flags int) (int, error) {
	return -1, unix.EOPNOTSUPP
}
