package suite

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync/atomic"
	"time"
)

// workerEnv marks a process started as a front end.
const workerEnv = "MAILNFS_SUITE_WORKER"

// WorkerMain turns this process into a front end when it was started as
// one: it reads a Job (JSON) from stdin, runs it, writes the JobResult
// (JSON) to stdout and exits. Otherwise it returns at once. Call it first
// thing in main (and in TestMain of packages that run front ends).
func WorkerMain() {
	if os.Getenv(workerEnv) != "1" {
		return
	}
	os.Exit(worker(os.Stdin, os.Stdout))
}

func worker(in io.Reader, out io.Writer) int {
	var job Job
	res := &JobResult{Extra: map[string]float64{}}
	enc := json.NewEncoder(out)
	dec := json.NewDecoder(io.LimitReader(in, 16<<20))
	if err := decodeJob(dec, &job); err != nil {
		res.Err = "job: " + err.Error()
		_ = enc.Encode(res)
		return 2
	}
	ctx := context.Background()
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	t, err := Open(ctx, job.Spec, log)
	if err != nil {
		res.Err = err.Error()
		_ = enc.Encode(res)
		return 1
	}
	res = RunJob(ctx, t, &job, NewRecorder())
	if err := t.Close(); err != nil {
		log.Warn("close target", "err", err)
	}
	if err := enc.Encode(res); err != nil {
		return 1
	}
	return 0
}

// decodeJob reads one job and validates it.
func decodeJob(dec *json.Decoder, job *Job) error {
	if err := dec.Decode(job); err != nil {
		return err
	}
	return job.Validate()
}

// runFrontend runs job in a new process (in network namespace ns when not
// empty) and returns what it reported.
func runFrontend(ctx context.Context, job *Job, ns string) (*JobResult, error) {
	exe, err := os.Executable()
	if err != nil {
		return nil, err
	}
	in, err := json.Marshal(job)
	if err != nil {
		return nil, err
	}
	// The front end stops by itself after job.Duration; a hung one is
	// killed well after that.
	ctx, cancel := context.WithTimeout(ctx, job.Duration+10*time.Minute)
	defer cancel()
	var cmd *exec.Cmd
	if ns != "" {
		cmd = exec.CommandContext(ctx, "ip", "netns", "exec", ns, exe)
	} else {
		cmd = exec.CommandContext(ctx, exe)
	}
	cmd.Env = append(os.Environ(), workerEnv+"=1")
	cmd.Stdin = bytes.NewReader(in)
	var stdout, stderr bytes.Buffer
	cmd.Stdout = &stdout
	cmd.Stderr = &limitedBuffer{b: &stderr, n: 64 << 10}
	runErr := cmd.Run()
	var res JobResult
	if err := json.Unmarshal(stdout.Bytes(), &res); err != nil {
		return nil, fmt.Errorf("suite: front end %d: %v; no result (%v): %s", job.Frontend, runErr, err, strings.TrimSpace(stderr.String()))
	}
	if runErr != nil && res.Err == "" {
		res.Err = fmt.Sprintf("front end %d: %v: %s", job.Frontend, runErr, strings.TrimSpace(stderr.String()))
	}
	if res.Extra == nil {
		res.Extra = map[string]float64{}
	}
	return &res, nil
}

type limitedBuffer struct {
	b *bytes.Buffer
	n int
}

func (l *limitedBuffer) Write(p []byte) (int, error) {
	if room := l.n - l.b.Len(); room > 0 {
		l.b.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}

// progressRec is the recorder of the in-process round shown by the
// progress line (nil for front-end rounds).
var progressRec atomic.Pointer[Recorder]

// startProgress draws a status line on w every 200 ms until the returned
// stop is called; w nil draws nothing.
func startProgress(w io.Writer, label string, d time.Duration) func() {
	if w == nil {
		return func() {}
	}
	done := make(chan struct{})
	stopped := make(chan struct{})
	start := time.Now()
	go func() {
		defer close(stopped)
		tick := time.NewTicker(200 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-done:
				fmt.Fprintf(w, "\r\033[K")
				return
			case <-tick.C:
			}
			el := time.Since(start)
			frac := min(float64(el)/float64(max(d, 1)), 1)
			bar := strings.Repeat("#", int(frac*30)) + strings.Repeat(".", 30-int(frac*30))
			ops := ""
			if r := progressRec.Load(); r != nil {
				ok, bad := r.Total()
				ops = fmt.Sprintf(" %d ops %.0f/s %d errors", ok, float64(ok)/el.Seconds(), bad)
			}
			fmt.Fprintf(w, "\r\033[K%s [%s] %4.1fs%s", label, bar, el.Seconds(), ops)
		}
	}()
	return func() {
		close(done)
		<-stopped
	}
}
