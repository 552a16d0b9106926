package maildirfs

// Linux system interface: kernel file handles from name_to_handle_at and
// open_by_handle_at, O_PATH fds for nodes, AT_EMPTY_PATH, syncfs,
// fdatasync, /proc/self/fd paths for xattrs of O_PATH fds, and filesystem
// magic numbers. sys_freebsd.go is the FreeBSD counterpart; both provide
// the same functions.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"

	"golang.org/x/sys/unix"
)

// parseDirent is the getdents64 record parser of this system (sysparse.go).
var parseDirent = parseLinuxDirent

// handleCall names the system call that makes kernel handles, for errors.
const handleCall = "name_to_handle_at"

// handleOpenCall names the system call that opens kernel handles.
const handleOpenCall = "open_by_handle_at"

// posixACLs: access ACLs (system.posix_acl_access) are enforced (acl.go).
const posixACLs = true

// errNoAttr is the errno for "no such extended attribute".
const errNoAttr = unix.ENODATA

// handlePrivilegeHint completes the error of an Open whose probe of handle
// resolution was refused.
const handlePrivilegeHint = "open_by_handle_at not permitted (needs CAP_DAC_READ_SEARCH; run mailnfsd as root, or grant the capability with setcap cap_dac_read_search+ep (then files created over NFS belong to the server's own uid))"

// openByHandleAt is open_by_handle_at(2) that retries a transient ENOMEM.
// The kernel's exportfs code returns ENOMEM, not ESTALE, when reconnecting
// a disconnected dentry races with a rename or removal in the same
// directory (seen under TestConcurrentStress with constant cache
// eviction); a retry a moment later resolves the handle or reports the
// real state (ESTALE). A persistent ENOMEM is returned as is.
//
// Out of file descriptors (outOfFds), it sheds unused cached nodes of
// every store and tries once more.
func openByHandleAt(mountFd int, fh unix.FileHandle, flags int) (int, error) {
	shed := false
	for try := 0; ; try++ {
		fd, err := unix.OpenByHandleAt(mountFd, fh, flags)
		if outOfFds(err) && !shed {
			shed = true
			ShedUnused()
			continue
		}
		if err != unix.ENOMEM || try >= 4 {
			return fd, err
		}
		runtime.Gosched()
	}
}

// handleOpenErr maps an error of openPath for a handle with a valid MAC to
// ErrStale or ErrBadHandle; nil: neither (the caller wraps it).
func handleOpenErr(err error) error {
	switch {
	case errors.Is(err, unix.ESTALE), errors.Is(err, unix.ENOENT):
		return ErrStale
	case errors.Is(err, unix.EINVAL), errors.Is(err, unix.EOPNOTSUPP):
		return ErrBadHandle
	}
	return nil
}

// openHandle opens the object of k with open(2) flags (O_RDONLY, O_RDWR,
// O_DIRECTORY, O_CLOEXEC) through the export root fd.
func openHandle(rootFd int, k kernelFH, flags int) (int, error) {
	return openByHandleAt(rootFd, unix.NewFileHandle(k.typ, k.bytes), flags)
}

// oWalk is how connected opens each ancestor: O_PATH needs no
// permission on the directory and does not read it.
const oWalk = unix.O_PATH

// openPath opens the object of k as a node's path fd (O_PATH: any type,
// nothing is opened for I/O).
func openPath(rootFd int, k kernelFH) (int, error) {
	return openByHandleAt(rootFd, unix.NewFileHandle(k.typ, k.bytes), unix.O_PATH|unix.O_CLOEXEC)
}

// pathStat stats the object of a path fd (k names the same object; unused
// here, every object has an O_PATH fd).
func pathStat(fd int, k kernelFH, st *unix.Stat_t) error {
	return unix.Fstat(fd, st)
}

// openChildPath opens name in directory dirfd as a path fd without
// following a symlink.
func openChildPath(dirfd int, name string) (int, error) {
	fd, err := unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if outOfFds(err) {
		ShedUnused()
		fd, err = unix.Openat(dirfd, name, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	}
	return fd, err
}

// childStat stats the object openChildPath opened as fd (name in dirfd).
func childStat(fd, dirfd int, name string, st *unix.Stat_t) error {
	return unix.Fstat(fd, st)
}

// nameHandle returns the kernel handle of name in dirfd (not following a
// symlink) and the identity of the mount it is on.
func nameHandle(dirfd int, name string) (kernelFH, uint64, error) {
	fh, mnt, err := unix.NameToHandleAt(dirfd, name, 0)
	if err != nil {
		return kernelFH{}, 0, err
	}
	return kernelFH{typ: fh.Type(), bytes: fh.Bytes()}, uint64(mnt), nil
}

// fdHandle returns the kernel handle of the object open as fd and the
// identity of its mount. dirfd and name are where fd was opened (the
// FreeBSD counterpart needs them; Linux asks the fd itself).
func fdHandle(fd, dirfd int, name string) (kernelFH, uint64, error) {
	fh, mnt, err := unix.NameToHandleAt(fd, "", unix.AT_EMPTY_PATH)
	if err != nil {
		return kernelFH{}, 0, err
	}
	return kernelFH{typ: fh.Type(), bytes: fh.Bytes()}, uint64(mnt), nil
}

// linkNode makes a new link name in dirfd to the object of n
// (AT_EMPTY_PATH links the inode itself; before Linux 6.10 it needs
// CAP_DAC_READ_SEARCH, which handle resolution needs anyway, and answers
// ENOENT without it). A process without it (Options.HandleSearch) links
// the object through its /proc/self/fd link, which names the same inode;
// a removed object (no links left) gets ENOENT from both.
func linkNode(n *node, dirfd int, name string) error {
	err := unix.Linkat(n.pathFd, "", dirfd, name, unix.AT_EMPTY_PATH)
	if err == unix.ENOENT && !serverIsRoot {
		err = unix.Linkat(unix.AT_FDCWD, "/proc/self/fd/"+strconv.Itoa(n.pathFd), dirfd, name, unix.AT_SYMLINK_FOLLOW)
	}
	return err
}

// readlinkNode reads the target of the symlink n into buf.
func readlinkNode(n *node, buf []byte) (int, error) {
	return unix.Readlinkat(n.pathFd, "", buf)
}

// chownNode changes the owner of n, never following a symlink.
func chownNode(n *node, uid, gid int) error {
	return unix.Fchownat(n.pathFd, "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
}

// utimesNode sets n's times (utimensat semantics: UTIME_NOW, UTIME_OMIT),
// never following a symlink.
func utimesNode(n *node, times []unix.Timespec) error {
	return unix.UtimesNanoAt(n.pathFd, "", times, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
}

// chmod sets n's mode through its O_PATH fd (fchmodFd).
func (f *FS) chmod(n *node, mode uint32) error { return fchmodFd(n.pathFd, mode) }

// fchownFd, fchmodFd and futimensFd change the object open as fd (a file
// or directory just created, or a node's O_PATH fd).
func fchownFd(fd, uid, gid int) error {
	return unix.Fchownat(fd, "", uid, gid, unix.AT_EMPTY_PATH|unix.AT_SYMLINK_NOFOLLOW)
}

// fchmodFd sets the mode of the object open as fd, which may be an O_PATH
// fd (fchmod(2) refuses those with EBADF): with fchmodat2 and
// AT_EMPTY_PATH where the kernel has it (Linux 6.6), else as glibc's
// fchmodat does, with chmod(2) of /proc/self/fd/N, which resolves to the
// object itself. A symlink is left alone there: Linux ignores the mode of
// a symlink (always 0777), and fchmodat2 refuses to set it (EOPNOTSUPP).
func fchmodFd(fd int, mode uint32) error {
	if haveFchmodat2() {
		return unix.Fchmodat(fd, "", mode, unix.AT_EMPTY_PATH)
	}
	return chmodProcFd(fd, mode)
}

// chmodProcFd is fchmodFd for kernels without fchmodat2 (Debian 12's 6.1,
// RHEL 9's 5.14, Ubuntu 22.04's 5.15).
func chmodProcFd(fd int, mode uint32) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	if st.Mode&unix.S_IFMT == unix.S_IFLNK {
		return nil
	}
	return unix.Chmod("/proc/self/fd/"+strconv.Itoa(fd), mode)
}

// haveFchmodat2 tells, probed once, whether the kernel has fchmodat2
// (Linux 6.6). The probe passes a flag no kernel knows: one with the call
// refuses it (EINVAL) before it looks at the path; one without answers
// ENOSYS, and a seccomp filter that does not know the call (a container
// runtime's default profile older than it) answers EPERM or ENOSYS: only
// EINVAL means the call is there to use.
var haveFchmodat2 = sync.OnceValue(func() bool {
	dirfd := unix.AT_FDCWD
	_, _, e := unix.Syscall6(unix.SYS_FCHMODAT2, uintptr(dirfd), 0, 0, 1<<30, 0, 0)
	return e == unix.EINVAL
})

func futimensFd(fd int, times []unix.Timespec) error {
	return unix.UtimesNanoAt(fd, "", times, unix.AT_EMPTY_PATH)
}

// mknodat creates a special file; dev is from unix.Mkdev. The system call
// takes a 32-bit device number (a 12-bit major, a 20-bit minor) and drops
// the bits above: a major or minor too large for it is EINVAL, as knfsd
// answers, not another device (glibc's mknodat refuses it too).
func mknodat(dirfd int, name string, mode uint32, dev uint64) error {
	if dev != uint64(uint32(dev)) {
		return unix.EINVAL
	}
	return unix.Mknodat(dirfd, name, mode, int(dev))
}

// fdatasync makes fd's data (and the metadata needed to read it) durable.
func fdatasync(fd int) error { return unix.Fdatasync(fd) }

// syncSpecial makes the inode of a node that is neither a regular file
// nor a directory durable: O_PATH fds cannot be synced, so the whole
// filesystem is (same filesystem as the root).
func syncSpecial(rootFd int) error { return unix.Syncfs(rootFd) }

// syncRewritten makes the files just rewritten in place (open as fds)
// durable: one syncfs (a journal commit plus their data) instead of one
// fsync per file.
func syncRewritten(rootFd int, fds []int) error { return unix.Syncfs(rootFd) }

// getxattrFd reads attr of the object open as fd (O_PATH is fine: the
// xattr calls cannot take an O_PATH fd, its /proc/self/fd path can).
func getxattrFd(fd int, attr string, b []byte) (int, error) {
	return unix.Getxattr("/proc/self/fd/"+strconv.Itoa(fd), attr, b)
}

// lgetxattrAt reads attr of name in directory dirfd, not following a
// symlink.
func lgetxattrAt(dirfd int, name, attr string, b []byte) (int, error) {
	return unix.Lgetxattr("/proc/self/fd/"+strconv.Itoa(dirfd)+"/"+name, attr, b)
}

// dirName returns the last path component of the directory open as fd, ""
// if unknown.
func dirName(fd int) string {
	p, err := os.Readlink("/proc/self/fd/" + strconv.Itoa(fd))
	if err != nil {
		return ""
	}
	return filepath.Base(p)
}

// fsStat reports the space and inode counts of the filesystem holding fd.
func fsStat(fd int) (FSStat, error) {
	var s unix.Statfs_t
	if err := unix.Fstatfs(fd, &s); err != nil {
		return FSStat{}, err
	}
	bs := uint64(s.Frsize)
	if bs == 0 {
		bs = uint64(s.Bsize)
	}
	return FSStat{
		TotalBytes: s.Blocks * bs, FreeBytes: s.Bfree * bs, AvailBytes: s.Bavail * bs,
		TotalFiles: s.Files, FreeFiles: s.Ffree, AvailFiles: s.Ffree,
	}, nil
}

// linkMax returns the hard link limit of the filesystem of rootFd: known
// limits by filesystem type, else 32000.
func linkMax(rootFd int) uint32 {
	var s unix.Statfs_t
	if unix.Fstatfs(rootFd, &s) != nil {
		return 32000
	}
	switch s.Type {
	case unix.EXT4_SUPER_MAGIC: // also ext2/ext3 (same magic)
		return 65000
	case unix.XFS_SUPER_MAGIC, unix.TMPFS_MAGIC:
		return 1<<31 - 1
	case unix.BTRFS_SUPER_MAGIC:
		return 65535
	}
	return 32000
}

// maxFileSize returns an upper bound of the largest file the filesystem of
// rootFd holds: ext4 maps at most 2^32-1 blocks of a file (fewer without
// extents or huge_file, which only makes its writes fail with EFBIG);
// XFS, tmpfs and btrfs allow 2^63-1 (MAX_LFS_FILESIZE), as others are
// assumed to.
func maxFileSize(rootFd int) uint64 {
	var s unix.Statfs_t
	if unix.Fstatfs(rootFd, &s) == nil && s.Type == unix.EXT4_SUPER_MAGIC && s.Bsize > 0 && s.Bsize <= 1<<16 {
		return (1<<32 - 1) * uint64(s.Bsize)
	}
	return 1<<63 - 1
}

// commitModelFS tells the commit model of the filesystem of rootFd
// (device dev). XFS: one transaction per operation, fsync forces the log
// (oneSync). ext4 with a journal (a jbd2 entry in /proc/fs/jbd2 for its
// device): the same through jbd2. ext4 without one writes each block on its
// own (see commitModel.oneSync). btrfs commits a rename as one unit, but its fsync logs only the inode
// synced (its log tree), so it gets no more than renameAtomic. Anything
// else (tmpfs, overlay, NFS...) gets the safe default.
func commitModelFS(rootFd int, dev uint64) commitModel {
	var s unix.Statfs_t
	if unix.Fstatfs(rootFd, &s) != nil {
		return commitModel{}
	}
	switch s.Type {
	case unix.XFS_SUPER_MAGIC:
		return commitModel{oneSync: true, renameAtomic: true}
	case unix.BTRFS_SUPER_MAGIC:
		return commitModel{renameAtomic: true}
	case unix.EXT4_SUPER_MAGIC:
		if ext4Journal(dev) {
			return commitModel{oneSync: true, renameAtomic: true}
		}
	}
	return commitModel{}
}

// ext4Journal reports whether the ext4 filesystem on device dev has a
// journal: jbd2 lists it as /proc/fs/jbd2/<device name>-<inode>.
func ext4Journal(dev uint64) bool {
	link, err := os.Readlink(fmt.Sprintf("/sys/dev/block/%d:%d", unix.Major(dev), unix.Minor(dev)))
	if err != nil {
		return false
	}
	m, _ := filepath.Glob("/proc/fs/jbd2/" + filepath.Base(link) + "-*")
	return len(m) > 0
}

// serverIsRoot: the server runs as root, so its writes can draw on what
// the file system keeps back for root, and its threads' credentials can
// be changed.
var serverIsRoot = os.Geteuid() == 0

// serverCaps is the capability sets of the process's threads, read once
// (asCaller gives each thread back exactly these).
var serverCaps = sync.OnceValues(func() ([2]unix.CapUserData, error) {
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	var caps [2]unix.CapUserData
	err := unix.Capget(&hdr, &caps[0])
	return caps, err
})

// asCaller runs fn, which writes file data for c, on a thread whose file
// system uid is c's and which lacks CAP_SYS_RESOURCE, as knfsd's threads
// do for every caller but root. The server runs as root and would
// otherwise draw on what the file system holds back from users: ext4's
// reserved blocks (5% by default, kept for root and the system when the
// disk fills; ext4 lets a write use them if its fsuid is the reserve's
// owner, root by default, or it has CAP_SYS_RESOURCE) and users' disk
// quotas (the blocks go to the file's owner either way, but the limits
// are not enforced against CAP_SYS_RESOURCE). With it, a full mail file
// system stops users' writes with ENOSPC (EDQUOT at a quota) while the
// reserve stays for the box itself. The fsgid stays 0: neither check
// needs it unless an operator gave the reserve to a group (tune2fs -g).
//
// It costs three setfsuid calls (one checks the last), two capsets where
// the process has CAP_SYS_RESOURCE, and a LockOSThread: 6.2 µs per WRITE
// on the development VM, whose root lacks CAP_SYS_RESOURCE and where a
// system call costs over 1 µs (a capset 2.3 µs more each): 0.5 to 1.5% of
// the server CPU of a delivery there. The capability drop has not run
// here for want of the capability.
//
// The credentials are per thread: the goroutine is locked to its thread
// while they differ from the process's, and a thread that cannot be given
// back its own (it never happens: the real uid stays 0 and the permitted
// capabilities are untouched) stays locked, so the Go runtime ends it with
// the goroutine. New threads are not started from a locked one (the
// runtime's template thread starts them). When they cannot be changed,
// fn runs with the server's own (the earlier behaviour).
func asCaller(c Cred, fn func() error) error {
	if c.UID == 0 || !serverIsRoot {
		return fn()
	}
	hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
	saved, err := serverCaps()
	// Without CAP_SYS_RESOURCE (a container may lack it) only the fsuid
	// changes.
	dropCap := err == nil && saved[unix.CAP_SYS_RESOURCE/32].Effective&(1<<(unix.CAP_SYS_RESOURCE%32)) != 0
	runtime.LockOSThread()
	if dropCap {
		caps := saved
		caps[unix.CAP_SYS_RESOURCE/32].Effective &^= 1 << (unix.CAP_SYS_RESOURCE % 32)
		if unix.Capset(&hdr, &caps[0]) != nil {
			runtime.UnlockOSThread()
			return fn()
		}
	}
	uid := c.UID
	if uid == ^uint32(0) {
		uid = 65534 // (uid_t)-1 would leave the fsuid unchanged: root's
	}
	prev, _ := unix.SetfsuidRetUid(int(uid))
	err = fn()
	unix.SetfsuidRetUid(prev)
	// setfsuid(-1) changes nothing and returns the current fsuid.
	now, _ := unix.SetfsuidRetUid(-1)
	if now == prev && (!dropCap || unix.Capset(&hdr, &saved[0]) == nil) {
		runtime.UnlockOSThread()
	}
	return err
}

// roomForUser returns ENOSPC when c is not root, the server is, and the
// file system has fewer than need bytes available to users (statfs
// f_bavail): what the store does as root for a user (MKDIR, SYMLINK and
// MKNOD, whose directory or long symlink target takes a block; the
// expansion of a compressed file before a WRITE) would otherwise come
// out of the reserve kept for root, where a user's own writes stop
// (asCaller). One fstatfs, on those calls only (not on the delivery
// path); calls racing at the edge may still take a few blocks.
func roomForUser(rootFd int, c Cred, need int64) error {
	if c.UID == 0 || !serverIsRoot {
		return nil
	}
	var s unix.Statfs_t
	if unix.Fstatfs(rootFd, &s) != nil {
		return nil
	}
	bs := s.Frsize // the unit of f_bavail, as fsStat
	if bs <= 0 {
		bs = max(s.Bsize, 1)
	}
	if s.Bavail <= uint64(max(need, 0))/uint64(bs) {
		return unix.ENOSPC
	}
	return nil
}

// UserWriteLimits reports whether users' writes are held to the file
// system's limits for users (asCaller): true when the server is not root
// (its writes are its own uid's) or can set a thread's fsuid. When it
// cannot (a service manager left it root without CAP_SETUID), why says
// so: users' writes may then fill the reserve kept for root.
var UserWriteLimits = sync.OnceValues(func() (ok bool, why string) {
	if !serverIsRoot {
		return true, ""
	}
	// On a goroutine of its own, which ends its thread should the fsuid
	// not be given back (it stays locked).
	setc := make(chan int)
	go func() {
		runtime.LockOSThread()
		prev, _ := unix.SetfsuidRetUid(65534)
		set, _ := unix.SetfsuidRetUid(prev)
		if now, _ := unix.SetfsuidRetUid(-1); now == prev {
			runtime.UnlockOSThread()
		}
		setc <- set
	}()
	if <-setc != 65534 {
		return false, "setfsuid refused (no CAP_SETUID): users' writes run as root and may use the blocks the file system reserves for root"
	}
	return true, ""
})

// reopenFd opens the object of the O_PATH fd with open(2) flags through
// its /proc/self/fd link, as the process (its permissions are checked):
// how a store without open_by_handle_at opens nodes for I/O
// (Options.HandleSearch).
func reopenFd(fd, flags int) (int, error) {
	nfd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(fd), flags|unix.O_CLOEXEC, 0)
	if outOfFds(err) {
		ShedUnused()
		nfd, err = unix.Open("/proc/self/fd/"+strconv.Itoa(fd), flags|unix.O_CLOEXEC, 0)
	}
	return nfd, err
}
