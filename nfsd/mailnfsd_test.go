package nfsd_test

import (
	"context"
	"errors"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// slowProgram answers procedure 1 after release is closed, to hold a call
// in flight.
type slowProgram struct {
	started chan struct{}
	release chan struct{}
}

func (p *slowProgram) Prog() uint32                 { return 400999 }
func (p *slowProgram) Versions() (low, high uint32) { return 1, 1 }
func (p *slowProgram) Serve(ctx context.Context, req *nfsd.Request, res *xdr.Encoder) nfsd.Status {
	if req.Proc == 1 {
		close(p.started)
		<-p.release
		res.Uint32(42)
	}
	return nfsd.StatusOK
}

func testConfig(t *testing.T) nfsd.Config {
	nfsdtest.RequireRoot(t)
	dir := t.TempDir()
	export := filepath.Join(dir, "export")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	return nfsd.Config{ExportsText: export + " 127.0.0.1(rw)\n", Listen: "127.0.0.1", StateDir: filepath.Join(dir, "state")}
}

func TestRunDrainsOnCancel(t *testing.T) {
	cfg := testConfig(t)
	slow := &slowProgram{started: make(chan struct{}), release: make(chan struct{})}
	cfg.ConfigureServer = func(s *nfsd.Server) { s.Register(slow) }
	started := make(chan *nfsd.Daemon, 1)
	cfg.Started = func(d *nfsd.Daemon) { started <- d }
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	runErr := make(chan error, 1)
	go func() { runErr <- nfsd.Run(ctx, cfg, nil) }()
	var d *nfsd.Daemon
	select {
	case d = <-started:
	case err := <-runErr:
		t.Fatalf("Run: %v", err)
	}

	c := nfsdtest.Dial(t, "tcp", d.NFSAddr())
	reply := make(chan error, 1)
	go func() {
		dec, err := c.Call(400999, 1, 1, nfsdtest.AuthNone, nil)
		if err == nil && dec.Uint32() != 42 {
			err = errors.New("wrong result")
		}
		reply <- err
	}()
	<-slow.started
	cancel() // as SIGTERM does
	select {
	case err := <-runErr:
		t.Fatalf("Run returned with a call in flight: %v", err)
	case <-time.After(100 * time.Millisecond):
	}
	// New connections are refused while draining.
	if conn, err := net.DialTimeout("tcp", d.NFSAddr().String(), time.Second); err == nil {
		conn.Close()
		t.Fatal("a new connection was accepted after shutdown began")
	}
	close(slow.release)
	if err := <-reply; err != nil {
		t.Fatalf("call in flight: %v", err)
	}
	if err := <-runErr; err != nil {
		t.Fatalf("Run: %v", err)
	}
}

// TestStartMappedListenRegistersIPv4: -listen ::ffff:127.0.0.1 is served
// on IPv4 sockets, so the portmapper lists tcp and udp, not tcp6 or udp6
// (where nothing listens).
func TestStartMappedListenRegistersIPv4(t *testing.T) {
	cfg := testConfig(t)
	cfg.Listen = "::ffff:127.0.0.1"
	d, err := nfsd.Start(context.Background(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer d.Shutdown(context.Background())
	if a := d.NFSAddr().Addr(); !a.Is4() {
		t.Fatalf("NFS serves on %s, want an IPv4 address", a)
	}
	var netids []string
	for _, m := range d.Portmap.Mappings() {
		netids = append(netids, m.Netid)
		if m.Netid == "tcp6" || m.Netid == "udp6" {
			t.Errorf("registered %d v%d on %s for an IPv4 listener", m.Prog, m.Vers, m.Netid)
		}
	}
	if !slices.Contains(netids, "tcp") || !slices.Contains(netids, "udp") {
		t.Errorf("netids %v lack tcp or udp", netids)
	}
}

func TestStartErrors(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	busyPort := busy.Addr().(*net.TCPAddr).Port
	cases := []struct {
		name   string
		change func(c *nfsd.Config)
		want   string
	}{
		{"NoExports", func(c *nfsd.Config) { c.ExportsText = "" }, "no exports file given"},
		{"MissingFile", func(c *nfsd.Config) { c.ExportsText, c.ExportsFile = "", "/nonexistent/exports" }, "no such file or directory"},
		{"BadExports", func(c *nfsd.Config) { c.ExportsText = "/x -mask foo\n" }, "exports:1:4: -mask needs a -network on the same line"},
		{"MissingDirectory", func(c *nfsd.Config) { c.ExportsText = "/nonexistent/dir\n" }, "exports:1:1: export /nonexistent/dir: open /nonexistent/dir: no such file or directory"},
		{"BusyPort", func(c *nfsd.Config) { c.NFSPort = busyPort }, "NFS port: listen tcp 127.0.0.1:"},
		{"BadListen", func(c *nfsd.Config) { c.Listen = "localhost" }, `listen address "localhost" is not an IP address`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cfg := testConfig(t)
			tc.change(&cfg)
			d, err := nfsd.Start(context.Background(), cfg)
			if err == nil {
				d.Shutdown(context.Background())
				t.Fatal("Start succeeded")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %q lacks %q", err, tc.want)
			}
		})
	}
}
