// Package mdtest provides test fixtures for maildirfs and its consumers:
// a temporary export with an open *maildirfs.FS, fault injection for
// syncs, renames and other storage steps, and Check, which asserts the
// Maildir invariants of a tree.
package mdtest

import (
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/maildirfs"
)

// Store is a temporary export opened as a *maildirfs.FS (embedded, so its
// methods are the store's). Faults is wired into Options.Inject.
type Store struct {
	*maildirfs.FS
	Dir      string            // export root directory
	StateDir string            // handle key directory
	Opts     maildirfs.Options // options used by Open and Reopen
	Faults   *Faults
	// SkipCheck disables the Check run at cleanup (for tests that leave
	// a broken Maildir on purpose).
	SkipCheck bool
}

// RequireRoot skips t unless the process runs as root, which maildirfs
// needs for open_by_handle_at (CAP_DAC_READ_SEARCH).
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("maildirfs needs root (CAP_DAC_READ_SEARCH for open_by_handle_at); skipping")
	}
}

// New creates a temporary export with an empty Maildir in "Maildir"
// (tmp, new, cur) and opens it. Cleanup closes the store and runs Check on
// the export.
func New(t testing.TB) *Store {
	t.Helper()
	return NewOpts(t, maildirfs.Options{})
}

// NewOpts is New with options; StateDir and Inject are filled in when
// empty.
func NewOpts(t testing.TB, opts maildirfs.Options) *Store {
	t.Helper()
	RequireRoot(t)
	base := t.TempDir()
	s := &Store{Dir: filepath.Join(base, "export"), Faults: &Faults{}}
	for _, d := range []string{"", "Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"} {
		if err := os.Mkdir(filepath.Join(s.Dir, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if opts.StateDir == "" {
		opts.StateDir = filepath.Join(base, "state")
	}
	if opts.Inject == nil {
		opts.Inject = s.Faults.Hook()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.NewTextHandler(testWriter{t}, nil))
	}
	s.StateDir, s.Opts = opts.StateDir, opts
	fsys, err := maildirfs.Open(s.Dir, opts)
	if err != nil {
		t.Fatalf("maildirfs.Open: %v", err)
	}
	s.FS = fsys
	t.Cleanup(func() {
		if s.FS != nil {
			if err := s.FS.Close(); err != nil {
				t.Errorf("close: %v", err)
			}
		}
		if !s.SkipCheck {
			Check(t, s.Dir)
		}
	})
	return s
}

// Reopen closes the store and opens the same root with the same options
// and StateDir: a server restart.
func (s *Store) Reopen(t testing.TB) {
	t.Helper()
	if err := s.FS.Close(); err != nil {
		t.Fatalf("close: %v", err)
	}
	fsys, err := maildirfs.Open(s.Dir, s.Opts)
	if err != nil {
		s.FS = nil
		t.Fatalf("reopen: %v", err)
	}
	s.FS = fsys
}

// Check reports every Maildir invariant violation under root as a test
// error (see maildirfs.Check).
func Check(t testing.TB, root string) {
	t.Helper()
	probs, err := maildirfs.Check(root, maildirfs.CheckOptions{})
	if err != nil {
		t.Errorf("check %s: %v", root, err)
	}
	for _, p := range probs {
		t.Errorf("maildir invariant: %s", p)
	}
}

// Faults injects storage failures. The zero value injects nothing. Safe
// for concurrent use.
type Faults struct {
	mu     sync.Mutex
	counts map[maildirfs.FaultOp]int // calls seen per op
	rules  []rule
}

type rule struct {
	op   maildirfs.FaultOp
	at   int // fail when counts[op] reaches at; 0 = always
	err  error
	used bool
}

// FailNth makes the nth call (1-based, counted from now) of op fail with
// err (EIO when nil).
func (f *Faults) FailNth(op maildirfs.FaultOp, n int, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		err = syscall.EIO
	}
	if f.counts == nil {
		f.counts = map[maildirfs.FaultOp]int{}
	}
	f.rules = append(f.rules, rule{op: op, at: f.counts[op] + n, err: err})
}

// FailAll makes every call of op fail with err (EIO when nil) until Clear.
func (f *Faults) FailAll(op maildirfs.FaultOp, err error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err == nil {
		err = syscall.EIO
	}
	f.rules = append(f.rules, rule{op: op, err: err})
}

// Clear removes all rules.
func (f *Faults) Clear() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.rules = nil
}

// Count returns how many times op was attempted.
func (f *Faults) Count(op maildirfs.FaultOp) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[op]
}

// Hook returns the function for maildirfs.Options.Inject.
func (f *Faults) Hook() func(maildirfs.FaultOp) error {
	return func(op maildirfs.FaultOp) error {
		f.mu.Lock()
		defer f.mu.Unlock()
		if f.counts == nil {
			f.counts = map[maildirfs.FaultOp]int{}
		}
		f.counts[op]++
		for i := range f.rules {
			r := &f.rules[i]
			if r.op != op || r.used {
				continue
			}
			if r.at == 0 {
				return fmt.Errorf("mdtest: injected %s failure: %w", op, r.err)
			}
			if r.at == f.counts[op] {
				r.used = true
				return fmt.Errorf("mdtest: injected %s failure: %w", op, r.err)
			}
		}
		return nil
	}
}

// testWriter sends log output to t.Log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
