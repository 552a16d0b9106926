//go:build !linux

package bench

import (
	"testing"

	"golang.org/x/sys/unix"
)

// newSyncfsCommit: syncfs is Linux's; elsewhere the groupfs schedule is
// skipped.
func newSyncfsCommit(b *testing.B, _ string) *sharedCommit {
	b.Skip("groupfs: syncfs(2) is Linux-only")
	return nil
}

// fdatasync is fsync here (the wal schedule's log sync; x/sys has no
// Fdatasync for every system).
func fdatasync(fd int) error { return unix.Fsync(fd) }
