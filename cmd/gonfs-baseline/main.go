// Command gonfs-baseline runs the stock go-nfs server (github.com/willscott/go-nfs)
// on a directory, as the "naive userspace server" peer in mailnfs benchmarks.
//
// It is not part of the product. The file system is go-billy's osfs with
// WithBoundOS (symlink-safe containment), wrapped only to add billy.Change
// (chmod, chown, chtimes) the way go-nfs's own osnfs example does, so that
// SETATTR works; the handler is helpers.NewCachingHandler over
// helpers.NewNullAuthHandler, exactly as go-nfs ships them. go-nfs serves
// MOUNT and NFS on the same TCP port, has no portmapper and never fsyncs.
//
// Usage:
//
//	gonfs-baseline -dir /srv/export [-listen 127.0.0.1:2049] [-handle-limit 1024]
//
// It prints "listening on ADDR" on stdout once the socket is bound and
// exits cleanly on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5"
	"github.com/go-git/go-billy/v5/osfs"
	nfs "github.com/willscott/go-nfs"
	"github.com/willscott/go-nfs/helpers"
)

func main() {
	dir := flag.String("dir", "", "directory to export (required)")
	listen := flag.String("listen", "127.0.0.1:2049", "TCP address for NFS and MOUNT")
	limit := flag.Int("handle-limit", 1024, "size of go-nfs's CachingHandler handle LRU (and verifier cache)")
	flag.Parse()
	if err := run(*dir, *listen, *limit); err != nil {
		fmt.Fprintln(os.Stderr, "gonfs-baseline:", err)
		os.Exit(1)
	}
}

func run(dir, listen string, limit int) error {
	if dir == "" {
		return errors.New("-dir is required")
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	if fi, err := os.Stat(abs); err != nil || !fi.IsDir() {
		return fmt.Errorf("-dir %s: not a directory (%v)", abs, err)
	}
	if limit <= 0 {
		return errors.New("-handle-limit must be positive")
	}
	// go-nfs logs every error at info level to stderr; keep it quiet unless asked.
	if os.Getenv("LOG_LEVEL") == "" {
		nfs.Log.SetLevel(nfs.ErrorLevel)
	}

	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fs := changeFS{Filesystem: osfs.New(abs, osfs.WithBoundOS()), root: abs}
	handler := helpers.NewCachingHandler(helpers.NewNullAuthHandler(fs), limit)
	fmt.Printf("listening on %s\n", ln.Addr())

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	errc := make(chan error, 1)
	go func() { errc <- nfs.Serve(ln, handler) }()
	select {
	case <-ctx.Done():
		// go-nfs has no Shutdown: closing the listener stops Accept; open
		// connections die with the process.
		_ = ln.Close()
		select {
		case <-errc:
		case <-time.After(time.Second):
		}
		return nil
	case err := <-errc:
		return err
	}
}

// changeFS adds billy.Change to a billy.Filesystem rooted at root. go-billy's
// BoundOS implements Chmod but not Chown/Lchown/Chtimes, and go-nfs answers
// SETATTR with NOTSUPP unless the file system implements all of billy.Change.
// The name is resolved through the wrapped file system's Lstat first, so a
// name that BoundOS refuses is refused here too.
type changeFS struct {
	billy.Filesystem
	root string
}

var _ billy.Change = changeFS{}

func (c changeFS) path(name string) (string, error) {
	if _, err := c.Filesystem.Lstat(name); err != nil {
		return "", err
	}
	return filepath.Join(c.root, filepath.Clean("/"+name)), nil
}

// Chmod changes the mode of name.
func (c changeFS) Chmod(name string, mode os.FileMode) error {
	p, err := c.path(name)
	if err != nil {
		return err
	}
	return os.Chmod(p, mode)
}

// Lchown changes the owner of name without following a final symlink.
func (c changeFS) Lchown(name string, uid, gid int) error {
	p, err := c.path(name)
	if err != nil {
		return err
	}
	return os.Lchown(p, uid, gid)
}

// Chown changes the owner of name.
func (c changeFS) Chown(name string, uid, gid int) error {
	p, err := c.path(name)
	if err != nil {
		return err
	}
	return os.Chown(p, uid, gid)
}

// Chtimes changes the access and modification times of name.
func (c changeFS) Chtimes(name string, atime, mtime time.Time) error {
	p, err := c.path(name)
	if err != nil {
		return err
	}
	return os.Chtimes(p, atime, mtime)
}
