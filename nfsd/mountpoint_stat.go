//go:build !freebsd

package nfsd

import (
	"fmt"
	"os"
	"syscall"
)

// mountpointByStat is nfs-utils' is_mountpoint test: path is a mount point
// if it is on another device than its parent, or is its own parent (the
// root). A bind mount of a directory of the same file system passes
// unseen.
func mountpointByStat(path string) (bool, error) {
	st, err := os.Stat(path)
	if err != nil {
		return false, err
	}
	// The kernel resolves "..", as in nfs-utils (a lexical parent would
	// differ after a symbolic link).
	parent, err := os.Stat(path + "/..")
	if err != nil {
		return false, err
	}
	a, ok1 := st.Sys().(*syscall.Stat_t)
	b, ok2 := parent.Sys().(*syscall.Stat_t)
	if !ok1 || !ok2 {
		return false, fmt.Errorf("stat %s: no device number", path)
	}
	return a.Dev != b.Dev || a.Ino == b.Ino, nil
}
