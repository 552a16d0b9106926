//go:build linux

package maildirfs

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// TestRenameAtomic checks renameAtomic against the facts of the test
// directory's file system, found here a different way (the device's name
// from its sysfs uevent, and its jbd2 directory).
func TestRenameAtomic(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "export")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := Open(dir, Options{StateDir: filepath.Join(base, "state")})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var s unix.Statfs_t
	if err := unix.Statfs(dir, &s); err != nil {
		t.Fatal(err)
	}
	var st unix.Stat_t
	if err := unix.Stat(dir, &st); err != nil {
		t.Fatal(err)
	}
	want := false
	switch s.Type {
	case unix.XFS_SUPER_MAGIC, unix.BTRFS_SUPER_MAGIC:
		want = true
	case unix.EXT4_SUPER_MAGIC:
		uevent, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/uevent", unix.Major(st.Dev), unix.Minor(st.Dev)))
		if err != nil {
			t.Skipf("no sysfs entry for the test file system's device: %v", err)
		}
		var name string
		for _, l := range strings.Split(string(uevent), "\n") {
			if v, ok := strings.CutPrefix(l, "DEVNAME="); ok {
				name = filepath.Base(v)
			}
		}
		if name == "" {
			t.Skip("device name unknown")
		}
		_, err = os.Stat("/proc/fs/jbd2/" + name + "-8")
		want = err == nil
	}
	if got := f.renameAtomic(); got != want {
		t.Fatalf("renameAtomic = %v, want %v (fs type %#x)", got, want, s.Type)
	}
	if got := f.renameAtomic(); got != want {
		t.Fatalf("cached renameAtomic = %v, want %v", got, want)
	}
	t.Logf("fs type %#x: rename atomic = %v", s.Type, want)
}
