package bench

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"slices"
	"strings"
	"sync"
	"time"
)

// Session is what the driver needs from an NFS client: one mounted export.
// Implementations must be safe for concurrent use when shared.
type Session interface {
	// Deliver delivers body durably into the Maildir at mailbox (a path
	// relative to the export): tmp/, write + commit, rename into new/.
	Deliver(ctx context.Context, mailbox string, body []byte) error
	// ListPlus pages through the directory dir (relative to the export) with
	// READDIRPLUS and returns the number of entries other than "." and "..".
	ListPlus(ctx context.Context, dir string) (int, error)
	// Close unmounts and closes the connections.
	Close() error
}

// Dialer opens a Session on an nfs:// URL.
type Dialer func(ctx context.Context, url string) (Session, error)

// Step kinds.
const (
	StepDeliver = "deliver"
	StepList    = "list"
)

// StepSpec is one measured step, run by a driver process inside a server's
// network namespace.
type StepSpec struct {
	Kind string `json:"kind"` // StepDeliver or StepList
	URL  string `json:"url"`

	// Deliveries: Concurrency workers deliver until Duration has passed, or
	// until Count deliveries were made in total when Count > 0. Worker w's
	// n-th message goes to Mailboxes[(w+n) % len(Mailboxes)] with delivery
	// ID IDPrefix-w<w>-<n>. Each worker first delivers one untimed warm-up
	// message (ID IDPrefix-w<w>-warm).
	Concurrency int           `json:"concurrency,omitempty"`
	Duration    time.Duration `json:"duration,omitempty"`
	Count       int           `json:"count,omitempty"`
	Size        int           `json:"size,omitempty"` // bytes, or SizeMix
	Mailboxes   []string      `json:"mailboxes,omitempty"`
	IDPrefix    string        `json:"id_prefix,omitempty"`
	// SharedSession makes all workers use one Session (one mount) instead
	// of one each.
	SharedSession bool `json:"shared_session,omitempty"`

	// Listing: Dir is listed Passes times (default 1), each timed.
	Dir    string `json:"dir,omitempty"`
	Passes int    `json:"passes,omitempty"`
}

// StepResult is what the driver reports.
type StepResult struct {
	// Acked lists the delivery IDs whose Deliver returned success,
	// including the warm-up messages.
	Acked []string `json:"acked,omitempty"`
	// Delivered counts the timed successful deliveries.
	Delivered  int           `json:"delivered"`
	Errors     int           `json:"errors"`
	FirstError string        `json:"first_error,omitempty"`
	Elapsed    time.Duration `json:"elapsed"`
	Latency    Latency       `json:"latency"`

	ListTimes   []time.Duration `json:"list_times,omitempty"`
	ListEntries []int           `json:"list_entries,omitempty"`

	// DriverCPU is the driver process's CPU time over the measured part,
	// filled in by RunStep (the driver does not know it).
	DriverCPU time.Duration `json:"-"`
}

// Latency summarises per-delivery latencies.
type Latency struct {
	P50, P90, P99, Max time.Duration
}

func summarize(d []time.Duration) Latency {
	if len(d) == 0 {
		return Latency{}
	}
	slices.Sort(d)
	// Nearest rank: the smallest latency at least a fraction p of the
	// deliveries did not exceed.
	q := func(p float64) time.Duration { return d[max(0, int(math.Ceil(p*float64(len(d))))-1)] }
	return Latency{P50: q(0.50), P90: q(0.90), P99: q(0.99), Max: d[len(d)-1]}
}

// The step protocol between the orchestrator (RunStep) and the driver
// (ServeStep), one line each, on the driver's stdin and stdout:
//
//	orchestrator: spec JSON     driver: "ready" (dialled, warmed up)
//	orchestrator: "go"          driver: "done" (measured part finished)
//	orchestrator: "finish"      driver: result JSON, then exits
//
// The orchestrator samples the server's /proc counters at "go" and "done",
// so connection setup and teardown are not in the measurement.
const (
	lineReady  = "ready"
	lineGo     = "go"
	lineDone   = "done"
	lineFinish = "finish"
)

// ServeStep is the driver side of the step protocol.
func ServeStep(ctx context.Context, in io.Reader, out io.Writer, dial Dialer) error {
	br := bufio.NewReader(in)
	var spec StepSpec
	line, err := br.ReadString('\n')
	if err != nil {
		return fmt.Errorf("read spec: %w", err)
	}
	if err := json.Unmarshal([]byte(line), &spec); err != nil {
		return fmt.Errorf("decode spec: %w", err)
	}
	expect := func(want string) error {
		l, err := br.ReadString('\n')
		if err != nil {
			return fmt.Errorf("waiting for %q: %w", want, err)
		}
		if strings.TrimSpace(l) != want {
			return fmt.Errorf("got %q, want %q", strings.TrimSpace(l), want)
		}
		return nil
	}
	say := func(s string) error { _, err := io.WriteString(out, s+"\n"); return err }
	gate := func(mid func() error) error {
		if err := say(lineReady); err != nil {
			return err
		}
		if err := expect(lineGo); err != nil {
			return err
		}
		err := mid()
		if serr := say(lineDone); serr != nil {
			return serr
		}
		if ferr := expect(lineFinish); ferr != nil {
			return ferr
		}
		return err
	}

	var res *StepResult
	switch spec.Kind {
	case StepDeliver:
		res, err = runDeliver(ctx, spec, dial, gate)
	case StepList:
		res, err = runList(ctx, spec, dial, gate)
	default:
		err = fmt.Errorf("unknown step kind %q", spec.Kind)
	}
	if err != nil {
		return err
	}
	b, err := json.Marshal(res)
	if err != nil {
		return err
	}
	_, err = out.Write(append(b, '\n'))
	return err
}

func runList(ctx context.Context, spec StepSpec, dial Dialer, gate func(func() error) error) (*StepResult, error) {
	s, err := dialRetry(ctx, dial, spec.URL)
	if err != nil {
		return nil, err
	}
	defer s.Close()
	res := &StepResult{}
	err = gate(func() error {
		for range max(spec.Passes, 1) {
			t0 := time.Now()
			n, err := s.ListPlus(ctx, spec.Dir)
			if err != nil {
				return fmt.Errorf("list %s: %w", spec.Dir, err)
			}
			res.ListTimes = append(res.ListTimes, time.Since(t0))
			res.ListEntries = append(res.ListEntries, n)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return res, s.Close()
}

// dialRetry dials, retrying for a few seconds: a server may listen before
// it serves (Ganesha's start, for one).
func dialRetry(ctx context.Context, dial Dialer, url string) (Session, error) {
	deadline := time.Now().Add(10 * time.Second)
	for {
		s, err := dial(ctx, url)
		if err == nil {
			return s, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, fmt.Errorf("dial %s: %w", url, err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func runDeliver(ctx context.Context, spec StepSpec, dial Dialer, gate func(func() error) error) (*StepResult, error) {
	c := spec.Concurrency
	if c <= 0 || len(spec.Mailboxes) == 0 || (spec.Size <= 0 && spec.Size != SizeMix) || (spec.Duration <= 0 && spec.Count <= 0) {
		return nil, errors.New("deliver step needs concurrency, mailboxes, size and a duration or count")
	}
	sessions := make([]Session, c)
	defer func() {
		for _, s := range sessions {
			if s != nil {
				s.Close()
			}
		}
	}()
	for w := range c {
		if spec.SharedSession && w > 0 {
			continue
		}
		s, err := dialRetry(ctx, dial, spec.URL)
		if err != nil {
			return nil, err
		}
		sessions[w] = s
	}
	session := func(w int) Session {
		if spec.SharedSession {
			return sessions[0]
		}
		return sessions[w]
	}

	type workerResult struct {
		acked []string
		lat   []time.Duration
		errs  int
		first error
	}
	results := make([]workerResult, c)
	// Warm-up: one message per worker, untimed, so that every server has
	// seen the mount, the lookups of the mailboxes and one of each call.
	var wg sync.WaitGroup
	for w := range c {
		wg.Go(func() {
			id := fmt.Sprintf("%s-w%d-warm", spec.IDPrefix, w)
			mb := spec.Mailboxes[w%len(spec.Mailboxes)]
			if err := session(w).Deliver(ctx, mb, MessageBody(id, messageSize(id, spec.Size))); err != nil {
				results[w].errs++
				results[w].first = fmt.Errorf("warm-up delivery to %s: %w", mb, err)
				return
			}
			results[w].acked = append(results[w].acked, id)
		})
	}
	wg.Wait()
	for _, r := range results {
		if r.first != nil {
			return nil, r.first
		}
	}

	res := &StepResult{}
	err := gate(func() error {
		var issued sync.Mutex
		n := 0
		take := func() bool { // another delivery under Count?
			if spec.Count <= 0 {
				return true
			}
			issued.Lock()
			defer issued.Unlock()
			if n >= spec.Count {
				return false
			}
			n++
			return true
		}
		start := time.Now()
		var deadline time.Time
		if spec.Duration > 0 {
			deadline = start.Add(spec.Duration)
		}
		for w := range c {
			wg.Go(func() {
				r := &results[w]
				for seq := 0; ; seq++ {
					if ctx.Err() != nil || (!deadline.IsZero() && !time.Now().Before(deadline)) || !take() {
						return
					}
					id := fmt.Sprintf("%s-w%d-%d", spec.IDPrefix, w, seq)
					mb := spec.Mailboxes[(w+seq)%len(spec.Mailboxes)]
					body := MessageBody(id, messageSize(id, spec.Size))
					t0 := time.Now()
					err := session(w).Deliver(ctx, mb, body)
					if err != nil {
						r.errs++
						if r.first == nil {
							r.first = fmt.Errorf("deliver %s to %s: %w", id, mb, err)
						}
						continue
					}
					r.lat = append(r.lat, time.Since(t0))
					r.acked = append(r.acked, id)
				}
			})
		}
		wg.Wait()
		res.Elapsed = time.Since(start)
		return nil
	})
	if err != nil {
		return nil, err
	}
	var lat []time.Duration
	for _, r := range results {
		res.Acked = append(res.Acked, r.acked...)
		lat = append(lat, r.lat...)
		res.Errors += r.errs
		if r.first != nil && res.FirstError == "" {
			res.FirstError = r.first.Error()
		}
	}
	res.Delivered = len(lat)
	res.Latency = summarize(lat)
	return res, nil
}
