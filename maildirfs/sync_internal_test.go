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

// TestCommitModel checks the commit model against the facts of the test
// directory's file system, found here a different way (the device's name
// from its sysfs uevent, and its jbd2 directory).
func TestCommitModel(t *testing.T) {
	base := t.TempDir()
	dir := filepath.Join(base, "export")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	checkCommitModel(t, dir, filepath.Join(base, "state"))
}

func checkCommitModel(t *testing.T, dir, state string) commitModel {
	t.Helper()
	f, err := Open(dir, Options{StateDir: state})
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
	var want commitModel
	switch s.Type {
	case unix.XFS_SUPER_MAGIC:
		want = commitModel{oneSync: true, renameAtomic: true}
	case unix.BTRFS_SUPER_MAGIC:
		want = commitModel{renameAtomic: true}
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
		if err == nil {
			want = commitModel{oneSync: true, renameAtomic: true}
		}
	}
	if got := f.commit(); got != want {
		t.Fatalf("commit model = %+v, want %+v (fs type %#x)", got, want, s.Type)
	}
	if got := f.commit(); got != want {
		t.Fatalf("cached commit model = %+v, want %+v", got, want)
	}
	t.Logf("fs type %#x: commit model %+v", s.Type, want)
	return want
}
