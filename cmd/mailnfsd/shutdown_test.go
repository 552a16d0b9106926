package main

import (
	"bytes"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestShutdownStuckReader: a client that sends READs and never reads the
// replies (a front end that hung, or went away behind a half-open
// connection) does not hold SIGTERM to -shutdown-timeout. Every call was
// served; only the replies wait in the socket. Before, mailnfsd waited
// the whole 30 seconds for them and then exited 1, logging "mailnfsd
// stopped with errors" (a failed unit under systemd, at every restart
// while such a client was connected); now it gives the client
// DrainWriteTimeout (5 s), closes the connection and stops cleanly.
func TestShutdownStuckReader(t *testing.T) {
	p := startStuckReader(t)
	start := time.Now()
	code := p.stop(t, syscall.SIGTERM)
	took := time.Since(start)
	if code != 0 || took > 15*time.Second {
		t.Errorf("SIGTERM with a client not taking its replies: exit %d after %v, want 0 within 15 s (-shutdown-timeout 30s)\n%s",
			code, took.Round(time.Millisecond), p.stderr.String())
	}
}

// TestShutdownSecondSignal: a second SIGTERM during the drain (here held
// for DrainWriteTimeout, 5 s, by a client not taking its replies) stops
// mailnfsd at once, exit status 1, saying so. Before, it was ignored and
// the drain ran its course.
func TestShutdownSecondSignal(t *testing.T) {
	p := startStuckReader(t)
	start := time.Now()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); !strings.Contains(p.stderr.String(), "send SIGTERM or SIGINT again"); {
		if time.Now().After(deadline) {
			t.Fatalf("no line on the first SIGTERM:\n%s", p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	code := p.stop(t, syscall.SIGTERM)
	took := time.Since(start)
	if code != 1 || took > 3*time.Second {
		t.Errorf("a second SIGTERM during the drain: exit %d after %v, want 1 at once\n%s", code, took.Round(time.Millisecond), p.stderr.String())
	}
	if !strings.Contains(p.stderr.String(), "second signal while stopping: exiting at once") {
		t.Errorf("the log does not say the second signal stopped it:\n%s", p.stderr.String())
	}
}

// startStuckReader starts a real mailnfsd (-shutdown-timeout 30s) with a
// client that sent 64 READs of 1 MiB and takes none of the replies: more
// than the socket buffers hold, so a drain waits for it.
func startStuckReader(t *testing.T) *proc {
	t.Helper()
	nfsdtest.RequireRoot(t)
	dir := t.TempDir()
	export := filepath.Join(dir, "export")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	writeFile(t, filepath.Join(export, "big"), strings.Repeat("x", 1<<20))
	exports := filepath.Join(dir, "exports")
	writeFile(t, exports, export+" 127.0.0.1(rw,no_root_squash)\n")
	ports := freePorts(t, 2)
	p := startBinary(t, "-exports", exports, "-state-dir", filepath.Join(dir, "state"), "-shutdown-timeout", "30s",
		"-listen", "127.0.0.1", "-nfs-port", strconv.Itoa(ports[0]), "-portmap-port", strconv.Itoa(ports[1]))
	p.waitListening(t, ports...)
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ports[0]))
	root := nfsdtest.AuthSys(0, 0)
	c := nfsdtest.Dial(t, "tcp", addr)
	fh := mountOn(t, c, export)
	d, err := c.Call(nfs3.Program, nfs3.Version, uint32(nfs3.ProcLookup), root, (&nfs3.LookupArgs{Dir: fh, Name: "big"}).Encode)
	if err != nil {
		t.Fatal(err)
	}
	var lr nfs3.LookupRes
	lr.Decode(d)
	if lr.Status != nfs3.StatusOK {
		t.Fatalf("LOOKUP big: %v", lr.Status)
	}

	// 64 READs of 1 MiB on a connection whose replies are never read:
	// more than the socket buffers hold.
	stuck, err := net.Dial("tcp", addr.String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stuck.Close() })
	stuck.(*net.TCPConn).SetReadBuffer(4096)
	var calls bytes.Buffer
	for i := range 64 {
		var e xdr.Encoder
		e.Uint32(0) // the record mark, filled in below
		(&rpc.CallHeader{XID: uint32(1000 + i), Prog: nfs3.Program, Vers: nfs3.Version, Proc: uint32(nfs3.ProcRead), Cred: root}).Encode(&e)
		(&nfs3.ReadArgs{File: lr.Object, Count: 1 << 20}).Encode(&e)
		b := e.Bytes()
		rpc.PutRecordMark(b)
		calls.Write(b)
	}
	if _, err := stuck.Write(calls.Bytes()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(time.Second) // the calls are served; their replies wait
	return p
}
