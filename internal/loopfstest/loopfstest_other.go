//go:build !linux

package loopfstest

import "testing"

// Ext4 skips the test: loop devices and ext4 are Linux's.
func Ext4(t testing.TB, size int64, journal bool, mkfsArgs ...string) (mnt string) {
	t.Helper()
	t.Skip("needs Linux (loop device, ext4)")
	return ""
}
