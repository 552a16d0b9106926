package reliability

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailnfs/mailnfs/client"
)

// envDriver names the environment variable that makes the test binary a
// delivery driver; its value is a JSON driverConfig.
const envDriver = "MAILNFS_RELIABILITY_DRIVER"

// driverConfig tells one front-end process what to deliver where.
type driverConfig struct {
	URL     string // nfs:// URL of the export, ports named
	Mailbox string // Maildir path below the export
	ID      int    // driver number, part of every message id
	Workers int    // concurrent deliveries
	Journal string // file the driver appends its records to
	// BigEvery makes every n-th message larger than the server's wtmax
	// (UNSTABLE WRITEs + COMMIT); 0 never.
	BigEvery int
}

// Journal records, one per line:
//
//	S id sha256        a delivery is about to start
//	D id sha256 name   Deliver returned nil: the message is in new/name
//	F id stale err     Deliver failed (stale=1 if the error was STALE)
//	X stale detail     a handle taken before a restart went STALE
//	E delivered failed the driver stopped cleanly
const (
	recStart = "S"
	recDone  = "D"
	recFail  = "F"
	recStale = "X"
	recEnd   = "E"
)

// crashIDHeader carries a message's id inside the message.
const crashIDHeader = "X-Crash-ID: "

// runDriver delivers messages until its stdin closes, recording each one
// in the journal, and returns the exit status.
func runDriver(raw string) int {
	var cfg driverConfig
	if err := json.Unmarshal([]byte(raw), &cfg); err != nil {
		fmt.Fprintf(os.Stderr, "driver: config: %v\n", err)
		return 2
	}
	jf, err := os.OpenFile(cfg.Journal, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "driver: journal: %v\n", err)
		return 2
	}
	defer jf.Close()
	var jmu sync.Mutex
	record := func(f ...string) {
		jmu.Lock()
		defer jmu.Unlock()
		// One write per line: the journal survives whatever happens to
		// the server, and the driver itself is never killed.
		_, _ = jf.WriteString(strings.Join(f, " ") + "\n")
	}

	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	go func() { // stdin closing is the signal to stop
		_, _ = io.Copy(io.Discard, os.Stdin)
		stop()
	}()

	c, err := dialRetry(ctx, cfg.URL)
	if err != nil {
		fmt.Fprintf(os.Stderr, "driver %d: dial: %v\n", cfg.ID, err)
		return 1
	}
	defer c.Close()
	probe, _, err := c.LookupPath(context.Background(), "/"+cfg.Mailbox+"/new")
	if err != nil {
		fmt.Fprintf(os.Stderr, "driver %d: lookup new: %v\n", cfg.ID, err)
		return 1
	}

	var delivered, failed atomic.Int64
	var wg sync.WaitGroup
	for w := range cfg.Workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := mrand.New(mrand.NewPCG(uint64(cfg.ID), uint64(w)))
			for n := 0; ctx.Err() == nil; n++ {
				id := fmt.Sprintf("d%d-w%d-%d", cfg.ID, w, n)
				big := cfg.BigEvery > 0 && n%cfg.BigEvery == cfg.BigEvery-1
				msg := makeMessage(rng, id, big)
				sum := sha256.Sum256(msg)
				hs := hex.EncodeToString(sum[:])
				record(recStart, id, hs)
				// In-flight deliveries finish even after stop: a
				// delivery is never abandoned half-way on purpose.
				dctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
				name, err := c.Deliver(dctx, cfg.Mailbox, strings.NewReader(string(msg)))
				cancel()
				if err != nil {
					stale := "0"
					if client.IsStatus(err, client.NFS3ErrStale) {
						stale = "1"
					}
					record(recFail, id, stale, strconv.Quote(err.Error()))
					failed.Add(1)
					continue
				}
				record(recDone, id, hs, name)
				delivered.Add(1)
				if n%4 == 0 {
					// The handle taken at the start must outlive every
					// restart.
					pctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
					_, err := c.Getattr(pctx, probe)
					cancel()
					if client.IsStatus(err, client.NFS3ErrStale) || client.IsStatus(err, client.NFS3ErrBadHandle) {
						record(recStale, strconv.Quote(err.Error()))
					}
				}
			}
		}()
	}
	wg.Wait()
	record(recEnd, strconv.FormatInt(delivered.Load(), 10), strconv.FormatInt(failed.Load(), 10))
	return 0
}

// dialRetry mounts url, retrying while the server is down.
func dialRetry(ctx context.Context, url string) (*client.Client, error) {
	deadline := time.Now().Add(60 * time.Second)
	for {
		dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		c, err := client.Dial(dctx, url, client.Options{RPC: client.RPCOptions{
			Conns: 2, ReconnectTimeout: 60 * time.Second, Timeout: 60 * time.Second, DialTimeout: 2 * time.Second,
		}})
		cancel()
		if err == nil {
			return c, nil
		}
		if ctx.Err() != nil || time.Now().After(deadline) {
			return nil, err
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// makeMessage builds an RFC 5322 message carrying id; big ones exceed one
// WRITE (nfs3.MaxIO) so the client takes the UNSTABLE + COMMIT path.
func makeMessage(rng *mrand.Rand, id string, big bool) []byte {
	size := 200 + rng.IntN(8<<10)
	switch {
	case big:
		size = 1<<20 + 100<<10
	case rng.IntN(20) == 0:
		size = 16<<10 + rng.IntN(48<<10)
	}
	var b strings.Builder
	fmt.Fprintf(&b, "From: driver@example.test\r\nTo: box@example.test\r\n%s%s\r\nSubject: crash test %s\r\n\r\n", crashIDHeader, id, id)
	raw := make([]byte, size/2+1)
	_, _ = rand.Read(raw)
	body := hex.EncodeToString(raw)
	for len(body) > 0 {
		n := min(76, len(body))
		b.WriteString(body[:n])
		b.WriteString("\r\n")
		body = body[n:]
	}
	return []byte(b.String())
}

// messageID returns the X-Crash-ID of a message, "" if it has none (an
// empty or partial tmp file).
func messageID(msg []byte) string {
	head, _, _ := strings.Cut(string(msg), "\r\n\r\n")
	for _, l := range strings.Split(head, "\r\n") {
		if v, ok := strings.CutPrefix(l, crashIDHeader); ok {
			return v
		}
	}
	return ""
}

// journal is a driver's parsed records.
type journal struct {
	started map[string]string // id -> sha256
	done    map[string]string // id -> file name in new/
	failed  map[string]string // id -> error
	stale   []string          // STALE errors seen
	ended   bool
}

func readJournal(path string) (*journal, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	j := &journal{started: map[string]string{}, done: map[string]string{}, failed: map[string]string{}}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		f := strings.SplitN(sc.Text(), " ", 4)
		switch {
		case f[0] == recStart && len(f) == 3:
			j.started[f[1]] = f[2]
		case f[0] == recDone && len(f) == 4:
			if j.started[f[1]] != f[2] {
				return nil, fmt.Errorf("%s: done record of %s without its start", path, f[1])
			}
			j.done[f[1]] = f[3]
		case f[0] == recFail && len(f) == 4:
			j.failed[f[1]] = f[3]
			if f[2] == "1" {
				j.stale = append(j.stale, f[1]+": "+f[3])
			}
		case f[0] == recStale:
			j.stale = append(j.stale, strings.Join(f[1:], " "))
		case f[0] == recEnd:
			j.ended = true
		default:
			return nil, fmt.Errorf("%s: bad record %q", path, sc.Text())
		}
	}
	if err := sc.Err(); err != nil {
		return nil, err
	}
	if !j.ended {
		return j, errors.New(path + ": driver did not finish (no E record)")
	}
	return j, nil
}
