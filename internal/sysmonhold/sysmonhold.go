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
// Start parks one goroutine on a P of its own in a raw nanosleep, which
// the runtime counts as running: never is every P idle, sysmon is never
// woken by a system call, and its interval grows to 10 ms. The P it holds
// is added to GOMAXPROCS, so the server keeps as many Ps for its work as
// before. The goroutine yields after every sleep (at most 20 ms; a
// signal, such as the runtime's preemption request, ends one early), so
// garbage collection and Stop do not wait for it.
package sysmonhold

import (
	"runtime"
	"sync"
	"unsafe"

	"golang.org/x/sys/unix"
)

// nap is the longest raw sleep between two yields.
const nap = 20_000_000 // ns

// Hold is a parked goroutine; Stop ends it.
type Hold struct {
	stop  chan struct{}
	done  chan struct{}
	procs int // GOMAXPROCS before Start
	once  sync.Once
}

// Start raises GOMAXPROCS by one and parks a goroutine on the new P.
func Start() *Hold {
	h := &Hold{stop: make(chan struct{}), done: make(chan struct{}), procs: runtime.GOMAXPROCS(0)}
	runtime.GOMAXPROCS(h.procs + 1)
	go h.park()
	return h
}

func (h *Hold) park() {
	defer close(h.done)
	// Not locked to its thread: a locked goroutine's thread would hand its
	// P over and sleep at every yield below.
	ts := unix.Timespec{Nsec: nap}
	for {
		select {
		case <-h.stop:
			return
		default:
		}
		// RawSyscall does not tell the scheduler it is blocking, so this
		// P stays "running" (the point); errors (EINTR) do not matter.
		unix.RawSyscall(unix.SYS_NANOSLEEP, uintptr(unsafe.Pointer(&ts)), 0, 0)
		// A raw system call is no preemption point: yield here, or a
		// stop-the-world would wait for this loop for good.
		runtime.Gosched()
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
