package nfsd

import "golang.org/x/sys/unix"

// stateDirFS names the file system holding dir if it is one a state
// directory should not be on: "tmpfs" or "ramfs" (a reboot empties it),
// "nfs" (another server's); else "".
func stateDirFS(dir string) string {
	var s unix.Statfs_t
	if unix.Statfs(dir, &s) != nil {
		return ""
	}
	switch s.Type {
	case unix.TMPFS_MAGIC:
		return "tmpfs"
	case unix.RAMFS_MAGIC:
		return "ramfs"
	case unix.NFS_SUPER_MAGIC:
		return "nfs"
	}
	return ""
}
