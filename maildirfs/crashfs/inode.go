package crashfs

import (
	"io/fs"
	"syscall"
)

// inode returns the inode number of a stat result (Linux).
func inode(info fs.FileInfo) uint64 {
	if st, ok := info.Sys().(*syscall.Stat_t); ok {
		return st.Ino
	}
	return 0
}
