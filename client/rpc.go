package client

import (
	"context"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// ErrClosed is returned by calls made on, or outstanding during, Close.
var ErrClosed = errors.New("client: closed")

// ErrDisconnected means the connection was lost and could not be
// re-established within RPCOptions.ReconnectTimeout. It is temporary: the
// client keeps redialling in the background.
var ErrDisconnected = errors.New("client: disconnected from server")

// Auth is the credential sent with every call: AUTH_NONE or AUTH_SYS. The
// zero Auth is AUTH_NONE.
type Auth struct {
	cred rpc.OpaqueAuth
	sys  *rpc.AuthSysParms
}

// AuthNone returns the AUTH_NONE credential.
func AuthNone() Auth { return Auth{} }

// AuthSys returns an AUTH_SYS credential (RFC 5531 appendix A). gids beyond
// the protocol's 16 are dropped, as Linux clients do; a machine name longer
// than 255 bytes is cut. An empty machine name is replaced by the host name.
func AuthSys(machine string, uid, gid uint32, gids ...uint32) Auth {
	if machine == "" {
		machine, _ = os.Hostname()
	}
	if len(gids) > rpc.MaxGids {
		gids = gids[:rpc.MaxGids]
	}
	p := rpc.AuthSysParms{
		Stamp:       uint32(time.Now().Unix()),
		MachineName: machine,
		UID:         uid,
		GID:         gid,
		GIDs:        append([]uint32(nil), gids...),
	}
	return Auth{cred: p.Credential(), sys: &p}
}

// Sys returns the AUTH_SYS parameters, or nil for AUTH_NONE.
func (a Auth) Sys() *rpc.AuthSysParms { return a.sys }

// RPCOptions configure an RPCClient. The zero value is usable.
type RPCOptions struct {
	// Conns is the number of TCP connections in the pool; calls are spread
	// over them round-robin. Zero means 1.
	Conns int
	// Timeout bounds a call whose context has no deadline. Zero means 60 s;
	// negative means no bound beyond the context.
	Timeout time.Duration
	// DialTimeout bounds one TCP connect. Zero means 10 s.
	DialTimeout time.Duration
	// ReconnectTimeout is how long outstanding calls wait for a lost
	// connection to come back before failing with ErrDisconnected. Zero
	// means 30 s.
	ReconnectTimeout time.Duration
	// WriteTimeout bounds writing one record; on expiry the connection is
	// treated as lost. Zero means 30 s. A call whose context ends first
	// stops writing then (the connection is lost the same way). On Linux
	// it is also the socket's TCP_USER_TIMEOUT: data written and not
	// acknowledged by the server's host for that long (a path that drops
	// every packet) loses the connection, which is then redialled.
	WriteTimeout time.Duration
	// MaxRecord bounds one reply record. Zero means rpc.MaxRecord. Dial
	// keeps READ and READDIR sizes within it.
	MaxRecord int
	// PrivilegedPort binds the local end to a port below 1024 (needs root),
	// for servers that insist on "secure" ports. False uses any port.
	PrivilegedPort bool
	// Logger receives connection events at debug and warn level. Nil
	// discards them.
	Logger *slog.Logger
}

func (o *RPCOptions) defaults() {
	if o.Conns <= 0 {
		o.Conns = 1
	}
	if o.Timeout == 0 {
		o.Timeout = 60 * time.Second
	}
	if o.DialTimeout <= 0 {
		o.DialTimeout = 10 * time.Second
	}
	if o.ReconnectTimeout <= 0 {
		o.ReconnectTimeout = 30 * time.Second
	}
	if o.WriteTimeout <= 0 {
		o.WriteTimeout = 30 * time.Second
	}
	if o.MaxRecord <= 0 {
		o.MaxRecord = rpc.MaxRecord
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// RPCClient is a pipelined ONC RPC client over a small pool of TCP
// connections to one address. Many calls may be in flight on each
// connection; one reader goroutine per connection matches replies to callers
// by XID. When a connection breaks it is redialled and every outstanding
// call is sent again with its original XID, so a server's duplicate request
// cache can replay the result of a non-idempotent call instead of running it
// twice. It is safe for concurrent use.
type RPCClient struct {
	addr  string
	opts  RPCOptions
	conns []*rpcConn
	next  atomic.Uint32 // round-robin cursor
	xid   atomic.Uint32
	stop  chan struct{} // closed by Close
	wg    sync.WaitGroup
	once  sync.Once
}

// DialRPC connects opts.Conns TCP connections to addr ("host:port"). The
// context bounds the initial dials only.
func DialRPC(ctx context.Context, addr string, opts RPCOptions) (*RPCClient, error) {
	opts.defaults()
	c := &RPCClient{addr: addr, opts: opts, stop: make(chan struct{})}
	var seed [4]byte
	_, _ = rand.Read(seed[:])
	c.xid.Store(binary.BigEndian.Uint32(seed[:]))
	for i := 0; i < opts.Conns; i++ {
		nc, err := c.dial(ctx)
		if err != nil {
			for _, rc := range c.conns {
				rc.nc.Close()
			}
			return nil, err
		}
		c.conns = append(c.conns, &rpcConn{c: c, id: i, nc: nc, gen: 1, pending: map[uint32]*pendingCall{}, wsem: make(chan struct{}, 1)})
	}
	for _, rc := range c.conns {
		c.wg.Add(1)
		go rc.run()
	}
	return c, nil
}

// Addr returns the address the client dials.
func (c *RPCClient) Addr() string { return c.addr }

// Close stops every goroutine, closes the connections and fails outstanding
// calls with ErrClosed. It waits for the goroutines to exit.
func (c *RPCClient) Close() error {
	c.once.Do(func() {
		close(c.stop)
		for _, rc := range c.conns {
			rc.mu.Lock()
			if rc.nc != nil {
				rc.nc.Close()
			}
			rc.mu.Unlock()
		}
	})
	c.wg.Wait()
	return nil
}

func (c *RPCClient) dial(ctx context.Context) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
	defer cancel()
	go func() {
		select {
		case <-c.stop:
			cancel()
		case <-ctx.Done():
		}
	}()
	if !c.opts.PrivilegedPort {
		d := net.Dialer{Control: userTimeout(c.opts.WriteTimeout)}
		nc, err := d.DialContext(ctx, "tcp", c.addr)
		if err != nil {
			return nil, fmt.Errorf("client: dial %s: %w", c.addr, err)
		}
		return nc, nil
	}
	// Pick random reserved ports (as bindresvport does, 512..1023) until one
	// is free.
	var err error
	for range 64 {
		n, _ := rand.Int(rand.Reader, big.NewInt(512))
		d := net.Dialer{LocalAddr: &net.TCPAddr{Port: 512 + int(n.Int64())}, Control: userTimeout(c.opts.WriteTimeout)}
		var nc net.Conn
		nc, err = d.DialContext(ctx, "tcp", c.addr)
		if err == nil {
			return nc, nil
		}
		if !errors.Is(err, syscall.EADDRINUSE) && !errors.Is(err, syscall.EADDRNOTAVAIL) {
			break
		}
	}
	return nil, fmt.Errorf("client: dial %s from a privileged port: %w", c.addr, err)
}

// pendingCall is one call waiting for its reply.
type pendingCall struct {
	xid     uint32
	rec     []byte        // framed record, resent verbatim on reconnect
	sentGen uint64        // connection generation it was last written on; guarded by rpcConn.wsem
	done    chan struct{} // closed once reply or err is set
	reply   []byte
	err     error
}

// rpcConn is one pool slot: a TCP connection that is redialled when lost.
type rpcConn struct {
	c  *RPCClient
	id int

	// wsem (capacity 1) serialises writes and guards pendingCall.sentGen;
	// a channel, so that a caller whose context ends stops waiting for
	// it.
	wsem chan struct{}

	mu      sync.Mutex
	nc      net.Conn // nil while disconnected
	gen     uint64   // bumped on every (re)connect
	pending map[uint32]*pendingCall
	downErr error // set when reconnecting took longer than ReconnectTimeout
}

// Call sends one call and waits for its reply. args appends the procedure's
// arguments (nil for none). On SUCCESS it returns the result bytes, which
// the caller owns. A reply that is denied or not SUCCESS is returned as an
// *Error wrapping the *rpc.ReplyError.
func (c *RPCClient) Call(ctx context.Context, prog, vers, proc uint32, auth Auth, args func(e *xdr.Encoder)) ([]byte, error) {
	select {
	case <-c.stop:
		return nil, ErrClosed
	default:
	}
	if _, ok := ctx.Deadline(); !ok && c.opts.Timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.opts.Timeout)
		defer cancel()
	}
	pc := &pendingCall{xid: c.xid.Add(1), done: make(chan struct{})}
	e := xdr.NewEncoder(make([]byte, 0, 256))
	e.Uint32(0) // record mark, filled below
	rpc.CallHeader{XID: pc.xid, Prog: prog, Vers: vers, Proc: proc, Cred: auth.cred}.Encode(e)
	if args != nil {
		args(e)
	}
	pc.rec = e.Bytes()
	rpc.PutRecordMark(pc.rec)

	rc := c.conns[int(c.next.Add(1))%len(c.conns)]
	if err := rc.register(pc); err != nil {
		return nil, err
	}
	rc.send(ctx, pc)
	select {
	case <-pc.done:
	case <-ctx.Done():
		if !rc.awaitGrace(ctx, pc) {
			return nil, fmt.Errorf("client: call %d/%d/%d xid %#x: %w", prog, vers, proc, pc.xid, ctx.Err())
		}
	}
	if pc.err != nil {
		return nil, pc.err
	}
	d := xdr.NewDecoder(pc.reply)
	if _, err := rpc.DecodeReply(d); err != nil {
		var re *rpc.ReplyError
		if errors.As(err, &re) {
			return nil, &Error{Prog: prog, Proc: proc, RPC: re}
		}
		return nil, fmt.Errorf("client: xid %#x: %w", pc.xid, err)
	}
	return d.Rest(), nil
}

// graceKey marks a context whose calls keep waiting for their reply for
// a while after the context ends (withReplyGrace).
type graceKey struct{}

// withReplyGrace returns ctx whose calls, when ctx ends before their reply
// came, keep waiting up to d more for it (the call stays pending, and is
// resent with its XID if the connection is redialled). It is for a
// non-idempotent call whose outcome matters more than the deadline: the
// RENAME that delivers a message. A server replies to it only once it is
// durable, so its reply, late or not, is the only sure word on it;
// a LOOKUP afterwards can see the new name before it is on disk.
func withReplyGrace(ctx context.Context, d time.Duration) context.Context {
	return context.WithValue(ctx, graceKey{}, d)
}

// awaitGrace is called when ctx ended before pc's reply: it waits out
// ctx's reply grace, if any, and reports whether pc completed (its reply
// or error set). Otherwise pc is forgotten; a late reply is then dropped
// by the reader, which never blocks on a caller.
func (rc *rpcConn) awaitGrace(ctx context.Context, pc *pendingCall) bool {
	if d, _ := ctx.Value(graceKey{}).(time.Duration); d > 0 {
		gctx, cancel := context.WithTimeout(context.Background(), d)
		defer cancel()
		// ctx may have ended before pc was written (the connection
		// not taking data): write it now, within the grace.
		rc.send(gctx, pc)
		select {
		case <-pc.done:
			return true
		case <-rc.c.stop:
		case <-gctx.Done():
		}
	}
	if !rc.forget(pc) {
		<-pc.done // the reply or an error raced in; use it
		return true
	}
	return false
}

func (rc *rpcConn) register(pc *pendingCall) error {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.nc == nil && rc.downErr != nil {
		return rc.downErr
	}
	select {
	case <-rc.c.stop:
		return ErrClosed
	default:
	}
	rc.pending[pc.xid] = pc
	return nil
}

// forget removes pc if it is still pending and reports whether it did.
func (rc *rpcConn) forget(pc *pendingCall) bool {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	if rc.pending[pc.xid] != pc {
		return false
	}
	delete(rc.pending, pc.xid)
	return true
}

// complete hands pc its reply or error; the caller holds rc.mu and has
// removed pc from pending.
func complete(pc *pendingCall, reply []byte, err error) {
	pc.reply, pc.err = reply, err
	close(pc.done)
}

// send writes pc on the current connection unless it was already written
// on it. A write failure closes the connection; the run loop then
// reconnects and resends. It gives up when ctx ends, waiting for its turn
// or in the write (a server that stopped reading fills the socket): the
// record is then torn and the connection closed, as on WriteTimeout.
func (rc *rpcConn) send(ctx context.Context, pc *pendingCall) {
	select {
	case rc.wsem <- struct{}{}:
	case <-ctx.Done():
		return
	}
	defer func() { <-rc.wsem }()
	rc.mu.Lock()
	nc, gen := rc.nc, rc.gen
	_, still := rc.pending[pc.xid]
	rc.mu.Unlock()
	if nc == nil || !still || pc.sentGen == gen {
		return
	}
	pc.sentGen = gen
	_ = nc.SetWriteDeadline(time.Now().Add(rc.c.opts.WriteTimeout))
	stop := context.AfterFunc(ctx, func() { _ = nc.SetWriteDeadline(time.Unix(1, 0)) })
	_, err := nc.Write(pc.rec)
	stop()
	if err != nil {
		rc.c.opts.Logger.Debug("client: write failed", "addr", rc.c.addr, "conn", rc.id, "err", err)
		nc.Close()
	}
}

// run owns the connection: it reads replies until the connection breaks,
// then redials and resends every outstanding call, until Close.
func (rc *rpcConn) run() {
	defer rc.c.wg.Done()
	log := rc.c.opts.Logger
	for {
		rc.mu.Lock()
		nc := rc.nc
		rc.mu.Unlock()
		err := rc.readLoop(nc)
		nc.Close()
		rc.mu.Lock()
		rc.nc = nil
		rc.mu.Unlock()
		if rc.stopped() {
			rc.failAll(ErrClosed)
			return
		}
		log.Warn("client: connection lost", "addr", rc.c.addr, "conn", rc.id, "err", err)
		nc = rc.redial()
		if nc == nil {
			rc.failAll(ErrClosed)
			return
		}
		rc.mu.Lock()
		rc.nc = nc
		rc.gen++
		rc.downErr = nil
		resend := make([]*pendingCall, 0, len(rc.pending))
		for _, pc := range rc.pending {
			resend = append(resend, pc)
		}
		rc.mu.Unlock()
		log.Debug("client: reconnected", "addr", rc.c.addr, "conn", rc.id, "resend", len(resend))
		for _, pc := range resend {
			rc.send(context.Background(), pc)
		}
	}
}

func (rc *rpcConn) stopped() bool {
	select {
	case <-rc.c.stop:
		return true
	default:
		return false
	}
}

// redial dials with backoff (5 ms doubling to 1 s) until it succeeds or the
// client closes (nil). After ReconnectTimeout the outstanding calls fail
// with ErrDisconnected and new calls fail fast until a dial succeeds.
func (rc *rpcConn) redial() net.Conn {
	start := time.Now()
	backoff := 5 * time.Millisecond
	for {
		ctx, cancel := context.WithCancel(context.Background())
		nc, err := rc.c.dial(ctx)
		cancel()
		if err == nil {
			if rc.stopped() {
				nc.Close()
				return nil
			}
			return nc
		}
		if time.Since(start) > rc.c.opts.ReconnectTimeout {
			rc.mu.Lock()
			if rc.downErr == nil {
				rc.downErr = fmt.Errorf("%w: %v", ErrDisconnected, err)
				for xid, pc := range rc.pending {
					delete(rc.pending, xid)
					complete(pc, nil, rc.downErr)
				}
			}
			rc.mu.Unlock()
		}
		t := time.NewTimer(backoff)
		select {
		case <-rc.c.stop:
			t.Stop()
			return nil
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}

func (rc *rpcConn) failAll(err error) {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	for xid, pc := range rc.pending {
		delete(rc.pending, xid)
		complete(pc, nil, err)
	}
}

// readLoop reads reply records and hands each to its caller. It never
// blocks on a caller: completion is a channel close under rc.mu.
func (rc *rpcConn) readLoop(nc net.Conn) error {
	rr := rpc.NewRecordReader(nc, rc.c.opts.MaxRecord)
	for {
		rec, err := rr.Next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				return io.EOF
			}
			return err
		}
		if len(rec) < 8 {
			return fmt.Errorf("client: short record of %d bytes", len(rec))
		}
		xid := binary.BigEndian.Uint32(rec)
		if binary.BigEndian.Uint32(rec[4:]) != rpc.Reply {
			return fmt.Errorf("client: xid %#x: %w", xid, rpc.ErrNotReply)
		}
		rc.mu.Lock()
		pc := rc.pending[xid]
		if pc != nil {
			delete(rc.pending, xid)
			complete(pc, append([]byte(nil), rec...), nil)
		}
		rc.mu.Unlock()
		if pc == nil {
			rc.c.opts.Logger.Debug("client: reply for unknown xid dropped", "addr", rc.c.addr, "xid", xid)
		}
	}
}
