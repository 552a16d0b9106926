package client

import (
	"net"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// testRPCServer is a small but real record-marked ONC RPC server on a
// loopback TCP listener. Each call runs in its own goroutine so replies can
// leave out of order, like a real server's worker pool. Tests use it for the
// transport before a full mailnfsd is involved.
type testRPCServer struct {
	t  *testing.T
	ln net.Listener
	// handle runs one call; it returns the result bytes and whether to
	// answer. It may call sc.Close to cut the connection.
	handle func(sc *srvConn, h rpc.CallHeader, args []byte) (res []byte, stat rpc.AcceptStat, reply bool)

	mu    sync.Mutex
	conns []*srvConn
	calls []seenCall
	wg    sync.WaitGroup
	done  chan struct{}
}

type seenCall struct {
	conn int
	xid  uint32
	proc uint32
}

type srvConn struct {
	done <-chan struct{} // closed when the server closes
	id   int
	nc   net.Conn
	wmu  sync.Mutex
}

func (sc *srvConn) Close() { sc.nc.Close() }

func startTestRPCServer(t *testing.T, handle func(sc *srvConn, h rpc.CallHeader, args []byte) ([]byte, rpc.AcceptStat, bool)) *testRPCServer {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &testRPCServer{t: t, ln: ln, handle: handle, done: make(chan struct{})}
	s.wg.Add(1)
	go s.accept()
	t.Cleanup(s.Close)
	return s
}

func (s *testRPCServer) Addr() string { return s.ln.Addr().String() }

func (s *testRPCServer) Close() {
	select {
	case <-s.done:
		return
	default:
	}
	close(s.done)
	s.ln.Close()
	s.mu.Lock()
	for _, c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.wg.Wait()
}

// DropConns closes every accepted connection but keeps listening.
func (s *testRPCServer) DropConns() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.conns {
		c.nc.Close()
	}
}

func (s *testRPCServer) Calls() []seenCall {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seenCall(nil), s.calls...)
}

func (s *testRPCServer) NumConns() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.conns)
}

func (s *testRPCServer) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		s.mu.Lock()
		sc := &srvConn{done: s.done, id: len(s.conns), nc: nc}
		s.conns = append(s.conns, sc)
		s.mu.Unlock()
		s.wg.Add(1)
		go s.serve(sc)
	}
}

func (s *testRPCServer) serve(sc *srvConn) {
	defer s.wg.Done()
	defer sc.nc.Close()
	rr := rpc.NewRecordReader(sc.nc, 0)
	for {
		rec, err := rr.Next()
		if err != nil {
			return
		}
		rec = append([]byte(nil), rec...)
		d := xdr.NewDecoder(rec)
		h, err := rpc.DecodeCall(d)
		if err != nil {
			s.t.Errorf("test server: bad call: %v", err)
			return
		}
		s.mu.Lock()
		s.calls = append(s.calls, seenCall{conn: sc.id, xid: h.XID, proc: h.Proc})
		s.mu.Unlock()
		args := d.Rest()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			res, stat, reply := s.handle(sc, h, args)
			if !reply {
				return
			}
			e := xdr.NewEncoder(nil)
			e.Uint32(0)
			rpc.EncodeAccepted(e, h.XID, stat)
			e.FixedOpaque(res)
			b := e.Bytes()
			rpc.PutRecordMark(b)
			sc.wmu.Lock()
			_, _ = sc.nc.Write(b)
			sc.wmu.Unlock()
		}()
	}
}

// checkGoroutines fails t if, after cleanup, more goroutines run than before.
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var after int
		for range 200 {
			after = runtime.NumGoroutine()
			if after <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		buf := make([]byte, 1<<20)
		n := runtime.Stack(buf, true)
		t.Errorf("goroutine leak: %d before, %d after\n%s", before, after, buf[:n])
	})
}
