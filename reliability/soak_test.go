package reliability

import (
	"bytes"
	"context"
	"crypto/sha256"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/client"
)

var soakDuration = flag.Duration("soak.duration", 2*time.Minute, "soak test: how long the mixed workload runs (scripts/soak.sh: 30m)")

// soakMailboxCap is the size each mailbox is held at: beyond it the reader
// reads, checks and deletes messages, as a POP3 user who downloads and
// deletes does, and deliverers wait while a mailbox holds twice as many
// (the reader falls behind on a fast machine), so the soak reaches a
// steady state whose memory must stay flat (unbounded mailboxes would make
// every listing, and the memory it takes, grow with the run).
const soakMailboxCap = 500

// procSample is one measurement of this process (the in-process server
// and its clients).
type procSample struct {
	goroutines int
	fds        int
	rssKiB     int64
}

func sampleProc(t *testing.T) procSample {
	t.Helper()
	runtime.GC()
	fds, err := openFDs(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	rss, err := procStatus(os.Getpid(), "VmRSS")
	if err != nil {
		t.Fatal(err)
	}
	return procSample{runtime.NumGoroutine(), fds, rss}
}

// TestSoak runs a mixed Maildir workload through package client against
// one in-process server: deliveries into two mailboxes, and sessions that
// list, read (checking each message against what was delivered), flag and
// delete. No operation may fail; afterwards the goroutines and open fds
// are back where they started and the resident set did not keep growing.
func TestSoak(t *testing.T) {
	s := startInproc(t, inprocOpts{setup: func(t testing.TB, root string) {
		for _, d := range []string{"Box2", "Box2/tmp", "Box2/new", "Box2/cur"} {
			if err := os.Mkdir(root+"/"+d, 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}})
	mailboxes := []string{"Maildir", "Box2"}
	ctx, cancel := context.WithTimeout(context.Background(), *soakDuration+2*time.Minute)
	defer cancel()

	// Warm up once so lazily started pools exist in the baseline.
	wc, err := client.Dial(ctx, s.url(""), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wc.Deliver(ctx, "Maildir", strings.NewReader("Subject: warm-up\r\n\r\nx\r\n")); err != nil {
		t.Fatal(err)
	}
	wc.Close()
	time.Sleep(200 * time.Millisecond)
	base := sampleProc(t)

	var (
		sums      sync.Map // name in new/ without flags -> sha256
		errs      atomic.Int64
		delivered atomic.Int64
		read      atomic.Int64
		flagged   atomic.Int64
		deleted   atomic.Int64
		listed    atomic.Int64
	)
	fail := func(format string, args ...any) {
		if errs.Add(1) <= 10 {
			t.Errorf(format, args...)
		}
	}
	var inBox [2]atomic.Int64 // messages delivered and not deleted, per mailbox
	var clients []*client.Client
	for range 3 {
		c, err := client.Dial(ctx, s.url(""), client.Options{RPC: client.RPCOptions{Conns: 2}})
		if err != nil {
			t.Fatal(err)
		}
		clients = append(clients, c)
	}
	end := time.Now().Add(*soakDuration)
	var mid procSample
	var midOnce sync.Once
	var wg sync.WaitGroup
	for w := range 4 { // deliverers
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clients[w%2]
			rng := mrand.New(mrand.NewPCG(uint64(w), 1))
			for time.Now().Before(end) {
				size := 300 + rng.IntN(16<<10)
				if rng.IntN(50) == 0 {
					size = 1<<20 + rng.IntN(200<<10) // UNSTABLE + COMMIT
				}
				msg := makeMessage(rng, fmt.Sprintf("soak-%d", w), false)
				msg = append(msg, bytes.Repeat([]byte("z"), size)...)
				box := mailboxes[w%2]
				for inBox[w%2].Load() > 2*soakMailboxCap && time.Now().Before(end) {
					time.Sleep(5 * time.Millisecond)
				}
				name, err := c.Deliver(ctx, box, bytes.NewReader(msg))
				if err != nil {
					fail("deliver: %v", err)
					continue
				}
				sums.Store(box+"/"+name, sha256.Sum256(msg))
				delivered.Add(1)
				inBox[w%2].Add(1)
			}
		}()
	}
	for i, box := range mailboxes { // one reader session per mailbox
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := clients[2]
			rng := mrand.New(mrand.NewPCG(uint64(i), 2))
			for time.Now().Before(end) {
				gone := map[string]bool{} // keys deleted since this listing
				if time.Until(end) < *soakDuration/2 {
					midOnce.Do(func() { mid = sampleProc(t) })
				}
				msgs, err := c.List(ctx, box)
				if err != nil {
					fail("list: %v", err)
					continue
				}
				listed.Add(1)
				picks := 10
				if over := len(msgs) - soakMailboxCap; over > 0 {
					picks += 2 * over // enough picks to delete the excess, one in three deleting
				}
				for k := 0; k < picks && len(msgs) > 0; k++ {
					m := msgs[rng.IntN(len(msgs))]
					sumKey := box + "/" + strings.SplitN(m.Name, ":", 2)[0]
					want, ok := sums.Load(sumKey)
					if !ok || gone[m.Key] {
						continue // the warm-up message, or deleted a moment ago
					}
					r, err := c.Open(ctx, box, m.Key)
					if err != nil {
						fail("open %s: %v", m.Name, err)
						continue
					}
					b, err := io.ReadAll(r)
					r.Close()
					if err != nil {
						fail("read %s: %v", m.Name, err)
						continue
					}
					if sha256.Sum256(b) != want.([32]byte) {
						fail("message %s in %s: content differs from what was delivered (%d bytes)", m.Name, box, len(b))
					}
					read.Add(1)
					action := rng.IntN(3)
					if len(msgs)-len(gone) > soakMailboxCap {
						action = 1
					}
					switch action {
					case 0:
						if _, err := c.SetFlags(ctx, box, m.Key, "S"); err != nil {
							fail("flag %s: %v", m.Name, err)
						} else {
							flagged.Add(1)
						}
					case 1:
						if err := c.Delete(ctx, box, m.Key); err != nil {
							fail("delete %s: %v", m.Name, err)
						} else {
							deleted.Add(1)
							inBox[i].Add(-1)
							gone[m.Key] = true
							sums.Delete(sumKey)
						}
					}
				}
			}
		}()
	}
	wg.Wait()
	for _, c := range clients {
		c.Close()
	}
	if delivered.Load() == 0 || read.Load() == 0 {
		t.Fatalf("soak did nothing: %d delivered, %d read", delivered.Load(), read.Load())
	}

	// Flat at the end: connections closed, goroutines and fds back to
	// the baseline, RSS no longer growing.
	var after procSample
	deadline := time.Now().Add(10 * time.Second)
	for {
		after = sampleProc(t)
		if after.goroutines <= base.goroutines+2 || time.Now().After(deadline) {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	if after.goroutines > base.goroutines+2 {
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Errorf("goroutines: %d before, %d after the soak\n%s", base.goroutines, after.goroutines, buf[:n])
	}
	// The store keeps a bounded LRU cache of open objects (an O_PATH fd
	// and at most an I/O fd each, directories up to four cursors): every
	// fd beyond the baseline must be one of those.
	open := s.store().Stats().OpenNodes
	if bound := base.fds + 2*open + 4*16 + 2; after.fds > bound {
		t.Errorf("open fds: %d before, %d after the soak; the store's cache of %d objects explains at most %d", base.fds, after.fds, open, bound)
	}
	if mid.rssKiB > 0 && after.rssKiB > mid.rssKiB*3/2+32<<10 {
		t.Errorf("RSS grew from %d KiB at half time to %d KiB at the end", mid.rssKiB, after.rssKiB)
	}
	t.Logf("soak %v: %d deliveries, %d listings, %d messages read and verified, %d flagged, %d deleted, %d errors, mailboxes at %d and %d messages; goroutines %d -> %d, fds %d -> %d (store cache: %d open objects), RSS %d KiB at start, %d KiB at half time, %d KiB at the end",
		*soakDuration, delivered.Load(), listed.Load(), read.Load(), flagged.Load(), deleted.Load(), errs.Load(), inBox[0].Load(), inBox[1].Load(),
		base.goroutines, after.goroutines, base.fds, after.fds, open, base.rssKiB, mid.rssKiB, after.rssKiB)
}
