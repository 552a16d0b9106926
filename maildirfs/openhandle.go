package maildirfs

import (
	"runtime"

	"golang.org/x/sys/unix"
)

// openByHandleAt is open_by_handle_at(2) that retries a transient ENOMEM.
// The kernel's exportfs code returns ENOMEM, not ESTALE, when reconnecting
// a disconnected dentry races with a rename or removal in the same
// directory (seen under TestConcurrentStress with constant cache
// eviction); a retry a moment later resolves the handle or reports the
// real state (ESTALE). A persistent ENOMEM is returned as is.
func openByHandleAt(mountFd int, fh unix.FileHandle, flags int) (int, error) {
	for try := 0; ; try++ {
		fd, err := unix.OpenByHandleAt(mountFd, fh, flags)
		if err != unix.ENOMEM || try == 4 {
			return fd, err
		}
		runtime.Gosched()
	}
}
