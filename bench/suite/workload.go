package suite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"path"
	"strconv"
	"sync"
	"time"

	"github.com/mailnfs/mailnfs/bench"
)

// Workload names.
const (
	WorkDeliver  = "deliver"
	WorkPOP3     = "pop3"
	WorkPostMark = "postmark"
	WorkBigDir   = "bigdir"
	WorkMixed    = "mixed"
)

// Workloads lists the workload names.
var Workloads = []string{WorkDeliver, WorkPOP3, WorkPostMark, WorkBigDir, WorkMixed}

// Params are a workload's parameters; DefaultParams documents the defaults.
type Params struct {
	// Mailboxes is the number of mailboxes (deliver, pop3, mixed).
	Mailboxes int `json:"mailboxes"`
	// Concurrency is the number of deliverers (deliver, mixed), session
	// workers (pop3), PostMark instances (postmark) or listers (bigdir).
	Concurrency int `json:"concurrency"`
	// Sessions is the number of session workers of mixed.
	Sessions int `json:"sessions"`
	// Size is the message size in bytes; bench.SizeMix (-1) draws the
	// mail-like mix of bench.MixSize.
	Size int `json:"size"`
	// Preload is the number of messages delivered to each mailbox before
	// pop3 and mixed sessions start (not measured); pop3 refills a mailbox
	// that falls below half of it.
	Preload int `json:"preload"`
	// DeleteFraction is the share of the messages a session deletes.
	DeleteFraction float64 `json:"delete_fraction"`
	// Count, when > 0, ends each deliverer after Count deliveries per round
	// instead of at the end of the round's time.
	Count int `json:"count"`

	// PostMark parameters (PostMark 1.51 names in brackets).
	PMFiles        int   `json:"pm_files"`        // pool size [number] 500
	PMTransactions int   `json:"pm_transactions"` // [transactions] 500
	PMLow          int   `json:"pm_low"`          // [size low] 500
	PMHigh         int   `json:"pm_high"`         // [size high] 10000
	PMBiasRead     int   `json:"pm_bias_read"`    // [bias read] 5: read vs append, out of 10
	PMBiasCreate   int   `json:"pm_bias_create"`  // [bias create] 5: create vs delete, out of 10
	PMSeed         int64 `json:"pm_seed"`         // [seed] 42
	PMSync         bool  `json:"pm_sync"`         // fsync every write on dir: (PostMark never does)

	// BigDirN is the size of the bigdir mailbox.
	BigDirN int `json:"bigdir_n"`
}

// DefaultParams are the defaults of every workload parameter. Concurrency 0
// means: 8 for deliver, pop3 and mixed, 1 for postmark and bigdir.
func DefaultParams() Params {
	return Params{
		Mailboxes:      20,
		Sessions:       4,
		Size:           bench.SizeMix,
		Preload:        20,
		DeleteFraction: 0.5,
		PMFiles:        500,
		PMTransactions: 500,
		PMLow:          500,
		PMHigh:         10000,
		PMBiasRead:     5,
		PMBiasCreate:   5,
		PMSeed:         42,
		BigDirN:        100000,
	}
}

// concurrency is p.Concurrency or the workload's default.
func (p Params) concurrency(work string) int {
	if p.Concurrency > 0 {
		return p.Concurrency
	}
	switch work {
	case WorkPostMark, WorkBigDir:
		return 1
	}
	return 8
}

// Job is the part of a round one process runs: what the orchestrator sends
// a front end.
type Job struct {
	Workload  string        `json:"workload"`
	Spec      string        `json:"spec"` // target to open (worker processes)
	Top       string        `json:"top"`  // run directory in the target
	Mailboxes []string      `json:"mailboxes"`
	Params    Params        `json:"params"`
	Duration  time.Duration `json:"duration"`
	Round     int           `json:"round"`
	Frontend  int           `json:"frontend"`
	// Deliverers and SessionWorkers are this process's workers; session
	// worker g of SessionTotal owns the mailboxes i with i%SessionTotal == g,
	// PostMark and bigdir workers are numbered the same way.
	Deliverers     int   `json:"deliverers"`
	SessionWorkers []int `json:"session_workers"`
	SessionTotal   int   `json:"session_total"`
}

// JobResult is what a job reports back.
type JobResult struct {
	Ops      []OpStats          `json:"ops"`
	Acked    []Delivery         `json:"acked"`
	Deleted  []string           `json:"deleted"`
	Extra    map[string]float64 `json:"extra"`
	Problems []string           `json:"problems"`
	Err      string             `json:"error,omitempty"`
	// Elapsed is the job's own running time (process start-up and dialling
	// excluded).
	Elapsed time.Duration `json:"elapsed_ns"`
}

// Validate checks a job received from another process before it runs.
func (j *Job) Validate() error {
	p := j.Params
	known := false
	for _, w := range Workloads {
		known = known || w == j.Workload
	}
	switch {
	case !known:
		return fmt.Errorf("unknown workload %q", j.Workload)
	case j.Duration <= 0 || j.Duration > 24*time.Hour:
		return fmt.Errorf("duration %v out of range", j.Duration)
	case j.Deliverers < 0 || j.Deliverers > 10000 || len(j.SessionWorkers) > 10000:
		return fmt.Errorf("%d deliverers, %d session workers: too many", j.Deliverers, len(j.SessionWorkers))
	case (j.Deliverers > 0 || len(j.SessionWorkers) > 0) && len(j.Mailboxes) == 0:
		return errors.New("workers but no mailboxes")
	case len(j.SessionWorkers) > 0 && j.SessionTotal <= 0:
		return errors.New("session workers but no session total")
	case p.Size > 256<<20:
		return fmt.Errorf("message size %d too large", p.Size)
	case j.Workload == WorkPostMark && (p.PMLow <= 0 || p.PMHigh < p.PMLow || p.PMHigh > 64<<20 || p.PMFiles <= 0 || p.PMFiles > 10_000_000 || p.PMTransactions < 0):
		return fmt.Errorf("PostMark parameters out of range: files %d, sizes %d..%d, transactions %d", p.PMFiles, p.PMLow, p.PMHigh, p.PMTransactions)
	case j.Workload == WorkBigDir && p.BigDirN <= 0:
		return fmt.Errorf("bigdir size %d", p.BigDirN)
	}
	for _, g := range j.SessionWorkers {
		if g < 0 || g >= j.SessionTotal {
			return fmt.Errorf("session worker %d of %d", g, j.SessionTotal)
		}
	}
	return nil
}

type jobState struct {
	job *Job
	t   Target
	rec *Recorder
	mu  sync.Mutex
	res JobResult
}

func (s *jobState) acked(d Delivery) {
	s.mu.Lock()
	s.res.Acked = append(s.res.Acked, d)
	s.mu.Unlock()
}

func (s *jobState) deleted(id string) {
	s.mu.Lock()
	s.res.Deleted = append(s.res.Deleted, id)
	s.mu.Unlock()
}

func (s *jobState) problem(format string, a ...any) {
	s.mu.Lock()
	if len(s.res.Problems) < maxProblems {
		s.res.Problems = append(s.res.Problems, fmt.Sprintf(format, a...))
	}
	s.res.Extra["problems"]++
	s.mu.Unlock()
}

func (s *jobState) extra(k string, v float64, keepMax bool) {
	s.mu.Lock()
	if keepMax {
		s.res.Extra[k] = max(s.res.Extra[k], v)
	} else {
		s.res.Extra[k] += v
	}
	s.mu.Unlock()
}

// RunJob runs job against t, recording into rec (which may be shared with a
// progress display). It returns when the job's time is up or ctx ends.
func RunJob(ctx context.Context, t Target, job *Job, rec *Recorder) *JobResult {
	s := &jobState{job: job, t: t, rec: rec, res: JobResult{Extra: map[string]float64{}}}
	start := time.Now()
	ctx, cancel := context.WithTimeout(ctx, job.Duration)
	defer cancel()
	var wg sync.WaitGroup
	for w := range job.Deliverers {
		wg.Go(func() { s.deliverer(ctx, w) })
	}
	for _, g := range job.SessionWorkers {
		wg.Go(func() {
			switch job.Workload {
			case WorkPostMark:
				s.postmark(context.WithoutCancel(ctx), g)
			case WorkBigDir:
				s.lister(ctx, g)
			default:
				s.sessions(ctx, g)
			}
		})
	}
	wg.Wait()
	s.res.Ops = rec.Snapshot()
	s.res.Elapsed = time.Since(start)
	return &s.res
}

// idFor names delivery n of a worker: unique across rounds, front ends and
// workers.
func (s *jobState) idFor(kind string, w, n int) string {
	return fmt.Sprintf("r%d-f%d-%s%d-%d", s.job.Round, s.job.Frontend, kind, w, n)
}

// deliver delivers one message with id to mailbox and records it.
func (s *jobState) deliver(ctx context.Context, mailbox, id string) error {
	size := s.job.Params.Size
	if size <= 0 {
		size = bench.MixSize(id)
	}
	body := bench.MessageBody(id, size)
	t0 := time.Now()
	key, err := s.t.Deliver(ctx, mailbox, body)
	s.rec.Observe("deliver", t0, len(body), err)
	if err == nil {
		s.acked(Delivery{ID: id, Mailbox: mailbox, Key: key, Size: len(body), SHA256: sum(body)})
	}
	return err
}

func (s *jobState) deliverer(ctx context.Context, w int) {
	rng := rand.New(rand.NewPCG(uint64(s.job.Round)<<32|uint64(s.job.Frontend)<<16|uint64(w), 7))
	for n := 0; ctx.Err() == nil; n++ {
		if s.job.Params.Count > 0 && n >= s.job.Params.Count {
			return
		}
		mb := s.job.Mailboxes[rng.IntN(len(s.job.Mailboxes))]
		// A started delivery runs to its end: the end of the round must
		// not leave half-written tmp/ files behind.
		_ = s.deliver(context.WithoutCancel(ctx), mb, s.idFor("d", w, n))
	}
}

// sessions runs POP3-style sessions over the mailboxes session worker g owns.
func (s *jobState) sessions(ctx context.Context, g int) {
	var mine []string
	for i, mb := range s.job.Mailboxes {
		if i%s.job.SessionTotal == g {
			mine = append(mine, mb)
		}
	}
	if len(mine) == 0 {
		return
	}
	rng := rand.New(rand.NewPCG(uint64(s.job.Round)<<32|uint64(g), 11))
	refills := 0
	for i := 0; ctx.Err() == nil; i++ {
		mb := mine[i%len(mine)]
		n := s.session(context.WithoutCancel(ctx), rng, mb)
		if s.job.Workload == WorkPOP3 && n >= 0 && n < s.job.Params.Preload/2 {
			for k := n; k < s.job.Params.Preload && ctx.Err() == nil; k++ {
				_ = s.deliver(context.WithoutCancel(ctx), mb, s.idFor("s", g, refills))
				refills++
			}
		}
	}
}

// session lists mb, reads every message, marks the new ones seen and
// deletes a share of them; it returns how many messages are left (-1 on
// error).
func (s *jobState) session(ctx context.Context, rng *rand.Rand, mb string) int {
	start := time.Now()
	fail := func(op string, t0 time.Time, err error) int {
		s.rec.Observe(op, t0, 0, err)
		s.rec.Observe("session", start, 0, err)
		return -1
	}
	t0 := time.Now()
	ms, err := s.t.List(ctx, mb)
	if err != nil {
		return fail("list", t0, err)
	}
	s.rec.Observe("list", t0, 0, nil)
	left, bytes := 0, 0
	for _, m := range ms {
		t0 = time.Now()
		body, err := s.t.Read(ctx, mb, m)
		if err != nil {
			return fail("read", t0, err)
		}
		s.rec.Observe("read", t0, len(body), nil)
		bytes += len(body)
		id, err := bench.MessageID(body)
		if err != nil || (m.Size >= 0 && int64(len(body)) != m.Size) {
			s.problem("session %s/%s/%s: %d bytes, name says %d (id %q, %v)", mb, m.Dir, m.Name, len(body), m.Size, id, err)
		}
		if rng.Float64() < s.job.Params.DeleteFraction {
			t0 = time.Now()
			if err := s.t.Delete(ctx, mb, m.Key); err != nil {
				return fail("delete", t0, err)
			}
			s.rec.Observe("delete", t0, 0, nil)
			if id != "" {
				s.deleted(id)
			}
			continue
		}
		left++
		if m.Dir == "new" {
			t0 = time.Now()
			if err := s.t.Flag(ctx, mb, m.Key, "S"); err != nil {
				return fail("flag", t0, err)
			}
			s.rec.Observe("flag", t0, 0, nil)
		}
	}
	s.rec.Observe("session", start, bytes, nil)
	return left
}

// lister lists the bigdir mailbox's new/ until the time is up (at least
// once) and checks the entry count.
func (s *jobState) lister(ctx context.Context, g int) {
	dir := path.Join(s.job.Mailboxes[0], "new")
	for first := true; first || ctx.Err() == nil; first = false {
		t0 := time.Now()
		n, err := s.t.ReadDir(context.WithoutCancel(ctx), dir)
		s.rec.Observe("readdirplus", t0, 0, err)
		if err == nil {
			s.extra("entries", float64(n), false)
			if n != s.job.Params.BigDirN {
				s.problem("bigdir lister %d: %d entries, want %d", g, n, s.job.Params.BigDirN)
			}
		}
	}
}

// postmark runs one PostMark 1.51 instance in <top>/postmark/w<g>: pool
// creation, transactions, deletion of what is left. Its duration is its
// work, not the round's time.
func (s *jobState) postmark(ctx context.Context, g int) {
	p := s.job.Params
	dir := path.Join(s.job.Top, "postmark", fmt.Sprintf("r%d-f%d-w%d", s.job.Round, s.job.Frontend, g))
	if err := s.t.Mkdir(ctx, dir); err != nil {
		s.problem("postmark mkdir %s: %v", dir, err)
		return
	}
	rng := rand.New(rand.NewPCG(uint64(p.PMSeed), uint64(g)))
	sizes := map[int]int{} // file number -> size
	var live []int         // file numbers, for random choice
	next := 0
	buf := make([]byte, p.PMHigh)
	for i := range buf {
		buf[i] = byte(' ' + rng.IntN(95))
	}
	size := func() int { return p.PMLow + rng.IntN(p.PMHigh-p.PMLow+1) }
	file := func(n int) string { return path.Join(dir, strconv.Itoa(n)) }
	create := func() {
		n, sz := next, size()
		next++
		t0 := time.Now()
		err := s.t.Create(ctx, file(n), buf[:sz], p.PMSync)
		s.rec.Observe("pm-create", t0, sz, err)
		if err == nil {
			sizes[n] = sz
			live = append(live, n)
		}
	}
	remove := func(i int) {
		n := live[i]
		t0 := time.Now()
		err := s.t.Remove(ctx, file(n))
		s.rec.Observe("pm-delete", t0, 0, err)
		if err == nil {
			delete(sizes, n)
			live[i] = live[len(live)-1]
			live = live[:len(live)-1]
		}
	}
	t0 := time.Now()
	for range p.PMFiles {
		create()
	}
	createSecs := time.Since(t0).Seconds()
	txStart := time.Now()
	tx := 0
	for ; tx < p.PMTransactions; tx++ {
		if len(live) == 0 {
			s.problem("postmark: out of files!")
			break
		}
		i := rng.IntN(len(live))
		n := live[i]
		if p.PMBiasRead != -1 && rng.IntN(10) < p.PMBiasRead {
			t1 := time.Now()
			data, err := s.t.ReadFile(ctx, file(n))
			s.rec.Observe("pm-read", t1, len(data), err)
			if err == nil && len(data) != sizes[n] {
				s.problem("postmark: %s has %d bytes, wrote %d", file(n), len(data), sizes[n])
			}
		} else if p.PMBiasRead != -1 {
			add := rng.IntN(p.PMHigh - sizes[n] + 1) // never beyond the high bound
			t1 := time.Now()
			err := s.t.Append(ctx, file(n), buf[:add], p.PMSync)
			s.rec.Observe("pm-append", t1, add, err)
			if err == nil {
				sizes[n] += add
			}
		}
		if p.PMBiasCreate != -1 && rng.IntN(10) < p.PMBiasCreate {
			create()
		} else if p.PMBiasCreate != -1 {
			remove(rng.IntN(len(live)))
		}
	}
	txSecs := time.Since(txStart).Seconds()
	for range len(live) {
		remove(len(live) - 1)
	}
	if err := s.t.RemoveAll(ctx, dir); err != nil && !errors.Is(err, context.Canceled) {
		s.problem("postmark: remove %s: %v", dir, err)
	}
	s.extra("transactions", float64(tx), false)
	s.extra("tx_seconds", txSecs, true)
	s.extra("create_seconds", createSecs, true)
	s.extra("total_seconds", time.Since(t0).Seconds(), true)
}
