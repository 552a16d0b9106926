package suite

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/mailnfs/mailnfs/bench"
)

// Config is one run of the suite.
type Config struct {
	// Workload is one of Workloads.
	Workload string
	// Targets are target specs (see Open); several are measured
	// interleaved: every round visits each target in turn.
	Targets []string
	// Params are the workload's parameters.
	Params Params
	// Duration is the measured time per target, split over Rounds
	// (default 10 s; postmark runs its transactions whatever the time).
	Duration time.Duration
	// Rounds is the number of interleaved rounds (default 3).
	Rounds int
	// Frontends > 0 runs the workers in that many separate processes
	// (WorkerMain); 0 runs them in this process.
	Frontends int
	// NetNS puts each front end in its own network namespace on a private
	// 10.x net (needs root, Frontends > 0, and only the self target).
	NetNS bool
	// Keep leaves the run directory in each target.
	Keep bool
	// Logger receives progress events; nil discards.
	Logger *slog.Logger
	// Progress, if set, gets a live status line (a terminal).
	Progress io.Writer
}

// Result is one target's figures for the workload.
type Result struct {
	Target   string             `json:"target"`
	Workload string             `json:"workload"`
	Elapsed  time.Duration      `json:"elapsed_ns"` // measured time (all rounds)
	Ops      []OpStats          `json:"ops"`
	Extra    map[string]float64 `json:"extra,omitempty"`
	Verify   *Verification      `json:"verify"`
	Problems []string           `json:"problems,omitempty"`
}

// Report is a whole run, the -json format.
type Report struct {
	Version   int       `json:"version"`
	Started   time.Time `json:"started"`
	Host      string    `json:"host"`
	Workload  string    `json:"workload"`
	Params    Params    `json:"params"`
	Duration  string    `json:"duration"`
	Rounds    int       `json:"rounds"`
	Frontends int       `json:"frontends"`
	NetNS     bool      `json:"netns"`
	Results   []*Result `json:"results"`
}

// Failed reports whether any target failed verification.
func (r *Report) Failed() bool {
	for _, res := range r.Results {
		if res.Verify == nil || !res.Verify.OK {
			return true
		}
	}
	return false
}

// testHookBeforeVerify, set by tests, plants faults between the workload and
// the verification.
var testHookBeforeVerify func(t Target, mailboxes []string)

type targetRun struct {
	t        Target
	spec     string // what workers open
	top      string
	boxes    []string
	res      *Result
	acked    []Delivery
	deleted  []string
	timeline int // buckets used so far (rounds laid end to end)
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Run runs cfg and returns the report; a verification failure is in the
// report (Failed), an error means the run could not be carried out.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Duration <= 0 {
		cfg.Duration = 10 * time.Second
	}
	if cfg.Rounds <= 0 {
		cfg.Rounds = 3
	}
	if len(cfg.Targets) == 0 {
		return nil, errors.New("suite: no targets")
	}
	known := false
	for _, w := range Workloads {
		known = known || w == cfg.Workload
	}
	if !known {
		return nil, fmt.Errorf("suite: unknown workload %q (want one of %v)", cfg.Workload, Workloads)
	}
	p := cfg.Params
	if p.Mailboxes <= 0 || (cfg.Workload == WorkPostMark && (p.PMLow <= 0 || p.PMHigh < p.PMLow || p.PMFiles <= 0)) ||
		(cfg.Workload == WorkBigDir && p.BigDirN <= 0) {
		return nil, fmt.Errorf("suite: bad parameters %+v", p)
	}
	if cfg.NetNS && cfg.Frontends <= 0 {
		return nil, errors.New("suite: -netns needs -frontends > 0")
	}
	host, _ := os.Hostname()
	rep := &Report{Version: 1, Started: time.Now().UTC(), Host: host, Workload: cfg.Workload, Params: p,
		Duration: cfg.Duration.String(), Rounds: cfg.Rounds, Frontends: cfg.Frontends, NetNS: cfg.NetNS}

	var net *Net
	if cfg.NetNS {
		var err error
		if net, err = NewNet(ctx, cfg.Frontends); err != nil {
			return nil, err
		}
		defer func() {
			if err := net.Close(); err != nil {
				cfg.Logger.Warn("netns cleanup", "err", err)
			}
		}()
	}

	var runs []*targetRun
	defer func() {
		for _, tr := range runs {
			_, self := tr.t.(*SelfTarget) // Close removes its whole directory, faster than over NFS
			failed := tr.res.Verify != nil && !tr.res.Verify.OK
			if failed && !self && !cfg.Keep {
				// The evidence of a loss or a duplicate stays.
				cfg.Logger.Warn("verification failed: run directory kept for inspection", "target", tr.t.Name(), "dir", tr.top)
			}
			if !cfg.Keep && !self && !failed {
				if err := tr.t.RemoveAll(context.WithoutCancel(ctx), tr.top); err != nil {
					cfg.Logger.Warn("cleanup", "target", tr.t.Name(), "err", err)
				}
			}
			if err := tr.t.Close(); err != nil {
				cfg.Logger.Warn("close", "target", tr.t.Name(), "err", err)
			}
		}
	}()
	for _, spec := range cfg.Targets {
		listen := ""
		if net != nil && spec == "self" {
			listen = net.HubAddr
		}
		if net != nil && spec != "self" {
			return nil, fmt.Errorf("suite: -netns reaches only the self target, not %s", spec)
		}
		var t Target
		var err error
		switch {
		case spec == "self":
			t, err = StartSelf(ctx, listen, cfg.Logger)
		case strings.HasPrefix(spec, "server:"):
			if net != nil {
				return nil, fmt.Errorf("suite: -netns reaches only the self target, not %s", spec)
			}
			t, err = StartServerTarget(ctx, strings.TrimPrefix(spec, "server:"), cfg.Logger)
		default:
			t, err = Open(ctx, spec, cfg.Logger)
		}
		if err != nil {
			return nil, err
		}
		tr := &targetRun{t: t, spec: spec, top: "suite-" + randHex(4),
			res: &Result{Target: t.Name(), Workload: cfg.Workload, Extra: map[string]float64{}}}
		switch tt := t.(type) {
		case *ServerTarget:
			tr.spec = tt.URL()
		case *SelfTarget:
			tr.spec = tt.URL()
		case *DirTarget:
			tr.spec = "dir:" + tt.LocalRoot()
		case *NFSTarget:
			tr.spec = tt.URL()
		}
		runs = append(runs, tr)
		rep.Results = append(rep.Results, tr.res)
		if err := prepare(ctx, cfg, tr); err != nil {
			return nil, fmt.Errorf("suite: prepare %s: %w", t.Name(), err)
		}
	}

	per := cfg.Duration / time.Duration(cfg.Rounds)
	for round := range cfg.Rounds {
		for _, tr := range runs {
			job := Job{Workload: cfg.Workload, Spec: tr.spec, Top: tr.top, Mailboxes: tr.boxes,
				Params: p, Duration: per, Round: round}
			cfg.Logger.Info("round", "round", round+1, "of", cfg.Rounds, "target", tr.t.Name())
			results, err := runRound(ctx, cfg, tr, job, net, round)
			if err != nil {
				return nil, err
			}
			var el time.Duration // the longest job: front ends' start-up does not count
			for _, jr := range results {
				el = max(el, jr.Elapsed)
			}
			tr.res.Elapsed += el
			roundExtra := map[string]float64{}
			for _, jr := range results {
				tr.res.Ops = mergeOps(tr.res.Ops, jr.Ops, tr.timeline)
				tr.acked = append(tr.acked, jr.Acked...)
				tr.deleted = append(tr.deleted, jr.Deleted...)
				tr.res.Problems = append(tr.res.Problems, jr.Problems...)
				for k, v := range jr.Extra {
					if strings.HasSuffix(k, "_seconds") {
						roundExtra[k] = max(roundExtra[k], v)
					} else {
						roundExtra[k] += v
					}
				}
				if jr.Err != "" {
					tr.res.Problems = append(tr.res.Problems, "front end: "+jr.Err)
					roundExtra["problems"]++
				}
			}
			for k, v := range roundExtra {
				tr.res.Extra[k] += v
			}
			tr.timeline += int((el + TimelineStep - 1) / TimelineStep)
		}
	}
	for _, tr := range runs {
		if testHookBeforeVerify != nil {
			testHookBeforeVerify(tr.t, tr.boxes)
		}
		vt := tr.t
		if lr, ok := tr.t.(*SelfTarget); ok { // check the disk, not the server's view of it
			if d, err := OpenDir(lr.LocalRoot()); err == nil {
				vt = d
			}
		}
		boxes := tr.boxes
		if cfg.Workload == WorkBigDir || cfg.Workload == WorkPostMark {
			boxes = nil // bigdir: counted by the listers; postmark: checked by itself
		}
		v, err := Verify(ctx, vt, boxes, tr.acked, tr.deleted)
		if err != nil {
			return nil, fmt.Errorf("suite: verify %s: %w", tr.t.Name(), err)
		}
		if cfg.Workload == WorkBigDir {
			if err := verifyBigDir(ctx, vt, tr, p.BigDirN, v); err != nil {
				return nil, err
			}
		}
		if cfg.Workload == WorkPostMark {
			if n, err := vt.ReadDir(ctx, path.Join(tr.top, "postmark")); err != nil || n != 0 {
				v.WorkloadErrs++
				v.problem("postmark directory not empty after the run: %d entries, %v", n, err)
			}
		}
		v.WorkloadErrs += int(tr.res.Extra["problems"])
		v.Problems = append(v.Problems, tr.res.Problems...)
		if len(v.Problems) > maxProblems {
			v.Problems = v.Problems[:maxProblems]
		}
		v.finish()
		tr.res.Verify = v
	}
	return rep, nil
}

// prepare makes the run directory, the mailboxes, preloads them (pop3,
// mixed) and populates bigdir.
func prepare(ctx context.Context, cfg Config, tr *targetRun) error {
	p := cfg.Params
	if err := tr.t.Mkdir(ctx, tr.top); err != nil {
		return err
	}
	n := p.Mailboxes
	if cfg.Workload == WorkBigDir {
		n = 1
	}
	for i := range n {
		mb := path.Join(tr.top, fmt.Sprintf("u%04d", i))
		if err := tr.t.MakeMaildir(ctx, mb); err != nil {
			return err
		}
		tr.boxes = append(tr.boxes, mb)
	}
	switch cfg.Workload {
	case WorkPOP3, WorkMixed:
		job := &Job{Workload: cfg.Workload, Params: p, Round: -1}
		s := &jobState{job: job, t: tr.t, rec: NewRecorder(), res: JobResult{Extra: map[string]float64{}}}
		var wg sync.WaitGroup
		errs := make(chan error, len(tr.boxes))
		for i, mb := range tr.boxes {
			wg.Go(func() {
				for k := range p.Preload {
					if err := s.deliver(ctx, mb, s.idFor("p", i, k)); err != nil {
						errs <- err
						return
					}
				}
			})
		}
		wg.Wait()
		close(errs)
		if err := <-errs; err != nil {
			return fmt.Errorf("preload: %w", err)
		}
		tr.acked = append(tr.acked, s.res.Acked...)
	case WorkBigDir:
		return populateBigDir(ctx, tr, p.BigDirN, cfg.Logger)
	}
	return nil
}

// bigDirSize is the size of every bigdir message.
const bigDirSize = 400

// populateBigDir fills the bigdir mailbox's new/ with n messages: directly
// on disk for local and self targets (one syncfs at the end), by NFS
// deliveries (16 at a time) otherwise.
func populateBigDir(ctx context.Context, tr *targetRun, n int, log *slog.Logger) error {
	mb := tr.boxes[0]
	log.Info("populating bigdir", "target", tr.t.Name(), "messages", n)
	if lr, ok := tr.t.(localRooted); ok {
		dir := filepath.Join(lr.LocalRoot(), filepath.FromSlash(mb), "new")
		for i := range n {
			id := "big-" + strconv.Itoa(i)
			body := bench.MessageBody(id, bigDirSize)
			name := fmt.Sprintf("%d.M%dP1Q%d.bench,S=%d", 1700000000+i/1000, i%1000000, i, len(body))
			if err := os.WriteFile(filepath.Join(dir, name), body, 0o600); err != nil {
				return err
			}
			if i%1000 == 999 && ctx.Err() != nil {
				return ctx.Err()
			}
		}
		return syncDir(dir)
	}
	s := &jobState{job: &Job{Params: Params{Size: bigDirSize}, Round: -2}, t: tr.t, rec: NewRecorder(), res: JobResult{Extra: map[string]float64{}}}
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for w := range 16 {
		wg.Go(func() {
			for i := w; i < n; i += 16 {
				if err := s.deliver(ctx, mb, s.idFor("b", 0, i)); err != nil {
					mu.Lock()
					first = cmpErr(first, err)
					mu.Unlock()
					return
				}
			}
		})
	}
	wg.Wait()
	return first
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// verifyBigDir checks that the bigdir mailbox still holds exactly n
// distinct messages and nothing in tmp/.
func verifyBigDir(ctx context.Context, t Target, tr *targetRun, n int, v *Verification) error {
	mb := tr.boxes[0]
	ms, err := t.List(ctx, mb)
	if err != nil {
		return fmt.Errorf("verify bigdir: %w", err)
	}
	v.Mailboxes, v.Expected, v.Found = 1, n, len(ms)
	seen := make(map[string]bool, len(ms))
	for _, m := range ms {
		if seen[m.Key] {
			v.Duplicated++
			v.problem("bigdir: key %s twice", m.Key)
		}
		seen[m.Key] = true
		if m.Size != bigDirSize {
			v.Corrupt++
			v.problem("bigdir: %s has size %d", m.Name, m.Size)
		}
	}
	if len(seen) < n {
		v.Lost += n - len(seen)
		v.problem("bigdir: %d messages, want %d", len(seen), n)
	}
	tmp, err := t.TmpFiles(ctx, mb)
	if err != nil {
		return err
	}
	v.StrayTmp += len(tmp)
	return nil
}

// runRound runs one round of job on one target: in this process, or split
// over the front-end processes.
func runRound(ctx context.Context, cfg Config, tr *targetRun, job Job, net *Net, round int) ([]*JobResult, error) {
	conc := job.Params.concurrency(cfg.Workload)
	deliverers, sessions := 0, 0
	switch cfg.Workload {
	case WorkDeliver:
		deliverers = conc
	case WorkMixed:
		deliverers, sessions = conc, min(max(job.Params.Sessions, 1), len(tr.boxes))
	case WorkPOP3:
		sessions = min(conc, len(tr.boxes))
	case WorkPostMark, WorkBigDir:
		sessions = conc
	}
	job.SessionTotal = sessions
	fes := max(cfg.Frontends, 1)
	srvNS := ""
	if st, ok := tr.t.(*ServerTarget); ok {
		srvNS = st.Namespace() // its workers must run where the server is
	}
	jobs := make([]Job, fes)
	for f := range fes {
		j := job
		j.Frontend = f
		j.Deliverers = deliverers / fes
		if f < deliverers%fes {
			j.Deliverers++
		}
		j.SessionWorkers = nil
		for g := f; g < sessions; g += fes {
			j.SessionWorkers = append(j.SessionWorkers, g)
		}
		jobs[f] = j
	}
	stop := startProgress(cfg.Progress, fmt.Sprintf("%s %s round %d/%d", cfg.Workload, tr.t.Name(), round+1, cfg.Rounds), job.Duration)
	defer stop()
	if cfg.Frontends <= 0 && srvNS == "" {
		rec := NewRecorder()
		progressRec.Store(rec)
		return []*JobResult{RunJob(ctx, tr.t, &jobs[0], rec)}, nil
	}
	progressRec.Store(nil)
	out := make([]*JobResult, fes)
	errs := make([]error, fes)
	var wg sync.WaitGroup
	for f := range fes {
		wg.Go(func() {
			ns := srvNS
			if net != nil {
				ns = net.NS[f]
				jobs[f].Spec = tr.t.(*SelfTarget).URLFor(net.HubAddr)
			}
			out[f], errs[f] = runFrontend(ctx, &jobs[f], ns)
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return out, nil
}
