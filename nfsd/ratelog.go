package nfsd

import (
	"sync"
	"time"
)

// rateLogEvery is how often rateLog lets a line through per address.
const rateLogEvery = time.Minute

// maxRateLogKeys bounds the keys a rateLog remembers, and so the lines it
// lets through for new keys in a minute.
const maxRateLogKeys = 4096

// rateLog lets one log line (allowN: n lines) through per key (a client
// address, or an address and a kind of event) and rateLogEvery, and
// counts the events it held back, for the next line. Keys must come
// from a bounded set per address (never from text a client chooses), or a
// flood of fresh keys would log every event. The zero value is ready to
// use; it is safe for concurrent use.
type rateLog[K comparable] struct {
	mu   sync.Mutex
	last map[K]rateEntry
	// sweepAt: while the map is full, the time before which no key's
	// minute ends, so that no sweep can make room.
	sweepAt time.Time
}

type rateEntry struct {
	at   time.Time // the first line of the window
	n    int       // lines let through since at
	held int       // events since the last line, not logged
}

// allow reports whether an event of k at now is due for a log line, and
// how many events of k were held back since the previous line.
func (l *rateLog[K]) allow(k K, now time.Time) (bool, int) {
	return l.allowN(k, now, 1)
}

// allowN is allow with up to n lines per key and rateLogEvery, for events
// that come a few at a time in normal operation and are worth a line
// each then.
func (l *rateLog[K]) allowN(k K, now time.Time, n int) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.last[k]
	if ok && now.Sub(e.at) < rateLogEvery && !now.Before(e.at) {
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
		l.last = make(map[K]rateEntry)
	}
	if !ok && len(l.last) >= maxRateLogKeys {
		if now.Before(l.sweepAt) {
			return false, 0
		}
		// Drop the keys whose minute is over; if none is, no sweep can
		// free one before the oldest key's minute ends.
		oldest := now
		for k2, e2 := range l.last {
			if now.Sub(e2.at) >= rateLogEvery || now.Before(e2.at) {
				delete(l.last, k2)
			} else if e2.at.Before(oldest) {
				oldest = e2.at
			}
		}
		if len(l.last) >= maxRateLogKeys {
			// A flood from more addresses in a minute than the map
			// holds (UDP from spoofed sources, say): log none of the
			// newcomers until room is made, rather than grow, or forget
			// the keys and so log every event of the flood. Their
			// events are still in the counters.
			l.sweepAt = oldest.Add(rateLogEvery)
			return false, 0
		}
	}
	l.last[k] = rateEntry{at: now, n: 1}
	return true, e.held
}
