package nfsd

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// The test program: a tiny ONC RPC program with procedures that exercise the
// transport.
const (
	testProgNum = 0x20000101

	procNull   = 0
	procEcho   = 1  // opaque<4096> -> the same opaque
	procSleep  = 2  // uint32 ms -> uint32 ms; stops early on ctx
	procPanic  = 3  // panics
	procDrop   = 4  // no reply
	procCount  = 5  // non-idempotent: opaque<4096> -> uint32 number of runs so far
	procBlock  = 6  // non-idempotent: waits for release -> uint32 number of runs
	procDeny   = 7  // AUTH_ERROR/AUTH_TOOWEAK
	procWhoami = 8  // -> uint32 uid (or 0xffffffff without AUTH_SYS), string net
	procBig    = 9  // uint32 n -> opaque of n bytes
	procWait   = 10 // idempotent: waits for release -> void
	procAddr   = 11 // -> string client addr:port, string local addr:port
)

type testProg struct {
	noBlock bool          // procBlock and procWait return at once (fuzzing)
	started chan uint32   // procBlock/procWait send their xid here when they begin (if non-nil)
	release chan struct{} // closed or sent on to let procBlock/procWait finish
	counts  atomic.Uint32 // runs of procCount and procBlock
	// mayHaveRun counts calls that arrived marked Request.MayHaveRun.
	mayHaveRun atomic.Uint32
}

func newTestProg() *testProg {
	return &testProg{started: make(chan uint32, 64), release: make(chan struct{})}
}

func (p *testProg) Prog() uint32                 { return testProgNum }
func (p *testProg) Versions() (low, high uint32) { return 1, 2 }
func (p *testProg) NonIdempotent(vers, proc uint32) bool {
	return proc == procCount || proc == procBlock
}

func (p *testProg) wait(ctx context.Context, xid uint32) bool {
	if p.noBlock {
		return true
	}
	if p.started != nil {
		select {
		case p.started <- xid:
		default:
		}
	}
	select {
	case <-p.release:
		return true
	case <-ctx.Done():
		return false
	}
}

func (p *testProg) Serve(ctx context.Context, req *Request, res *xdr.Encoder) Status {
	d := req.Args
	if req.MayHaveRun {
		p.mayHaveRun.Add(1)
	}
	switch req.Proc {
	case procNull:
	case procEcho:
		b := d.Opaque(4096)
		if d.Done() != nil {
			return StatusGarbage
		}
		res.Opaque(b)
	case procSleep:
		ms := d.Uint32()
		if d.Done() != nil {
			return StatusGarbage
		}
		if p.noBlock {
			ms = min(ms, 20)
		}
		select {
		case <-time.After(time.Duration(ms) * time.Millisecond):
		case <-ctx.Done():
		}
		res.Uint32(ms)
	case procPanic:
		res.Uint32(12345) // discarded by the transport
		panic("test panic")
	case procDrop:
		return Status{Drop: true}
	case procCount:
		d.Opaque(4096)
		if d.Done() != nil {
			return StatusGarbage
		}
		res.Uint32(p.counts.Add(1))
	case procBlock:
		n := p.counts.Add(1)
		if !p.wait(ctx, req.XID) {
			return StatusSystemErr
		}
		res.Uint32(n)
	case procDeny:
		return Status{Auth: rpc.AuthTooWeak}
	case procWhoami:
		uid := ^uint32(0)
		if req.AuthSys != nil {
			uid = req.AuthSys.UID
		}
		res.Uint32(uid)
		res.String(req.Net)
	case procAddr:
		res.String(req.Addr.String())
		res.String(req.Local.String())
	case procBig:
		n := d.Uint32()
		if d.Done() != nil || n > 1<<20 {
			return StatusGarbage
		}
		res.Opaque(make([]byte, n))
	case procWait:
		if !p.wait(ctx, req.XID) {
			return StatusSystemErr
		}
	default:
		return StatusProcUnavail
	}
	return StatusOK
}

// fixedProg serves only a program number and a version range, NULL only.
type fixedProg struct{ prog, low, high uint32 }

func (p fixedProg) Prog() uint32                 { return p.prog }
func (p fixedProg) Versions() (low, high uint32) { return p.low, p.high }
func (p fixedProg) Serve(ctx context.Context, req *Request, res *xdr.Encoder) Status {
	if req.Proc != 0 {
		return StatusProcUnavail
	}
	return StatusOK
}

// startTCP serves s on a loopback listener and registers a cleanup that
// shuts it down and checks that Serve returned ErrServerClosed.
func startTCP(t testing.TB, s *Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("Serve returned %v, want ErrServerClosed", err)
		}
	})
	return ln.Addr().String()
}

// testClient speaks raw record-marked RPC over one TCP connection.
type testClient struct {
	t  testing.TB
	c  net.Conn
	rr *rpc.RecordReader
}

func dial(t testing.TB, addr string) *testClient {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		// Reset rather than close, leaving no TIME_WAIT behind.
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	return &testClient{t: t, c: c, rr: rpc.NewRecordReader(c, 4<<20)}
}

// callMsg builds a CALL message (without record mark).
func callMsg(xid, prog, vers, proc uint32, cred rpc.OpaqueAuth, args []byte) []byte {
	var e xdr.Encoder
	rpc.CallHeader{XID: xid, RPCVers: rpc.Version, Prog: prog, Vers: vers, Proc: proc, Cred: cred}.Encode(&e)
	e.FixedOpaque(args)
	return e.Bytes()
}

func testCall(xid, proc uint32, args []byte) []byte {
	return callMsg(xid, testProgNum, 1, proc, rpc.OpaqueAuth{}, args)
}

func opaqueArg(b []byte) []byte {
	var e xdr.Encoder
	e.Opaque(b)
	return e.Bytes()
}

func u32Arg(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

func (tc *testClient) send(msg []byte) {
	tc.t.Helper()
	tc.write(rpc.FrameRecord(msg))
}

func (tc *testClient) write(b []byte) {
	tc.t.Helper()
	tc.c.SetWriteDeadline(time.Now().Add(10 * time.Second))
	if _, err := tc.c.Write(b); err != nil {
		tc.t.Fatalf("write: %v", err)
	}
}

func (tc *testClient) recv() []byte {
	tc.t.Helper()
	tc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	rec, err := tc.rr.Next()
	if err != nil {
		tc.t.Fatalf("read reply: %v", err)
	}
	return append([]byte(nil), rec...)
}

// call sends msg and returns the next reply.
func (tc *testClient) call(msg []byte) []byte {
	tc.t.Helper()
	tc.send(msg)
	return tc.recv()
}

// expectClosed checks that the server closes the connection (EOF or reset)
// without sending anything else.
func (tc *testClient) expectClosed() {
	tc.t.Helper()
	tc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var b [1]byte
	n, err := tc.c.Read(b[:])
	if n != 0 || err == nil {
		tc.t.Fatalf("read %d bytes, err %v; want the connection closed", n, err)
	}
	if isTimeout(err) {
		tc.t.Fatalf("connection not closed: %v", err)
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// words renders a reply as big-endian 32-bit words.
func words(b []byte) []uint32 {
	w := make([]uint32, len(b)/4)
	for i := range w {
		w[i] = binary.BigEndian.Uint32(b[4*i:])
	}
	return w
}

func wordsBytes(w ...uint32) []byte {
	var b []byte
	for _, v := range w {
		b = binary.BigEndian.AppendUint32(b, v)
	}
	return b
}

func replyXID(t testing.TB, b []byte) uint32 {
	t.Helper()
	if len(b) < 4 {
		t.Fatalf("short reply %x", b)
	}
	return binary.BigEndian.Uint32(b)
}

// successBody checks an accepted SUCCESS header and returns the results.
func successBody(t testing.TB, b []byte, xid uint32) []byte {
	t.Helper()
	want := wordsBytes(xid, rpc.Reply, rpc.MsgAccepted, rpc.AuthNone, 0, uint32(rpc.Success))
	if len(b) < 24 || !bytes.Equal(b[:24], want) {
		t.Fatalf("reply %v, want SUCCESS header %v", words(b), words(want))
	}
	return b[24:]
}

func newServer(p Program) *Server {
	s := &Server{}
	s.Register(p)
	return s
}

func TestServeErrorReplies(t *testing.T) {
	p := newTestProg()
	s := newServer(p)
	s.Register(fixedProg{prog: rpc.ProgNFS, low: 3, high: 3})
	tc := dial(t, startTCP(t, s))

	sys := rpc.AuthSysParms{Stamp: 7, MachineName: "client", UID: 1000, GID: 100, GIDs: []uint32{1, 2}}.Credential()
	badSys := rpc.OpaqueAuth{Flavor: rpc.AuthSys, Body: append(append([]byte(nil), sys.Body...), 0, 0, 0, 0)}
	gss := rpc.OpaqueAuth{Flavor: 6, Body: []byte{1, 2, 3, 4}}
	const acc, den = rpc.MsgAccepted, rpc.MsgDenied

	tests := []struct {
		name string
		msg  []byte
		want []byte
	}{
		{"RPCMismatch", func() []byte {
			m := testCall(1, procNull, nil)
			binary.BigEndian.PutUint32(m[8:], 3)
			return m
		}(), wordsBytes(1, 1, den, uint32(rpc.RPCMismatch), 2, 2)},
		{"AuthSysMalformed", callMsg(2, testProgNum, 1, procEcho, badSys, opaqueArg(nil)),
			wordsBytes(2, 1, den, uint32(rpc.AuthError), uint32(rpc.AuthBadCred))},
		{"AuthSysMalformedOnNull", callMsg(3, testProgNum, 1, procNull, badSys, nil),
			wordsBytes(3, 1, den, uint32(rpc.AuthError), uint32(rpc.AuthBadCred))},
		{"FlavorTooWeak", callMsg(4, testProgNum, 1, procEcho, gss, opaqueArg(nil)),
			wordsBytes(4, 1, den, uint32(rpc.AuthError), uint32(rpc.AuthTooWeak))},
		{"AnyFlavorMayCallNull", callMsg(5, testProgNum, 1, procNull, gss, nil),
			wordsBytes(5, 1, acc, 0, 0, uint32(rpc.Success))},
		{"ProgUnavail", callMsg(6, 0x20000999, 1, 0, rpc.OpaqueAuth{}, nil),
			wordsBytes(6, 1, acc, 0, 0, uint32(rpc.ProgUnavail))},
		{"ProgMismatch", callMsg(7, testProgNum, 3, 0, rpc.OpaqueAuth{}, nil),
			wordsBytes(7, 1, acc, 0, 0, uint32(rpc.ProgMismatch), 1, 2)},
		{"NFSv4Probe", callMsg(8, rpc.ProgNFS, 4, 0, rpc.OpaqueAuth{}, nil),
			wordsBytes(8, 1, acc, 0, 0, uint32(rpc.ProgMismatch), 3, 3)},
		{"ProcUnavail", testCall(9, 99, nil),
			wordsBytes(9, 1, acc, 0, 0, uint32(rpc.ProcUnavail))},
		{"GarbageArgs", testCall(10, procEcho, []byte{0, 0, 0, 8, 1}),
			wordsBytes(10, 1, acc, 0, 0, uint32(rpc.GarbageArgs))},
		{"TrailingArgs", testCall(11, procEcho, append(opaqueArg([]byte("x")), 0, 0, 0, 0)),
			wordsBytes(11, 1, acc, 0, 0, uint32(rpc.GarbageArgs))},
		{"SystemErrOnPanic", testCall(12, procPanic, nil),
			wordsBytes(12, 1, acc, 0, 0, uint32(rpc.SystemErr))},
		{"ProgramAuthError", testCall(13, procDeny, nil),
			wordsBytes(13, 1, den, uint32(rpc.AuthError), uint32(rpc.AuthTooWeak))},
		{"Echo", testCall(14, procEcho, opaqueArg([]byte("hello"))),
			append(wordsBytes(14, 1, acc, 0, 0, 0), opaqueArg([]byte("hello"))...)},
		{"AuthSys", callMsg(15, testProgNum, 2, procWhoami, sys, nil),
			append(wordsBytes(15, 1, acc, 0, 0, 0, 1000), opaqueArg([]byte("tcp"))...)},
		{"AuthNone", testCall(16, procWhoami, nil),
			append(wordsBytes(16, 1, acc, 0, 0, 0, ^uint32(0)), opaqueArg([]byte("tcp"))...)},
	}
	sizes := map[string]int{ // reference §1.1 byte counts
		"RPCMismatch": 24, "AuthSysMalformed": 20, "FlavorTooWeak": 20, "ProgUnavail": 24,
		"ProgMismatch": 32, "NFSv4Probe": 32, "ProcUnavail": 24, "GarbageArgs": 24, "SystemErrOnPanic": 24,
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tc.t = t
			got := tc.call(tt.msg)
			if !bytes.Equal(got, tt.want) {
				t.Errorf("reply\n got %v\nwant %v", words(got), words(tt.want))
			}
			if n, ok := sizes[tt.name]; ok && len(got) != n {
				t.Errorf("reply is %d bytes, want %d", len(got), n)
			}
		})
	}
	st := s.Stats()
	if st.Panics != 1 || st.RPCMismatch != 1 || st.ProgUnavail != 1 || st.ProgMismatch != 2 {
		t.Errorf("stats %+v", st)
	}
	if got := st.Calls[CallKey{testProgNum, procEcho}]; got != 3 {
		t.Errorf("echo calls %d, want 3 (%v)", got, st.Calls)
	}
}

func TestServeUndecodableHeaderClosesConnection(t *testing.T) {
	for name, msg := range map[string][]byte{
		"Reply":       wordsBytes(1, rpc.Reply, 0, 0, 0, 0),
		"Truncated":   testCall(1, procNull, nil)[:20],
		"CredTooLong": callMsg(1, testProgNum, 1, 0, rpc.OpaqueAuth{Flavor: 1, Body: make([]byte, 404)}, nil),
		"Empty":       {},
	} {
		t.Run(name, func(t *testing.T) {
			s := newServer(newTestProg())
			tc := dial(t, startTCP(t, s))
			tc.send(msg)
			tc.expectClosed()
			if st := s.Stats(); st.BadCalls != 1 {
				t.Errorf("BadCalls %d, want 1", st.BadCalls)
			}
		})
	}
}

func TestServePipelining(t *testing.T) {
	p := newTestProg()
	s := newServer(p)
	tc := dial(t, startTCP(t, s))
	tc.send(testCall(1, procWait, nil))
	<-p.started
	tc.send(testCall(2, procEcho, opaqueArg([]byte("fast"))))
	// The fast call overtakes the blocked one on the same connection.
	if xid := replyXID(t, tc.recv()); xid != 2 {
		t.Fatalf("first reply xid %d, want 2", xid)
	}
	close(p.release)
	if xid := replyXID(t, tc.recv()); xid != 1 {
		t.Fatalf("second reply xid %d, want 1", xid)
	}
	// Many pipelined calls: every one answered once.
	const n = 200
	var all []byte
	for i := range uint32(n) {
		all = append(all, rpc.FrameRecord(testCall(100+i, procSleep, u32Arg(i%3)))...)
	}
	tc.write(all)
	seen := map[uint32]bool{}
	for range n {
		xid := replyXID(t, tc.recv())
		if seen[xid] || xid < 100 || xid >= 100+n {
			t.Fatalf("unexpected or repeated xid %d", xid)
		}
		seen[xid] = true
	}
}

func TestServeMultiFragment(t *testing.T) {
	s := newServer(newTestProg())
	tc := dial(t, startTCP(t, s))
	msg := testCall(42, procEcho, opaqueArg([]byte("fragmented record")))
	frag := func(b []byte, last bool) []byte {
		h := uint32(len(b))
		if last {
			h |= 1 << 31
		}
		return append(binary.BigEndian.AppendUint32(nil, h), b...)
	}
	want := append(wordsBytes(42, 1, 0, 0, 0, 0), opaqueArg([]byte("fragmented record"))...)
	cases := map[string][]byte{
		"ThreeFragments": bytes.Join([][]byte{frag(msg[:5], false), frag(msg[5:17], false), frag(msg[17:], true)}, nil),
		"ZeroLengthFragments": bytes.Join([][]byte{frag(nil, false), frag(msg[:9], false), frag(nil, false),
			frag(msg[9:], false), frag(nil, true)}, nil),
		"ByteFragments": func() []byte {
			var b []byte
			for i := range msg {
				b = append(b, frag(msg[i:i+1], i == len(msg)-1)...)
			}
			return b
		}(),
	}
	for name, stream := range cases {
		t.Run(name, func(t *testing.T) {
			tc.t = t
			// Written a byte at a time, so every read boundary is met.
			for i := range stream {
				tc.write(stream[i : i+1])
			}
			if got := tc.recv(); !bytes.Equal(got, want) {
				t.Errorf("reply %v, want %v", words(got), words(want))
			}
		})
	}
}

func TestServeOversizedRecord(t *testing.T) {
	cases := []struct {
		name      string
		maxRecord int
		stream    []byte
	}{
		{"Claims2GiB", 0, wordsBytes(1<<31 | (1<<31 - 1))},
		{"Claims2GiBNotLast", 0, wordsBytes(1<<31 - 1)},
		{"SmallLimit", 1024, wordsBytes(1<<31 | 1025)},
		{"FragmentsAddUp", 1024, append(append(wordsBytes(600), make([]byte, 600)...), wordsBytes(1<<31|600)...)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s := &Server{MaxRecord: c.maxRecord}
			s.Register(newTestProg())
			tc := dial(t, startTCP(t, s))
			// The limit is checked before the body arrives, so nothing of
			// the claimed size is ever allocated.
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			tc.write(c.stream)
			tc.expectClosed()
			runtime.ReadMemStats(&after)
			if d := after.TotalAlloc - before.TotalAlloc; d > 16<<20 {
				t.Errorf("allocated %d bytes for a rejected record", d)
			}
			if st := s.Stats(); st.BadRecords != 1 {
				t.Errorf("BadRecords %d, want 1", st.BadRecords)
			}
		})
	}
}

func TestServePanicKeepsConnection(t *testing.T) {
	s := newServer(newTestProg())
	tc := dial(t, startTCP(t, s))
	for i := range uint32(3) {
		got := tc.call(testCall(10+i, procPanic, nil))
		if want := wordsBytes(10+i, 1, 0, 0, 0, uint32(rpc.SystemErr)); !bytes.Equal(got, want) {
			t.Fatalf("panic reply %v, want %v", words(got), words(want))
		}
		body := successBody(t, tc.call(testCall(20+i, procEcho, opaqueArg([]byte("alive")))), 20+i)
		if !bytes.Equal(body, opaqueArg([]byte("alive"))) {
			t.Fatalf("echo after panic: %x", body)
		}
	}
	if st := s.Stats(); st.Panics != 3 {
		t.Errorf("Panics %d, want 3", st.Panics)
	}
}

func TestServeDropSendsNothing(t *testing.T) {
	s := newServer(newTestProg())
	tc := dial(t, startTCP(t, s))
	tc.send(testCall(1, procDrop, nil))
	if xid := replyXID(t, tc.call(testCall(2, procNull, nil))); xid != 2 {
		t.Fatalf("got reply for xid %d, want only 2", xid)
	}
	// The calls run concurrently: the drop may be counted after the reply.
	waitFor(t, "the drop to be counted", func() bool { return s.Stats().Drops == 1 })
}

func TestServeGate(t *testing.T) {
	s := newServer(newTestProg())
	var gated atomic.Int32
	s.Gate = func(req *Request) Status {
		gated.Add(1)
		switch req.Proc {
		case procEcho:
			return Status{Auth: rpc.AuthTooWeak}
		case procSleep:
			return Status{Drop: true}
		case procCount:
			return StatusSystemErr
		}
		return Status{}
	}
	tc := dial(t, startTCP(t, s))
	if got, want := tc.call(testCall(1, procEcho, opaqueArg(nil))), wordsBytes(1, 1, 1, 1, uint32(rpc.AuthTooWeak)); !bytes.Equal(got, want) {
		t.Errorf("gated echo %v, want %v", words(got), words(want))
	}
	if got, want := tc.call(testCall(2, procCount, opaqueArg(nil))), wordsBytes(2, 1, 0, 0, 0, uint32(rpc.SystemErr)); !bytes.Equal(got, want) {
		t.Errorf("gated count %v, want %v", words(got), words(want))
	}
	tc.send(testCall(3, procSleep, u32Arg(0)))
	if xid := replyXID(t, tc.call(testCall(4, procNull, nil))); xid != 4 {
		t.Errorf("reply to dropped call %d", xid)
	}
	// The gate is not consulted for calls the transport answers itself.
	tc.call(callMsg(5, 0x20000999, 1, 0, rpc.OpaqueAuth{}, nil))
	waitFor(t, "three gate refusals", func() bool { return s.Stats().GateRefusals == 3 })
	if n := gated.Load(); n != 4 {
		t.Errorf("gate ran %d times, want 4", n)
	}
}

// waitFor polls cond until it holds or 10 s pass.
func waitFor(t testing.TB, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func TestServeBackpressure(t *testing.T) {
	p := newTestProg()
	s := &Server{MaxInFlightPerConn: 2}
	s.Register(p)
	tc := dial(t, startTCP(t, s))
	for i := range uint32(5) {
		tc.send(testCall(i+1, procWait, nil))
	}
	waitFor(t, "two calls in flight", func() bool { return s.Stats().InFlight == 2 })
	time.Sleep(50 * time.Millisecond)
	if n := s.Stats().InFlight; n != 2 {
		t.Fatalf("InFlight %d, want 2 (reader must stop at MaxInFlightPerConn)", n)
	}
	close(p.release)
	seen := map[uint32]bool{}
	for range 5 {
		seen[replyXID(t, tc.recv())] = true
	}
	if len(seen) != 5 {
		t.Errorf("replies %v", seen)
	}
}

func TestServeWorkerPoolShared(t *testing.T) {
	p := newTestProg()
	s := &Server{Workers: 1}
	s.Register(p)
	addr := startTCP(t, s)
	a, b := dial(t, addr), dial(t, addr)
	a.send(testCall(1, procWait, nil))
	<-p.started
	b.send(testCall(2, procWait, nil))
	time.Sleep(50 * time.Millisecond)
	if n := s.Stats().InFlight; n != 1 {
		t.Fatalf("InFlight %d with one worker", n)
	}
	close(p.release)
	if xid := replyXID(t, a.recv()); xid != 1 {
		t.Errorf("a got %d", xid)
	}
	if xid := replyXID(t, b.recv()); xid != 2 {
		t.Errorf("b got %d", xid)
	}
}

// TestServeMaxConns: at MaxConns a new connection closes the connection
// idle longest (knfsd's policy); with none idle it is closed itself.
func TestServeMaxConns(t *testing.T) {
	p := newTestProg()
	s := &Server{MaxConns: 2}
	s.Register(p)
	addr := startTCP(t, s)
	busy := dialFrom(t, "127.0.0.2", addr)
	busy.send(testCall(1, procWait, nil))
	<-p.started
	idle := dialFrom(t, "127.0.0.3", addr)
	successBody(t, idle.call(testCall(2, procNull, nil)), 2)
	waitIdle(t, s, 1)

	// At the bound: the idle connection makes room, the busy one stays.
	c := dialFrom(t, "127.0.0.4", addr)
	successBody(t, c.call(testCall(3, procNull, nil)), 3)
	idle.expectClosed()

	// With c busy too nothing is idle: the next connection is refused.
	c.send(testCall(4, procWait, nil))
	<-p.started
	dialFrom(t, "127.0.0.5", addr).expectClosed()
	close(p.release)
	if xid := replyXID(t, busy.recv()); xid != 1 {
		t.Errorf("busy connection got reply %d, want 1", xid)
	}
	if xid := replyXID(t, c.recv()); xid != 4 {
		t.Errorf("c got reply %d, want 4", xid)
	}
	if st := s.Stats(); st.ConnsAccepted != 3 || st.ConnsEvicted != 1 || st.ConnsRejected != 1 || st.ConnsDenied != 0 {
		t.Errorf("accepted %d evicted %d rejected %d denied %d; want 3 1 1 0", st.ConnsAccepted, st.ConnsEvicted, st.ConnsRejected, st.ConnsDenied)
	}
}

// TestServeMaxConnsIdleLongest: the connection closed for room is the one
// whose last call ended longest ago, not the oldest one.
func TestServeMaxConnsIdleLongest(t *testing.T) {
	s := &Server{MaxConns: 3}
	s.Register(newTestProg())
	addr := startTCP(t, s)
	var cs []*testClient
	for i := range 3 {
		c := dialFrom(t, fmt.Sprintf("127.0.0.%d", i+2), addr)
		successBody(t, c.call(testCall(uint32(i+1), procNull, nil)), uint32(i+1))
		cs = append(cs, c)
		time.Sleep(5 * time.Millisecond)
	}
	// The oldest connection makes a call again: the second is now idle
	// longest.
	successBody(t, cs[0].call(testCall(10, procNull, nil)), 10)
	waitIdle(t, s, 3)
	n := dialFrom(t, "127.0.0.9", addr)
	successBody(t, n.call(testCall(11, procNull, nil)), 11)
	cs[1].expectClosed()
	successBody(t, cs[0].call(testCall(12, procNull, nil)), 12)
	successBody(t, cs[2].call(testCall(13, procNull, nil)), 13)
}

// TestServeMaxConnsPerHost: one address holds at most MaxConnsPerHost
// connections; past it, its new connection closes its own connection idle
// longest or, with none idle, is refused, while other hosts connect freely.
func TestServeMaxConnsPerHost(t *testing.T) {
	for _, tc := range []struct {
		maxConns, want int
	}{{0, DefaultMaxConnsPerHost}, {10, 10}, {100000, DefaultMaxConnsPerHost}} {
		s := &Server{MaxConns: tc.maxConns}
		s.init()
		if s.MaxConnsPerHost != tc.want {
			t.Errorf("MaxConns %d: MaxConnsPerHost defaults to %d, want %d", tc.maxConns, s.MaxConnsPerHost, tc.want)
		}
	}

	p := newTestProg()
	s := &Server{MaxConns: 100, MaxConnsPerHost: 2}
	s.Register(p)
	addr := startTCP(t, s)
	a1, a2 := dialFrom(t, "127.0.0.2", addr), dialFrom(t, "127.0.0.2", addr)
	a1.send(testCall(1, procWait, nil))
	a2.send(testCall(2, procWait, nil))
	<-p.started
	<-p.started
	dialFrom(t, "127.0.0.2", addr).expectClosed()
	b := dialFrom(t, "127.0.0.3", addr)
	successBody(t, b.call(testCall(3, procNull, nil)), 3)

	close(p.release)
	replyXID(t, a1.recv())
	replyXID(t, a2.recv())
	time.Sleep(5 * time.Millisecond)
	successBody(t, a1.call(testCall(4, procNull, nil)), 4) // a2 is idle longest
	waitIdle(t, s, 3)
	a3 := dialFrom(t, "127.0.0.2", addr)
	successBody(t, a3.call(testCall(5, procNull, nil)), 5)
	a2.expectClosed()
	successBody(t, a1.call(testCall(6, procNull, nil)), 6)
	successBody(t, b.call(testCall(7, procNull, nil)), 7)
	if st := s.Stats(); st.ConnsRejected != 1 || st.ConnsEvicted != 1 {
		t.Errorf("rejected %d evicted %d, want 1 and 1", st.ConnsRejected, st.ConnsEvicted)
	}
	waitFor(t, "the closed connections to be forgotten", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		return s.mu.counted == 3 && s.mu.hosts[netip.MustParseAddr("127.0.0.2")] == 2 && len(s.mu.conns) == 3
	})
}

// TestServeIdleFlood is the lockout the limits prevent: one host opens
// many more connections than MaxConns and sends nothing on them. It holds
// at most MaxConnsPerHost of them, and other hosts (and the flooding host
// itself) are still served. Over the global bound, idle connections of
// any host make room.
func TestServeIdleFlood(t *testing.T) {
	for _, tc := range []struct {
		name              string
		maxConns, perHost int
	}{
		{"PerHostBound", 32, 8},
		{"GlobalBound", 16, 16},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var recs []logRecord
			now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
			s := &Server{MaxConns: tc.maxConns, MaxConnsPerHost: tc.perHost,
				Logger: slog.New(&logRecords{recs: &recs}), Clock: func() time.Time { return now }}
			s.Register(newTestProg())
			addr := startTCP(t, s)
			const flood = 200
			for range flood {
				dialFrom(t, "127.0.0.2", addr)
			}
			waitFor(t, "the flood to be accepted", func() bool {
				return s.Stats().ConnsAccepted+s.Stats().ConnsRejected == flood
			})
			s.mu.Lock()
			held := s.mu.hosts[netip.MustParseAddr("127.0.0.2")]
			s.mu.Unlock()
			if held > tc.perHost {
				t.Errorf("the flooding host holds %d connections, want at most %d", held, tc.perHost)
			}
			other := dialFrom(t, "127.0.0.3", addr)
			successBody(t, other.call(testCall(1, procNull, nil)), 1)
			self := dialFrom(t, "127.0.0.2", addr)
			successBody(t, self.call(testCall(2, procNull, nil)), 2)
			if st := s.Stats(); st.ConnsRejected != 0 || st.ConnsEvicted < flood-uint64(tc.perHost) {
				t.Errorf("rejected %d evicted %d", st.ConnsRejected, st.ConnsEvicted)
			}
			// Closing connections for room is logged once a minute per
			// host and kind, not per connection.
			logMu.Lock()
			defer logMu.Unlock()
			n := 0
			for _, r := range recs {
				if strings.Contains(r.msg, "connection limit") && strings.HasPrefix(r.attrs["remote"], "127.0.0.2:") {
					n++
				}
			}
			if n != 1 {
				t.Errorf("%d connection limit log lines for the flooding host's %d connections, want 1", n, flood)
			}
		})
	}
}

// TestServeConnLimitLogRateLimited: refusals at a limit are logged once a
// minute per host, and the next line counts those held back.
func TestServeConnLimitLogRateLimited(t *testing.T) {
	var recs []logRecord
	var clockMu sync.Mutex
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	clock := func() time.Time { clockMu.Lock(); defer clockMu.Unlock(); return now }
	p := newTestProg()
	s := &Server{MaxConnsPerHost: 1, Logger: slog.New(&logRecords{recs: &recs}), Clock: clock}
	s.Register(p)
	addr := startTCP(t, s)
	busy := dialFrom(t, "127.0.0.2", addr)
	busy.send(testCall(1, procWait, nil))
	<-p.started
	refused := func() []logRecord {
		t.Helper()
		logMu.Lock()
		defer logMu.Unlock()
		var out []logRecord
		for _, r := range recs {
			if strings.Contains(r.msg, "too many connections") {
				out = append(out, r)
			}
		}
		return out
	}
	for range 5 {
		dialFrom(t, "127.0.0.2", addr).expectClosed()
	}
	if got := refused(); len(got) != 1 || got[0].level != slog.LevelWarn || got[0].attrs["held_back"] != "0" || got[0].attrs["limit"] != "per_host" {
		t.Fatalf("after 5 refusals: %+v, want one Warn line", got)
	}
	clockMu.Lock()
	now = now.Add(61 * time.Second)
	clockMu.Unlock()
	dialFrom(t, "127.0.0.2", addr).expectClosed()
	if got := refused(); len(got) != 2 || got[1].attrs["held_back"] != "4" || got[1].attrs["remote"] == "" {
		t.Fatalf("a minute later: %+v, want a second line with held_back=4", got)
	}
	close(p.release)
	replyXID(t, busy.recv())
	if st := s.Stats(); st.ConnsRejected != 6 {
		t.Errorf("rejected %d, want 6", st.ConnsRejected)
	}
}

// TestServeConnGate: a connection ConnGate refuses is closed before it
// counts against any limit.
func TestServeConnGate(t *testing.T) {
	var mu sync.Mutex
	var seen []netip.AddrPort
	s := &Server{MaxConns: 1, ConnGate: func(remote, local netip.AddrPort) bool {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, local)
		return remote.Addr() != netip.MustParseAddr("127.0.0.2")
	}}
	s.Register(newTestProg())
	addr := startTCP(t, s)
	ok := dialFrom(t, "127.0.0.3", addr)
	successBody(t, ok.call(testCall(1, procNull, nil)), 1)
	for range 3 {
		dialFrom(t, "127.0.0.2", addr).expectClosed()
	}
	successBody(t, ok.call(testCall(2, procNull, nil)), 2) // not closed for room
	if st := s.Stats(); st.ConnsDenied != 3 || st.ConnsAccepted != 1 || st.ConnsEvicted != 0 {
		t.Errorf("denied %d accepted %d evicted %d, want 3 1 0", st.ConnsDenied, st.ConnsAccepted, st.ConnsEvicted)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(seen) != 4 || seen[0].String() != addr {
		t.Errorf("ConnGate saw local addresses %v, want 4 of %s", seen, addr)
	}
}

// dialFrom connects to addr from the loopback address src (127.0.0.2 and
// up act as distinct hosts).
func dialFrom(t testing.TB, src, addr string) *testClient {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 10 * time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		c.(*net.TCPConn).SetLinger(0)
		c.Close()
	})
	return &testClient{t: t, c: c, rr: rpc.NewRecordReader(c, 4<<20)}
}

// waitIdle waits until n counted connections of s are idle.
func waitIdle(t testing.TB, s *Server, n int) {
	t.Helper()
	waitFor(t, fmt.Sprintf("%d idle connections", n), func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		idle := 0
		for c := range s.mu.conns {
			if _, ok := c.idleSince(); ok && c.counted {
				idle++
			}
		}
		return idle == n
	})
}

func TestServeTimeouts(t *testing.T) {
	t.Run("Idle", func(t *testing.T) {
		s := &Server{IdleTimeout: 100 * time.Millisecond}
		s.Register(newTestProg())
		tc := dial(t, startTCP(t, s))
		successBody(t, tc.call(testCall(1, procNull, nil)), 1)
		tc.expectClosed()
	})
	t.Run("IdleNotWhileCallInFlight", func(t *testing.T) {
		p := newTestProg()
		s := &Server{IdleTimeout: 50 * time.Millisecond}
		s.Register(p)
		tc := dial(t, startTCP(t, s))
		tc.send(testCall(1, procWait, nil))
		<-p.started
		time.Sleep(200 * time.Millisecond)
		close(p.release)
		if xid := replyXID(t, tc.recv()); xid != 1 {
			t.Fatalf("xid %d", xid)
		}
	})
	t.Run("PartialRecord", func(t *testing.T) {
		s := &Server{RecordTimeout: 100 * time.Millisecond}
		s.Register(newTestProg())
		tc := dial(t, startTCP(t, s))
		msg := rpc.FrameRecord(testCall(1, procNull, nil))
		tc.write(msg[:10])
		tc.expectClosed()
	})
}

func TestShutdownDrainsInFlight(t *testing.T) {
	before := runtime.NumGoroutine()
	p := newTestProg()
	s := newServer(p)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	servedUDP := make(chan error, 1)
	go func() { servedUDP <- s.ServeUDP(pc) }()

	tc := dial(t, ln.Addr().String())
	idle := dial(t, ln.Addr().String())
	successBody(t, idle.call(testCall(1, procNull, nil)), 1)
	tc.send(testCall(2, procWait, nil))
	<-p.started

	shut := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		shut <- s.Shutdown(ctx)
	}()
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("Serve: %v", err)
	}
	if err := <-servedUDP; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ServeUDP: %v", err)
	}
	// New connections are refused once the listener is closed.
	if c, err := net.Dial("tcp", ln.Addr().String()); err == nil {
		c.Close()
		t.Error("listener still accepting after Shutdown")
	}
	idle.expectClosed()
	select {
	case err := <-shut:
		t.Fatalf("Shutdown returned %v with a call in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(p.release)
	if xid := replyXID(t, tc.recv()); xid != 2 {
		t.Fatalf("drained reply xid %d", xid)
	}
	if err := <-shut; err != nil {
		t.Fatalf("Shutdown: %v", err)
	}
	tc.expectClosed()
	if err := s.Serve(ln); !errors.Is(err, ErrServerClosed) {
		t.Errorf("Serve after Shutdown: %v", err)
	}
	checkGoroutines(t, before)
}

func TestShutdownContextExpires(t *testing.T) {
	before := runtime.NumGoroutine()
	p := newTestProg()
	s := newServer(p)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	tc := dial(t, ln.Addr().String())
	tc.send(testCall(1, procWait, nil))
	<-p.started
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := s.Shutdown(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Shutdown: %v, want deadline exceeded", err)
	}
	<-served
	// The call saw its context cancelled; the connection is closed.
	tc.expectClosed()
	checkGoroutines(t, before)
}

// checkGoroutines waits for the goroutine count to return to n.
func checkGoroutines(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for runtime.NumGoroutine() > n {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("%d goroutines, want %d:\n%s", runtime.NumGoroutine(), n, buf)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestServeConcurrentClients(t *testing.T) {
	s := newServer(newTestProg())
	addr := startTCP(t, s)
	var wg sync.WaitGroup
	for c := range 8 {
		tc := dial(t, addr)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range uint32(50) {
				xid := uint32(c)<<16 | i
				arg := []byte{byte(c), byte(i)}
				tc.send(testCall(xid, procEcho, opaqueArg(arg)))
				got := tc.recv()
				if want := append(wordsBytes(xid, 1, 0, 0, 0, 0), opaqueArg(arg)...); !bytes.Equal(got, want) {
					t.Errorf("client %d: %v", c, words(got))
					return
				}
			}
		}()
	}
	wg.Wait()
	if n := s.Stats().Calls[CallKey{testProgNum, procEcho}]; n != 400 {
		t.Errorf("echo calls %d", n)
	}
}

// BenchmarkServeNull measures one NULL round trip at a time on one
// connection: the transport's latency floor.
func BenchmarkServeNull(b *testing.B) {
	s := newServer(newTestProg())
	tc := dial(b, startTCP(b, s))
	msg := rpc.FrameRecord(testCall(1, procNull, nil))
	b.ReportAllocs()
	for b.Loop() {
		tc.write(msg)
		tc.recv()
	}
}

// BenchmarkServePipelined keeps up to 64 echo calls in flight on one
// connection: the transport's throughput.
func BenchmarkServePipelined(b *testing.B) {
	s := newServer(newTestProg())
	tc := dial(b, startTCP(b, s))
	msg := rpc.FrameRecord(testCall(1, procEcho, opaqueArg(make([]byte, 128))))
	const window = 64
	rr := rpc.NewRecordReader(bufio.NewReaderSize(tc.c, 64<<10), 0)
	b.ReportAllocs()
	b.ResetTimer()
	sent := make(chan struct{}, window)
	go func() {
		// Send in batches of up to 16 calls, as a pipelining client does.
		var batch []byte
		for i := 0; i < b.N; {
			batch = batch[:0]
			for j := 0; j < 16 && i < b.N; j++ {
				sent <- struct{}{}
				batch = append(batch, msg...)
				i++
			}
			tc.c.Write(batch)
		}
	}()
	for i := 0; i < b.N; i++ {
		tc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
		if _, err := rr.Next(); err != nil {
			b.Fatal(err)
		}
		<-sent
	}
}

func TestRequestAddresses(t *testing.T) {
	for _, network := range []string{"127.0.0.1", "[::1]"} {
		t.Run(network, func(t *testing.T) {
			ln, err := net.Listen("tcp", network+":0")
			if err != nil {
				t.Skipf("no %s: %v", network, err)
			}
			s := newServer(newTestProg())
			served := make(chan error, 1)
			go func() { served <- s.Serve(ln) }()
			defer func() {
				s.Shutdown(context.Background())
				<-served
			}()
			tc := dial(t, ln.Addr().String())
			body := successBody(t, tc.call(testCall(1, procAddr, nil)), 1)
			d := xdr.NewDecoder(body)
			remote, local := d.String(100), d.String(100)
			if d.Done() != nil || remote != tc.c.LocalAddr().String() || local != tc.c.RemoteAddr().String() {
				t.Errorf("server saw %s -> %s; client is %s -> %s", remote, local, tc.c.LocalAddr(), tc.c.RemoteAddr())
			}
		})
	}
}

// logRecords is a slog.Handler that keeps what it is given.
type logRecords struct {
	attrs []slog.Attr
	recs  *[]logRecord
}

type logRecord struct {
	level slog.Level
	msg   string
	attrs map[string]string
}

func (h *logRecords) Enabled(context.Context, slog.Level) bool { return true }
func (h *logRecords) WithAttrs(as []slog.Attr) slog.Handler {
	return &logRecords{attrs: append(append([]slog.Attr{}, h.attrs...), as...), recs: h.recs}
}
func (h *logRecords) WithGroup(string) slog.Handler { return h }
func (h *logRecords) Handle(_ context.Context, r slog.Record) error {
	rec := logRecord{level: r.Level, msg: r.Message, attrs: map[string]string{}}
	for _, a := range h.attrs {
		rec.attrs[a.Key] = a.Value.String()
	}
	r.Attrs(func(a slog.Attr) bool {
		rec.attrs[a.Key] = a.Value.String()
		return true
	})
	logMu.Lock()
	*h.recs = append(*h.recs, rec)
	logMu.Unlock()
	return nil
}

var logMu sync.Mutex

func TestPanicLoggedOnceWithRequestAttrs(t *testing.T) {
	var recs []logRecord
	s := &Server{Logger: slog.New(&logRecords{recs: &recs})}
	s.Register(newTestProg())
	tc := dial(t, startTCP(t, s))
	tc.call(testCall(0x51, procPanic, nil))
	logMu.Lock()
	defer logMu.Unlock()
	var errs []logRecord
	for _, r := range recs {
		if r.level >= slog.LevelError {
			errs = append(errs, r)
		}
	}
	if len(errs) != 1 {
		t.Fatalf("%d error records, want 1: %+v", len(errs), errs)
	}
	a := errs[0].attrs
	if a["xid"] != "81" || a["conn"] == "" || a["remote"] == "" || !strings.Contains(a["stack"], "testProg") {
		t.Errorf("panic record attrs %v", a)
	}
	// Debug tracing records each call and reply, with the xid.
	var traced int
	for _, r := range recs {
		if r.level == slog.LevelDebug && r.attrs["xid"] == "81" {
			traced++
		}
	}
	if traced < 2 {
		t.Errorf("%d debug records for the call, want call and reply", traced)
	}
}

// TestServeWriteTimeout checks that a client that sends calls but never
// reads the replies is disconnected after WriteTimeout, and that its calls
// still release their slots.
func TestServeWriteTimeout(t *testing.T) {
	s := &Server{WriteTimeout: 100 * time.Millisecond}
	s.Register(newTestProg())
	tc := dial(t, startTCP(t, s))
	tc.c.(*net.TCPConn).SetReadBuffer(4096)
	var all []byte
	for i := range uint32(32) {
		all = append(all, rpc.FrameRecord(testCall(i, procBig, u32Arg(1<<20)))...)
	}
	wrote := make(chan error, 1)
	go func() {
		_, err := tc.c.Write(all)
		wrote <- err
	}()
	waitFor(t, "the connection to be closed", func() bool {
		st := s.Stats()
		return st.ConnsAccepted == 1 && st.Conns == 0 && st.InFlight == 0
	})
	tc.c.SetWriteDeadline(time.Now()) // in case the kernel took it all
	<-wrote
}

// BenchmarkServeParallelConns runs NULL round trips on one connection per
// parallel goroutine (b.SetParallelism scales the count): the shared worker
// pool and accounting under contention.
func BenchmarkServeParallelConns(b *testing.B) {
	s := newServer(newTestProg())
	addr := startTCP(b, s)
	msg := rpc.FrameRecord(testCall(1, procNull, nil))
	b.SetParallelism(8)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			b.Error(err)
			return
		}
		defer func() {
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}()
		rr := rpc.NewRecordReader(bufio.NewReader(c), 0)
		for pb.Next() {
			if _, err := c.Write(msg); err != nil {
				b.Error(err)
				return
			}
			if _, err := rr.Next(); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// emfileListener fails its first n Accepts as a full file table does, then
// accepts for real.
type emfileListener struct {
	net.Listener
	n atomic.Int32
}

func (l *emfileListener) Accept() (net.Conn, error) {
	if l.n.Add(-1) >= 0 {
		return nil, &net.OpError{Op: "accept", Net: "tcp", Err: os.NewSyscallError("accept4", syscall.EMFILE)}
	}
	return l.Listener.Accept()
}

// TestAcceptEMFILELogsOnce checks that a streak of failing Accepts (a full
// file table) sheds caches on every try but logs one warning when it
// starts and one line when accepting works again, not one per retry, and
// that the connection behind the streak is served.
func TestAcceptEMFILELogsOnce(t *testing.T) {
	var recs []logRecord
	var shed atomic.Int32
	s := &Server{Logger: slog.New(&logRecords{recs: &recs}), OutOfFds: func() { shed.Add(1) }}
	s.Register(newTestProg())
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	el := &emfileListener{Listener: ln}
	el.n.Store(5)
	go s.Serve(el)
	t.Cleanup(func() { s.Shutdown(context.Background()) })
	tc := dial(t, ln.Addr().String())
	if rep := tc.call(testCall(7, procEcho, opaqueArg([]byte("x")))); len(rep) == 0 {
		t.Fatal("no reply after the accept failures")
	}
	if got := shed.Load(); got != 5 {
		t.Errorf("OutOfFds called %d times, want 5 (once per EMFILE)", got)
	}
	logMu.Lock()
	defer logMu.Unlock()
	var warns, again int
	for _, r := range recs {
		switch r.msg {
		case "nfsd: accept failed; retrying":
			warns++
		case "nfsd: accept works again":
			again++
			if r.attrs["failures"] != "5" {
				t.Errorf("recovery line says %s failures, want 5", r.attrs["failures"])
			}
		}
	}
	if warns != 1 || again != 1 {
		t.Errorf("%d warnings and %d recovery lines for one streak of 5 failures, want 1 and 1", warns, again)
	}
}
