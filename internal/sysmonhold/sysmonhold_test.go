package sysmonhold

import (
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

func TestStartStop(t *testing.T) {
	before := runtime.GOMAXPROCS(0)
	h := Start()
	if got := runtime.GOMAXPROCS(0); got != before+1 {
		t.Fatalf("GOMAXPROCS under a hold = %d, want %d", got, before+1)
	}
	h.Stop()
	h.Stop() // a second Stop is a no-op
	if got := runtime.GOMAXPROCS(0); got != before {
		t.Fatalf("GOMAXPROCS after Stop = %d, want %d", got, before)
	}
}

// TestStopTheWorld: garbage collections (each stops the world twice and
// scans every goroutine, the parked one included) finish promptly under
// a hold, and the other goroutines keep running.
func TestStopTheWorld(t *testing.T) {
	h := Start()
	defer h.Stop()
	done := make(chan time.Duration, 1)
	go func() {
		start := time.Now()
		for range 20 {
			runtime.GC()
		}
		done <- time.Since(start)
	}()
	select {
	case d := <-done:
		t.Logf("20 collections under a hold: %v", d)
	case <-time.After(30 * time.Second):
		t.Fatal("garbage collection hangs under a hold")
	}
	var n int
	for i := range 1000 { // work on the remaining Ps
		n += i
	}
	if n != 499500 {
		t.Fatal(n)
	}
}

// BenchmarkCalls imitates a server with one client: a short blocking
// system call (an fsync of a small file), then an idle gap the length of
// a network round trip, over and over, and reports the process's context
// switches and CPU time per call, without and with a hold. sysmon's
// 20 µs polls show up as switches.
//
//	go test -run '^$' -bench Calls ./internal/sysmonhold
func BenchmarkCalls(b *testing.B) {
	for _, hold := range []bool{false, true} {
		name := "stock"
		if hold {
			name = "hold"
		}
		b.Run(name, func(b *testing.B) {
			if hold {
				defer Start().Stop()
			}
			f, err := os.Create(filepath.Join(b.TempDir(), "f"))
			if err != nil {
				b.Fatal(err)
			}
			defer f.Close()
			var ru0, ru1 unix.Rusage
			if err := unix.Getrusage(unix.RUSAGE_SELF, &ru0); err != nil {
				b.Fatal(err)
			}
			buf := []byte("x")
			for i := 0; b.Loop(); i++ {
				if _, err := f.WriteAt(buf, int64(i%4096)); err != nil {
					b.Fatal(err)
				}
				if err := f.Sync(); err != nil {
					b.Fatal(err)
				}
				time.Sleep(100 * time.Microsecond)
			}
			if err := unix.Getrusage(unix.RUSAGE_SELF, &ru1); err != nil {
				b.Fatal(err)
			}
			n := float64(b.N)
			sw := (ru1.Nvcsw + ru1.Nivcsw) - (ru0.Nvcsw + ru0.Nivcsw)
			cpu := time.Duration(ru1.Utime.Nano()+ru1.Stime.Nano()-ru0.Utime.Nano()-ru0.Stime.Nano()) / time.Duration(b.N)
			b.ReportMetric(float64(sw)/n, "switches/call")
			b.ReportMetric(float64(cpu.Microseconds()), "cpu-us/call")
		})
	}
}
