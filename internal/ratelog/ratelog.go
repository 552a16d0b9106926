// Package ratelog keeps a log from flooding: a Limiter lets a line through
// per key (a client address, or an address and a kind of event) and minute,
// and counts the events it held back for the next line, so that a client
// repeating a bad request, or a file read again and again, costs one line
// a minute instead of one per event.
package ratelog

import (
	"sync"
	"time"
)

// Every is the window in which a Limiter lets one line (AllowN: n lines)
// through per key.
const Every = time.Minute

// MaxKeys bounds the keys a Limiter remembers, and so the lines it lets
// through for new keys in a minute.
const MaxKeys = 4096

// Limiter lets one log line (AllowN: n lines) through per key (a client
// address, or an address and a kind of event) and Every, and counts the
// events it held back, for the next line. Keys must come
// from a bounded set per address (never from text a client chooses), or a
// flood of fresh keys would log every event. The zero value is ready to
// use; it is safe for concurrent use.
type Limiter[K comparable] struct {
	mu   sync.Mutex
	last map[K]entry
	// sweepAt: while the map is full, the time before which no key's
	// minute ends, so that no sweep can make room.
	sweepAt time.Time
}

type entry struct {
	at   time.Time // the first line of the window
	n    int       // lines let through since at
	held int       // events since the last line, not logged
}

// Allow reports whether an event of k at now is due for a log line, and
// how many events of k were held back since the previous line.
func (l *Limiter[K]) Allow(k K, now time.Time) (bool, int) {
	return l.AllowN(k, now, 1)
}

// AllowN is Allow with up to n lines per key and Every, for events
// that come a few at a time in normal operation and are worth a line
// each then.
func (l *Limiter[K]) AllowN(k K, now time.Time, n int) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.last[k]
	if ok && now.Sub(e.at) < Every && !now.Before(e.at) {
		if e.n >= n {
			e.held++
			l.last[k] = e
			return false, 0
		}
		held := e.held
		e.n, e.held = e.n+1, 0
		l.last[k] = e
		return true, held
	}
	if l.last == nil {
		l.last = make(map[K]entry)
	}
	if !ok && len(l.last) >= MaxKeys {
		if now.Before(l.sweepAt) {
			return false, 0
		}
		// Drop the keys whose minute is over; if none is, no sweep can
		// free one before the oldest key's minute ends.
		oldest := now
		for k2, e2 := range l.last {
			if now.Sub(e2.at) >= Every || now.Before(e2.at) {
				delete(l.last, k2)
			} else if e2.at.Before(oldest) {
				oldest = e2.at
			}
		}
		if len(l.last) >= MaxKeys {
			// A flood from more addresses in a minute than the map
			// holds (UDP from spoofed sources, say): log none of the
			// newcomers until room is made, rather than grow, or forget
			// the keys and so log every event of the flood. Their
			// events are still in the counters.
			l.sweepAt = oldest.Add(Every)
			return false, 0
		}
	}
	l.last[k] = entry{at: now, n: 1}
	return true, e.held
}
