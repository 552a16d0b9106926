package nfsd

import (
	"errors"
	"io/fs"

	"golang.org/x/sys/unix"
)

// isMountpoint reports whether path is the root of a mounted file system.
// Linux 5.8 and later say so in statx's STATX_ATTR_MOUNT_ROOT, which also
// sees bind mounts of a directory of the same file system; older kernels
// get the st_dev test of nfs-utils' is_mountpoint (mountpointByStat). It
// follows symbolic links, as mountd's stat does.
func isMountpoint(path string) (bool, error) {
	var stx unix.Statx_t
	err := unix.Statx(unix.AT_FDCWD, path, unix.AT_STATX_SYNC_AS_STAT, unix.STATX_TYPE|unix.STATX_INO, &stx)
	switch {
	case errors.Is(err, unix.ENOSYS):
		return mountpointByStat(path)
	case err != nil:
		return false, &fs.PathError{Op: "statx", Path: path, Err: err}
	case stx.Attributes_mask&unix.STATX_ATTR_MOUNT_ROOT == 0:
		return mountpointByStat(path)
	}
	return stx.Attributes&unix.STATX_ATTR_MOUNT_ROOT != 0, nil
}
