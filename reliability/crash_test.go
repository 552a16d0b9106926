package reliability

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// Crash test scale. CI runs the defaults; scripts/crashtest.sh (make
// crashtest) passes larger values.
var (
	crashKills   = flag.Int("crash.kills", 12, "crash test: SIGKILLs of mailnfsd per run (at least 10)")
	crashDrivers = flag.Int("crash.drivers", 4, "crash test: front-end processes delivering")
	crashWorkers = flag.Int("crash.workers", 3, "crash test: concurrent deliveries per front-end process")
	crashMinGap  = flag.Duration("crash.mingap", 300*time.Millisecond, "crash test: shortest time between a restart and the next kill")
	crashMaxGap  = flag.Duration("crash.maxgap", 1500*time.Millisecond, "crash test: longest time between a restart and the next kill")
	crashSeed    = flag.Uint64("crash.seed", 0, "crash test: random seed for the kill schedule (0: from the clock)")
)

// TestCrashSIGKILL delivers through package client from several processes
// while the real mailnfsd is killed with SIGKILL at random moments and
// restarted on the same export, ports and -state-dir. It then checks every
// message on disk against the drivers' journals: each acknowledged delivery
// is in new/ exactly once with the recorded content; a delivery that was
// not acknowledged is absent or present once and intact; tmp/ holds only
// leftovers of unacknowledged deliveries, which client.CleanTmp removes;
// no client saw a STALE handle.
func TestCrashSIGKILL(t *testing.T) {
	if *crashKills < 10 {
		t.Fatalf("-crash.kills=%d: the test needs at least 10", *crashKills)
	}
	s := newProcServer(t)
	s.start(t)
	t0 := time.Now()
	seed := *crashSeed
	if seed == 0 {
		seed = uint64(time.Now().UnixNano())
	}
	t.Logf("crash test: seed %d (rerun with -crash.seed=%d)", seed, seed)
	rng := mrand.New(mrand.NewPCG(seed, 0x6d61696c))

	self, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	type driverProc struct {
		cmd     *exec.Cmd
		stdin   io.WriteCloser
		journal string
		exited  chan struct{} // closed when the process is reaped
		err     error         // its exit error, valid after exited
	}
	var drivers []*driverProc
	for i := range *crashDrivers {
		cfg := driverConfig{
			URL: s.url(), Mailbox: "Maildir", ID: i, Workers: *crashWorkers,
			Journal:  filepath.Join(s.base, fmt.Sprintf("driver%d.journal", i)),
			BigEvery: 25,
		}
		raw, _ := json.Marshal(cfg)
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), envDriver+"="+string(raw))
		stderr, err := os.Create(filepath.Join(s.base, fmt.Sprintf("driver%d.stderr", i)))
		if err != nil {
			t.Fatal(err)
		}
		defer stderr.Close()
		cmd.Stdout, cmd.Stderr = stderr, stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		d := &driverProc{cmd: cmd, stdin: stdin, journal: cfg.Journal, exited: make(chan struct{})}
		go func() { d.err = cmd.Wait(); close(d.exited) }()
		drivers = append(drivers, d)
	}
	t.Cleanup(func() {
		for _, d := range drivers {
			d.stdin.Close()
			select {
			case <-d.exited:
			case <-time.After(5 * time.Second):
				_ = d.cmd.Process.Kill()
				<-d.exited
			}
		}
	})

	// Let the drivers mount and get going before the first kill.
	time.Sleep(500 * time.Millisecond)
	span := int64(*crashMaxGap - *crashMinGap)
	for k := range *crashKills {
		gap := *crashMinGap
		if span > 0 {
			gap += time.Duration(rng.Int64N(span))
		}
		time.Sleep(gap)
		s.kill(t)
		// Sometimes stay down a little: clients must wait and reconnect.
		if rng.IntN(3) == 0 {
			time.Sleep(time.Duration(rng.IntN(300)) * time.Millisecond)
		}
		s.start(t)
		_ = k
	}
	// A last stretch without kills, then stop the drivers.
	time.Sleep(700 * time.Millisecond)
	t.Logf("crash test: %d kills done after %v; stopping the drivers", *crashKills, time.Since(t0).Round(time.Millisecond))
	for _, d := range drivers {
		d.stdin.Close()
	}
	for i, d := range drivers {
		select {
		case <-d.exited:
			if d.err != nil {
				b, _ := os.ReadFile(filepath.Join(s.base, fmt.Sprintf("driver%d.stderr", i)))
				t.Errorf("driver %d: %v\n%s", i, d.err, b)
			}
		case <-time.After(2 * time.Minute):
			t.Fatalf("driver %d did not stop within 2 minutes", i)
		}
	}

	t.Logf("crash test: drivers stopped after %v", time.Since(t0).Round(time.Millisecond))
	// Gather the journals.
	started := map[string]string{} // id -> sha256
	done := map[string]string{}    // id -> name in new/
	failed := map[string]string{}
	var stale []string
	for i, d := range drivers {
		j, err := readJournal(d.journal)
		if err != nil {
			t.Fatalf("driver %d: %v", i, err)
		}
		for id, h := range j.started {
			started[id] = h
		}
		for id, n := range j.done {
			done[id] = n
		}
		for id, e := range j.failed {
			failed[id] = e
		}
		stale = append(stale, j.stale...)
	}
	for _, e := range stale {
		t.Errorf("a client saw a stale handle: %s", e)
	}
	if len(done) == 0 {
		t.Fatal("no delivery was acknowledged")
	}

	// Every message on disk, by id.
	type found struct{ dir, name, sum string }
	onDisk := map[string][]found{}
	md := filepath.Join(s.root, "Maildir")
	for _, dir := range []string{"new", "cur"} {
		es, err := os.ReadDir(filepath.Join(md, dir))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range es {
			b, err := os.ReadFile(filepath.Join(md, dir, e.Name()))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(b)
			id := messageID(b)
			if id == "" {
				t.Errorf("%s/%s: message without an id (%d bytes)", dir, e.Name(), len(b))
				continue
			}
			onDisk[id] = append(onDisk[id], found{dir, e.Name(), hex.EncodeToString(sum[:])})
		}
	}
	var present, absent int
	for id, want := range started {
		got := onDisk[id]
		if name, ok := done[id]; ok {
			switch {
			case len(got) != 1:
				t.Errorf("acknowledged delivery %s is on disk %d times: %v", id, len(got), got)
			case got[0].sum != want:
				t.Errorf("acknowledged delivery %s (%s/%s) is corrupt: sha256 %s, want %s", id, got[0].dir, got[0].name, got[0].sum, want)
			case got[0].dir != "new" || got[0].name != name:
				t.Errorf("acknowledged delivery %s is %s/%s, client said new/%s", id, got[0].dir, got[0].name, name)
			}
			continue
		}
		switch {
		case len(got) > 1:
			t.Errorf("interrupted delivery %s is on disk %d times: %v", id, len(got), got)
		case len(got) == 1 && got[0].sum != want:
			t.Errorf("interrupted delivery %s is present but corrupt (%s/%s)", id, got[0].dir, got[0].name)
		case len(got) == 1:
			present++
		default:
			absent++
		}
	}
	for id, got := range onDisk {
		if _, ok := started[id]; !ok {
			t.Errorf("message %s on disk (%v) was never delivered by a driver", id, got)
		}
	}

	// tmp/: only leftovers of deliveries that were not acknowledged.
	tmpDir := filepath.Join(md, "tmp")
	es, err := os.ReadDir(tmpDir)
	if err != nil {
		t.Fatal(err)
	}
	// A leftover is either empty (the server was killed inside an
	// EXCLUSIVE CREATE before the verifier was set, so the retransmitted
	// CREATE found a file it could not recognise and the client picked
	// another name: an interrupted step of a delivery that then went
	// through under that name), or holds data of a delivery that was not
	// acknowledged. Never a copy of an acknowledged message.
	interrupted := len(started) - len(done)
	var emptyLeft, dataLeft int
	for _, e := range es {
		b, err := os.ReadFile(filepath.Join(tmpDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		if len(b) == 0 {
			emptyLeft++
			continue
		}
		dataLeft++
		id := messageID(b)
		if _, ok := done[id]; ok {
			t.Errorf("tmp/%s is a copy of acknowledged delivery %s", e.Name(), id)
		} else if _, ok := started[id]; !ok && id != "" {
			t.Errorf("tmp/%s holds message %s that no driver started", e.Name(), id)
		}
	}
	if dataLeft > interrupted {
		t.Errorf("tmp/ holds %d files with data, but only %d deliveries were not acknowledged", dataLeft, interrupted)
	}
	leftovers := len(es)

	// The client's cleanup (age 0 for the test) removes them.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := dialRetry(ctx, s.url())
	if err != nil {
		t.Fatal(err)
	}
	removed, err := c.CleanTmp(ctx, "Maildir", time.Nanosecond, time.Now().Add(2*time.Second))
	c.Close()
	if err != nil {
		t.Errorf("CleanTmp: %v", err)
	}
	if len(removed) != leftovers {
		t.Errorf("CleanTmp removed %d files, tmp/ had %d", len(removed), leftovers)
	}
	if es, _ := os.ReadDir(tmpDir); len(es) != 0 {
		t.Errorf("tmp/ still holds %d files after CleanTmp", len(es))
	}
	s.stop(t)
	mdtest.Check(t, s.root)
	t.Logf("crash test: checked after %v", time.Since(t0).Round(time.Millisecond))

	var errs []string
	for _, e := range failed {
		errs = append(errs, e)
	}
	sort.Strings(errs)
	if len(errs) > 5 {
		errs = errs[:5]
	}
	// Calls a killed server had begun that a client sent again to the next
	// one (nfsd.DRCLog), and of those, the ones whose effect was there and
	// that were answered as done rather than with NOENT or EXIST.
	serverLog, _ := os.ReadFile(s.logFile)
	resent := strings.Count(string(serverLog), "retransmission of a call begun before the restart\"")
	asDone := strings.Count(string(serverLog), "answered as done")
	t.Logf("crash test: %d SIGKILLs survived (%d server starts); %d deliveries started by %d processes, %d acknowledged and all present once and intact; %d not acknowledged (%d of them present once, %d absent; %d failed with an error, e.g. %v); %d tmp/ leftovers (%d empty from an interrupted CREATE, %d with data) removed by CleanTmp; %d messages checked on disk; 0 STALE; %d calls begun before a kill sent again, %d of them answered as done",
		*crashKills, s.starts, len(started), len(drivers), len(done), interrupted, present, absent, len(failed), errs, leftovers, emptyLeft, dataLeft, countFound(onDisk), resent, asDone)
	_ = client.TmpMaxAge
}

func countFound[T any](m map[string][]T) int {
	n := 0
	for _, v := range m {
		n += len(v)
	}
	return n
}
