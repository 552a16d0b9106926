package bench

import (
	"testing"

	"golang.org/x/sys/unix"
)

// newSyncfsCommit commits with syncfs of root's file system, then an
// fsync of root: on ext4 without a journal syncfs writes the metadata
// buffers after its cache flush, and the fsync flushes again.
func newSyncfsCommit(b *testing.B, root string) *sharedCommit {
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	return &sharedCommit{run: func(int64) error {
		if err := unix.Syncfs(fd); err != nil {
			return err
		}
		return unix.Fsync(fd)
	}}
}

// fdatasync is fdatasync(2).
func fdatasync(fd int) error { return unix.Fdatasync(fd) }
