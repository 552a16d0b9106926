package suite

import (
	"context"
	"os"
	"testing"
	"time"
)

func TestMain(m *testing.M) {
	WorkerMain()
	os.Exit(m.Run())
}

// requireRoot skips tests that need root (the self target's store opens
// files by handle), or fails them under MAILNFS_REQUIRE_ROOT_TESTS=1.
func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		if os.Getenv("MAILNFS_REQUIRE_ROOT_TESTS") == "1" {
			t.Fatal("needs root")
		}
		t.Skip("needs root")
	}
}

// smallParams is every workload at a scale that runs in about a second.
func smallParams() Params {
	p := DefaultParams()
	p.Mailboxes = 4
	p.Concurrency = 3
	p.Sessions = 2
	p.Preload = 4
	p.PMFiles = 40
	p.PMTransactions = 60
	p.BigDirN = 500
	return p
}

func runSmall(t *testing.T, cfg Config) *Report {
	t.Helper()
	if cfg.Duration == 0 {
		cfg.Duration = 600 * time.Millisecond
	}
	if cfg.Rounds == 0 {
		cfg.Rounds = 2
	}
	if cfg.Params.Mailboxes == 0 {
		cfg.Params = smallParams()
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if !r.Verify.OK {
			t.Errorf("%s %s: verification failed: %+v", r.Workload, r.Target, r.Verify)
		}
	}
	return rep
}

func opByName(r *Result, op string) *OpStats {
	for i := range r.Ops {
		if r.Ops[i].Op == op {
			return &r.Ops[i]
		}
	}
	return nil
}

func TestWorkloads(t *testing.T) {
	requireRoot(t)
	want := map[string][]string{
		WorkDeliver:  {"deliver"},
		WorkPOP3:     {"list", "read", "session"},
		WorkPostMark: {"pm-create", "pm-delete"},
		WorkBigDir:   {"readdirplus"},
		WorkMixed:    {"deliver", "list", "read", "session"},
	}
	for _, w := range Workloads {
		t.Run(w, func(t *testing.T) {
			t.Parallel()
			rep := runSmall(t, Config{Workload: w, Targets: []string{"self", "dir:" + t.TempDir()}})
			if len(rep.Results) != 2 {
				t.Fatalf("%d results, want 2", len(rep.Results))
			}
			for _, r := range rep.Results {
				for _, op := range want[w] {
					s := opByName(r, op)
					if s == nil || s.Count == 0 {
						t.Errorf("%s: no successful %s operations: %+v", r.Target, op, r.Ops)
						continue
					}
					if s.Errors != 0 {
						t.Errorf("%s: %d %s errors, first: %s", r.Target, s.Errors, op, s.FirstErr)
					}
					if s.Quantile(0.5) <= 0 || s.Quantile(0.99) > time.Duration(s.MaxNs) {
						t.Errorf("%s %s: quantiles p50 %v p99 %v max %v", r.Target, op, s.Quantile(0.5), s.Quantile(0.99), time.Duration(s.MaxNs))
					}
				}
				switch w {
				case WorkPostMark:
					p := smallParams()
					if want := float64(2 * p.Concurrency * p.PMTransactions); r.Extra["transactions"] != want {
						t.Errorf("%s: %v transactions, want %v", r.Target, r.Extra["transactions"], want)
					}
				case WorkBigDir:
					if r.Extra["entries"] == 0 || int(r.Extra["entries"])%smallParams().BigDirN != 0 {
						t.Errorf("%s: %v entries listed, want a multiple of %d", r.Target, r.Extra["entries"], smallParams().BigDirN)
					}
				case WorkDeliver, WorkMixed, WorkPOP3:
					if r.Verify.Expected == 0 || r.Verify.Found < r.Verify.Expected {
						t.Errorf("%s: verification saw %d of %d", r.Target, r.Verify.Found, r.Verify.Expected)
					}
				}
			}
		})
	}
}
