//go:build linux

package maildirfs

import (
	"os"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestConnectedDuringRename: a directory renamed inside the export while
// connected walks up from below it (a folder rename) is never judged
// outside. A walk that re-resolved "..", "../..", ... from the start at
// each level could skip a level when the depth changed meanwhile and
// climb above the export root.
func TestConnectedDuringRename(t *testing.T) {
	base := t.TempDir()
	export := filepath.Join(base, "export")
	deep := filepath.Join(export, "a", "b", "c", "d", "e")
	low := filepath.Join(deep, "X", "y", "z")
	if err := os.MkdirAll(low, 0o755); err != nil {
		t.Fatal(err)
	}
	f, err := Open(export, Options{StateDir: filepath.Join(base, "state")})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	fd, err := unix.Open(low, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)

	var stop atomic.Bool
	done := make(chan error, 1)
	go func() {
		for !stop.Load() {
			if err := os.Rename(filepath.Join(deep, "X"), filepath.Join(export, "X")); err != nil {
				done <- err
				return
			}
			if err := os.Rename(filepath.Join(export, "X"), filepath.Join(deep, "X")); err != nil {
				done <- err
				return
			}
		}
		done <- nil
	}()
	deadline := time.Now().Add(2 * time.Second)
	n := 0
	for ; time.Now().Before(deadline); n++ {
		if err := f.connected(fd); err != nil {
			t.Errorf("walk %d: a directory inside the export judged outside: %v", n, err)
			break
		}
	}
	stop.Store(true)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("%d walks beside the renames", n)
}

// TestWseqWrap: the event half of a directory's change counter wraps
// without leaving a change counted in progress for good, so a lone
// change still sends its before attributes after the wrap.
func TestWseqWrap(t *testing.T) {
	var w atomic.Uint64
	w.Store(1<<32 - 3)
	for i := range 4 {
		w0 := w.Load()
		v := wAdd(&w, wBegin)
		e := wAdd(&w, wEnd)
		if !alone(v, e) || !quiet(w0, v) {
			t.Errorf("change %d (counter %#x -> %#x -> %#x): alone %v, quiet %v; want both", i, w0, v, e, alone(v, e), quiet(w0, v))
		}
		if w.Load()>>32 != 0 {
			t.Fatalf("change %d: %d changes left in progress (counter %#x)", i, w.Load()>>32, w.Load())
		}
	}
}
