package nfsd

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestDRCLogFullStateDir opens the log on a small tmpfs, records a call,
// fills the file system and opens the log again (a restart with /var
// full): the log must still know the earlier run's call (that restart is
// when it matters), report that it cannot record (ErrDRCLogUnwritable)
// and take calls without failing. Before, the open failed and mailnfsd
// did not start.
func TestDRCLogFullStateDir(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root (mount)")
	}
	dir := t.TempDir()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=6m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	path := filepath.Join(dir, DRCLogFile)
	now := time.Unix(1_800_000_000, 0)
	l, _, err := OpenDRCLog(path, 0, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	began(l, testKey(1), now)
	l.Close()

	fill, err := os.Create(filepath.Join(dir, "fill"))
	if err != nil {
		t.Fatal(err)
	}
	for buf := make([]byte, 64<<10); ; {
		if _, err := fill.Write(buf); err != nil {
			break
		}
	}
	fill.Close()
	// A larger ring than before: the rewrite needs more than the blocks
	// the log frees (as when another process writing to a full /var takes
	// them first).
	l, n, err := OpenDRCLog(path, 2*DefaultDRCLogSlots, time.Minute, now.Add(time.Second))
	if !errors.Is(err, ErrDRCLogUnwritable) || l == nil {
		t.Fatalf("open with the file system full: %v (log %v), want ErrDRCLogUnwritable and a log", err, l)
	}
	defer l.Close()
	if n != 1 || !began(l, testKey(1), now.Add(2*time.Second)) {
		t.Errorf("with the file system full: loaded %d calls, want 1, known to begin", n)
	}
	if began(l, testKey(2), now.Add(2*time.Second)) {
		t.Error("a new call is reported as begun by the earlier run")
	}

	// A new log on the full file system.
	l2, _, err := OpenDRCLog(filepath.Join(dir, "other.log"), 0, time.Minute, now)
	if !errors.Is(err, ErrDRCLogUnwritable) || l2 == nil {
		t.Fatalf("open of a new log with the file system full: %v, want ErrDRCLogUnwritable and a log", err)
	}
	began(l2, testKey(3), now)
	l2.Close()
}
