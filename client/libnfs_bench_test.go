package client

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// BenchmarkLibnfsVsClient compares one Go client process delivering 4 KiB
// messages with 32 Deliver calls in flight through one Client against 32
// synchronous libnfs workers (client/libnfsbench/libnfs_deliver.c, one
// libnfs context and connection each: open O_CREAT|O_EXCL in tmp/, write,
// fsync, close, rename into new/), both against the same mailnfsd binary
// over loopback, 20 mailboxes. The two alternate for several rounds (the
// machine may be shared) and the medians are reported as go-msgs/s,
// libnfs-msgs/s and go/libnfs.
//
// It needs root (mailnfsd), cc and libnfs-dev, so it runs only with
// MAILNFS_LIBNFS_BENCH=1; scripts/libnfs-bench.sh sets it up. Use
// -benchtime=1x: one iteration already runs every round.
// MAILNFS_LIBNFS_BENCH_SECONDS (default 10) and MAILNFS_LIBNFS_BENCH_ROUNDS
// (default 3) size a run.
func BenchmarkLibnfsVsClient(b *testing.B) {
	if os.Getenv("MAILNFS_LIBNFS_BENCH") != "1" {
		b.Skip("set MAILNFS_LIBNFS_BENCH=1 (needs root, cc and libnfs-dev; see scripts/libnfs-bench.sh)")
	}
	nfsdtest.RequireRoot(b)
	secs := envInt(b, "MAILNFS_LIBNFS_BENCH_SECONDS", 10)
	rounds := envInt(b, "MAILNFS_LIBNFS_BENCH_ROUNDS", 3)
	const workers, size, boxes = 32, 4096, 20
	dur := time.Duration(secs) * time.Second

	bin := buildLibnfsDeliver(b)
	srv := startMailnfsdProcess(b, boxes)
	ctx := context.Background()
	c, err := Dial(ctx, srv.url, Options{})
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	var boxNames []string
	for i := range boxes {
		boxNames = append(boxNames, fmt.Sprintf("u%02d/Maildir", i))
	}

	var goRates, libRates []float64
	var total int64
	b.ResetTimer()
	for range b.N {
		for r := range rounds {
			runLib := func() {
				n, rate := runLibnfsDeliver(b, bin, srv.url, workers, secs, size, boxes)
				libRates = append(libRates, rate)
				total += n
				b.Logf("round %d: libnfs %d workers: %d msgs, %.1f msgs/s", r+1, workers, n, rate)
			}
			runGo := func() {
				n, rate := runGoDeliver(b, c, boxNames, workers, size, dur)
				goRates = append(goRates, rate)
				total += n
				b.Logf("round %d: Go client %d in flight: %d msgs, %.1f msgs/s", r+1, workers, n, rate)
			}
			// Alternate which goes first, so neither always follows the
			// other's write-back.
			if r%2 == 0 {
				runLib()
				runGo()
			} else {
				runGo()
				runLib()
			}
		}
	}
	b.StopTimer()

	goMed, libMed := median(goRates), median(libRates)
	b.ReportMetric(goMed, "go-msgs/s")
	b.ReportMetric(libMed, "libnfs-msgs/s")
	ratio := 0.0
	if libMed > 0 {
		ratio = goMed / libMed
	}
	b.ReportMetric(ratio, "go/libnfs")
	b.ReportMetric(0, "ns/op")
	b.Logf("medians over %d rounds of %ds: Go client %.1f msgs/s, libnfs %.1f msgs/s, ratio %.2f",
		len(goRates), secs, goMed, libMed, ratio)

	// Every delivery of both clients is in new/ exactly once; tmp/ is empty.
	var inNew int64
	for _, bx := range boxNames {
		ents, err := os.ReadDir(filepath.Join(srv.root, bx, "new"))
		if err != nil {
			b.Fatal(err)
		}
		inNew += int64(len(ents))
		if tmp, _ := os.ReadDir(filepath.Join(srv.root, bx, "tmp")); len(tmp) != 0 {
			b.Errorf("%s/tmp holds %d files", bx, len(tmp))
		}
	}
	if inNew != total {
		b.Errorf("new/ holds %d messages, the clients delivered %d", inNew, total)
	}
}

func envInt(b *testing.B, name string, def int) int {
	v := os.Getenv(name)
	if v == "" {
		return def
	}
	n, err := strconv.Atoi(v)
	if err != nil || n <= 0 {
		b.Fatalf("%s=%q: want a positive integer", name, v)
	}
	return n
}

func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// buildLibnfsDeliver compiles client/libnfsbench/libnfs_deliver.c with cc.
func buildLibnfsDeliver(b *testing.B) string {
	b.Helper()
	src, err := filepath.Abs(filepath.Join("libnfsbench", "libnfs_deliver.c"))
	if err != nil {
		b.Fatal(err)
	}
	bin := filepath.Join(b.TempDir(), "libnfs_deliver")
	out, err := exec.Command("cc", "-O2", "-Wall", "-o", bin, src, "-lnfs", "-lpthread").CombinedOutput()
	if err != nil {
		b.Fatalf("cc libnfs_deliver.c (needs libnfs-dev): %v\n%s", err, out)
	}
	return bin
}

// runLibnfsDeliver runs the libnfs workers for secs seconds and returns
// the messages they delivered and their rate.
func runLibnfsDeliver(b *testing.B, bin, url string, workers, secs, size, boxes int) (int64, float64) {
	b.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second+2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "-u", url, "-w", strconv.Itoa(workers), "-d", strconv.Itoa(secs),
		"-s", strconv.Itoa(size), "-b", strconv.Itoa(boxes))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		b.Fatalf("libnfs_deliver: %v\n%s\n%s", err, out, stderr.String())
	}
	var n, errs int64
	var s, rate float64
	if _, err := fmt.Sscanf(strings.TrimSpace(string(out)), "messages=%d seconds=%g rate=%g errors=%d", &n, &s, &rate, &errs); err != nil {
		b.Fatalf("libnfs_deliver output %q: %v", out, err)
	}
	return n, rate
}

// runGoDeliver keeps inflight Deliver calls going through c for dur and
// returns the messages delivered and the rate (calls in flight at the end
// are waited for and counted).
func runGoDeliver(b *testing.B, c *Client, boxes []string, inflight, size int, dur time.Duration) (int64, float64) {
	b.Helper()
	msg := bytes.Repeat([]byte("x"), size)
	ctx := context.Background()
	var n, seq atomic.Int64
	var stop atomic.Bool
	var wg sync.WaitGroup
	start := time.Now()
	for range inflight {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				i := seq.Add(1)
				if _, err := c.Deliver(ctx, boxes[i%int64(len(boxes))], bytes.NewReader(msg)); err != nil {
					b.Error(err)
					return
				}
				n.Add(1)
			}
		}()
	}
	time.Sleep(dur)
	stop.Store(true)
	wg.Wait()
	el := time.Since(start).Seconds()
	return n.Load(), float64(n.Load()) / el
}

// mailnfsdProcess is the mailnfsd binary serving one export.
type mailnfsdProcess struct {
	root, url string
}

// startMailnfsdProcess runs the mailnfsd binary (its own process, so the
// Go client's process is only the client) on free 127.0.0.1 ports over an
// export holding boxes Maildirs u00/Maildir...; it is killed in Cleanup.
func startMailnfsdProcess(b *testing.B, boxes int) *mailnfsdProcess {
	b.Helper()
	bin := nfsdtest.Binary(b)
	base := b.TempDir()
	for d := base; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	root := filepath.Join(base, "export")
	for i := range boxes {
		for _, d := range []string{"tmp", "new", "cur"} {
			if err := os.MkdirAll(filepath.Join(root, fmt.Sprintf("u%02d/Maildir", i), d), 0o755); err != nil {
				b.Fatal(err)
			}
		}
	}
	exports := filepath.Join(base, "exports")
	if err := os.WriteFile(exports, []byte(root+" 127.0.0.0/8(rw,no_root_squash)\n"), 0o644); err != nil {
		b.Fatal(err)
	}
	nfsPort, pmPort := freeTCPPort(b), freeTCPPort(b)
	logf, err := os.Create(filepath.Join(base, "mailnfsd.log"))
	if err != nil {
		b.Fatal(err)
	}
	cmd := exec.Command(bin, "-exports", exports, "-listen", "127.0.0.1",
		"-nfs-port", strconv.Itoa(nfsPort), "-portmap-port", strconv.Itoa(pmPort),
		"-state-dir", filepath.Join(base, "state"), "-log-level", "warn", "-shutdown-timeout", "5s")
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-done
		}
		logf.Close()
	})
	addr := fmt.Sprintf("127.0.0.1:%d", nfsPort)
	deadline := time.Now().Add(20 * time.Second)
	for {
		conn, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			conn.Close()
			break
		}
		if time.Now().After(deadline) {
			log, _ := os.ReadFile(logf.Name())
			b.Fatalf("mailnfsd did not listen on %s: %v\n%s", addr, err, log)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return &mailnfsdProcess{root: root,
		url: fmt.Sprintf("nfs://127.0.0.1%s?version=3&nfsport=%d&mountport=%d", root, nfsPort, nfsPort)}
}

// freeTCPPort returns a 127.0.0.1 TCP port that was free a moment ago.
func freeTCPPort(b *testing.B) int {
	b.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}
