package bench

import (
	"bufio"
	"fmt"
	"io"
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

// perfCounter counts a process's sync system calls with `perf stat` on the
// syscalls:sys_enter_* tracepoints: counting happens in the kernel, so unlike
// strace it does not slow the server, and it runs during the timed steps.
// perf starts with its counters disabled and is switched on and off through
// its control pipe (--control), which acknowledges each command, so the
// counting window is exactly the measured part of the step.
type perfCounter struct {
	cmd     *exec.Cmd
	out     string
	ctl     *os.File // write end of perf's control pipe
	ack     *bufio.Reader
	ackFile *os.File
	done    chan error
}

// perfAvailable reports whether perf can count the sync tracepoints here.
func perfAvailable() bool {
	if _, err := exec.LookPath("perf"); err != nil {
		return false
	}
	cmd := exec.Command("perf", "stat", "-x,", "-e", perfEvents(), "--", "true")
	return cmd.Run() == nil
}

func perfEvents() string {
	ev := make([]string, len(syncCalls))
	for i, s := range syncCalls {
		ev[i] = "syscalls:sys_enter_" + s
	}
	return strings.Join(ev, ",")
}

// startPerf attaches perf to pid (all its threads, and threads created
// later) and enables counting once perf has acknowledged it.
func startPerf(pid int, outFile string) (_ *perfCounter, err error) {
	ctlR, ctlW, err := os.Pipe()
	if err != nil {
		return nil, err
	}
	ackR, ackW, err := os.Pipe()
	if err != nil {
		ctlR.Close()
		ctlW.Close()
		return nil, err
	}
	cmd := exec.Command("perf", "stat", "-x,", "-o", outFile, "-e", perfEvents(),
		"-D", "-1", "--control", "fd:3,4", "-p", strconv.Itoa(pid))
	cmd.ExtraFiles = []*os.File{ctlR, ackW} // fds 3 and 4
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	err = cmd.Start()
	ctlR.Close()
	ackW.Close()
	if err != nil {
		ctlW.Close()
		ackR.Close()
		return nil, err
	}
	p := &perfCounter{cmd: cmd, out: outFile, ctl: ctlW, ack: bufio.NewReader(ackR), ackFile: ackR, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	if err := p.command("enable"); err != nil {
		p.kill()
		return nil, fmt.Errorf("perf stat: %w", err)
	}
	return p, nil
}

// command sends a control command and waits up to 10 s for perf's ack.
func (p *perfCounter) command(c string) error {
	if _, err := io.WriteString(p.ctl, c+"\n"); err != nil {
		return err
	}
	_ = p.ackFile.SetReadDeadline(time.Now().Add(10 * time.Second))
	line, err := p.ack.ReadString('\n')
	if err != nil {
		return fmt.Errorf("no ack for %q: %w", c, err)
	}
	// perf writes "ack\n" with its C string terminator, so the NUL shows
	// up in front of the next ack.
	if strings.Trim(line, "\x00 \n") != "ack" {
		return fmt.Errorf("perf answered %q to %q", line, c)
	}
	return nil
}

func (p *perfCounter) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
	p.ctl.Close()
	p.ackFile.Close()
}

// stop disables counting, ends perf and returns the count per system call.
func (p *perfCounter) stop() (map[string]int, error) {
	if err := p.command("disable"); err != nil {
		p.kill()
		return nil, fmt.Errorf("perf stat: %w", err)
	}
	_ = p.cmd.Process.Signal(syscall.SIGINT)
	select {
	case <-p.done:
	case <-time.After(10 * time.Second):
		p.kill()
		return nil, fmt.Errorf("perf stat did not stop")
	}
	p.ctl.Close()
	p.ackFile.Close()
	b, err := os.ReadFile(p.out)
	if err != nil {
		return nil, err
	}
	return parsePerfCSV(string(b)), nil
}

// parsePerfCSV reads `perf stat -x,` lines: "count,unit,event,...".
// Only the calls of syncCalls are kept; "<not counted>", "<not supported>"
// and anything else that is not a count count as zero.
func parsePerfCSV(s string) map[string]int {
	want := map[string]bool{}
	for _, c := range syncCalls {
		want[c] = true
	}
	counts := map[string]int{}
	for line := range strings.SplitSeq(s, "\n") {
		f := strings.Split(line, ",")
		if len(f) < 3 {
			continue
		}
		name, ok := strings.CutPrefix(f[2], "syscalls:sys_enter_")
		if !ok || !want[name] {
			continue
		}
		n, err := strconv.Atoi(strings.TrimSpace(f[0]))
		if err != nil || n < 0 {
			n = 0
		}
		counts[name] += n
	}
	return counts
}
