//go:build linux

// Package loopfstest makes small real file systems for tests: an ext4 image
// on a loop device, mounted in a temporary directory and removed when the
// test ends. It needs root, mkfs.ext4 and losetup, and skips the test
// without them.
package loopfstest

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Ext4 makes an ext4 file system of size bytes (with or without a
// journal; mkfs's defaults otherwise, so 5% of its blocks are reserved
// for root, unless mkfsArgs say otherwise, e.g. "-m", "15"), mounts it on
// a fresh directory and returns the mount point.
func Ext4(t testing.TB, size int64, journal bool, mkfsArgs ...string) (mnt string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (loop device, mount)")
	}
	for _, tool := range []string{"mkfs.ext4", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	base := t.TempDir()
	img := filepath.Join(base, "fs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, size); err != nil {
		t.Fatal(err)
	}
	args := append([]string{"-q", "-F"}, mkfsArgs...)
	if !journal {
		args = append(args, "-O", "^has_journal")
	}
	if out, err := exec.Command("mkfs.ext4", append(args, img)...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4 (%s bytes): %v: %s", strconv.FormatInt(size, 10), err, out)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device here: losetup: %v: %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	mnt = filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(loop, mnt, "ext4", unix.MS_NOATIME, ""); err != nil {
		t.Fatalf("mount %s: %v", loop, err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, 0) })
	return mnt
}
