package nfsd

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/rpc"
)

// fakeClock is an injectable clock for the cache.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func countOf(t *testing.T, reply []byte, xid uint32) uint32 {
	t.Helper()
	body := successBody(t, reply, xid)
	if len(body) != 4 {
		t.Fatalf("count reply body %x", body)
	}
	return binary.BigEndian.Uint32(body)
}

func TestDRCReplaysFinishedCall(t *testing.T) {
	p := newTestProg()
	s := newServer(p)
	addr := startTCP(t, s)
	tc := dial(t, addr)
	call := testCall(77, procCount, opaqueArg([]byte("mkdir x")))
	first := tc.call(call)
	second := tc.call(call)
	if !bytes.Equal(first, second) {
		t.Fatalf("replay differs:\n%v\n%v", words(first), words(second))
	}
	// A retransmission after a reconnect comes from another port.
	other := dial(t, addr)
	if third := other.call(call); !bytes.Equal(first, third) {
		t.Fatalf("replay on new connection differs: %v", words(third))
	}
	if n := p.counts.Load(); n != 1 {
		t.Fatalf("handler ran %d times, want 1", n)
	}
	if st := s.Stats(); st.DRCHits != 2 || st.DRCEntries != 1 {
		t.Errorf("DRCHits %d DRCEntries %d, want 2 and 1", st.DRCHits, st.DRCEntries)
	}

	// Same xid, different arguments: another call, not a hit.
	if n := countOf(t, tc.call(testCall(77, procCount, opaqueArg([]byte("mkdir y")))), 77); n != 2 {
		t.Errorf("different args: count %d, want 2", n)
	}
	// Same xid and arguments, other version or procedure: not a hit.
	if n := countOf(t, tc.call(callMsg(77, testProgNum, 2, procCount, rpc.OpaqueAuth{}, opaqueArg([]byte("mkdir x")))), 77); n != 3 {
		t.Errorf("other version: count %d, want 3", n)
	}
	// Idempotent procedures are never cached.
	echo := testCall(78, procEcho, opaqueArg([]byte("e")))
	tc.call(echo)
	tc.call(echo)
	if st := s.Stats(); st.DRCHits != 2 || st.DRCEntries != 3 {
		t.Errorf("DRCHits %d DRCEntries %d, want 2 and 3", st.DRCHits, st.DRCEntries)
	}
}

func TestDRCDropsDuplicateInProgress(t *testing.T) {
	p := newTestProg()
	s := newServer(p)
	addr := startTCP(t, s)
	tc := dial(t, addr)
	call := testCall(5, procBlock, nil)
	tc.send(call)
	<-p.started
	// The duplicate arrives on another connection while the first runs.
	dup := dial(t, addr)
	dup.send(call)
	waitFor(t, "the duplicate to be dropped", func() bool { return s.Stats().DRCInProgressDrops == 1 })
	close(p.release)
	want := countOf(t, tc.recv(), 5)
	// The duplicate got no reply: the next reply on its connection is for
	// the next call.
	if xid := replyXID(t, dup.call(testCall(6, procNull, nil))); xid != 6 {
		t.Fatalf("duplicate was answered (xid %d)", xid)
	}
	// Once done, a retransmission gets the cached reply.
	if got := countOf(t, dup.call(call), 5); got != want || p.counts.Load() != 1 {
		t.Fatalf("replay count %d (runs %d), want %d and 1 run", got, p.counts.Load(), want)
	}
}

func TestDRCExpiresWithClock(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	p := newTestProg()
	s := &Server{Clock: clock.Now, DRCTTL: time.Minute}
	s.Register(p)
	tc := dial(t, startTCP(t, s))
	call := testCall(9, procCount, opaqueArg(nil))
	tc.call(call)
	clock.Advance(59 * time.Second)
	tc.call(call)
	if n := p.counts.Load(); n != 1 {
		t.Fatalf("runs %d before TTL, want 1", n)
	}
	clock.Advance(2 * time.Second)
	if n := countOf(t, tc.call(call), 9); n != 2 {
		t.Fatalf("after TTL count %d, want 2 (entry must expire)", n)
	}
}

func TestDRCDroppedCallNotCached(t *testing.T) {
	d := newDRC(10, 1<<20, time.Minute, time.Now)
	k := drcKey{addr: netip.MustParseAddr("127.0.0.1"), xid: 1}
	e, _, st := d.begin(k)
	if st != drcNew {
		t.Fatalf("state %v", st)
	}
	d.forget(e)
	if _, _, st := d.begin(k); st != drcNew {
		t.Fatalf("after forget: state %v, want new", st)
	}
}

func TestDRCBounds(t *testing.T) {
	key := func(i int) drcKey {
		return drcKey{addr: netip.MustParseAddr("127.0.0.1"), xid: uint32(i), proc: 1}
	}
	t.Run("Entries", func(t *testing.T) {
		d := newDRC(3, 1<<20, time.Minute, time.Now)
		for i := range 10 {
			e, _, st := d.begin(key(i))
			if st != drcNew {
				t.Fatalf("%d: state %v", i, st)
			}
			d.finish(e, make([]byte, 24), false)
			if n, _ := d.size(); n > 3 {
				t.Fatalf("%d entries, bound 3", n)
			}
		}
		// The newest survive, the oldest were evicted.
		if _, reply, st := d.begin(key(9)); st != drcDone || len(reply) != 24 {
			t.Errorf("newest: state %v", st)
		}
		if _, _, st := d.begin(key(0)); st != drcEvicted {
			t.Errorf("oldest: state %v, want evicted", st)
		}
	})
	t.Run("Bytes", func(t *testing.T) {
		const max = 4 * (drcEntryOverhead + 1000)
		d := newDRC(1000, max, time.Minute, time.Now)
		for i := range 20 {
			e, _, _ := d.begin(key(i))
			d.finish(e, make([]byte, 1000), false)
			if _, b := d.size(); b > max {
				t.Fatalf("%d bytes, bound %d", b, max)
			}
		}
		if n, _ := d.size(); n != 4 {
			t.Errorf("%d entries, want 4", n)
		}
		// A reply bigger than the whole budget is not kept.
		e, _, _ := d.begin(key(100))
		d.finish(e, make([]byte, 2*max), false)
		if _, _, st := d.begin(key(100)); st != drcEvicted {
			t.Errorf("oversized reply cached (state %v), want evicted", st)
		}
		if _, b := d.size(); b > max {
			t.Errorf("%d bytes, bound %d", b, max)
		}
	})
	t.Run("InProgressNotEvicted", func(t *testing.T) {
		d := newDRC(1, 1<<20, time.Minute, time.Now)
		a, _, _ := d.begin(key(1))
		b, _, _ := d.begin(key(2)) // over the bound, but a is running
		if _, _, st := d.begin(key(1)); st != drcInProgress {
			t.Errorf("duplicate of a running call: state %v, want in progress", st)
		}
		d.finish(a, []byte{1, 2, 3, 4}, false)
		if _, reply, st := d.begin(key(1)); st != drcDone || len(reply) != 4 {
			t.Errorf("finished call: state %v, want done", st)
		}
		d.finish(b, []byte{5}, false)
		if n, _ := d.size(); n != 1 {
			t.Errorf("%d entries once none runs, bound 1", n)
		}
		if _, _, st := d.begin(key(1)); st != drcEvicted {
			t.Errorf("older finished call: state %v, want evicted", st)
		}
	})
	t.Run("ReplyIsCopied", func(t *testing.T) {
		d := newDRC(10, 1<<20, time.Minute, time.Now)
		e, _, _ := d.begin(key(1))
		buf := []byte{1, 2, 3, 4}
		d.finish(e, buf, false)
		buf[0] = 9
		_, got, _ := d.begin(key(1))
		got[1] = 9
		_, again, _ := d.begin(key(1))
		if !bytes.Equal(again, []byte{1, 2, 3, 4}) {
			t.Errorf("cached reply changed: %v", again)
		}
	})
}

// TestDRCEvictedKeys: an entry evicted for room leaves its key for the
// TTL, so that its retransmission is told apart from a new call (once);
// an entry that expired, or was forgotten, leaves nothing; the keys are
// bounded.
func TestDRCEvictedKeys(t *testing.T) {
	key := func(i int) drcKey {
		return drcKey{addr: netip.MustParseAddr("10.1.2.3"), xid: uint32(i), proc: 14, sum: 7, n: 40}
	}
	clk := &fakeClock{now: time.Unix(1000, 0)}
	d := newDRC(2, 1<<20, time.Minute, clk.Now)
	d.maxGone = 8
	run := func(i int) drcState {
		e, _, st := d.begin(key(i))
		if e != nil {
			d.finish(e, []byte{1}, false)
		}
		return st
	}
	for i := range 4 {
		if st := run(i); st != drcNew {
			t.Fatalf("call %d: state %v, want new", i, st)
		}
	}
	// 0 and 1 were evicted; 2 and 3 are cached.
	if st := run(0); st != drcEvicted {
		t.Errorf("evicted call 0 retransmitted: state %v, want evicted", st)
	}
	if st := run(3); st != drcDone {
		t.Errorf("cached call 3: state %v, want done", st)
	}
	// Another client, or the same client's call with other arguments, is
	// not the evicted call.
	other := key(1)
	other.addr = netip.MustParseAddr("10.1.2.4")
	if _, _, st := d.begin(other); st != drcNew {
		t.Errorf("call 1 from another address: state %v, want new", st)
	}
	other = key(1)
	other.sum = 8
	if _, _, st := d.begin(other); st != drcNew {
		t.Errorf("call 1 with other arguments: state %v, want new", st)
	}
	if st := run(1); st != drcEvicted {
		t.Errorf("evicted call 1 retransmitted: state %v, want evicted", st)
	}
	// An evicted key is older than the TTL: a new call.
	for i := 10; i < 14; i++ {
		run(i)
	}
	clk.Advance(time.Minute)
	if st := run(10); st != drcNew {
		t.Errorf("call evicted over a TTL ago: state %v, want new", st)
	}
	// Forgotten calls sent no reply and may run again as new.
	e, _, _ := d.begin(key(20))
	d.forget(e)
	if st := run(20); st != drcNew {
		t.Errorf("forgotten call: state %v, want new", st)
	}
	// Bounded: at most maxGone keys, the newest kept.
	for i := 100; i < 200; i++ {
		run(i)
		if n := d.evictedKeys(); n > d.maxGone {
			t.Fatalf("%d evicted keys remembered, bound %d", n, d.maxGone)
		}
	}
	if st := run(197); st != drcEvicted {
		t.Errorf("recently evicted call 197: state %v, want evicted", st)
	}
	if st := run(100); st != drcNew {
		t.Errorf("long evicted call 100: state %v, want new (bound)", st)
	}
}

// TestDRCEvictedMarksMayHaveRun: through the transport, a retransmission
// of a call whose entry was evicted for room reaches the Program marked
// Request.MayHaveRun, and is counted; a new call is not marked.
func TestDRCEvictedMarksMayHaveRun(t *testing.T) {
	p := newTestProg()
	s := &Server{DRCSize: 4}
	s.Register(p)
	addr := startTCP(t, s)
	tc := dial(t, addr)
	first := testCall(0x100, procCount, opaqueArg([]byte("rename")))
	if n := countOf(t, tc.call(first), 0x100); n != 1 {
		t.Fatalf("first run: count %d", n)
	}
	for i := range 8 {
		tc.call(testCall(0x200+uint32(i), procCount, opaqueArg([]byte("other"))))
	}
	if p.mayHaveRun.Load() != 0 {
		t.Fatalf("%d calls marked MayHaveRun before any retransmission", p.mayHaveRun.Load())
	}
	tc.call(first)
	if got := p.mayHaveRun.Load(); got != 1 {
		t.Errorf("retransmission of an evicted call: %d calls marked MayHaveRun, want 1", got)
	}
	if st := s.Stats(); st.DRCEvictedRetransmissions != 1 || st.DRCEvictedKeys == 0 {
		t.Errorf("stats: %d evicted retransmissions, %d evicted keys; want 1 and some", st.DRCEvictedRetransmissions, st.DRCEvictedKeys)
	}
	// Now cached again: a further duplicate is answered from the cache.
	hits := s.Stats().DRCHits
	tc.call(first)
	if s.Stats().DRCHits != hits+1 || p.mayHaveRun.Load() != 1 {
		t.Errorf("second retransmission: %d cache hits (want %d), %d marked", s.Stats().DRCHits, hits+1, p.mayHaveRun.Load())
	}
	tc.call(testCall(0x300, procCount, opaqueArg([]byte("rename"))))
	if p.mayHaveRun.Load() != 1 {
		t.Errorf("a new call was marked MayHaveRun")
	}
}

// TestDRCFairEviction: eviction takes from the client holding more than
// its share of the cache, so a host flooding the cache with calls evicts
// its own entries, not another client's, while one client alone may fill
// the whole cache.
func TestDRCFairEviction(t *testing.T) {
	key := func(addr string, i int) drcKey {
		return drcKey{addr: netip.MustParseAddr(addr), xid: uint32(i), proc: 14}
	}
	run := func(d *drc, k drcKey) drcState {
		e, _, st := d.begin(k)
		if e != nil {
			d.finish(e, make([]byte, 8), false)
		}
		return st
	}
	t.Run("FloodEvictsItsOwn", func(t *testing.T) {
		d := newDRC(100, 1<<20, time.Minute, time.Now)
		for i := range 10 {
			run(d, key("10.1.2.11", i))
		}
		for i := range 1000 {
			run(d, key("10.1.2.99", i))
			if n, _ := d.size(); n > 100 {
				t.Fatalf("%d entries, bound 100", n)
			}
		}
		for i := range 10 {
			if st := run(d, key("10.1.2.11", i)); st != drcDone {
				t.Errorf("the other client's call %d after the flood: state %v, want done", i, st)
			}
		}
		if st := run(d, key("10.1.2.99", 0)); st != drcEvicted {
			t.Errorf("the flood's oldest call: state %v, want evicted", st)
		}
	})
	t.Run("HeavyClientKeepsItsShare", func(t *testing.T) {
		d := newDRC(100, 1<<20, time.Minute, time.Now)
		for i := range 80 {
			run(d, key("10.1.2.11", i))
		}
		for i := range 1000 {
			run(d, key("10.1.2.99", i))
		}
		d.mu.Lock()
		kept := d.mu.clients[netip.MustParseAddr("10.1.2.11")].n
		d.mu.Unlock()
		if kept < 50 {
			t.Errorf("the first client kept %d entries after the flood, want at least its share, 50", kept)
		}
		// Its newest entries are the ones kept.
		if st := run(d, key("10.1.2.11", 79)); st != drcDone {
			t.Errorf("the first client's newest call: state %v, want done", st)
		}
	})
	t.Run("OneClientFillsTheCache", func(t *testing.T) {
		d := newDRC(100, 1<<20, time.Minute, time.Now)
		run(d, key("10.1.2.11", 0))
		for i := range 300 {
			run(d, key("10.1.2.99", i))
		}
		// The other client's entry was within its share: kept; the
		// flood's entries fill the rest.
		if n, _ := d.size(); n != 100 || run(d, key("10.1.2.11", 0)) != drcDone {
			t.Errorf("%d entries; want 100 with the other client's kept", n)
		}
	})
}

// TestDRCFloodKeepsOtherClientsReplies: through the transport, a host
// sending many non-idempotent calls does not evict another host's reply,
// whose late retransmission is answered from the cache instead of running
// again.
func TestDRCFloodKeepsOtherClientsReplies(t *testing.T) {
	p := newTestProg()
	s := &Server{DRCSize: 16}
	s.Register(p)
	addr := startTCP(t, s)
	client := dialFrom(t, "127.0.0.3", addr)
	rename := testCall(0x100, procCount, opaqueArg([]byte("rename")))
	first := client.call(rename)
	flood := dialFrom(t, "127.0.0.2", addr)
	for i := range 200 {
		flood.call(testCall(0x1000+uint32(i), procCount, opaqueArg([]byte("junk"))))
	}
	if again := client.call(rename); !bytes.Equal(again, first) {
		t.Errorf("retransmission after the flood: %v, want the cached reply %v", words(again), words(first))
	}
	if st := s.Stats(); p.counts.Load() != 201 || p.mayHaveRun.Load() != 0 || st.DRCHits != 1 {
		t.Errorf("runs %d, marked MayHaveRun %d, cache hits %d; want 201, 0, 1", p.counts.Load(), p.mayHaveRun.Load(), st.DRCHits)
	}
}

func TestDRCKeyIgnoresPort(t *testing.T) {
	p := newTestProg()
	s := newServer(p)
	addr := startTCP(t, s)
	call := testCall(1234, procCount, opaqueArg([]byte("rename")))
	var replies [][]byte
	for range 3 {
		tc := dial(t, addr)
		replies = append(replies, tc.call(call))
		tc.c.Close()
	}
	for _, r := range replies[1:] {
		if !bytes.Equal(r, replies[0]) {
			t.Fatalf("replies differ: %v vs %v", words(r), words(replies[0]))
		}
	}
	if n := p.counts.Load(); n != 1 {
		t.Errorf("ran %d times", n)
	}
}

// TestDRCRetransmitAfterReconnect plays the Linux client's recovery: the
// connection breaks while a non-idempotent call runs, the client reconnects
// and retransmits (dropped: still in progress), and retransmits again once
// the call is done (answered from the cache, not run again).
func TestDRCRetransmitAfterReconnect(t *testing.T) {
	p := newTestProg()
	s := newServer(p)
	addr := startTCP(t, s)
	call := testCall(0x77, procBlock, nil)
	first := dial(t, addr)
	first.send(call)
	<-p.started
	first.c.Close()

	second := dial(t, addr)
	second.send(call)
	waitFor(t, "the retransmission to be dropped", func() bool { return s.Stats().DRCInProgressDrops == 1 })
	close(p.release)
	// The original's reply is cached once its (broken) connection is done
	// with it.
	waitFor(t, "the original to finish", func() bool { return s.Stats().InFlight == 0 })
	if n := countOf(t, second.call(call), 0x77); n != 1 || p.counts.Load() != 1 {
		t.Fatalf("replayed count %d, runs %d; want 1 and 1", n, p.counts.Load())
	}
}

// BenchmarkDRC runs non-idempotent calls through the cache at its bound,
// so every call evicts one: from one client, from 64 clients in turn, and
// replays of a cached reply.
func BenchmarkDRC(b *testing.B) {
	key := func(client, i int) drcKey {
		return drcKey{addr: netip.AddrFrom4([4]byte{10, 1, byte(client >> 8), byte(client)}), xid: uint32(i), proc: 14, sum: uint32(i) * 7, n: 120}
	}
	reply := make([]byte, 160)
	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("Clients%d", clients), func(b *testing.B) {
			d := newDRC(DefaultDRCSize, DefaultDRCMaxBytes, DefaultDRCTTL, time.Now)
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				e, _, _ := d.begin(key(i%clients, i))
				d.finish(e, reply, false)
			}
		})
	}
	b.Run("Hit", func(b *testing.B) {
		d := newDRC(DefaultDRCSize, DefaultDRCMaxBytes, DefaultDRCTTL, time.Now)
		for i := range DefaultDRCSize {
			e, _, _ := d.begin(key(i%64, i))
			d.finish(e, reply, false)
		}
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			if _, _, st := d.begin(key(i%64, i%DefaultDRCSize)); st != drcDone {
				b.Fatalf("state %v", st)
			}
		}
	})
}
