package nfsd

import (
	"container/list"
	"encoding/binary"
	"hash/maphash"
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
	// drcEvicted: this run ran the call (or began it) but its entry left
	// the cache for room; run it again, marked Request.MayHaveRun.
	drcEvicted
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

// DefaultDRCEvictedKeys bounds how many evicted calls the cache remembers
// by their key alone (drc.gone): about 35 bytes each in Go maps, 9 MiB at
// most (measured: 6.8 MiB for 200,000 keys), reached only when calls
// arrive faster than the cache's entries last. At 4,500 non-idempotent
// calls a second (32 Maildir deliverers) that is 30 to 60 s of calls
// beyond the cache's own; each eviction costs a hash and a map insert
// (about 0.2 µs, under the cache's lock).
const DefaultDRCEvictedKeys = 1 << 18

// drc is the duplicate request cache for non-idempotent calls. Entries are
// kept in a list ordered by their last state change, oldest first, so that
// expiry (lazy, on each access, using the injected clock) and eviction
// (when over the entry or byte bound) both take from the front. There is no
// background goroutine.
//
// The entry bound keeps replies for about a second of a busy server's
// calls, but a Linux client over TCP retransmits after it reconnects,
// which can be seconds later (its reconnect delay backs off), or after
// its major timeout (timeo, 60 s by default), and a RENAME of tmp/x to
// new/x run again is NOENT: a duplicated message. So
// an entry evicted for room leaves its key behind (gone: a 64-bit digest
// and the time, no reply) for up to the TTL, and a retransmission that
// finds only its key is run again marked Request.MayHaveRun, as one
// begun before a restart is: NFS3 answers the error its own effect
// causes as done (nfs3_retry.go).
type drc struct {
	maxEntries int
	maxBytes   int
	ttl        time.Duration
	clock      func() time.Time
	maxGone    int // keys of evicted entries remembered (both generations)
	seed       maphash.Seed

	mu struct {
		sync.Mutex
		m     map[drcKey]*drcEntry
		order list.List // of *drcEntry, oldest first
		bytes int       // reply bytes plus drcEntryOverhead per entry
		// gone holds the digests of entries evicted for room, with the
		// time of their last state change (Unix ns), in two generations:
		// new keys go into gone[0], and when it holds maxGone/2 it
		// becomes gone[1] and the older generation is dropped.
		gone [2]map[uint64]int64
	}
}

func newDRC(maxEntries, maxBytes int, ttl time.Duration, clock func() time.Time) *drc {
	d := &drc{maxEntries: maxEntries, maxBytes: maxBytes, ttl: ttl, clock: clock,
		maxGone: DefaultDRCEvictedKeys, seed: maphash.MakeSeed()}
	d.mu.m = make(map[drcKey]*drcEntry)
	return d
}

// begin looks k up. For a new call it inserts an in-progress entry, which
// the caller must later finish or forget. For a done call it returns a copy
// of the reply (the original may be evicted at any time). A call whose
// entry was evicted for room within the TTL gets an in-progress entry too,
// and drcEvicted.
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
	state := drcNew
	if d.mu.gone[0] != nil {
		h := d.digest(k)
		for _, g := range d.mu.gone {
			if at, ok := g[h]; ok {
				delete(g, h)
				if now.Sub(time.Unix(0, at)) < d.ttl {
					state = drcEvicted
				}
			}
		}
	}
	e := &drcEntry{key: k, at: now}
	e.elem = d.mu.order.PushBack(e)
	d.mu.m[k] = e
	d.mu.bytes += drcEntryOverhead
	d.evictLocked()
	return e, nil, state
}

// digest hashes k for gone; a collision can only mark a call MayHaveRun,
// which NFS3 acts on only when the state is what the call's success
// leaves.
func (d *drc) digest(k drcKey) uint64 {
	var b [16 + 6*4]byte
	a := k.addr.As16()
	copy(b[:16], a[:])
	for i, v := range [...]uint32{k.xid, k.prog, k.vers, k.proc, k.sum, k.n} {
		binary.LittleEndian.PutUint32(b[16+4*i:], v)
	}
	return maphash.Bytes(d.seed, b[:])
}

// rememberLocked keeps the key of e, evicted for room, in gone.
func (d *drc) rememberLocked(e *drcEntry) {
	if d.maxGone <= 0 {
		return
	}
	if d.mu.gone[0] == nil || len(d.mu.gone[0]) >= max(d.maxGone/2, 1) {
		d.mu.gone[1] = d.mu.gone[0]
		d.mu.gone[0] = make(map[uint64]int64)
	}
	d.mu.gone[0][d.digest(e.key)] = e.at.UnixNano()
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

// evictedKeys returns the number of keys of evicted entries remembered.
func (d *drc) evictedKeys() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.mu.gone[0]) + len(d.mu.gone[1])
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

// evictLocked drops the oldest finished entries until both bounds hold,
// but never the newest entry (the one just added or finished). Entries in
// progress are passed over, as knfsd does: evicted, a call still running
// would run a second time beside itself when its duplicate came. They are
// at most one per worker (Server.Workers), so the bounds are exceeded by
// that many small entries at most.
func (d *drc) evictLocked() {
	over := func() bool { return len(d.mu.m) > d.maxEntries || d.mu.bytes > d.maxBytes }
	for el := d.mu.order.Front(); el != nil && el != d.mu.order.Back() && over(); {
		next := el.Next()
		if e := el.Value.(*drcEntry); e.reply != nil {
			d.removeLocked(e)
			d.rememberLocked(e)
		}
		el = next
	}
	// A single reply larger than the whole byte budget is not kept.
	if d.mu.bytes > d.maxBytes {
		if b := d.mu.order.Back(); b != nil {
			e := b.Value.(*drcEntry)
			d.removeLocked(e)
			d.rememberLocked(e)
		}
	}
}
