package nfsd

import (
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// isMountpoint reports whether path is the root of a mounted file system:
// statfs names the mount point of the file system holding path
// (f_mntonname), as FreeBSD's mountd uses it. Symbolic links in path are
// resolved first.
func isMountpoint(path string) (bool, error) {
	real, err := filepath.EvalSymlinks(path)
	if err != nil {
		return false, err
	}
	var st unix.Statfs_t
	if err := unix.Statfs(real, &st); err != nil {
		return false, &fs.PathError{Op: "statfs", Path: real, Err: err}
	}
	return unix.ByteSliceToString(st.Mntonname[:]) == real, nil
}
