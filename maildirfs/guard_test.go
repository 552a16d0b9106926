package maildirfs_test

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// TestSetAttrGuardAtomic: SETATTRs that all carry the same ctime guard
// race; the first to change the file changes its ctime, so every other
// must fail with ErrNotSync and change nothing (RFC 1813 §3.3.2). A guard
// checked apart from the change let several through.
func TestSetAttrGuardAtomic(t *testing.T) {
	s := mdtest.New(t)
	h := create(t, s, s.Root(), root, "f", []byte("0123456789"))
	for round := range 20 {
		// A ctime is only as fine as the kernel's clock tick (coarse
		// before Linux 6.13's multigrain timestamps): wait past the
		// last change's tick, so that the winner's change always gives
		// a ctime the guard no longer matches.
		time.Sleep(20 * time.Millisecond)
		a := getattr(t, s, h)
		const racers = 8
		var (
			wg    sync.WaitGroup
			mu    sync.Mutex
			won   []uint32
			other []error
		)
		for i := range racers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mode := uint32(0o600 + i)
				_, err := s.SetAttr(h, root, maildirfs.SetAttr{Mode: &mode}, a.Ctime.Equal)
				mu.Lock()
				defer mu.Unlock()
				switch {
				case err == nil:
					won = append(won, mode)
				case !errors.Is(err, maildirfs.ErrNotSync):
					other = append(other, err)
				}
			}()
		}
		wg.Wait()
		if len(other) > 0 {
			t.Fatalf("round %d: %v", round, other)
		}
		if len(won) != 1 {
			t.Fatalf("round %d: %d SETATTRs with the same guard succeeded (modes %o), want 1", round, len(won), won)
		}
		if got := getattr(t, s, h).Mode; got != won[0] {
			t.Fatalf("round %d: mode %o, want the winner's %o", round, got, won[0])
		}
	}
}
