package nfsd

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// conn is one TCP connection: a reader goroutine that reassembles records
// and dispatches them to workers; replies go out in the order calls finish
// (not the order of the calls), each one record, batched into one write
// when several are ready.
type conn struct {
	s      *Server
	nc     net.Conn
	ep     endpoint
	cancel context.CancelCauseFunc

	slots   chan struct{}  // in-flight tokens, MaxInFlightPerConn of them
	pending sync.WaitGroup // calls dispatched and not yet written or dropped
	active  atomic.Int32   // same count, readable
	// queued is the bytes of replies handed to send and not yet written
	// or discarded, plus the reservations of calls still running
	// (Server.replyReserve). While it exceeds Server.MaxQueuedPerConn
	// the reader reads no further call; whoever brings it back within
	// the bound wakes the reader through drained (capacity 1).
	queued  atomic.Int64
	drained chan struct{}

	// reading is set while a record is being read; lastActive is when the
	// connection was accepted, last began a record or last finished a
	// call (monotonic nanoseconds, monoNow). With active they tell how
	// long a connection has been idle (idleSince).
	reading    atomic.Bool
	lastActive atomic.Int64
	// counted: the connection counts against MaxConns and
	// MaxConnsPerHost (Server.mu.counted, Server.mu.hosts). Guarded by
	// Server.mu.
	counted bool

	// w queues finished replies. The call that finds no flush running
	// becomes the flusher and writes the queue, its own reply and any that
	// arrive meanwhile, in batches, until the queue is empty. Replies thus
	// leave without a hand-off to another goroutine, and pile up into one
	// write when the socket is busy.
	w struct {
		sync.Mutex
		queue    []*xdr.Encoder // replies with their record mark in place
		spare    []*xdr.Encoder // the previous batch's slice, for reuse
		bufs     net.Buffers    // the flusher's iovecs
		flushing bool           // a call is writing; others only enqueue
		failed   bool           // a write failed; replies are discarded
	}

	mu struct {
		sync.Mutex
		stopping bool // Shutdown asked the reader to stop
	}
	// drainTimeout (nanoseconds; 0 until Shutdown) replaces WriteTimeout
	// for the writes of a stopping server: a client that does not take
	// its replies must not hold Shutdown to its deadline.
	drainTimeout atomic.Int64
	closeOnce    sync.Once
}

// startConn registers nc and starts its goroutines. It closes nc at once
// when ConnGate refuses it, when Shutdown has begun, or when MaxConns or
// MaxConnsPerHost is reached and no connection is idle to close instead.
func (s *Server) startConn(nc net.Conn) {
	id := s.connSeq.Add(1)
	c := &conn{
		s:       s,
		nc:      nc,
		slots:   make(chan struct{}, s.MaxInFlightPerConn),
		drained: make(chan struct{}, 1),
	}
	c.ep.net = "tcp"
	c.ep.remote = addrPort(nc.RemoteAddr())
	c.ep.local = addrPort(nc.LocalAddr())
	c.ep.log = s.log.With("conn", id, "remote", c.ep.remote.String())
	c.ep.ctx, c.cancel = context.WithCancelCause(s.baseCtx)
	c.lastActive.Store(monoNow())
	refuse := func() {
		c.cancel(nil)
		nc.Close()
	}
	if s.ConnGate != nil && !s.ConnGate(c.ep.remote, c.ep.local) {
		s.stats.connsDenied.Add(1)
		refuse()
		return
	}
	host := c.ep.remote.Addr()

	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		refuse()
		return
	}
	var (
		victim *conn
		limit  string // the limit reached, if any
	)
	switch {
	case host.IsValid() && s.mu.hosts[host] >= s.MaxConnsPerHost:
		limit, victim = "per_host", s.idlestLocked(host)
	case s.mu.counted >= s.MaxConns:
		limit, victim = "total", s.idlestLocked(netip.Addr{})
	}
	if limit != "" && victim == nil {
		s.mu.Unlock()
		s.stats.connsRejected.Add(1)
		s.logConnLimit(c, limit, nil, 0)
		refuse()
		return
	}
	var idle time.Duration
	if victim != nil {
		idle = time.Duration(monoNow() - victim.lastActive.Load())
		s.uncountLocked(victim)
	}
	c.counted = true
	s.mu.counted++
	if host.IsValid() {
		s.mu.hosts[host]++
	}
	s.mu.conns[c] = struct{}{}
	s.serveWG.Add(1)
	s.mu.Unlock()
	if victim != nil {
		victim.abort()
		s.stats.connsEvicted.Add(1)
		s.logConnLimit(c, limit, victim, idle)
	}
	s.stats.connsAccepted.Add(1)
	s.stats.conns.Add(1)
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	go c.serve()
}

// idlestLocked returns the counted connection idle longest, from host only
// if host is valid, or nil when none is idle. It scans every connection:
// it runs only when a limit is reached.
func (s *Server) idlestLocked(host netip.Addr) *conn {
	var (
		best   *conn
		bestAt int64
	)
	for c := range s.mu.conns {
		if !c.counted || host.IsValid() && c.ep.remote.Addr() != host {
			continue
		}
		if at, ok := c.idleSince(); ok && (best == nil || at < bestAt) {
			best, bestAt = c, at
		}
	}
	return best
}

// uncountLocked stops c counting against the connection limits.
func (s *Server) uncountLocked(c *conn) {
	if !c.counted {
		return
	}
	c.counted = false
	s.mu.counted--
	if h := c.ep.remote.Addr(); h.IsValid() {
		if s.mu.hosts[h]--; s.mu.hosts[h] <= 0 {
			delete(s.mu.hosts, h)
		}
	}
}

// idleSince returns when c went idle, and false if it is not idle: a call
// is in flight or a record is being read.
func (c *conn) idleSince() (int64, bool) {
	if c.active.Load() > 0 || c.reading.Load() {
		return 0, false
	}
	return c.lastActive.Load(), true
}

// monoBase anchors monoNow.
var monoBase = time.Now()

// monoNow is a monotonic clock in nanoseconds.
func monoNow() int64 { return int64(time.Since(monoBase)) }

// logConnLimit logs that limit ("per_host" or "total") was reached by the
// new connection c: victim was closed to make room, or (nil) c itself was
// refused. One line per client address and minute (ratelog.Limiter); held_back
// counts the events of that address since its previous line.
func (s *Server) logConnLimit(c *conn, limit string, victim *conn, idle time.Duration) {
	ok, held := s.limitLog.Allow(c.ep.remote.Addr(), s.Clock())
	if !ok {
		return
	}
	bound := s.MaxConns
	if limit == "per_host" {
		bound = s.MaxConnsPerHost
	}
	attrs := []any{"limit", limit, "max", bound, "held_back", held}
	if victim == nil {
		msg := "nfsd: too many connections from this host and none idle; new connection closed (logged once a minute per host)"
		if limit == "total" {
			msg = "nfsd: too many connections and none idle; new connection closed (logged once a minute per host)"
		}
		c.ep.log.Warn(msg, attrs...)
		return
	}
	attrs = append(attrs, "closed", victim.ep.remote.String(), "idle", idle.Round(time.Millisecond))
	c.ep.log.Info("nfsd: connection limit reached; closed the connection idle longest (logged once a minute per host)", attrs...)
}

// addrPort converts a net.Addr to a netip.AddrPort with IPv4-mapped
// addresses unmapped; other address kinds give the zero value.
func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	default:
		return ap
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

// stopReading makes the reader stop at the next record boundary, and
// bounds the writes of replies by drain instead of WriteTimeout
// (Shutdown): a write pending now fails drain from now, which closes the
// connection.
func (c *conn) stopReading(drain time.Duration) {
	c.mu.Lock()
	c.mu.stopping = true
	c.nc.SetReadDeadline(time.Unix(1, 0))
	c.mu.Unlock()
	// Stored before the deadline is set: a writer that sets its own
	// after this reads it back (setWriteDeadline).
	c.drainTimeout.Store(int64(drain))
	c.nc.SetWriteDeadline(time.Now().Add(drain))
}

// setWriteDeadline sets the deadline of the next write: WriteTimeout
// from now, or stopReading's drain once the server is stopping. Without
// a lock: the drain is checked after the deadline is set, so that
// whichever of this and stopReading runs last, it stays in force.
func (c *conn) setWriteDeadline() {
	c.nc.SetWriteDeadline(time.Now().Add(c.s.WriteTimeout))
	if d := c.drainTimeout.Load(); d != 0 {
		c.nc.SetWriteDeadline(time.Now().Add(time.Duration(d)))
	}
}

// setReadDeadline sets the read deadline unless the reader was told to
// stop, so that a deadline set by the reader cannot undo stopReading.
func (c *conn) setReadDeadline(t time.Time) {
	c.mu.Lock()
	if !c.mu.stopping {
		c.nc.SetReadDeadline(t)
	}
	c.mu.Unlock()
}

func (c *conn) stopping() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mu.stopping
}

// abort closes the socket and cancels the calls' context: the reader and
// writer fail and unwind.
func (c *conn) abort() {
	c.abortWith(context.Canceled)
}

// deadlineReader arms the record deadline when the first bytes of a record
// arrive, so a record trickled in byte by byte cannot hold the connection.
type deadlineReader struct {
	c     *conn
	armed bool // the current record's deadline is set
}

func (r *deadlineReader) Read(p []byte) (int, error) {
	n, err := r.c.nc.Read(p)
	if n > 0 && !r.armed {
		r.armed = true
		r.c.setReadDeadline(time.Now().Add(r.c.s.RecordTimeout))
	}
	return n, err
}

// serve is the reader goroutine; it owns the writer goroutine and the
// connection's cleanup.
func (c *conn) serve() {
	s := c.s
	dr := &deadlineReader{c: c}
	br := bufio.NewReaderSize(dr, 32<<10)
	rr := rpc.NewRecordReader(br, s.MaxRecord)
	err := c.readLoop(dr, br, rr)

	graceful := err == nil || errors.Is(err, io.EOF)
	switch {
	case graceful:
		c.ep.log.Debug("nfsd: connection closing", "err", err)
	case errors.Is(err, rpc.ErrRecordTooLarge):
		s.stats.badRecords.Add(1)
		c.logBadStream("nfsd: record too large; connection closed", "err", err)
	case errors.Is(err, errUndecodable):
		c.logBadStream("nfsd: undecodable call; connection closed")
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.ep.log.Debug("nfsd: connection timed out", "err", err)
	default:
		c.ep.log.Debug("nfsd: connection ended", "err", err)
	}
	if !graceful {
		c.abort()
	}
	// Let calls in flight finish and their replies go out (or fail, if
	// the socket is closed).
	c.pending.Wait()
	c.abort()

	s.mu.Lock()
	delete(s.mu.conns, c)
	s.uncountLocked(c)
	s.mu.Unlock()
	s.stats.conns.Add(-1)
	s.serveWG.Done()
}

// logBadStream logs at Warn that c was closed for what it sent, at most
// one line a minute per client address (ratelog.Limiter), with held_back counting
// those since its previous line: any host that reaches the port can open
// connections and send garbage, and a line for each let it write the log
// at the rate it connects. Stats count every one (BadCalls, BadRecords).
func (c *conn) logBadStream(msg string, attrs ...any) {
	ok, held := c.s.badLog.Allow(c.ep.remote.Addr(), c.s.Clock())
	if !ok {
		return
	}
	c.ep.log.Warn(msg, append(attrs, "held_back", held)...)
}

// errUndecodable is how a worker tells the reader that a record was not an
// RPC call: the stream cannot be trusted any more.
var errUndecodable = errors.New("nfsd: undecodable call")

// readLoop reads records until an error, EOF or Shutdown (nil).
func (c *conn) readLoop(dr *deadlineReader, br *bufio.Reader, rr *rpc.RecordReader) error {
	s := c.s
	ctxDone := c.ep.ctx.Done()
	for {
		// Backpressure: stop reading while MaxInFlightPerConn calls are
		// running or waiting for the writer.
		select {
		case c.slots <- struct{}{}:
		case <-ctxDone:
			return c.abortCause()
		}
		// And while the replies not yet written (or reserved) exceed
		// MaxQueuedPerConn bytes: the slots alone would let a client
		// that does not read pin MaxInFlightPerConn replies of 1 MiB.
		if !c.waitQueued(ctxDone) {
			<-c.slots
			return c.abortCause()
		}
		if br.Buffered() == 0 {
			dr.armed = false
			c.setReadDeadline(time.Now().Add(s.IdleTimeout))
			if c.stopping() {
				<-c.slots
				return nil
			}
			// Wait for the next record's first byte before taking a
			// buffer, so an idle connection holds none.
			if _, err := br.Peek(1); err != nil {
				<-c.slots
				if c.stopping() {
					return nil
				}
				if errors.Is(err, os.ErrDeadlineExceeded) && c.active.Load() > 0 {
					// Idle only counts while nothing is in flight.
					continue
				}
				if ctxErr := c.abortCause(); ctxErr != nil {
					return ctxErr
				}
				return err // io.EOF: the client closed between records
			}
			c.beginRecord()
		} else {
			// The next record has begun already.
			c.beginRecord()
			dr.armed = true
			c.setReadDeadline(time.Now().Add(s.RecordTimeout))
		}
		if c.stopping() {
			<-c.slots
			return nil
		}
		buf := recPool.Get().(*[]byte)
		rec, err := rr.NextInto(*buf)
		*buf = rec
		if err != nil {
			putRecord(buf)
			<-c.slots
			if c.stopping() && !errors.Is(err, rpc.ErrRecordTooLarge) {
				return nil
			}
			if ctxErr := c.abortCause(); ctxErr != nil {
				return ctxErr
			}
			return err
		}
		if c.stopping() || !s.acquireWorker(ctxDone) {
			putRecord(buf)
			<-c.slots
			if c.stopping() || s.closing.Load() {
				return nil
			}
			return c.abortCause()
		}
		reserve := s.replyReserve(*buf)
		if reserve != 0 {
			c.queued.Add(reserve)
		}
		c.pending.Add(1)
		c.active.Add(1)
		c.reading.Store(false) // after active: never idle in between
		s.stats.inFlight.Add(1)
		go c.call(buf, reserve)
	}
}

// waitQueued waits until c's replies waiting to be written are within
// MaxQueuedPerConn bytes; false if the connection was aborted first.
func (c *conn) waitQueued(ctxDone <-chan struct{}) bool {
	for c.queued.Load() > int64(c.s.MaxQueuedPerConn) {
		select {
		case <-c.drained:
		case <-ctxDone:
			return false
		}
	}
	return true
}

// addQueued adds delta to queued and wakes the reader if that brings it
// back within MaxQueuedPerConn.
func (c *conn) addQueued(delta int64) {
	q := c.queued.Add(delta)
	if bound := int64(c.s.MaxQueuedPerConn); delta < 0 && q <= bound && q-delta > bound {
		select {
		case c.drained <- struct{}{}:
		default:
		}
	}
}

// replyReserve returns the bytes to reserve for the reply to the call in
// rec: what its Program's ReplySizer says, read from the call header's
// fixed fields (RFC 5531 §9: xid, CALL, rpcvers, prog, vers, proc); 0 for
// a Program without one or a record too short to name a procedure.
func (s *Server) replyReserve(rec []byte) int64 {
	if len(rec) < 24 {
		return 0
	}
	pe := (*s.progs.Load())[binary.BigEndian.Uint32(rec[12:])]
	if pe == nil || pe.sizer == nil {
		return 0
	}
	return int64(pe.sizer.ReplySize(binary.BigEndian.Uint32(rec[16:]), binary.BigEndian.Uint32(rec[20:]), rec))
}

// beginRecord marks c busy reading a record: not idle.
func (c *conn) beginRecord() {
	c.reading.Store(true)
	c.lastActive.Store(monoNow())
}

// abortCause returns errUndecodable if a worker aborted the connection for
// a bad call, or the context's error.
func (c *conn) abortCause() error {
	if err := context.Cause(c.ep.ctx); err != nil {
		return err
	}
	return nil
}

// call runs one call on a worker and hands its reply to the writer;
// reserve is what the reader reserved for the reply (replyReserve).
func (c *conn) call(buf *[]byte, reserve int64) {
	s := c.s
	e := getEncoder()
	e.Reserve(4) // record mark, filled in when the reply is complete
	v := s.dispatch(&c.ep, *buf, e)
	putRecord(buf)
	s.releaseWorker()
	s.stats.inFlight.Add(-1)
	switch v {
	case sendReply:
		rpc.PutRecordMark(e.Bytes())
		c.send(e, reserve)
		return
	case closeConn:
		c.abortWith(errUndecodable)
	}
	c.addQueued(-reserve)
	putEncoder(e)
	c.done()
}

// abortWith aborts the connection recording why.
func (c *conn) abortWith(err error) {
	c.closeOnce.Do(func() {
		// Close first: a call that stops on the cancelled context must
		// not get its (failure) reply out.
		c.nc.Close()
		c.cancel(err)
	})
}

// done releases the slot of a call whose reply was written or dropped.
func (c *conn) done() {
	c.lastActive.Store(monoNow()) // before active: never idle with a stale time
	c.active.Add(-1)
	<-c.slots
	c.pending.Done()
}

// send queues a finished reply and, unless another call is flushing
// already, writes the queue until it is empty. It runs after the call gave
// back its worker, so a slow reader on the other end holds up only this
// connection. After a write error replies are discarded, but their slots are
// still released.
func (c *conn) send(e *xdr.Encoder, reserve int64) {
	c.addQueued(int64(e.Len()) - reserve)
	c.w.Lock()
	c.w.queue = append(c.w.queue, e)
	if c.w.flushing {
		c.w.Unlock()
		return
	}
	c.w.flushing = true
	for len(c.w.queue) > 0 {
		batch := c.w.queue
		c.w.queue = c.w.spare[:0]
		failed := c.w.failed
		bufs := c.w.bufs[:0]
		c.w.Unlock()

		var err error
		if !failed {
			for _, e := range batch {
				bufs = append(bufs, e.Bytes())
			}
			c.setWriteDeadline()
			// WriteTo consumes its receiver; keep bufs for reuse.
			b := bufs
			if _, err = b.WriteTo(c.nc); err != nil {
				c.ep.log.Debug("nfsd: write failed; closing", "err", err)
				c.abort()
			}
			clear(bufs)
		}
		var size int64
		for _, e := range batch {
			size += int64(e.Len())
		}
		// Before done: the reader, given a slot, must find the
		// bytes gone too.
		c.addQueued(-size)
		for i, e := range batch {
			putEncoder(e)
			batch[i] = nil
			c.done()
		}

		c.w.Lock()
		c.w.spare = batch[:0]
		c.w.bufs = bufs[:0]
		if err != nil {
			c.w.failed = true
		}
	}
	c.w.flushing = false
	c.w.Unlock()
}
