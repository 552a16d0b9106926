package suite

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"

	"github.com/mailnfs/mailnfs/bench"
)

// ServerTarget is a server started by package bench's runners
// (bench.StartServer) in its own network namespace: "server:mailnfsd"
// (cmd/mailnfsd), "server:gonfs" (stock go-nfs, cmd/gonfs-baseline) or
// "server:ganesha" (NFS-Ganesha from apt). The workers always run as front
// ends inside the server's namespace and reach it over its loopback through
// package client; preparation and verification use the export on disk.
type ServerTarget struct {
	*DirTarget
	srv  *bench.Server
	url  string
	name string
	bins string
}

// StartServerTarget builds (mailnfsd, gonfs) and starts a server of kind.
func StartServerTarget(ctx context.Context, kind string, log *slog.Logger) (*ServerTarget, error) {
	st := &ServerTarget{name: "server:" + kind}
	opts := bench.ServerOptions{Kind: kind, Logger: log, Dir: os.TempDir()}
	if fi, err := os.Stat("/var/tmp"); err == nil && fi.IsDir() {
		opts.Dir = "/var/tmp" // a disk, where /tmp may be a tmpfs
	}
	pkg := map[string]string{bench.KindMailnfsd: "./cmd/mailnfsd", bench.KindGoNFS: "./cmd/gonfs-baseline"}[kind]
	switch kind {
	case bench.KindMailnfsd, bench.KindGoNFS:
		root, err := bench.ModuleRoot(ctx)
		if err != nil {
			return nil, fmt.Errorf("suite: %s needs the module source to build %s: %w", st.name, pkg, err)
		}
		if st.bins, err = os.MkdirTemp("", "mailnfs-suite-bin-"); err != nil {
			return nil, err
		}
		opts.Bin = filepath.Join(st.bins, kind)
		if err := bench.Build(ctx, root, pkg, opts.Bin); err != nil {
			os.RemoveAll(st.bins)
			return nil, err
		}
	case bench.KindGanesha:
	default:
		return nil, fmt.Errorf("suite: unknown server kind %q (want mailnfsd, gonfs or ganesha)", kind)
	}
	srv, err := bench.StartServer(ctx, opts)
	if err != nil {
		if st.bins != "" {
			os.RemoveAll(st.bins)
		}
		return nil, err
	}
	st.srv = srv
	st.url = srv.URL(opts.UID, opts.GID)
	st.DirTarget = &DirTarget{name: st.name, root: srv.Export}
	st.DirTarget.host, _ = os.Hostname()
	return st, nil
}

// Name implements Target.
func (s *ServerTarget) Name() string { return s.name }

// URL is the nfs URL inside the server's namespace.
func (s *ServerTarget) URL() string { return s.url }

// Namespace is the network namespace the server and the workers run in.
func (s *ServerTarget) Namespace() string { return s.srv.NS.Name }

// Close stops the server and removes its directory and built binary.
func (s *ServerTarget) Close() error {
	err := s.srv.Stop()
	if s.bins != "" {
		os.RemoveAll(s.bins)
	}
	return err
}
