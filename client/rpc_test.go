package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

const (
	procEcho    = 1 // echo args after a delay given as the first uint32 (ms)
	procNever   = 2 // never answer
	procCutOnce = 3 // first sight of an xid: count it, cut the connection; later: answer
	procCred    = 4 // answer the decoded AUTH_SYS body
	procUnavail = 5 // answer PROC_UNAVAIL
)

func echoArgs(delayMS uint32, payload []byte) func(*xdr.Encoder) {
	return func(e *xdr.Encoder) {
		e.Uint32(delayMS)
		e.Opaque(payload)
	}
}

type stdHandler struct {
	inflight, maxInflight atomic.Int32
	mu                    sync.Mutex
	executed              map[uint32]int // procCutOnce executions by xid
	release               chan struct{}
}

func newStdHandler() *stdHandler {
	return &stdHandler{executed: map[uint32]int{}, release: make(chan struct{})}
}

func (sh *stdHandler) handle(sc *srvConn, h rpc.CallHeader, args []byte) ([]byte, rpc.AcceptStat, bool) {
	n := sh.inflight.Add(1)
	defer sh.inflight.Add(-1)
	for {
		m := sh.maxInflight.Load()
		if n <= m || sh.maxInflight.CompareAndSwap(m, n) {
			break
		}
	}
	switch h.Proc {
	case 0:
		return nil, rpc.Success, true
	case procEcho:
		d := xdr.NewDecoder(args)
		ms := d.Uint32()
		time.Sleep(time.Duration(ms) * time.Millisecond)
		return args[4:], rpc.Success, true
	case procNever:
		select {
		case <-sh.release:
		case <-sc.done:
		}
		return nil, rpc.Success, false
	case procCutOnce:
		sh.mu.Lock()
		sh.executed[h.XID]++
		first := sh.executed[h.XID] == 1
		sh.mu.Unlock()
		if first {
			// The server acted, but the reply is lost with the connection.
			sc.Close()
			return nil, rpc.Success, false
		}
		var e xdr.Encoder
		e.Uint32(h.XID)
		return e.Bytes(), rpc.Success, true
	case procCred:
		if h.Cred.Flavor != rpc.AuthSys {
			return nil, rpc.SystemErr, true
		}
		return h.Cred.Body, rpc.Success, true
	}
	return nil, rpc.ProcUnavail, true
}

func dialTest(t *testing.T, addr string, opts RPCOptions) *RPCClient {
	t.Helper()
	c, err := DialRPC(context.Background(), addr, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRPCPipelined(t *testing.T) {
	checkGoroutines(t)
	sh := newStdHandler()
	srv := startTestRPCServer(t, sh.handle)
	c := dialTest(t, srv.Addr(), RPCOptions{})

	const n = 64
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := []byte(fmt.Sprintf("call-%d", i))
			// Later calls answer sooner: replies leave out of order.
			res, err := c.Call(context.Background(), 42, 1, procEcho, AuthNone(), echoArgs(uint32(n-i)*2, payload))
			if err != nil {
				errs <- err
				return
			}
			d := xdr.NewDecoder(res)
			got := d.Opaque(1000)
			if err := d.Done(); err != nil || !bytes.Equal(got, payload) {
				errs <- fmt.Errorf("call %d: got %q (%v)", i, got, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if srv.NumConns() != 1 {
		t.Errorf("server saw %d connections, want 1", srv.NumConns())
	}
	if m := sh.maxInflight.Load(); m < 8 {
		t.Errorf("at most %d calls were in flight at the server; the client does not pipeline", m)
	}
}

func TestRPCDeadlineDoesNotWedgeReader(t *testing.T) {
	checkGoroutines(t)
	sh := newStdHandler()
	srv := startTestRPCServer(t, sh.handle)
	defer close(sh.release)
	c := dialTest(t, srv.Addr(), RPCOptions{})

	// A call that is never answered times out.
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	_, err := c.Call(ctx, 42, 1, procNever, AuthNone(), nil)
	cancel()
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("never-answered call: err = %v, want DeadlineExceeded", err)
	}
	if Temporary(err) != true {
		t.Errorf("a deadline is temporary")
	}
	// Many calls answered after their callers gave up: the late replies must
	// be dropped without blocking the reader.
	for range 20 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Millisecond)
		_, err := c.Call(ctx, 42, 1, procEcho, AuthNone(), echoArgs(300, []byte("late")))
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("late call: err = %v", err)
		}
	}
	time.Sleep(400 * time.Millisecond) // the late replies arrive now
	res, err := c.Call(context.Background(), 42, 1, procEcho, AuthNone(), echoArgs(0, []byte("after")))
	if err != nil {
		t.Fatalf("call after timeouts: %v", err)
	}
	if d := xdr.NewDecoder(res); string(d.Opaque(100)) != "after" {
		t.Errorf("wrong reply after timeouts")
	}
	rc := c.conns[0]
	rc.mu.Lock()
	left := len(rc.pending)
	rc.mu.Unlock()
	if left != 0 {
		t.Errorf("%d calls still pending after their callers left", left)
	}
}

func TestRPCReconnectResendsSameXID(t *testing.T) {
	checkGoroutines(t)
	sh := newStdHandler()
	srv := startTestRPCServer(t, sh.handle)
	c := dialTest(t, srv.Addr(), RPCOptions{})

	// Several calls in flight; each one cuts the connection the first time,
	// after the server "acted" on it.
	const n = 8
	var wg sync.WaitGroup
	for range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			res, err := c.Call(ctx, 42, 1, procCutOnce, AuthNone(), nil)
			if err != nil {
				t.Error(err)
				return
			}
			if len(res) != 4 {
				t.Errorf("reply of %d bytes", len(res))
			}
		}()
	}
	wg.Wait()
	// Every xid was seen exactly twice by the handler and on two different
	// connections: the retransmission used the original XID.
	byXID := map[uint32][]int{}
	for _, sc := range srv.Calls() {
		if sc.proc == procCutOnce {
			byXID[sc.xid] = append(byXID[sc.xid], sc.conn)
		}
	}
	if len(byXID) != n {
		t.Fatalf("server saw %d distinct xids, want %d", len(byXID), n)
	}
	for xid, conns := range byXID {
		if len(conns) < 2 {
			t.Errorf("xid %#x sent %d times, want a retransmission", xid, len(conns))
		}
		seen := map[int]bool{}
		for _, cn := range conns {
			if seen[cn] {
				t.Errorf("xid %#x sent twice on connection %d", xid, cn)
			}
			seen[cn] = true
		}
	}
	if srv.NumConns() < 2 {
		t.Errorf("no reconnect happened")
	}
}

func TestRPCReconnectTimeout(t *testing.T) {
	checkGoroutines(t)
	sh := newStdHandler()
	srv := startTestRPCServer(t, sh.handle)
	defer close(sh.release)
	c := dialTest(t, srv.Addr(), RPCOptions{ReconnectTimeout: 100 * time.Millisecond})
	if _, err := c.Call(context.Background(), 42, 1, 0, AuthNone(), nil); err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 1)
	go func() {
		_, err := c.Call(context.Background(), 42, 1, procNever, AuthNone(), nil)
		errc <- err
	}()
	time.Sleep(20 * time.Millisecond)
	srv.Close() // the server is gone for good
	select {
	case err := <-errc:
		if !errors.Is(err, ErrDisconnected) {
			t.Errorf("err = %v, want ErrDisconnected", err)
		}
		if !Temporary(err) {
			t.Errorf("ErrDisconnected must be temporary")
		}
	case <-time.After(10 * time.Second):
		t.Fatal("outstanding call not failed after ReconnectTimeout")
	}
	// While down, new calls fail fast.
	start := time.Now()
	if _, err := c.Call(context.Background(), 42, 1, 0, AuthNone(), nil); !errors.Is(err, ErrDisconnected) {
		t.Errorf("call while down: %v", err)
	}
	if time.Since(start) > 5*time.Second {
		t.Errorf("call while down took %v", time.Since(start))
	}
}

func TestRPCReplyErrors(t *testing.T) {
	checkGoroutines(t)
	sh := newStdHandler()
	srv := startTestRPCServer(t, sh.handle)
	c := dialTest(t, srv.Addr(), RPCOptions{})
	_, err := c.Call(context.Background(), 42, 1, procUnavail, AuthNone(), nil)
	var ce *Error
	if !errors.As(err, &ce) || ce.RPC == nil || ce.RPC.Accept != rpc.ProcUnavail {
		t.Fatalf("err = %#v, want *Error with PROC_UNAVAIL", err)
	}
	var re *rpc.ReplyError
	if !errors.As(err, &re) {
		t.Errorf("errors.As *rpc.ReplyError failed")
	}
	if Temporary(err) {
		t.Errorf("PROC_UNAVAIL is not temporary")
	}
	_, err = c.Call(context.Background(), 42, 1, procCred, AuthNone(), nil)
	if !errors.As(err, &ce) || ce.RPC == nil || ce.RPC.Accept != rpc.SystemErr || !Temporary(err) {
		t.Errorf("SYSTEM_ERR: err = %v", err)
	}
}

func TestRPCAuthSys(t *testing.T) {
	checkGoroutines(t)
	sh := newStdHandler()
	srv := startTestRPCServer(t, sh.handle)
	c := dialTest(t, srv.Addr(), RPCOptions{})
	gids := make([]uint32, 20)
	for i := range gids {
		gids[i] = uint32(100 + i)
	}
	res, err := c.Call(context.Background(), 42, 1, procCred, AuthSys("front1", 2001, 2002, gids...), nil)
	if err != nil {
		t.Fatal(err)
	}
	p, err := rpc.DecodeAuthSys(res)
	if err != nil {
		t.Fatal(err)
	}
	if p.MachineName != "front1" || p.UID != 2001 || p.GID != 2002 || len(p.GIDs) != 16 || p.GIDs[15] != 115 {
		t.Errorf("credential = %+v", p)
	}
}

func TestRPCPoolRoundRobin(t *testing.T) {
	checkGoroutines(t)
	sh := newStdHandler()
	srv := startTestRPCServer(t, sh.handle)
	c := dialTest(t, srv.Addr(), RPCOptions{Conns: 3})
	for range 9 {
		if _, err := c.Call(context.Background(), 42, 1, 0, AuthNone(), nil); err != nil {
			t.Fatal(err)
		}
	}
	perConn := map[int]int{}
	for _, sc := range srv.Calls() {
		perConn[sc.conn]++
	}
	if len(perConn) != 3 || perConn[0] != 3 || perConn[1] != 3 || perConn[2] != 3 {
		t.Errorf("calls per connection = %v, want 3 each on 3", perConn)
	}
}

func TestRPCCloseFailsOutstanding(t *testing.T) {
	checkGoroutines(t)
	sh := newStdHandler()
	srv := startTestRPCServer(t, sh.handle)
	defer close(sh.release)
	c, err := DialRPC(context.Background(), srv.Addr(), RPCOptions{Conns: 2})
	if err != nil {
		t.Fatal(err)
	}
	errc := make(chan error, 4)
	for range 4 {
		go func() {
			_, err := c.Call(context.Background(), 42, 1, procNever, AuthNone(), nil)
			errc <- err
		}()
	}
	for len(srv.Calls()) < 4 {
		time.Sleep(time.Millisecond)
	}
	c.Close()
	for range 4 {
		if err := <-errc; !errors.Is(err, ErrClosed) {
			t.Errorf("outstanding call after Close: %v", err)
		}
	}
	if _, err := c.Call(context.Background(), 42, 1, 0, AuthNone(), nil); !errors.Is(err, ErrClosed) {
		t.Errorf("call after Close: %v", err)
	}
}

func TestRPCDialRefused(t *testing.T) {
	checkGoroutines(t)
	sh := newStdHandler()
	srv := startTestRPCServer(t, sh.handle)
	addr := srv.Addr()
	srv.Close()
	_, err := DialRPC(context.Background(), addr, RPCOptions{})
	if err == nil || !Temporary(err) {
		t.Errorf("dial of a closed port: err = %v, want a temporary error", err)
	}
}

func TestErrorIs(t *testing.T) {
	e := &Error{Prog: rpc.ProgNFS, Op: "LOOKUP", Path: "x", Status: NFS3ErrNoEnt}
	if !errors.Is(e, fs.ErrNotExist) || errors.Is(e, fs.ErrExist) || !errors.Is(e, syscall.ENOENT) {
		t.Errorf("NOENT matching wrong")
	}
	if got := e.Error(); got != "client: LOOKUP x: NFS3ERR_NOENT" {
		t.Errorf("Error() = %q", got)
	}
	if !IsStatus(e, NFS3ErrNoEnt) || Temporary(e) {
		t.Errorf("IsStatus/Temporary wrong")
	}
	if !Temporary(&Error{Prog: rpc.ProgNFS, Status: NFS3ErrJukebox}) {
		t.Errorf("JUKEBOX must be temporary")
	}
}

// TestJukeboxRetried: NFS3ERR_JUKEBOX is retried with a new XID until the
// server answers; a context that ends first gets the JUKEBOX error.
func TestJukeboxRetried(t *testing.T) {
	checkGoroutines(t)
	var calls atomic.Int32
	srv := startTestRPCServer(t, func(sc *srvConn, h rpc.CallHeader, args []byte) ([]byte, rpc.AcceptStat, bool) {
		var e xdr.Encoder
		if h.Proc == 1 && calls.Add(1) <= 2 {
			e.Uint32(uint32(NFS3ErrJukebox))
			return e.Bytes(), rpc.Success, true
		}
		if h.Proc == 2 {
			e.Uint32(uint32(NFS3ErrJukebox))
			e.Bool(false) // wcc before
			e.Bool(false) // wcc after
			return e.Bytes(), rpc.Success, true
		}
		res := nfs3.GetattrRes{Attr: nfs3.Fattr{Type: nfs3.TypeReg, Size: 42}}
		res.Encode(&e)
		return e.Bytes(), rpc.Success, true
	})
	rc := dialTest(t, srv.Addr(), RPCOptions{})
	c := &Client{rpc: rc, log: slog.New(slog.DiscardHandler), rtmax: 1 << 20, wtmax: 1 << 20}
	a, err := c.Getattr(context.Background(), []byte{1})
	if err != nil || a.Size != 42 {
		t.Fatalf("Getattr after JUKEBOX: %+v %v", a, err)
	}
	xids := map[uint32]bool{}
	for _, sc := range srv.Calls() {
		xids[sc.xid] = true
	}
	if len(xids) != 3 {
		t.Errorf("%d distinct xids for 3 transmissions; JUKEBOX retries need new ones", len(xids))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	_, err = c.Setattr(ctx, []byte{1}, SetAttr{}, nil)
	if !IsStatus(err, NFS3ErrJukebox) || !Temporary(err) {
		t.Errorf("Setattr with JUKEBOX until the deadline: %v", err)
	}
}
