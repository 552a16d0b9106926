package nfsd

import (
	"sync"
	"time"
)

// rateLogEvery is how often rateLog lets a line through per address.
const rateLogEvery = time.Minute

// maxRateLogKeys bounds the keys a rateLog remembers.
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
		for k2, e2 := range l.last {
			if now.Sub(e2.at) >= rateLogEvery {
				delete(l.last, k2)
			}
		}
		if len(l.last) >= maxRateLogKeys {
			// A flood from many addresses: forget them all rather than
			// grow; at worst an address is logged twice in a minute.
			clear(l.last)
		}
	}
	l.last[k] = rateEntry{at: now, n: 1}
	return true, e.held
}
