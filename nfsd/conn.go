package nfsd

import (
	"bufio"
	"context"
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
// and dispatches them to workers, and a writer goroutine that sends replies
// in the order they finish (not the order of the calls), batching those
// that are ready into one write.
type conn struct {
	s      *Server
	nc     net.Conn
	ep     endpoint
	cancel context.CancelCauseFunc

	slots   chan struct{}     // in-flight tokens, MaxInFlightPerConn of them
	out     chan *xdr.Encoder // finished replies, record mark in place
	pending sync.WaitGroup    // calls dispatched and not yet written or dropped
	active  atomic.Int32      // same count, readable

	mu struct {
		sync.Mutex
		stopping bool // Shutdown asked the reader to stop
	}
	closeOnce sync.Once
}

// startConn registers nc and starts its goroutines, or closes it at once
// when MaxConns is reached or Shutdown has begun.
func (s *Server) startConn(nc net.Conn) {
	id := s.connSeq.Add(1)
	c := &conn{
		s:     s,
		nc:    nc,
		slots: make(chan struct{}, s.MaxInFlightPerConn),
		out:   make(chan *xdr.Encoder, s.MaxInFlightPerConn),
	}
	c.ep.net = "tcp"
	c.ep.remote = addrPort(nc.RemoteAddr())
	c.ep.local = addrPort(nc.LocalAddr())
	c.ep.log = s.log.With("conn", id, "remote", c.ep.remote.String())
	c.ep.ctx, c.cancel = context.WithCancelCause(s.baseCtx)

	s.mu.Lock()
	if s.closing.Load() || len(s.mu.conns) >= s.MaxConns {
		closing := s.closing.Load()
		s.mu.Unlock()
		c.cancel(nil)
		nc.Close()
		if !closing {
			s.stats.connsRejected.Add(1)
			c.ep.log.Warn("nfsd: too many connections; closed", "max", s.MaxConns)
		}
		return
	}
	s.mu.conns[c] = struct{}{}
	s.serveWG.Add(1)
	s.mu.Unlock()
	s.stats.connsAccepted.Add(1)
	s.stats.conns.Add(1)
	if tc, ok := nc.(*net.TCPConn); ok {
		tc.SetNoDelay(true)
	}
	go c.serve()
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

// stopReading makes the reader stop at the next record boundary (Shutdown).
func (c *conn) stopReading() {
	c.mu.Lock()
	c.mu.stopping = true
	c.nc.SetReadDeadline(time.Unix(1, 0))
	c.mu.Unlock()
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
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		c.writeLoop()
	}()

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
		c.ep.log.Warn("nfsd: record too large; connection closed", "err", err)
	case errors.Is(err, errUndecodable):
		c.ep.log.Warn("nfsd: undecodable call; connection closed")
	case errors.Is(err, os.ErrDeadlineExceeded):
		c.ep.log.Debug("nfsd: connection timed out", "err", err)
	default:
		c.ep.log.Debug("nfsd: connection ended", "err", err)
	}
	if !graceful {
		c.abort()
	}
	// Let calls in flight finish and their replies go out (or fail, if
	// the socket is closed), then stop the writer.
	c.pending.Wait()
	close(c.out)
	<-writerDone
	c.abort()

	s.mu.Lock()
	delete(s.mu.conns, c)
	s.mu.Unlock()
	s.stats.conns.Add(-1)
	s.serveWG.Done()
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
		} else {
			// The next record has begun already.
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
		c.pending.Add(1)
		c.active.Add(1)
		s.stats.inFlight.Add(1)
		go c.call(buf)
	}
}

// abortCause returns errUndecodable if a worker aborted the connection for
// a bad call, or the context's error.
func (c *conn) abortCause() error {
	if err := context.Cause(c.ep.ctx); err != nil {
		return err
	}
	return nil
}

// call runs one call on a worker and hands its reply to the writer.
func (c *conn) call(buf *[]byte) {
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
		c.out <- e // never blocks: out has a slot per in-flight call
		return
	case closeConn:
		c.abortWith(errUndecodable)
	}
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
	c.active.Add(-1)
	<-c.slots
	c.pending.Done()
}

// writeLoop sends replies until out is closed. After a write error it keeps
// draining so that calls still finish and release their slots.
func (c *conn) writeLoop() {
	const maxBatch = 32
	var (
		batch  []*xdr.Encoder
		bufs   net.Buffers
		failed bool
	)
	for {
		e, ok := <-c.out
		if !ok {
			return
		}
		batch = append(batch[:0], e)
	more:
		for len(batch) < maxBatch {
			select {
			case e, ok := <-c.out:
				if !ok {
					break more
				}
				batch = append(batch, e)
			default:
				break more
			}
		}
		if !failed {
			bufs = bufs[:0]
			for _, e := range batch {
				bufs = append(bufs, e.Bytes())
			}
			c.nc.SetWriteDeadline(time.Now().Add(c.s.WriteTimeout))
			// net.Buffers.WriteTo consumes its receiver; pass a copy.
			b := bufs
			if _, err := b.WriteTo(c.nc); err != nil {
				failed = true
				c.ep.log.Debug("nfsd: write failed; closing", "err", err)
				c.abort()
			}
		}
		for i, e := range batch {
			putEncoder(e)
			batch[i] = nil
			c.done()
		}
		clear(bufs)
	}
}
