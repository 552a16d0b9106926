// Package groupcommit coalesces concurrent syncs (group commit): the store
// uses one Syncer per open file or directory, and the delivery floor
// benchmark uses one for a whole file system or log.
package groupcommit

import (
	"sync"
	"time"
)

// Syncer coalesces concurrent syncs of one object. A caller needs a sync
// that starts after its change; it waits for the next sync to start and
// finish, and whoever finds no sync running leads the next one. While one
// sync runs, every caller that arrives queues for the next, which then
// covers all of them with one run. The zero value is ready to use.
type Syncer struct {
	mu       sync.Mutex
	cond     *sync.Cond
	started  uint64 // syncs started (the running one included); guarded by mu
	done     uint64 // highest completed sync; guarded by mu
	running  bool   // a leader exists for sync started+1 or is running it; guarded by mu
	nextFull bool   // some waiter of the next sync needs fsync, not fdatasync; guarded by mu
	failGen  uint64 // last failed sync; guarded by mu
	failErr  error  // its error; guarded by mu
	waiters  int    // callers blocked waiting for a sync; guarded by mu
}

// Do makes sure a sync that started after the call happens: run(full),
// where full is true if any caller it covers asked for a full sync (fsync
// rather than fdatasync). window > 0 lets a leader wait to gather more
// callers. It returns the error of the run that covered the caller.
func (s *Syncer) Do(window time.Duration, full bool, run func(full bool) error) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cond == nil {
		s.cond = sync.NewCond(&s.mu)
	}
	// While a sync runs, started counts it, so it does not cover us; if a
	// leader is still gathering, started+1 is the one it will run.
	target := s.started + 1
	if full {
		s.nextFull = true
	}
	for s.done < target {
		if s.running {
			s.waiters++
			s.cond.Wait()
			s.waiters--
			if full && s.started < target {
				s.nextFull = true
			}
			continue
		}
		s.running = true
		if window > 0 {
			s.mu.Unlock()
			time.Sleep(window)
			s.mu.Lock()
		}
		s.started++
		gen := s.started
		doFull := s.nextFull
		s.nextFull = false
		s.mu.Unlock()
		err := run(doFull)
		s.mu.Lock()
		s.running = false
		s.done = gen
		if err != nil {
			s.failGen, s.failErr = gen, err
		}
		s.cond.Broadcast()
	}
	if s.failGen >= target {
		return s.failErr
	}
	return nil
}
