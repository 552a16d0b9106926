package bench

import (
	"bufio"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// syncCalls are the system calls the census counts.
var syncCalls = []string{"fsync", "fdatasync", "sync_file_range", "syncfs", "sync", "msync"}

// census counts a running process's sync system calls with strace -c. It
// slows the process down a lot (every system call stops it), so it is run in
// a step of its own whose speed is not reported.
type census struct {
	cmd  *exec.Cmd
	out  string
	done chan error
}

// startCensus attaches strace to every thread of pid.
func startCensus(pid int, outFile string) (*census, error) {
	cmd := exec.Command("strace", "-f", "-c", "-qq", "-o", outFile,
		"-e", "trace="+strings.Join(syncCalls, ","), "-p", strconv.Itoa(pid))
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	c := &census{cmd: cmd, out: outFile, done: make(chan error, 1)}
	go func() { c.done <- cmd.Wait() }()
	// strace attaches to each thread before it starts counting; give it a
	// moment (there is no readiness signal).
	time.Sleep(500 * time.Millisecond)
	select {
	case err := <-c.done:
		return nil, fmt.Errorf("strace exited at once: %v", err)
	default:
	}
	return c, nil
}

// stop detaches strace and returns the count of each sync system call.
func (c *census) stop() (map[string]int, error) {
	_ = c.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = c.cmd.Process.Kill()
		<-c.done
		return nil, fmt.Errorf("strace did not detach")
	}
	f, err := os.Open(c.out)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseStraceSummary(f)
}

// parseStraceSummary reads strace -c's table: "% time seconds usecs/call
// calls [errors] syscall" rows.
func parseStraceSummary(f *os.File) (map[string]int, error) {
	counts := map[string]int{}
	want := map[string]bool{}
	for _, s := range syncCalls {
		want[s] = true
	}
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 5 || !want[fields[len(fields)-1]] {
			continue
		}
		n, err := strconv.Atoi(fields[3])
		if err != nil {
			continue
		}
		counts[fields[len(fields)-1]] += n
	}
	return counts, sc.Err()
}

// fsyncProbe measures this disk's fsync latency in dir right now: the median
// of n rounds of a 4 KiB overwrite followed by fsync.
func fsyncProbe(dir string, n int) (time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-probe-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	d := make([]time.Duration, 0, n)
	for i := range n {
		buf[0] = byte(i)
		t0 := time.Now()
		if _, err := f.WriteAt(buf, 0); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		d = append(d, time.Since(t0))
	}
	return summarize(d).P50, nil
}
