package groupcommit

import (
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestSyncerCoalesces: while one sync runs, N callers queue and are all
// covered by exactly one more sync.
func TestSyncerCoalesces(t *testing.T) {
	var s Syncer
	var runs atomic.Int32
	release := make(chan struct{})
	run := func(bool) error {
		if runs.Add(1) == 1 {
			<-release
		}
		return nil
	}
	first := make(chan error)
	go func() { first <- s.Do(0, true, run) }()
	for runs.Load() == 0 {
		time.Sleep(time.Millisecond)
	}
	const n = 32
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for range n {
		wg.Go(func() { errs <- s.Do(0, true, run) })
	}
	for {
		s.mu.Lock()
		w := s.waiters
		s.mu.Unlock()
		if w == n {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	if got := runs.Load(); got != 2 {
		t.Fatalf("%d syncs for %d callers, want 2", got, n+1)
	}
}

// TestSyncerStartsAfterCaller: a caller arriving while a sync runs is not
// covered by it (its change may have missed that sync).
func TestSyncerStartsAfterCaller(t *testing.T) {
	var s Syncer
	var runs atomic.Int32
	started := make(chan struct{})
	release := make(chan struct{})
	run := func(bool) error {
		if runs.Add(1) == 1 {
			close(started)
			<-release
		}
		return nil
	}
	go s.Do(0, true, run)
	<-started
	done := make(chan struct{})
	go func() { s.Do(0, true, run); close(done) }()
	for {
		s.mu.Lock()
		w := s.waiters
		s.mu.Unlock()
		if w == 1 {
			break
		}
		time.Sleep(time.Millisecond)
	}
	close(release)
	<-done
	if runs.Load() != 2 {
		t.Fatalf("runs = %d, want 2", runs.Load())
	}
}

// TestSyncerErrorAndFdatasync: a failed sync reaches its callers; a
// DATA_SYNC-only batch uses fdatasync, a mixed one fsync.
func TestSyncerErrorAndFdatasync(t *testing.T) {
	var s Syncer
	boom := errors.New("boom")
	if err := s.Do(0, true, func(bool) error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("err = %v", err)
	}
	if err := s.Do(0, true, func(bool) error { return nil }); err != nil {
		t.Fatalf("next sync after failure: %v", err)
	}
	var gotFull bool
	s.Do(0, false, func(full bool) error { gotFull = full; return nil })
	if gotFull {
		t.Fatal("data-only sync ran fsync")
	}
	s.Do(time.Millisecond, true, func(full bool) error { gotFull = full; return nil })
	if !gotFull {
		t.Fatal("full sync ran fdatasync")
	}
}
