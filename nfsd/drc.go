package nfsd

import (
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
	addr             netip.Addr // unmapped, without a zone
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

// drcEntry is one cached call. client is nil once the entry has left the
// cache.
type drcEntry struct {
	key   drcKey
	reply []byte // nil while in progress
	at    time.Time
	// refused: the call was answered with an error that left nothing
	// done (Request.Refused); its key is not kept once it is evicted.
	refused bool

	// While in the cache: the links of the cache's order and of its
	// client's entries (both oldest first), and the client.
	prev, next   *drcEntry
	cprev, cnext *drcEntry
	client       *drcClient
}

// drcClient is one client address's entries, in the cache's order.
type drcClient struct {
	n          int
	head, tail *drcEntry // linked by cprev, cnext
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
// expiry (lazy, on each access, using the injected clock) takes from the
// front. There is no background goroutine.
//
// Eviction, when over the entry or byte bound, is fair between client
// addresses: it takes the oldest finished entry of a client holding more
// than its share of the entries (the bound over the number of clients with
// entries), the client that caused the overflow first. One client alone
// has the whole cache, but a host sending junk non-idempotent calls (they
// enter the cache before their handles are checked) evicts its own entries,
// not those of the others, and cannot flush another client's RENAME reply
// before its retransmission.
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
		m          map[drcKey]*drcEntry
		head, tail *drcEntry // the order, oldest first, linked by prev, next
		clients    map[netip.Addr]*drcClient
		bytes      int // reply bytes plus drcEntryOverhead per entry
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
	d.mu.clients = make(map[netip.Addr]*drcClient)
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
	d.insertLocked(e)
	d.evictLocked(e)
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

// rememberLocked keeps the key of e, evicted for room, in gone, unless
// the call was refused: run again, it gets its refusal again (or, if what
// refused it has gone since, runs as any new call), where marked
// MayHaveRun it could be answered as done.
func (d *drc) rememberLocked(e *drcEntry) {
	if d.maxGone <= 0 || e.refused {
		return
	}
	if d.mu.gone[0] == nil || len(d.mu.gone[0]) >= max(d.maxGone/2, 1) {
		d.mu.gone[1] = d.mu.gone[0]
		d.mu.gone[0] = make(map[uint64]int64)
	}
	d.mu.gone[0][d.digest(e.key)] = e.at.UnixNano()
}

// finish stores the reply of an entry from begin (copied), and whether
// the call was refused (Request.Refused). If the entry was evicted or
// expired meanwhile, the reply is not cached.
func (d *drc) finish(e *drcEntry, reply []byte, refused bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.client == nil {
		return
	}
	e.refused = refused
	e.reply = append(make([]byte, 0, len(reply)), reply...)
	e.at = d.clock()
	d.mu.bytes += len(e.reply)
	d.unlinkLocked(e)
	d.linkLocked(e)
	d.evictLocked(e)
}

// forget removes an entry from begin whose call sent no reply, so a
// retransmission runs again.
func (d *drc) forget(e *drcEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if e.client != nil {
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

// insertLocked adds e, new, as the newest entry.
func (d *drc) insertLocked(e *drcEntry) {
	c := d.mu.clients[e.key.addr]
	if c == nil {
		c = &drcClient{}
		d.mu.clients[e.key.addr] = c
	}
	c.n++
	e.client = c
	d.mu.m[e.key] = e
	d.mu.bytes += drcEntryOverhead
	d.linkLocked(e)
}

// linkLocked appends e to the order and to its client's entries.
func (d *drc) linkLocked(e *drcEntry) {
	e.prev, e.next = d.mu.tail, nil
	if d.mu.tail != nil {
		d.mu.tail.next = e
	} else {
		d.mu.head = e
	}
	d.mu.tail = e
	c := e.client
	e.cprev, e.cnext = c.tail, nil
	if c.tail != nil {
		c.tail.cnext = e
	} else {
		c.head = e
	}
	c.tail = e
}

// unlinkLocked takes e out of the order and out of its client's entries.
func (d *drc) unlinkLocked(e *drcEntry) {
	if e.prev != nil {
		e.prev.next = e.next
	} else {
		d.mu.head = e.next
	}
	if e.next != nil {
		e.next.prev = e.prev
	} else {
		d.mu.tail = e.prev
	}
	c := e.client
	if e.cprev != nil {
		e.cprev.cnext = e.cnext
	} else {
		c.head = e.cnext
	}
	if e.cnext != nil {
		e.cnext.cprev = e.cprev
	} else {
		c.tail = e.cprev
	}
	e.prev, e.next, e.cprev, e.cnext = nil, nil, nil, nil
}

func (d *drc) removeLocked(e *drcEntry) {
	d.unlinkLocked(e)
	if e.client.n--; e.client.n == 0 {
		delete(d.mu.clients, e.key.addr)
	}
	e.client = nil
	delete(d.mu.m, e.key)
	d.mu.bytes -= drcEntryOverhead + len(e.reply)
}

// expireLocked drops entries older than the TTL. An in-progress entry
// expires too: a call running longer than the TTL is not protected.
func (d *drc) expireLocked(now time.Time) {
	for e := d.mu.head; e != nil && now.Sub(e.at) >= d.ttl; e = d.mu.head {
		d.removeLocked(e)
	}
}

// evictLocked evicts finished entries (victimLocked) until both bounds
// hold, but never newest, the entry just added or finished. Entries in
// progress are passed over, as knfsd does: evicted, a call still running
// would run a second time beside itself when its duplicate came. They are
// at most one per worker (Server.Workers), so the bounds are exceeded by
// that many small entries at most.
func (d *drc) evictLocked(newest *drcEntry) {
	for len(d.mu.m) > d.maxEntries || d.mu.bytes > d.maxBytes {
		e := d.victimLocked(newest)
		if e == nil {
			break
		}
		d.removeLocked(e)
		d.rememberLocked(e)
	}
	// A single reply larger than the whole byte budget is not kept.
	if d.mu.bytes > d.maxBytes && newest.client != nil {
		d.removeLocked(newest)
		d.rememberLocked(newest)
	}
}

// victimLocked returns the finished entry to evict for room: the oldest
// one of newest's client if that client holds more than its share of the
// entry bound, else the oldest one of any client over its share, else the
// oldest one (over the byte bound, no client need be over its share of
// entries). nil: none but newest is finished.
func (d *drc) victimLocked(newest *drcEntry) *drcEntry {
	k := len(d.mu.clients)
	over := func(c *drcClient) bool { return k == 1 || c.n*k > d.maxEntries }
	if c := newest.client; over(c) {
		for e := c.head; e != nil; e = e.cnext {
			if e.reply != nil && e != newest {
				return e
			}
		}
	}
	var oldest *drcEntry
	for e := d.mu.head; e != nil; e = e.next {
		if e.reply == nil || e == newest {
			continue
		}
		if over(e.client) {
			return e
		}
		if oldest == nil {
			oldest = e
		}
	}
	return oldest
}
