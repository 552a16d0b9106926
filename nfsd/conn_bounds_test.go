package nfsd_test

import (
	"encoding/binary"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/logtest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// lookupRoot mounts srv's export and looks name up in it.
func lookupRoot(t *testing.T, srv *nfsdtest.TestServer, name string) []byte {
	t.Helper()
	c := nfsdtest.Dial(t, "tcp", srv.NFSAddr)
	r3, _ := mnt(t, c, nfs3.MountV3, srv.Export)
	if r3.Status != nfs3.MountOK {
		t.Fatalf("MNT: %v", r3.Status)
	}
	d, err := c.Call(nfs3.Program, nfs3.Version, uint32(nfs3.ProcLookup), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
		(&nfs3.DirOpArgs{Dir: r3.Handle, Name: name}).Encode(e)
	})
	if err != nil {
		t.Fatalf("LOOKUP %s: %v", name, err)
	}
	var r nfs3.LookupRes
	r.Decode(d)
	if r.Status != nfs3.StatusOK {
		t.Fatalf("LOOKUP %s: %v", name, r.Status)
	}
	return r.Object
}

// settle waits until the server has no call in flight and f's count has
// not changed for a while, and returns the count.
func settle(t *testing.T, s *nfsd.Server, f func(nfsd.Stats) int64) int64 {
	t.Helper()
	last, same := int64(-1), 0
	for range 300 {
		st := s.Stats()
		n := f(st)
		if st.InFlight == 0 && n == last {
			if same++; same == 10 {
				return n
			}
		} else {
			same = 0
		}
		last = n
		time.Sleep(50 * time.Millisecond)
	}
	return last
}

// tcpWmemMax is the most a socket's send buffer grows to (net.ipv4.tcp_wmem).
func tcpWmemMax(t *testing.T) int64 {
	b, err := os.ReadFile("/proc/sys/net/ipv4/tcp_wmem")
	if err != nil {
		return 4 << 20
	}
	f := strings.Fields(string(b))
	n, err := strconv.ParseInt(f[len(f)-1], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// TestQueuedRepliesBounded: clients that send 64 READs of 1 MiB each and
// never read the replies. A connection reads no further call while its
// replies waiting to be written, and those its running READs will write,
// exceed MaxQueuedPerConn. Before that bound each connection ran all its
// calls (MaxInFlightPerConn) and kept 64 MiB of replies for the minute of
// WriteTimeout: 8 connections and 77 kB of calls held 500 MiB of heap.
func TestQueuedRepliesBounded(t *testing.T) {
	srv := nfsdtest.StartServer(t, nfsdtest.WithSetup(func(t testing.TB, root string) {
		if err := os.WriteFile(filepath.Join(root, "big"), make([]byte, nfs3.MaxIO), 0o644); err != nil {
			t.Fatal(err)
		}
	}))
	fh := lookupRoot(t, srv, "big")
	s := srv.Daemon.Server
	reads := func(st nfsd.Stats) int64 {
		return int64(st.Calls[nfsd.CallKey{Prog: nfs3.Program, Proc: uint32(nfs3.ProcRead)}])
	}
	const conns = 8
	for i := range conns {
		nc, err := net.Dial("tcp", srv.NFSAddr.String())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { nc.Close() })
		nc.(*net.TCPConn).SetReadBuffer(4 << 10)
		var calls []byte
		for x := range nfsd.DefaultMaxInFlightPerConn {
			var e xdr.Encoder
			rpc.CallHeader{XID: uint32(i<<16 | x), Prog: nfs3.Program, Vers: nfs3.Version, Proc: uint32(nfs3.ProcRead),
				Cred: nfsdtest.AuthSys(0, 0), Verf: nfsdtest.AuthNone}.Encode(&e)
			(&nfs3.ReadArgs{File: fh, Count: nfs3.MaxIO}).Encode(&e)
			calls = append(calls, rpc.FrameRecord(e.Bytes())...)
		}
		if _, err := nc.Write(calls); err != nil {
			t.Fatal(err)
		}
	}
	ran := settle(t, s, reads)
	queued := s.Stats().QueuedBytes
	// A reader reads a call while the connection's queued and reserved
	// bytes are within the bound, so it may go one reply beyond it; the
	// socket takes up to its send buffer besides.
	reply := int64(nfs3.MaxIO + 4<<10)
	perConn := int64(s.MaxQueuedPerConn) + reply
	maxRan := conns * (perConn + tcpWmemMax(t)) / nfs3.MaxIO
	t.Logf("READs run: %d of %d; replies queued: %d bytes", ran, conns*nfsd.DefaultMaxInFlightPerConn, queued)
	if ran > maxRan {
		t.Errorf("%d READs of 1 MiB run for %d connections that read no reply; want at most %d", ran, conns, maxRan)
	}
	if queued > conns*perConn {
		t.Errorf("%d bytes of replies queued; want at most %d", queued, conns*perConn)
	}
}

// TestBadStreamLogRateLimited: connections from one host that each send a
// record mark beyond MaxRecord are each closed and counted, but logged
// once a minute for the host (held_back counts the rest): a Warn line per
// connection let any host that reaches the port write the log at the rate
// it connects.
func TestBadStreamLogRateLimited(t *testing.T) {
	var logs logtest.Buffer
	srv := nfsdtest.StartServer(t, withLog(&logs))
	const n = 30
	for range n {
		nc, err := net.Dial("tcp", srv.NFSAddr.String())
		if err != nil {
			t.Fatal(err)
		}
		if _, err := nc.Write(binary.BigEndian.AppendUint32(nil, 1<<31|64<<20)); err != nil {
			t.Fatal(err)
		}
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := io.Copy(io.Discard, nc); err != nil {
			t.Fatalf("waiting for the server to close: %v", err)
		}
		nc.Close()
	}
	if got := srv.Daemon.Server.Stats().BadRecords; got != n {
		t.Errorf("BadRecords %d, want %d", got, n)
	}
	if got := strings.Count(logs.String(), "record too large"); got != 1 {
		t.Errorf("%d \"record too large\" lines for %d connections from one host, want 1:\n%s", got, n, logs.String())
	}
}
