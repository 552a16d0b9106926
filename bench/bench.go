package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Config is one benchmark run.
type Config struct {
	// Servers are started in this order and measured interleaved in it.
	Servers []ServerOptions
	// Driver is the command that serves the step protocol (ServeStep),
	// e.g. {"/path/to/nfsbench", "step"}. It runs inside each server's
	// namespace.
	Driver []string
	// Concurrencies of the delivery steps. Zero: 1, 8, 32.
	Concurrencies []int
	// Duration of each delivery step. Zero: 5 s (unless Count is set).
	Duration time.Duration
	// Count, when > 0, ends each delivery step after Count deliveries.
	Count int
	// Size of every message in bytes, or SizeMix for the mail-like mix of
	// MixSize. Zero: 4096.
	Size int
	// Mailboxes per delivery step. Zero: 8.
	Mailboxes int
	// SharedSession makes a step's workers share one mount.
	SharedSession bool
	// Rounds repeats the whole delivery sequence. Zero: 1.
	Rounds int
	// ListEntries is the size of the directory listed with READDIRPLUS;
	// negative skips the listing. Zero: 100,000.
	ListEntries int
	// ListPasses is how many times it is listed (the first is cold). Zero: 2.
	ListPasses int
	// CensusCount > 0 runs, after everything else, one delivery step of that
	// many messages at concurrency 8 per server under strace, counting sync
	// system calls. Zero: off. (Delivery steps count them with perf anyway
	// when perf works; the census is for machines without it.)
	CensusCount int
	// NoPerf turns off counting sync calls with perf during delivery steps.
	NoPerf bool
	// UID and GID own the export trees and are sent in AUTH_SYS. Zero: 0.
	UID, GID uint32
	// Dir is where servers keep their exports. Zero: os.TempDir().
	Dir string
	// Nice, when not zero, runs servers and drivers under nice(1) with this
	// increment (e.g. -10 on a machine busy with other work).
	Nice int
	// Client names the driver's NFS client in the report. Zero: "package client".
	Client string
	// Logger receives progress. Zero: discard.
	Logger *slog.Logger `json:"-"`
}

func (c *Config) defaults() {
	if len(c.Concurrencies) == 0 {
		c.Concurrencies = []int{1, 8, 32}
	}
	if c.Duration == 0 && c.Count == 0 {
		c.Duration = 5 * time.Second
	}
	if c.Size == 0 {
		c.Size = 4096
	}
	if c.Mailboxes == 0 {
		c.Mailboxes = 8
	}
	if c.Rounds == 0 {
		c.Rounds = 1
	}
	if c.ListEntries == 0 {
		c.ListEntries = 100_000
	}
	if c.ListPasses == 0 {
		c.ListPasses = 2
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Client == "" {
		c.Client = "package client"
	}
}

// DeliverRow is one delivery step's outcome.
type DeliverRow struct {
	Server      string
	Round       int
	Concurrency int
	Delivered   int
	Errors      int
	FirstError  string
	Elapsed     time.Duration
	Latency     Latency
	// ServerCPU is the server's CPU time during the measured part.
	ServerCPU time.Duration
	// ClientCPU is the driver's CPU time during the measured part.
	ClientCPU time.Duration
	// PeakRSS is the server's VmHWM over the step (reset before it).
	PeakRSS int64
	// DiskFsync is the disk's fsync latency measured just before the step.
	DiskFsync time.Duration
	// Syncs counts the server's sync system calls during the measured part
	// (perf tracepoints); nil when perf is not available.
	Syncs  map[string]int
	Verify *Verification
}

// Rate is deliveries per second.
func (r *DeliverRow) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Delivered) / r.Elapsed.Seconds()
}

// SyncsPerDelivery is the server's sync system calls per delivery, or -1
// when they were not counted.
func (r *DeliverRow) SyncsPerDelivery() float64 {
	if r.Syncs == nil || r.Delivered == 0 {
		return -1
	}
	n := 0
	for _, v := range r.Syncs {
		n += v
	}
	return float64(n) / float64(r.Delivered)
}

// ClientCPUPerDelivery is the driver's CPU time per delivery.
func (r *DeliverRow) ClientCPUPerDelivery() time.Duration {
	if r.Delivered == 0 {
		return 0
	}
	return r.ClientCPU / time.Duration(r.Delivered)
}

// CPUPerDelivery is the server's CPU time per delivery.
func (r *DeliverRow) CPUPerDelivery() time.Duration {
	if r.Delivered == 0 {
		return 0
	}
	return r.ServerCPU / time.Duration(r.Delivered)
}

// ListRow is one server's large-directory listing.
type ListRow struct {
	Server  string
	Entries int   // expected entries
	Seen    []int // entries each pass returned
	Times   []time.Duration
	// ServerCPU over all passes, and the server's peak RSS during them.
	ServerCPU time.Duration
	PeakRSS   int64
}

// CensusRow counts a server's sync system calls per delivery.
type CensusRow struct {
	Server     string
	Deliveries int // including the warm-up ones
	Calls      map[string]int
}

// PerDelivery is the number of sync calls per delivery.
func (c *CensusRow) PerDelivery() float64 {
	if c.Deliveries == 0 {
		return 0
	}
	n := 0
	for _, v := range c.Calls {
		n += v
	}
	return float64(n) / float64(c.Deliveries)
}

// Report is the outcome of a run.
type Report struct {
	Started  time.Time
	Finished time.Time
	// LoadBefore and LoadAfter are /proc/loadavg's 1-minute figure at the
	// start and end: other work on the machine skews every number.
	LoadBefore, LoadAfter string
	Config                Config
	Deliver               []DeliverRow
	List                  []ListRow
	Census                []CensusRow
	// Failures lists every verification or step failure; a run with any is
	// a failed run whatever its speed.
	Failures []string
	// Namespaces are the network namespaces the run created (and deleted).
	Namespaces []string
}

// Run starts the servers, runs every step interleaved across them, verifies
// each delivery step on disk and returns the report. It stops the servers
// and deletes their namespaces before returning, also on error. A step
// failure is recorded in Report.Failures and the run goes on; an error is
// returned only when the run could not proceed.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg.defaults()
	if len(cfg.Driver) == 0 {
		return nil, errors.New("bench: Config.Driver is empty")
	}
	log := cfg.Logger
	rep := &Report{Started: time.Now(), Config: cfg, LoadBefore: loadAvg()}
	usePerf := !cfg.NoPerf && perfAvailable()
	if !usePerf {
		log.Warn("not counting sync calls during delivery steps: perf unavailable or disabled")
	}
	var servers []*Server
	defer func() {
		for _, s := range servers {
			if err := s.Stop(); err != nil {
				log.Error("stopping server", "server", s.Name, "err", err)
			}
		}
	}()
	for _, so := range cfg.Servers {
		so.UID, so.GID, so.Logger, so.Nice = cfg.UID, cfg.GID, log, cfg.Nice
		if so.Dir == "" { // a server may live on a file system of its own
			so.Dir = cfg.Dir
		}
		s, err := StartServer(ctx, so)
		if err != nil {
			return nil, err
		}
		servers = append(servers, s)
		rep.Namespaces = append(rep.Namespaces, s.NS.Name)
	}

	for round := 1; round <= cfg.Rounds; round++ {
		for _, c := range cfg.Concurrencies {
			for _, s := range servers {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
				row, err := deliverStep(ctx, cfg, s, round, c, fmt.Sprintf("r%d-c%d", round, c), usePerf)
				if err != nil {
					if dead, why := s.Exited(); dead {
						err = fmt.Errorf("%w; %s", err, why)
					}
					rep.Failures = append(rep.Failures, err.Error())
					log.Error("delivery step failed", "server", s.Name, "c", c, "err", err)
					continue
				}
				if !row.Verify.OK() {
					rep.Failures = append(rep.Failures, fmt.Sprintf("%s c=%d round %d: verification %s", s.Name, c, round, row.Verify))
				}
				if row.Errors > 0 {
					rep.Failures = append(rep.Failures, fmt.Sprintf("%s c=%d round %d: %d delivery errors, first: %s", s.Name, c, round, row.Errors, row.FirstError))
				}
				rep.Deliver = append(rep.Deliver, *row)
				log.Info("delivery step", "server", s.Name, "c", c, "round", round,
					"per_s", fmt.Sprintf("%.0f", row.Rate()), "p50", row.Latency.P50, "p99", row.Latency.P99,
					"cpu_per_delivery", row.CPUPerDelivery(), "verify", row.Verify.String())
			}
		}
	}

	if cfg.ListEntries > 0 {
		if err := listAll(ctx, cfg, servers, rep); err != nil {
			return nil, err
		}
	}

	if cfg.CensusCount > 0 {
		if _, err := exec.LookPath("strace"); err != nil {
			log.Warn("sync census skipped: strace not installed")
		} else {
			for _, s := range servers {
				row, err := censusStep(ctx, cfg, s)
				if err != nil {
					rep.Failures = append(rep.Failures, err.Error())
					log.Error("census step failed", "server", s.Name, "err", err)
					continue
				}
				rep.Census = append(rep.Census, *row)
			}
		}
	}
	rep.Finished = time.Now()
	rep.LoadAfter = loadAvg()
	return rep, nil
}

// listAll creates the big directory once, next to the exports, then moves
// it into each server's export in turn (a rename: O(1), and every server
// sees the same directory, equally warm in the page cache) and lists it
// there.
func listAll(ctx context.Context, cfg Config, servers []*Server, rep *Report) error {
	log := cfg.Logger
	stage, err := os.MkdirTemp(cfg.Dir, "mnfs-bench-bigdir-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(stage)
	big := filepath.Join(stage, "big")
	t0 := time.Now()
	if err := makeBigDir(big, cfg.ListEntries, int(cfg.UID), int(cfg.GID)); err != nil {
		return err
	}
	syscall.Sync()
	log.Info("big directory created", "entries", cfg.ListEntries, "took", time.Since(t0))
	for _, s := range servers {
		if err := ctx.Err(); err != nil {
			return err
		}
		dst := filepath.Join(s.Export, "big")
		if err := os.Rename(big, dst); err != nil {
			return err
		}
		row, err := listStep(ctx, cfg, s)
		if rerr := os.Rename(dst, big); rerr != nil {
			return rerr
		}
		if err != nil {
			if dead, why := s.Exited(); dead {
				err = fmt.Errorf("%w; %s", err, why)
			}
			rep.Failures = append(rep.Failures, err.Error())
			log.Error("listing step failed", "server", s.Name, "err", err)
			continue
		}
		for i, n := range row.Seen {
			if n != row.Entries {
				rep.Failures = append(rep.Failures, fmt.Sprintf("%s: listing pass %d returned %d entries, want %d", s.Name, i+1, n, row.Entries))
			}
		}
		rep.List = append(rep.List, *row)
		log.Info("listing step", "server", s.Name, "times", row.Times, "entries", row.Seen)
	}
	return nil
}

func stepMailboxes(prefix string, n int) []string {
	mbs := make([]string, n)
	for i := range mbs {
		mbs[i] = fmt.Sprintf("%s/mb%02d", prefix, i)
	}
	return mbs
}

func deliverStep(ctx context.Context, cfg Config, s *Server, round, c int, prefix string, usePerf bool) (*DeliverRow, error) {
	count := cfg.Count
	mbs := stepMailboxes(prefix, cfg.Mailboxes)
	if err := MakeMaildirs(s.Export, mbs, int(cfg.UID), int(cfg.GID)); err != nil {
		return nil, err
	}
	row := &DeliverRow{Server: s.Name, Round: round, Concurrency: c}
	var err error
	if row.DiskFsync, err = fsyncProbe(s.Dir, 32); err != nil {
		return nil, err
	}
	spec := StepSpec{Kind: StepDeliver, URL: s.URL(cfg.UID, cfg.GID), Concurrency: c,
		Duration: cfg.Duration, Count: count, Size: cfg.Size, Mailboxes: mbs,
		IDPrefix: prefix + "-" + s.Name, SharedSession: cfg.SharedSession}
	if count > 0 {
		spec.Duration = 0
	}
	var before, after ProcSample
	var pc *perfCounter
	res, err := s.RunStep(ctx, cfg.Driver, spec, func() (err error) {
		if usePerf {
			// Counting syncs is a bonus: without it the step still counts.
			if pc, err = startPerf(s.PID(), filepath.Join(s.Dir, "perf-"+prefix+".csv")); err != nil {
				cfg.Logger.Warn("not counting syncs in this step", "server", s.Name, "err", err)
				pc = nil
			}
		}
		if err := ResetPeakRSS(s.PID()); err != nil {
			return err
		}
		before, err = SampleProc(s.PID())
		return err
	}, func() (err error) {
		after, err = SampleProc(s.PID())
		if pc != nil {
			var perr error
			if row.Syncs, perr = pc.stop(); perr != nil {
				cfg.Logger.Warn("not counting syncs in this step", "server", s.Name, "err", perr)
			}
			pc = nil
		}
		return err
	})
	if pc != nil {
		_, _ = pc.stop()
	}
	if err != nil {
		return nil, err
	}
	row.Delivered, row.Errors, row.FirstError = res.Delivered, res.Errors, res.FirstError
	row.Elapsed, row.Latency = res.Elapsed, res.Latency
	row.ServerCPU = after.CPU - before.CPU
	row.ClientCPU = res.DriverCPU
	row.PeakRSS = after.PeakRSS
	row.Verify, err = VerifyMaildirs(s.Export, mbs, res.Acked, cfg.Size)
	if err != nil {
		return nil, err
	}
	return row, nil
}

func listStep(ctx context.Context, cfg Config, s *Server) (*ListRow, error) {
	row := &ListRow{Server: s.Name, Entries: cfg.ListEntries}
	spec := StepSpec{Kind: StepList, URL: s.URL(cfg.UID, cfg.GID), Dir: "big/cur", Passes: cfg.ListPasses}
	var before, after ProcSample
	res, err := s.RunStep(ctx, cfg.Driver, spec, func() (err error) {
		if err := ResetPeakRSS(s.PID()); err != nil {
			return err
		}
		before, err = SampleProc(s.PID())
		return err
	}, func() (err error) {
		after, err = SampleProc(s.PID())
		return err
	})
	if err != nil {
		return nil, err
	}
	row.Seen, row.Times = res.ListEntries, res.ListTimes
	row.ServerCPU = after.CPU - before.CPU
	row.PeakRSS = after.PeakRSS
	return row, nil
}

func censusStep(ctx context.Context, cfg Config, s *Server) (*CensusRow, error) {
	const c = 8
	prefix := "census"
	mbs := stepMailboxes(prefix, cfg.Mailboxes)
	if err := MakeMaildirs(s.Export, mbs, int(cfg.UID), int(cfg.GID)); err != nil {
		return nil, err
	}
	spec := StepSpec{Kind: StepDeliver, URL: s.URL(cfg.UID, cfg.GID), Concurrency: c,
		Count: cfg.CensusCount, Size: cfg.Size, Mailboxes: mbs, IDPrefix: prefix + "-" + s.Name,
		SharedSession: cfg.SharedSession}
	var cs *census
	var calls map[string]int
	res, err := s.RunStep(ctx, cfg.Driver, spec, func() (err error) {
		cs, err = startCensus(s.PID(), filepath.Join(s.Dir, "census.strace"))
		return err
	}, func() (err error) {
		calls, err = cs.stop()
		return err
	})
	if err != nil {
		return nil, err
	}
	v, err := VerifyMaildirs(s.Export, mbs, res.Acked, cfg.Size)
	if err != nil {
		return nil, err
	}
	if !v.OK() {
		return nil, fmt.Errorf("%s census step: verification %s", s.Name, v)
	}
	// The warm-up deliveries happened before strace attached.
	return &CensusRow{Server: s.Name, Deliveries: res.Delivered, Calls: calls}, nil
}

// makeBigDir creates dir/cur (and tmp, new) with n empty files named like
// read Maildir messages, two creators at a time.
func makeBigDir(dir string, n, uid, gid int) error {
	if err := MakeMaildirs(filepath.Dir(dir), []string{filepath.Base(dir)}, uid, gid); err != nil {
		return err
	}
	cur := filepath.Join(dir, "cur")
	const workers = 2
	errs := make([]error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() { errs[w] = makeFiles(cur, w, workers, n, uid, gid) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// makeFiles creates files i = first, first+step, ... < n in dir.
func makeFiles(cur string, first, step, n, uid, gid int) error {
	for i := first; i < n; i += step {
		name := filepath.Join(cur, strconv.Itoa(1764000000+i/50)+".M"+strconv.Itoa(100000+i)+"P4242Q"+strconv.Itoa(i)+".bench.mailnfs.invalid,S=4096,W=4180:2,S")
		f, err := os.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
		if err != nil {
			return err
		}
		if err := f.Chown(uid, gid); err != nil {
			f.Close()
			return err
		}
		if err := f.Close(); err != nil {
			return err
		}
	}
	return nil
}

// loadAvg is the 1-minute load average.
func loadAvg() string {
	b, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "?"
	}
	if f := strings.Fields(string(b)); len(f) > 0 {
		return f[0]
	}
	return "?"
}
