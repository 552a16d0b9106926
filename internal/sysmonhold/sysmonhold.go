// Package sysmonhold keeps the Go runtime's system monitor thread (sysmon)
// from polling at its fastest rate while a server answers calls one after
// another.
//
// sysmon sleeps for good while every P (the runtime's slot for running Go
// code) is idle. The first system call after that wakes it and resets its
// poll interval to 20 µs; it doubles the interval only after 50 polls in a
// row that found nothing to do (1 ms). A server with a few clients goes
// idle between their calls, so nearly every call wakes sysmon, which then
// polls every 20 µs for as long as the call lasts (an fsync, a reply).
// Each poll is a sleep and a wake-up of a thread: on a virtual machine,
// where switching threads is dear, perf found a third of mailnfsd's CPU
// time in sysmon's sleeps with one client delivering mail.
//
// Start parks one goroutine in short sleeps (nap) made as ordinary
// blocking system calls. A P whose goroutine is in a system call is not
// idle, and sysmon leaves it alone for 10 ms while other Ps are free, so
// with naps shorter than that never is every P idle: sysmon is not woken
// by calls, and its interval grows to 10 ms. A goroutine in a system call
// is at a safe point, so garbage collection scans and stops around it
// without waiting (an earlier version slept in a raw system call, which
// the collector had to interrupt with signals in every cycle, slowing
// large directory listings by a third). The P it mostly holds is added
// to GOMAXPROCS.
package sysmonhold

import (
	"runtime"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// nap is each sleep: well under the 10 ms for which sysmon leaves a P in a
// system call alone while other Ps are free (runtime.retake), so the
// sleeper keeps its P unless the server is busy on every other one.
const nap = 5 * time.Millisecond

// Hold is a parked goroutine; Stop ends it.
type Hold struct {
	stop  chan struct{}
	done  chan struct{}
	procs int // GOMAXPROCS before Start
	once  sync.Once
}

// Start raises GOMAXPROCS by one and parks a goroutine in naps.
func Start() *Hold {
	h := &Hold{stop: make(chan struct{}), done: make(chan struct{}), procs: runtime.GOMAXPROCS(0)}
	runtime.GOMAXPROCS(h.procs + 1)
	go h.park()
	return h
}

func (h *Hold) park() {
	defer close(h.done)
	ts := unix.NsecToTimespec(int64(nap))
	for {
		select {
		case <-h.stop:
			return
		default:
		}
		// unix.Nanosleep is a blocking system call as the runtime sees
		// it (not time.Sleep, which parks the goroutine and frees the
		// P); EINTR only shortens a nap.
		unix.Nanosleep(&ts, nil)
	}
}

// Stop ends the goroutine and gives GOMAXPROCS back its old value. It is
// safe to call more than once.
func (h *Hold) Stop() {
	h.once.Do(func() {
		close(h.stop)
		<-h.done
		runtime.GOMAXPROCS(h.procs)
	})
}
