package nfsd

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// drcKey identifies a call for the duplicate request cache. The client's
// port is left out: a Linux client retransmits on a new connection after a
// reconnect, from a new port (reference §1.6). The procedure and a checksum
// and length of the arguments guard against an XID reused by another
// process on the same host, or by the same client after a reboot.
type drcKey struct {
	addr             netip.Addr
	xid              uint32
	prog, vers, proc uint32
	sum              uint32 // CRC-32C of the argument bytes
	n                uint32 // length of the argument bytes
}

type drcState int

const (
	drcNew        drcState = iota // not seen: run it, then finish or forget
	drcInProgress                 // the original is running: drop this one
	drcDone                       // resend the cached reply
)

// drcEntryOverhead is what an entry costs beyond its reply bytes, counted
// against the byte bound so that many tiny replies are bounded too.
const drcEntryOverhead = 128

// drcEntry is one cached call. elem is nil once the entry has left the cache.
type drcEntry struct {
	key   drcKey
	reply []byte // nil while in progress
	at    time.Time
	elem  *list.Element
}

// drc is the duplicate request cache for non-idempotent calls. Entries are
// kept in a list ordered by their last state change, oldest first, so that
// expiry (lazy, on each access, using the injected clock) and eviction
// (when over the entry or byte bound) both take from the front. There is no
// background goroutine.
type drc struct {
	maxEntries int
	maxBytes   int
	ttl        time.Duration
	clock      func() time.Time

	mu struct {
		sync.Mutex
		m     map[drcKey]*drcEntry
		order list.List // of *drcEntry, oldest first
		bytes int       // reply bytes plus drcEntryOverhead per entry
	}
}

func newDRC(maxEntries, maxBytes int, ttl time.Duration, clock func() time.Time) *drc {
	d := &drc{maxEntries: maxEntries, maxBytes: maxBytes, ttl: ttl, clock: clock}
	d.mu.m = make(map[drcKey]*drcEntry)
	return d
}

// begin looks k up. For a new call it inserts an in-progress entry, which
// the caller must later finish or forget. For a done call it returns a copy
// of the reply (the original may be evicted at any time).
func (d *drc) begin(k drcKey) (*drcEntry, []byte, drcState) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.clock()
	d.expireLocked(now)
	if e, ok := d.mu.m[k]; ok {
		if e.reply == nil {
			return nil, nil, drcInProgress
		}
		return nil, append([]byte(nil), e.reply...), drcDone
	}
	e := &drcEntry{key: k, at: now}
	e.elem = d.mu.order.PushBack(e)
	d.mu.m[k] = e
	d.mu.bytes += drcEntryOverhead
	d.evictLocked()
	return e, nil, drcNew
}

// finish stores the reply of an entry from begin (copied). If the entry was
// evicted or expired meanwhile, the reply is not cached.
func (d *drc) finish(e *drcEntry, reply []byte) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.elem == nil {
		return
	}
	e.reply = append(make([]byte, 0, len(reply)), reply...)
	e.at = d.clock()
	d.mu.bytes += len(e.reply)
	d.mu.order.MoveToBack(e.elem)
	d.evictLocked()
}

// forget removes an entry from begin whose call sent no reply, so a
// retransmission runs again.
func (d *drc) forget(e *drcEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.elem != nil {
		d.removeLocked(e)
	}
}

// size returns the number of entries and the bytes they account for.
func (d *drc) size() (entries, bytes int) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.mu.m), d.mu.bytes
}

func (d *drc) removeLocked(e *drcEntry) {
	d.mu.order.Remove(e.elem)
	e.elem = nil
	delete(d.mu.m, e.key)
	d.mu.bytes -= drcEntryOverhead + len(e.reply)
}

// expireLocked drops entries older than the TTL. An in-progress entry
// expires too: a call running longer than the TTL is not protected.
func (d *drc) expireLocked(now time.Time) {
	for {
		f := d.mu.order.Front()
		if f == nil {
			return
		}
		e := f.Value.(*drcEntry)
		if now.Sub(e.at) < d.ttl {
			return
		}
		d.removeLocked(e)
	}
}

// evictLocked drops the oldest entries until both bounds hold, but never
// the newest entry (the one just added or finished).
func (d *drc) evictLocked() {
	for d.mu.order.Len() > 1 && (len(d.mu.m) > d.maxEntries || d.mu.bytes > d.maxBytes) {
		d.removeLocked(d.mu.order.Front().Value.(*drcEntry))
	}
	// A single reply larger than the whole byte budget is not kept.
	if d.mu.bytes > d.maxBytes {
		if b := d.mu.order.Back(); b != nil {
			d.removeLocked(b.Value.(*drcEntry))
		}
	}
}
