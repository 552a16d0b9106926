package nfsd

import "golang.org/x/sys/unix"

// stateDirFS names the file system holding dir if it is one a state
// directory should not be on: "tmpfs" (a reboot empties it), "nfs"
// (another server's); else "".
func stateDirFS(dir string) string {
	var s unix.Statfs_t
	if unix.Statfs(dir, &s) != nil {
		return ""
	}
	switch t := unix.ByteSliceToString(s.Fstypename[:]); t {
	case "tmpfs", "nfs":
		return t
	}
	return ""
}
