// Package nfsdtest starts complete in-process mailnfsd servers for tests:
// transport, NFSv3, MOUNT and the portmapper on random 127.0.0.1 ports (TCP
// and UDP) over a temporary export directory and state directory. It also
// builds the mailnfsd binary for tests that exec it, and has a raw RPC
// Caller for wire-level checks.
//
// The store opens files by handle (open_by_handle_at), which needs
// CAP_DAC_READ_SEARCH: StartServer skips the test when not run as root.
package nfsdtest

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/nfsd"
)

// TestServer is a running in-process mailnfsd. Its fields describe the
// current run; Restart updates them (the ports stay the same).
type TestServer struct {
	// Daemon is the running server (replaced by Restart).
	Daemon *nfsd.Daemon
	// Root is the export directory on disk; Export is its export path
	// (the MNT dirpath), the same string.
	Root, Export string
	// StateDir holds the handle key; it survives Restart.
	StateDir string
	// ExportsFile is the exports file; rewrite it and call
	// Daemon.Reload to change the rules.
	ExportsFile string
	// NFSAddr, MountAddr and PortmapAddr are where the programs listen
	// (TCP and UDP). MountAddr equals NFSAddr unless WithConfig set a
	// separate MOUNT port.
	NFSAddr, MountAddr, PortmapAddr netip.AddrPort

	cfg     nfsd.Config
	stopped bool
}

type options struct {
	exports func(root string) string
	setup   func(t testing.TB, root string)
	config  func(*nfsd.Config)
	level   slog.Level
}

// Option changes what StartServer starts.
type Option func(*options)

// WithExports sets the exports file text, given the export directory. The
// default exports root to 127.0.0.0/8 and ::1, read-write, root not
// squashed: "ROOT 127.0.0.0/8(rw,no_root_squash) ::1(rw,no_root_squash)".
func WithExports(text func(root string) string) Option {
	return func(o *options) { o.exports = text }
}

// WithSetup runs f on the export directory before the server starts (to
// create a Maildir, set owners).
func WithSetup(f func(t testing.TB, root string)) Option {
	return func(o *options) { o.setup = f }
}

// WithConfig lets f adjust the configuration before each start (ports,
// ConfigureServer, SyncWindow).
func WithConfig(f func(*nfsd.Config)) Option {
	return func(o *options) { o.config = f }
}

// WithLogLevel sets the level of the server log written to the test log
// (default Info; Debug traces every request).
func WithLogLevel(l slog.Level) Option {
	return func(o *options) { o.level = l }
}

// DefaultExports is the default exports text for root.
func DefaultExports(root string) string {
	return fmt.Sprintf("%s 127.0.0.0/8(rw,no_root_squash) ::1(rw,no_root_squash)\n", root)
}

// StartServer starts a mailnfsd over a fresh temporary export and state
// directory, listening on random 127.0.0.1 ports, and stops it in
// t.Cleanup. It skips the test when not run as root.
func StartServer(t testing.TB, opts ...Option) *TestServer {
	t.Helper()
	RequireRoot(t)
	o := options{exports: DefaultExports, level: slog.LevelInfo}
	for _, f := range opts {
		f(&o)
	}
	base := t.TempDir()
	// t.TempDir's parents are 0700; squashed callers must still reach the
	// export, as they would under /srv.
	for d := base; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	s := &TestServer{
		Root:        filepath.Join(base, "export"),
		StateDir:    filepath.Join(base, "state"),
		ExportsFile: filepath.Join(base, "exports"),
	}
	s.Export = s.Root
	if err := os.Mkdir(s.Root, 0o755); err != nil {
		t.Fatal(err)
	}
	if o.setup != nil {
		o.setup(t, s.Root)
	}
	if err := os.WriteFile(s.ExportsFile, []byte(o.exports(s.Root)), 0o644); err != nil {
		t.Fatal(err)
	}
	s.cfg = nfsd.Config{
		ExportsFile: s.ExportsFile,
		Listen:      "127.0.0.1",
		StateDir:    s.StateDir,
		Logger:      slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: o.level})),
		// A test server has nothing to drain for long.
		ShutdownTimeout: 10 * time.Second,
	}
	if o.config != nil {
		o.config(&s.cfg)
	}
	s.start(t)
	t.Cleanup(func() { s.Stop(t) })
	return s
}

func (s *TestServer) start(t testing.TB) {
	t.Helper()
	d, err := nfsd.Start(context.Background(), s.cfg)
	if err != nil {
		t.Fatalf("start mailnfsd: %v", err)
	}
	s.Daemon, s.stopped = d, false
	s.NFSAddr, s.MountAddr, s.PortmapAddr = d.NFSAddr(), d.MountAddr(), d.PortmapAddr()
}

// Stop shuts the server down, draining calls in flight; it is called by
// t.Cleanup and may be called before.
func (s *TestServer) Stop(t testing.TB) {
	t.Helper()
	if s.stopped {
		return
	}
	s.stopped = true
	ctx, cancel := context.WithTimeout(context.Background(), s.cfg.ShutdownTimeout)
	defer cancel()
	if err := s.Daemon.Shutdown(ctx); err != nil {
		t.Errorf("shutdown mailnfsd: %v", err)
	}
}

// Restart stops the server and starts it again on the same ports with the
// same export, exports file and state directory, so handles issued before
// must still work.
func (s *TestServer) Restart(t testing.TB) {
	t.Helper()
	s.Stop(t)
	s.cfg.NFSPort = int(s.NFSAddr.Port())
	if s.MountAddr != s.NFSAddr {
		s.cfg.MountPort = int(s.MountAddr.Port())
	}
	if !s.cfg.NoPortmap {
		s.cfg.PortmapPort = int(s.PortmapAddr.Port())
	}
	s.start(t)
}

// URL returns the libnfs URL of path below the export (""  for the export
// itself), with the ports, for nfs-ls, nfs-cat and nfs-cp.
func (s *TestServer) URL(path string) string {
	p := s.Export
	if path != "" {
		p = strings.TrimSuffix(p, "/") + "/" + strings.TrimPrefix(path, "/")
	}
	return fmt.Sprintf("nfs://%s%s?version=3&nfsport=%d&mountport=%d", s.NFSAddr.Addr(), p, s.NFSAddr.Port(), s.MountAddr.Port())
}

// RequireRoot skips the test unless it runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("mailnfsd needs root (CAP_DAC_READ_SEARCH for open_by_handle_at)")
	}
}

// testWriter sends log lines to the test log.
type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

var build struct {
	once sync.Once
	path string
	err  error
}

// checkoutID names the checkout the test runs in: a short hash of the
// directory holding go.mod above the working directory (a test's is its
// package's), or "" if there is none.
func checkoutID() string {
	dir, err := os.Getwd()
	for err == nil {
		if _, serr := os.Stat(filepath.Join(dir, "go.mod")); serr == nil {
			sum := sha256.Sum256([]byte(dir))
			return hex.EncodeToString(sum[:6])
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return ""
}

// Binary builds cmd/mailnfsd once per test binary and returns its path. The
// binary is written to a per-user, per-checkout cache under os.TempDir
// (atomically, so test binaries of several packages may build at once);
// go build's own cache keeps rebuilds cheap.
func Binary(t testing.TB) string {
	t.Helper()
	build.once.Do(func() {
		// One directory per checkout: test runs of two worktrees at once
		// must not exec each other's build.
		dir := filepath.Join(os.TempDir(), fmt.Sprintf("mailnfsd-testbin-%d-%s", os.Getuid(), checkoutID()))
		if err := os.MkdirAll(dir, 0o700); err != nil {
			build.err = err
			return
		}
		tmp, err := os.CreateTemp(dir, "mailnfsd.*")
		if err != nil {
			build.err = err
			return
		}
		tmp.Close()
		out, err := exec.Command("go", "build", "-o", tmp.Name(), "github.com/mailnfs/mailnfs/cmd/mailnfsd").CombinedOutput()
		if err != nil {
			os.Remove(tmp.Name())
			build.err = fmt.Errorf("go build cmd/mailnfsd: %v\n%s", err, out)
			return
		}
		build.path = filepath.Join(dir, "mailnfsd")
		if err := os.Rename(tmp.Name(), build.path); err != nil {
			build.err = err
		}
	})
	if build.err != nil {
		t.Fatal(build.err)
	}
	return build.path
}
