package nfsd

import (
	"bytes"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/internal/rpc"
)

func testKey(i int) drcKey {
	return drcKey{addr: netip.MustParseAddr("10.1.2.3"), xid: uint32(1000 + i), prog: 100003, vers: 3, proc: 14, sum: uint32(i) * 7919, n: 120}
}

func openLog(t *testing.T, path string, slots int, now time.Time) (*DRCLog, int) {
	t.Helper()
	l, n, err := OpenDRCLog(path, slots, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l, n
}

// TestDRCLogAcrossRestart: a call begun by one run is reported once to the
// next; others are not.
func TestDRCLogAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), DRCLogFile)
	now := time.Unix(1_800_000_000, 0)
	l, n := openLog(t, path, 0, now)
	if n != 0 {
		t.Fatalf("fresh log loaded %d calls", n)
	}
	if began(l, testKey(1), now) || began(l, testKey(2), now) {
		t.Fatal("a fresh log reports a call as begun earlier")
	}
	if err := l.Close(); err != nil {
		t.Fatal(err)
	}
	l, n = openLog(t, path, 0, now.Add(time.Second))
	if n != 2 {
		t.Fatalf("reopened log loaded %d calls, want 2", n)
	}
	if !began(l, testKey(1), now.Add(time.Second)) {
		t.Error("a call begun by the earlier run is not reported")
	}
	if began(l, testKey(1), now.Add(time.Second)) {
		t.Error("the same call is reported twice")
	}
	other := testKey(2)
	other.sum++ // same XID, other arguments
	if began(l, other, now.Add(time.Second)) || began(l, testKey(3), now.Add(time.Second)) {
		t.Error("a call the earlier run did not begin is reported")
	}
}

// TestDRCLogKeptWithoutClose: the records are in the file while the log is
// open (a killed process never closes it).
func TestDRCLogKeptWithoutClose(t *testing.T) {
	path := filepath.Join(t.TempDir(), DRCLogFile)
	now := time.Unix(1_800_000_000, 0)
	l, _ := openLog(t, path, 16, now)
	began(l, testKey(7), now)
	prev := readDRCLog(path, now, time.Minute)
	if _, ok := prev[testKey(7)]; !ok || len(prev) != 1 {
		t.Fatalf("file holds %v, want the one call", prev)
	}
}

// TestDRCLogSecondRestart: calls loaded from an earlier run and not yet
// retransmitted are written back, so a second restart still knows them.
func TestDRCLogSecondRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), DRCLogFile)
	now := time.Unix(1_800_000_000, 0)
	l, _ := openLog(t, path, 0, now)
	began(l, testKey(1), now)
	began(l, testKey(2), now)
	l.Close()
	l, _ = openLog(t, path, 0, now)
	began(l, testKey(1), now) // retransmitted: recorded again by begin
	l.Close()
	l, n := openLog(t, path, 0, now)
	if n != 2 || !began(l, testKey(2), now) || !began(l, testKey(1), now) {
		t.Fatalf("after a second restart: loaded %d, want both calls reported", n)
	}
}

// TestDRCLogTTL: records older than the TTL are not loaded; records from
// the future (a clock stepped back) are.
func TestDRCLogTTL(t *testing.T) {
	path := filepath.Join(t.TempDir(), DRCLogFile)
	now := time.Unix(1_800_000_000, 0)
	l, _ := openLog(t, path, 0, now)
	began(l, testKey(1), now)
	began(l, testKey(2), now.Add(-59*time.Second))
	began(l, testKey(3), now.Add(-61*time.Second))
	began(l, testKey(4), now.Add(time.Hour))
	l.Close()
	l, n := openLog(t, path, 0, now)
	if n != 3 {
		t.Errorf("loaded %d calls, want 3", n)
	}
	if began(l, testKey(3), now) {
		t.Error("a call older than the TTL is reported")
	}
	if !began(l, testKey(2), now) || !began(l, testKey(4), now) {
		t.Error("calls within the TTL are not reported")
	}
	l.Close()

	// Calls never retransmitted are dropped once the youngest is older
	// than the TTL, and begin then takes no lock.
	l, n = openLog(t, path, 0, now)
	if n == 0 {
		t.Fatal("nothing loaded")
	}
	if !l.prevLive.Load() {
		t.Fatal("loaded calls are not looked up")
	}
	began(l, testKey(10), now.Add(59*time.Second))
	if !l.prevLive.Load() {
		t.Error("dropped within the TTL")
	}
	// (testKey(4) may have been recorded an hour ahead of now.)
	began(l, testKey(11), now.Add(time.Hour+time.Minute))
	if l.prevLive.Load() {
		t.Error("the earlier run's calls are still looked up a TTL after the youngest")
	}
	if began(l, testKey(1), now.Add(time.Hour+time.Minute)) {
		t.Error("a call is reported after the earlier run's calls were dropped")
	}
}

// TestDRCLogBadRecords: a torn record is ignored, and a file that is not a
// log (or is cut short) loads nothing and is replaced.
func TestDRCLogBadRecords(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, DRCLogFile)
	now := time.Unix(1_800_000_000, 0)
	l, _ := openLog(t, path, 8, now)
	began(l, testKey(1), now)
	began(l, testKey(2), now)
	l.Close()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b[drcLogHeaderSize+drcLogRecordSize+25] ^= 1 // the second record's xid
	if err := os.WriteFile(path, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if prev := readDRCLog(path, now, time.Minute); len(prev) != 1 {
		t.Errorf("with a torn record: loaded %v, want one call", prev)
	}
	for name, content := range map[string][]byte{
		"foreign": bytes.Repeat([]byte("x"), 4096),
		"short":   b[:drcLogHeaderSize-1],
		"empty":   nil,
	} {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, content, 0o600); err != nil {
			t.Fatal(err)
		}
		l, n := openLog(t, p, 8, now)
		if n != 0 {
			t.Errorf("%s file: loaded %d calls", name, n)
		}
		began(l, testKey(9), now)
		if prev := readDRCLog(p, now, time.Minute); len(prev) != 1 {
			t.Errorf("%s file: after a new record the file holds %v", name, prev)
		}
	}
}

// TestDRCLogRing: the ring keeps the newest slots records.
func TestDRCLogRing(t *testing.T) {
	path := filepath.Join(t.TempDir(), DRCLogFile)
	now := time.Unix(1_800_000_000, 0)
	l, _ := openLog(t, path, 4, now)
	for i := range 10 {
		began(l, testKey(i), now)
	}
	l.Close()
	prev := readDRCLog(path, now, time.Minute)
	if len(prev) != 4 {
		t.Fatalf("ring of 4 holds %d calls", len(prev))
	}
	for i := 6; i < 10; i++ {
		if _, ok := prev[testKey(i)]; !ok {
			t.Errorf("newest call %d missing", i)
		}
	}
}

// TestDRCLogConcurrent records from many goroutines while the log closes
// (run with -race): nothing is lost before Close, nothing crashes after.
func TestDRCLogConcurrent(t *testing.T) {
	path := filepath.Join(t.TempDir(), DRCLogFile)
	now := time.Unix(1_800_000_000, 0)
	l, _ := openLog(t, path, 1<<12, now)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 200 {
				began(l, testKey(g*1000+i), now)
			}
		}()
	}
	wg.Wait()
	if prev := readDRCLog(path, now, time.Minute); len(prev) != 1600 {
		t.Errorf("file holds %d calls, want 1600", len(prev))
	}
	for g := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 500 {
				began(l, testKey(100000+g*1000+i), now)
			}
		}()
	}
	l.Close()
	wg.Wait()
}

func FuzzDRCLogRecord(f *testing.F) {
	var rec [drcLogRecordSize]byte
	encodeDRCRecord(rec[:], testKey(1), time.Unix(1_800_000_000, 5), false)
	f.Add(rec[:])
	k6 := testKey(2)
	k6.addr = netip.MustParseAddr("fd00::1")
	encodeDRCRecord(rec[:], k6, time.Unix(1_800_000_000, 5), true)
	f.Add(rec[:])
	f.Add(make([]byte, drcLogRecordSize))
	f.Fuzz(func(t *testing.T, b []byte) {
		k, at, refused, ok := decodeDRCRecord(b)
		if !ok {
			return
		}
		var again [drcLogRecordSize]byte
		encodeDRCRecord(again[:], k, at, refused)
		k2, at2, refused2, ok := decodeDRCRecord(again[:])
		if !ok || k2 != k || !at2.Equal(at) || refused2 != refused {
			t.Fatalf("record does not survive a round trip: %v %v %v -> %v %v %v %v", k, at, refused, k2, at2, refused2, ok)
		}
	})
}

func FuzzReadDRCLog(f *testing.F) {
	path := filepath.Join(f.TempDir(), DRCLogFile)
	now := time.Unix(1_800_000_000, 0)
	l, _, err := OpenDRCLog(path, 4, time.Minute, now)
	if err != nil {
		f.Fatal(err)
	}
	began(l, testKey(1), now)
	l.Close()
	b, _ := os.ReadFile(path)
	f.Add(b)
	f.Add([]byte(drcLogMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := filepath.Join(t.TempDir(), DRCLogFile)
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		prev := readDRCLog(p, now, time.Minute)
		if len(prev) > len(b)/drcLogRecordSize {
			t.Fatalf("%d calls from %d bytes", len(prev), len(b))
		}
	})
}

// TestDRCLogBusy: one log per file; a second open is refused until the
// first closes.
func TestDRCLogBusy(t *testing.T) {
	path := filepath.Join(t.TempDir(), DRCLogFile)
	now := time.Unix(1_800_000_000, 0)
	l, _ := openLog(t, path, 8, now)
	began(l, testKey(1), now)
	if _, _, err := OpenDRCLog(path, 8, time.Minute, now); !errors.Is(err, ErrDRCLogBusy) {
		t.Fatalf("second open: %v, want ErrDRCLogBusy", err)
	}
	l.Close()
	_, n := openLog(t, path, 8, now)
	if n != 1 {
		t.Fatalf("after the first closed: loaded %d calls, want 1", n)
	}
}

// TestDRCLogFault: a store into the mapping that faults (here the file was
// cut short under it, as a full copy-on-write file system would fault)
// turns the log off instead of killing the server.
func TestDRCLogFault(t *testing.T) {
	path := filepath.Join(t.TempDir(), DRCLogFile)
	now := time.Unix(1_800_000_000, 0)
	l, _ := openLog(t, path, 1024, now)
	began(l, testKey(1), now)
	if err := os.Truncate(path, 0); err != nil {
		t.Fatal(err)
	}
	for i := range 100 { // every slot, so some lie past the end
		began(l, testKey(2+i), now)
	}
	if !l.faulted.Load() {
		t.Fatal("no fault after the file was cut under the mapping")
	}
	began(l, testKey(200), now) // off: no store, no fault
}

// began is l.begin's first result: whether an earlier run began k.
func began(l *DRCLog, k drcKey, now time.Time) bool {
	may, _ := l.begin(k, now)
	return may
}

// TestDRCLogLinkLocalClient: a client at a link-local IPv6 address, whose
// connections arrive with the interface as zone (fe80::1%d0), is known by
// the next run too: a call it began before a restart and retransmits
// after it arrives marked MayHaveRun. The log keeps no zone.
func TestDRCLogLinkLocalClient(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "drcll")
	ns.IP("link", "add", "d0", "type", "veth", "peer", "name", "d1")
	ns.IP("addr", "add", "fe80::1/64", "dev", "d0", "nodad")
	ns.IP("link", "set", "d0", "up")
	ns.IP("link", "set", "d1", "up")
	path := filepath.Join(t.TempDir(), DRCLogFile)
	call := testCall(0x77, procCount, opaqueArg([]byte("rename")))
	p := newTestProg()
	for run := range 2 {
		l, _, err := OpenDRCLog(path, 0, time.Minute, time.Now())
		if err != nil {
			t.Fatal(err)
		}
		s := &Server{DRCLog: l}
		s.Register(p)
		ln, err := ns.Listen("tcp", "[::]:0")
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan error, 1)
		go func() { served <- s.Serve(ln) }()
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := ns.Dial(ctx, "tcp", net.JoinHostPort("fe80::1%d0", strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)))
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		tc := &testClient{t: t, c: c, rr: rpc.NewRecordReader(c, 4<<20)}
		tc.call(call)
		c.Close()
		if err := s.Shutdown(context.Background()); err != nil {
			t.Fatal(err)
		}
		<-served
		if err := l.Close(); err != nil {
			t.Fatal(err)
		}
		if got := p.mayHaveRun.Load(); got != uint32(run) {
			t.Fatalf("run %d: %d calls marked MayHaveRun, want %d", run+1, got, run)
		}
	}
}

// TestDRCLogReadsOlderBuild reads a duplicate request log written by an
// older mailnfsd (f7108ed, killed while a client delivered; its header and
// first 16 records, 5 of them MKDIRs refused with EXIST and marked so):
// an upgraded server must still find the 11 calls the old one began and
// may have run, or a retransmission across the upgrade is answered NOENT
// or EXIST instead of as done.
func TestDRCLogReadsOlderBuild(t *testing.T) {
	const path = "testdata/drc-f7108ed.log"
	// The newest record was written at 1795978798.997752152.
	now := time.Unix(1795978799, 0)
	prev := readDRCLog(path, now, DefaultDRCTTL)
	if len(prev) != 11 {
		t.Fatalf("%d calls read, want 11", len(prev))
	}
	procs := map[uint32]bool{7: true, 8: true, 9: true, 14: true} // WRITE CREATE MKDIR RENAME
	for k, at := range prev {
		if k.addr != netip.MustParseAddr("127.0.0.1") || k.prog != 100003 || k.vers != 3 || !procs[k.proc] || k.n == 0 {
			t.Errorf("record %+v", k)
		}
		if d := now.Sub(at); d < 0 || d > 2*time.Second {
			t.Errorf("record %+v at %v, %v before now", k, at, d)
		}
	}
	dir := t.TempDir()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, DRCLogFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	l, loaded, err := OpenDRCLog(filepath.Join(dir, DRCLogFile), 0, 0, now)
	if err != nil || loaded != 11 {
		t.Fatalf("OpenDRCLog: loaded %d, %v", loaded, err)
	}
	for k := range prev {
		if may, _ := l.begin(k, now); !may {
			t.Errorf("call %+v not reported as begun by the earlier run", k)
		}
	}
	l.Close()
}
