package nfsd

import (
	"net/netip"
	"sync"
	"time"
)

// rateLogEvery is how often rateLog lets a line through per address.
const rateLogEvery = time.Minute

// maxRateLogKeys bounds the keys a rateLog remembers.
const maxRateLogKeys = 4096

// rateLog lets one log line through per client address and rateLogEvery,
// and counts the events it held back, for the next line. The zero value is
// ready to use; it is safe for concurrent use.
type rateLog struct {
	mu   sync.Mutex
	last map[netip.Addr]rateEntry
}

type rateEntry struct {
	at   time.Time // the last line
	held int       // events since, not logged
}

// allow reports whether an event of k at now is due for a log line, and
// how many events of k were held back since the previous line.
func (l *rateLog) allow(k netip.Addr, now time.Time) (bool, int) {
	l.mu.Lock()
	defer l.mu.Unlock()
	e, ok := l.last[k]
	if ok && now.Sub(e.at) < rateLogEvery && !now.Before(e.at) {
		e.held++
		l.last[k] = e
		return false, 0
	}
	if l.last == nil {
		l.last = make(map[netip.Addr]rateEntry)
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
	l.last[k] = rateEntry{at: now}
	return true, e.held
}
