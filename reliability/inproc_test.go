package reliability

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
	"github.com/mailnfs/mailnfs/nfsd"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// inprocServer is mailnfsd assembled in the test process from nfsd's
// exported parts (Exports, NFS3, Mount, Server) so a test can reach the
// store (fault injection through maildirfs.Options.Inject, store wrappers
// through ExportsOptions.OpenStore) and tune the transport.
type inprocServer struct {
	Root, StateDir string
	Faults         *mdtest.Faults
	Exports        *nfsd.Exports
	NFS            *nfsd.NFS3
	Server         *nfsd.Server
	Addr           *net.TCPAddr
	serveDone      chan error
}

type inprocOpts struct {
	exports   func(root string) string        // exports text; default rw, no_root_squash for 127.0.0.0/8
	wrap      func(st nfsd.Store) nfsd.Store  // wraps the export's store
	configure func(*nfsd.Server)              // transport tuning
	setup     func(t testing.TB, root string) // before the store opens
	logLevel  slog.Level
}

// startInproc serves one export (a Maildir under root) on a random
// 127.0.0.1 TCP port, NFS and MOUNT on the same port, until cleanup.
func startInproc(t testing.TB, o inprocOpts) *inprocServer {
	t.Helper()
	nfsdtest.RequireRoot(t)
	base := t.TempDir()
	for d := base; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	s := &inprocServer{Root: filepath.Join(base, "export"), StateDir: filepath.Join(base, "state"), Faults: &mdtest.Faults{}}
	for _, d := range []string{"", "Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"} {
		if err := os.Mkdir(filepath.Join(s.Root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if o.setup != nil {
		o.setup(t, s.Root)
	}
	text := fmt.Sprintf("%s 127.0.0.0/8(rw,no_root_squash)\n", s.Root)
	if o.exports != nil {
		text = o.exports(s.Root)
	}
	table, err := nfsd.ParseExports("exports", []byte(text), &nfsd.ParseOptions{})
	if err != nil {
		t.Fatal(err)
	}
	level := o.logLevel
	if level == 0 {
		level = slog.LevelWarn
	}
	log := slog.New(slog.NewTextHandler(testLogWriter{t}, &slog.HandlerOptions{Level: level}))
	s.Exports, err = nfsd.OpenExports(table, nfsd.ExportsOptions{
		StateDir: s.StateDir,
		Logger:   log,
		OpenStore: func(root string, opts maildirfs.Options) (nfsd.Store, error) {
			opts.Inject = s.Faults.Hook()
			fs, err := maildirfs.Open(root, opts)
			if err != nil {
				return nil, err
			}
			if o.wrap != nil {
				return o.wrap(fs), nil
			}
			return fs, nil
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	s.Server = &nfsd.Server{Logger: log}
	if o.configure != nil {
		o.configure(s.Server)
	}
	s.NFS = &nfsd.NFS3{Auth: s.Exports, Logger: log}
	s.Server.Register(s.NFS)
	s.Server.Register(&nfsd.Mount{Exports: s.Exports})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Addr = ln.Addr().(*net.TCPAddr)
	s.serveDone = make(chan error, 1)
	go func() { s.serveDone <- s.Server.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Server.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-s.serveDone; err != nil && !errors.Is(err, nfsd.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
		if err := s.Exports.Close(); err != nil {
			t.Errorf("close exports: %v", err)
		}
	})
	return s
}

// url is the nfs:// URL of the export (or a path below it).
func (s *inprocServer) url(sub string) string {
	return fmt.Sprintf("nfs://127.0.0.1%s%s?version=3&nfsport=%d&mountport=%d", s.Root, sub, s.Addr.Port, s.Addr.Port)
}

// store returns the export's (possibly wrapped) store.
func (s *inprocServer) store() nfsd.Store { return s.Exports.Store(s.Root) }

// testLogWriter sends log lines to the test log.
type testLogWriter struct{ t testing.TB }

func (w testLogWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
