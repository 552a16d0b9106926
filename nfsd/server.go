package nfsd

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	"math/bits"
	"net"
	"net/netip"
	"runtime"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailnfs/mailnfs/internal/ratelog"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// ErrServerClosed is returned by Serve and ServeUDP after Shutdown.
var ErrServerClosed = errors.New("nfsd: server closed")

// Defaults for the zero fields of Server.
const (
	DefaultMaxInFlightPerConn = 64
	DefaultMaxQueuedPerConn   = 4 << 20
	DefaultIdleTimeout        = 6 * time.Minute
	DefaultRecordTimeout      = 30 * time.Second
	DefaultWriteTimeout       = time.Minute
	DefaultDrainWriteTimeout  = 5 * time.Second
	DefaultMaxConns           = 4096
	DefaultMaxConnsPerHost    = 256
	DefaultDRCSize            = 4096
	DefaultDRCMaxBytes        = 32 << 20
	DefaultDRCTTL             = 120 * time.Second
)

// maxUDPReply is the largest reply sent in one datagram (the IPv4 UDP payload
// limit); a larger reply is dropped and the client retries over TCP.
const maxUDPReply = 65507

// Server is the ONC RPC transport: it accepts TCP connections and UDP
// datagrams, decodes call headers, answers RPC-level errors itself and runs
// calls of registered Programs on a bounded pool of workers.
//
// The zero value is ready to use; every field is optional and read once, when
// the server is first used (Register, Serve, ServeUDP, Stats or Shutdown).
type Server struct {
	// Logger receives connection-level events; per-request tracing is
	// logged at debug level only. Nil discards.
	Logger *slog.Logger

	// Workers bounds the calls running at once over all connections and
	// datagrams. Zero means 4*GOMAXPROCS.
	Workers int

	// MaxInFlightPerConn bounds the calls one TCP connection may have
	// running or waiting to be written; its reader stops reading while the
	// bound is reached (backpressure). Zero means 64.
	MaxInFlightPerConn int

	// MaxQueuedPerConn bounds the reply bytes one TCP connection may have
	// waiting to be written, counting for each call still running what
	// its Program's ReplySizer reserves (a READ: its count): while more
	// are queued or reserved, the reader reads no further call
	// (backpressure). So a client that sends READs of 1 MiB and does not
	// read the replies has a few of them built, not MaxInFlightPerConn,
	// and they are held until WriteTimeout. Zero means 4 MiB.
	MaxQueuedPerConn int

	// MaxRecord bounds one reassembled TCP record; a larger one closes the
	// connection before anything is allocated for it. Zero means
	// rpc.MaxRecord.
	MaxRecord int

	// IdleTimeout closes a TCP connection that has no call in flight and
	// sends nothing for this long. Zero means 6 minutes.
	IdleTimeout time.Duration

	// RecordTimeout closes a TCP connection whose record, once started,
	// is not complete within this time (slowloris). Zero means 30 seconds.
	RecordTimeout time.Duration

	// WriteTimeout closes a TCP connection that does not take its replies
	// within this time. Zero means 1 minute.
	WriteTimeout time.Duration

	// DrainWriteTimeout is WriteTimeout once Shutdown has begun: a client
	// that does not take the replies of its calls within it has its
	// connection closed, so that one stuck client does not hold the
	// shutdown to its deadline. Zero means 5 seconds.
	DrainWriteTimeout time.Duration

	// MaxConns bounds open TCP connections. A connection accepted at the
	// bound closes the connection that has been idle longest (no call in
	// flight, no record begun), as knfsd does; when none is idle the new
	// one is closed at once. Zero means 4096.
	MaxConns int

	// MaxConnsPerHost bounds the open TCP connections of one client
	// address, so that one host cannot take all of MaxConns. At the bound
	// a new connection from that host closes the host's own connection
	// idle longest, or is closed at once when none is idle. Zero means
	// 256, or MaxConns if that is lower.
	MaxConnsPerHost int

	// ConnGate, if set, is called for every accepted TCP connection before
	// it counts against MaxConns and MaxConnsPerHost; false closes it at
	// once. HostsGate.AcceptConn refuses hosts whose every call Gate would
	// refuse. It runs on the accept loop: it must be quick and safe for
	// concurrent use.
	ConnGate func(remote, local netip.AddrPort) bool

	// OutOfFds, if set, is called when Accept fails because the process
	// (EMFILE) or the system (ENFILE) has no file descriptor left, before
	// the accept is retried: a Daemon sheds the stores' unused cached
	// files (maildirfs.ShedUnused), which would otherwise be given back
	// only when a store itself runs out.
	OutOfFds func()

	// DRCSize and DRCMaxBytes bound the duplicate request cache in entries
	// and reply bytes; DRCTTL is how long a reply is kept for replay. Zero
	// means 4096 entries, 32 MiB and 120 seconds.
	DRCSize     int
	DRCMaxBytes int
	DRCTTL      time.Duration

	// DRCLog, if set, records every non-idempotent call before it runs
	// and marks the retransmissions of calls an earlier run began
	// (Request.MayHaveRun). Set it before serving; the caller closes it
	// after Shutdown.
	DRCLog *DRCLog

	// Clock returns the current time for the duplicate request cache. Nil
	// means time.Now. Socket deadlines always use the real clock.
	Clock func() time.Time

	// Gate, if set, is called for every call to a registered program and
	// version before the Program serves it (and before the duplicate
	// request cache is consulted). A zero Status lets the call through; any
	// other Status (Accept, Auth or Drop) is the answer and the Program is
	// not called. Gate runs on a worker and must be safe for concurrent use;
	// it must not read req.Args, which belong to the Program.
	Gate func(req *Request) Status

	initOnce sync.Once
	log      *slog.Logger
	workers  chan struct{} // worker tokens; a call holds one while it runs
	baseCtx  context.Context
	cancel   context.CancelFunc
	done     chan struct{} // closed when Shutdown begins
	drc      *drc
	progs    atomic.Pointer[map[uint32]*progEntry]
	regMu    sync.Mutex // serialises Register's copy-on-write of progs

	closing atomic.Bool
	serveWG sync.WaitGroup // connection goroutines and ServeUDP loops

	mu struct {
		sync.Mutex
		listeners map[net.Listener]struct{}
		packets   map[net.PacketConn]struct{}
		conns     map[*conn]struct{} // until each one's goroutine ends
		// counted is the number of connections counted against MaxConns
		// (conn.counted), hosts the same per client address. A connection
		// closed for room stops counting at once, before its goroutine
		// ends.
		counted int
		hosts   map[netip.Addr]int
	}
	// limitLog rate-limits the log lines of connection limits, badLog
	// those of connections closed for a broken record, retryLog those of
	// retransmissions of calls that may have run, forgedLog those of
	// datagrams dropped for a forged IPv4-mapped source.
	limitLog, badLog ratelog.Limiter[netip.Addr]
	retryLog         ratelog.Limiter[retryLogKey]
	forgedLog        ratelog.Limiter[struct{}]

	connSeq atomic.Uint64
	stats   counters
}

// progEntry is a registered Program with its cached version range and call
// counters.
type progEntry struct {
	p         Program
	low, high uint32
	cache     Cacheable  // nil unless p implements it
	sizer     ReplySizer // nil unless p implements it
	procs     [64]atomic.Uint64
	other     atomic.Uint64 // calls with proc >= len(procs)
}

func (pe *progEntry) count(proc uint32) {
	if proc < uint32(len(pe.procs)) {
		pe.procs[proc].Add(1)
	} else {
		pe.other.Add(1)
	}
}

type counters struct {
	inFlight        atomic.Int64
	conns           atomic.Int64
	connsAccepted   atomic.Uint64
	connsRejected   atomic.Uint64
	connsEvicted    atomic.Uint64
	connsDenied     atomic.Uint64
	badCalls        atomic.Uint64
	badRecords      atomic.Uint64
	rpcMismatch     atomic.Uint64
	authErrors      atomic.Uint64
	progUnavail     atomic.Uint64
	progMismatch    atomic.Uint64
	gateRefusals    atomic.Uint64
	drcHits         atomic.Uint64
	drcInProgress   atomic.Uint64
	drcLogHits      atomic.Uint64
	drcEvictedHits  atomic.Uint64
	panics          atomic.Uint64
	drops           atomic.Uint64
	udpReplyTooLong atomic.Uint64
	udpForgedMapped atomic.Uint64
}

// CallKey names a procedure for Stats.
type CallKey struct {
	Prog, Proc uint32
}

// Stats is a snapshot of the server's counters.
type Stats struct {
	// Calls counts calls that reached a registered program and version, by
	// program and procedure (procedures above 63 are counted under 64).
	Calls map[CallKey]uint64
	// InFlight is the number of calls being served now.
	InFlight int64
	// QueuedBytes is the bytes of TCP replies waiting to be written, over
	// all connections (see MaxQueuedPerConn).
	QueuedBytes int64
	// Conns is the number of open TCP connections.
	Conns int64
	// ConnsAccepted and ConnsRejected count TCP connections kept and
	// closed at once because MaxConns or MaxConnsPerHost was reached with
	// no idle connection to close instead. ConnsEvicted counts idle
	// connections closed to make room for a new one; ConnsDenied counts
	// connections ConnGate refused.
	ConnsAccepted, ConnsRejected, ConnsEvicted, ConnsDenied uint64
	// BadCalls counts records that did not decode as a CALL header
	// (connection closed or datagram dropped); BadRecords counts TCP
	// connections closed for a broken or oversized record.
	BadCalls, BadRecords uint64
	// RPC-level error replies sent by the transport itself.
	RPCMismatch, AuthErrors, ProgUnavail, ProgMismatch uint64
	// GateRefusals counts calls answered by Gate instead of the Program.
	GateRefusals uint64
	// DRCHits counts replies resent from the duplicate request cache;
	// DRCInProgressDrops counts duplicates dropped while the original ran.
	DRCHits, DRCInProgressDrops uint64
	// DRCLogRetransmissions counts calls marked MayHaveRun: begun by an
	// earlier run of the server (DRCLog) and retransmitted to this one.
	DRCLogRetransmissions uint64
	// DRCEvictedRetransmissions counts calls marked MayHaveRun because
	// this run had begun them but their entries had been evicted from the
	// cache for room (their keys are kept longer than their replies).
	DRCEvictedRetransmissions uint64
	// DRCEntries and DRCBytes are the cache's current size;
	// DRCEvictedKeys the keys of evicted entries it remembers.
	DRCEntries, DRCBytes, DRCEvictedKeys int
	// Panics counts Program panics answered with SYSTEM_ERR.
	Panics uint64
	// Drops counts calls answered with no reply (Status.Drop).
	Drops uint64
	// UDPReplyTooLong counts UDP replies dropped for exceeding a datagram.
	UDPReplyTooLong uint64
	// UDPForgedMapped counts datagrams dropped, unanswered, for an
	// IPv4-mapped source sent to an IPv6 address (forgedMapped).
	UDPForgedMapped uint64
}

func (s *Server) init() {
	s.initOnce.Do(func() {
		s.log = s.Logger
		if s.log == nil {
			s.log = slog.New(slog.DiscardHandler)
		}
		if s.Workers <= 0 {
			s.Workers = 4 * runtime.GOMAXPROCS(0)
		}
		if s.MaxInFlightPerConn <= 0 {
			s.MaxInFlightPerConn = DefaultMaxInFlightPerConn
		}
		if s.MaxQueuedPerConn <= 0 {
			s.MaxQueuedPerConn = DefaultMaxQueuedPerConn
		}
		if s.MaxRecord <= 0 {
			s.MaxRecord = rpc.MaxRecord
		}
		if s.IdleTimeout <= 0 {
			s.IdleTimeout = DefaultIdleTimeout
		}
		if s.RecordTimeout <= 0 {
			s.RecordTimeout = DefaultRecordTimeout
		}
		if s.WriteTimeout <= 0 {
			s.WriteTimeout = DefaultWriteTimeout
		}
		if s.DrainWriteTimeout <= 0 {
			s.DrainWriteTimeout = DefaultDrainWriteTimeout
		}
		if s.MaxConns <= 0 {
			s.MaxConns = DefaultMaxConns
		}
		if s.MaxConnsPerHost <= 0 {
			s.MaxConnsPerHost = min(DefaultMaxConnsPerHost, s.MaxConns)
		}
		if s.DRCSize <= 0 {
			s.DRCSize = DefaultDRCSize
		}
		if s.DRCMaxBytes <= 0 {
			s.DRCMaxBytes = DefaultDRCMaxBytes
		}
		if s.DRCTTL <= 0 {
			s.DRCTTL = DefaultDRCTTL
		}
		if s.Clock == nil {
			s.Clock = time.Now
		}
		s.workers = make(chan struct{}, s.Workers)
		s.baseCtx, s.cancel = context.WithCancel(context.Background())
		s.done = make(chan struct{})
		s.drc = newDRC(s.DRCSize, s.DRCMaxBytes, s.DRCTTL, s.Clock)
		s.mu.listeners = make(map[net.Listener]struct{})
		s.mu.packets = make(map[net.PacketConn]struct{})
		s.mu.conns = make(map[*conn]struct{})
		s.mu.hosts = make(map[netip.Addr]int)
		empty := map[uint32]*progEntry{}
		s.progs.Store(&empty)
	})
}

// Register adds p, replacing any Program with the same number. It may be
// called while the server runs.
func (s *Server) Register(p Program) {
	s.init()
	pe := &progEntry{p: p}
	pe.low, pe.high = p.Versions()
	pe.cache, _ = p.(Cacheable)
	pe.sizer, _ = p.(ReplySizer)
	s.regMu.Lock()
	defer s.regMu.Unlock()
	old := *s.progs.Load()
	m := make(map[uint32]*progEntry, len(old)+1)
	for k, v := range old {
		m[k] = v
	}
	m[p.Prog()] = pe
	s.progs.Store(&m)
}

// Stats returns a snapshot of the server's counters.
func (s *Server) Stats() Stats {
	s.init()
	st := Stats{
		Calls:                     make(map[CallKey]uint64),
		InFlight:                  s.stats.inFlight.Load(),
		Conns:                     s.stats.conns.Load(),
		ConnsAccepted:             s.stats.connsAccepted.Load(),
		ConnsRejected:             s.stats.connsRejected.Load(),
		ConnsEvicted:              s.stats.connsEvicted.Load(),
		ConnsDenied:               s.stats.connsDenied.Load(),
		BadCalls:                  s.stats.badCalls.Load(),
		BadRecords:                s.stats.badRecords.Load(),
		RPCMismatch:               s.stats.rpcMismatch.Load(),
		AuthErrors:                s.stats.authErrors.Load(),
		ProgUnavail:               s.stats.progUnavail.Load(),
		ProgMismatch:              s.stats.progMismatch.Load(),
		GateRefusals:              s.stats.gateRefusals.Load(),
		DRCHits:                   s.stats.drcHits.Load(),
		DRCInProgressDrops:        s.stats.drcInProgress.Load(),
		DRCLogRetransmissions:     s.stats.drcLogHits.Load(),
		DRCEvictedRetransmissions: s.stats.drcEvictedHits.Load(),
		Panics:                    s.stats.panics.Load(),
		Drops:                     s.stats.drops.Load(),
		UDPReplyTooLong:           s.stats.udpReplyTooLong.Load(),
		UDPForgedMapped:           s.stats.udpForgedMapped.Load(),
	}
	for prog, pe := range *s.progs.Load() {
		for proc := range pe.procs {
			if n := pe.procs[proc].Load(); n > 0 {
				st.Calls[CallKey{prog, uint32(proc)}] = n
			}
		}
		if n := pe.other.Load(); n > 0 {
			st.Calls[CallKey{prog, uint32(len(pe.procs))}] = n
		}
	}
	s.mu.Lock()
	for c := range s.mu.conns {
		st.QueuedBytes += c.queued.Load()
	}
	s.mu.Unlock()
	st.DRCEntries, st.DRCBytes = s.drc.size()
	st.DRCEvictedKeys = s.drc.evictedKeys()
	return st
}

// Shutdown stops the server gracefully: listeners and UDP sockets stop
// taking new calls, calls already read are served and their replies written,
// then every connection is closed and Serve and ServeUDP return
// ErrServerClosed. A connection whose client does not take its replies
// within DrainWriteTimeout is closed without them (the client sends its
// calls again to the next server, as after a crash). If ctx ends first,
// the calls' contexts are cancelled, all connections are closed and ctx's
// error is returned.
func (s *Server) Shutdown(ctx context.Context) error {
	s.init()
	if s.closing.CompareAndSwap(false, true) {
		close(s.done)
	}
	s.mu.Lock()
	for ln := range s.mu.listeners {
		ln.Close()
	}
	for pc := range s.mu.packets {
		// Wake the reader; ServeUDP closes the socket after its calls
		// have answered.
		pc.SetReadDeadline(time.Unix(1, 0))
	}
	for c := range s.mu.conns {
		c.stopReading(s.DrainWriteTimeout)
	}
	s.mu.Unlock()

	finished := make(chan struct{})
	go func() {
		s.serveWG.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		s.cancel()
		return nil
	case <-ctx.Done():
	}
	// Close the sockets before cancelling the calls, so that calls that
	// give up send no replies.
	s.mu.Lock()
	for c := range s.mu.conns {
		c.abort()
	}
	for pc := range s.mu.packets {
		pc.Close()
	}
	s.mu.Unlock()
	s.cancel()
	return ctx.Err()
}

// trackListener adds or removes ln; adding fails once Shutdown has begun.
func (s *Server) trackListener(ln net.Listener, add bool) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !add {
		delete(s.mu.listeners, ln)
		return true
	}
	if s.closing.Load() {
		return false
	}
	s.mu.listeners[ln] = struct{}{}
	return true
}

// Serve accepts TCP (or other stream) connections on ln and serves them
// until Shutdown, after which it returns ErrServerClosed. It closes ln on
// return. Temporary Accept errors are retried with backoff; another error
// is returned.
func (s *Server) Serve(ln net.Listener) error {
	s.init()
	defer ln.Close()
	if !s.trackListener(ln, true) {
		return ErrServerClosed
	}
	defer s.trackListener(ln, false)
	var (
		backoff time.Duration
		fails   int       // failed Accepts in a row
		logged  time.Time // when the streak was last logged
	)
	for {
		nc, err := ln.Accept()
		if err != nil {
			if s.closing.Load() {
				return ErrServerClosed
			}
			var ne net.Error
			if errors.As(err, &ne) && ne.Timeout() || isTemporary(err) {
				if s.OutOfFds != nil && (errors.Is(err, syscall.EMFILE) || errors.Is(err, syscall.ENFILE)) {
					s.OutOfFds()
				}
				// net/http's pattern: back off from 5 ms to 1 s, never spin.
				backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
				fails++
				// A full file table lasts: one line when it starts and
				// one a minute while it lasts, not one per retry.
				if now := time.Now(); fails == 1 || now.Sub(logged) >= acceptLogEvery {
					s.log.Warn("nfsd: accept failed; retrying", "err", err, "backoff", backoff, "failures", fails)
					logged = now
				}
				select {
				case <-time.After(backoff):
				case <-s.done:
				}
				continue
			}
			return fmt.Errorf("nfsd: accept: %w", err)
		}
		if fails > 0 {
			s.log.Info("nfsd: accept works again", "failures", fails)
			fails = 0
		}
		backoff = 0
		s.startConn(nc)
	}
}

// acceptLogEvery is how often a streak of failing Accepts is logged again.
const acceptLogEvery = time.Minute

// isTemporary reports errors that Accept may recover from (too many open
// files, aborted handshakes).
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// verdict is what the transport does after a call was handled.
type verdict int

const (
	sendReply verdict = iota // the encoder holds a reply
	dropCall                 // send nothing
	closeConn                // undecodable: close the connection (TCP) or drop (UDP)
)

// endpoint describes the transport a call arrived on.
type endpoint struct {
	ctx    context.Context
	net    string
	remote netip.AddrPort
	local  netip.AddrPort
	log    *slog.Logger
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// dispatch decodes and answers one call record in the order of RFC 5531
// practice (reference §1.5): header, RPC version, credential, program,
// version, Gate, duplicate cache, Program. The reply, if any, is appended
// to e after its current contents.
func (s *Server) dispatch(ep *endpoint, rec []byte, e *xdr.Encoder) verdict {
	start := e.Len()
	d := xdr.NewDecoder(rec)
	h, err := rpc.DecodeCall(d)
	if err != nil {
		s.stats.badCalls.Add(1)
		ep.log.Debug("nfsd: undecodable call header", "err", err)
		return closeConn
	}
	if h.RPCVers != rpc.Version {
		s.stats.rpcMismatch.Add(1)
		rpc.EncodeRPCMismatch(e, h.XID)
		return sendReply
	}
	var sys *rpc.AuthSysParms
	switch h.Cred.Flavor {
	case rpc.AuthNone:
	case rpc.AuthSys:
		p, err := rpc.DecodeAuthSys(h.Cred.Body)
		if err != nil {
			s.stats.authErrors.Add(1)
			rpc.EncodeAuthError(e, h.XID, rpc.AuthBadCred)
			return sendReply
		}
		sys = &p
	default:
		// Any flavor may call NULL (RFC 5531 §9: clients probe with it).
		if h.Proc != 0 {
			s.stats.authErrors.Add(1)
			rpc.EncodeAuthError(e, h.XID, rpc.AuthTooWeak)
			return sendReply
		}
	}
	pe := (*s.progs.Load())[h.Prog]
	if pe == nil {
		s.stats.progUnavail.Add(1)
		rpc.EncodeAccepted(e, h.XID, rpc.ProgUnavail)
		return sendReply
	}
	if h.Vers < pe.low || h.Vers > pe.high {
		s.stats.progMismatch.Add(1)
		rpc.EncodeProgMismatch(e, h.XID, pe.low, pe.high)
		return sendReply
	}
	pe.count(h.Proc)
	log := ep.log.With("xid", h.XID)
	req := &Request{
		XID:     h.XID,
		Prog:    h.Prog,
		Vers:    h.Vers,
		Proc:    h.Proc,
		Cred:    h.Cred,
		AuthSys: sys,
		Addr:    ep.remote,
		Net:     ep.net,
		Local:   ep.local,
		Args:    d,
		Log:     log,
	}
	debug := log.Enabled(ep.ctx, slog.LevelDebug)
	if debug {
		log.Debug("nfsd: call", "prog", h.Prog, "vers", h.Vers, "proc", h.Proc, "flavor", h.Cred.Flavor, "args", d.Remaining())
	}
	if s.Gate != nil {
		if st := s.Gate(req); st != (Status{}) {
			s.stats.gateRefusals.Add(1)
			return s.encodeStatus(e, h.XID, pe, st, debug, log)
		}
	}

	var de *drcEntry
	var key drcKey
	var logSlot drcLogSlot
	if pe.cache != nil && pe.cache.NonIdempotent(h.Vers, h.Proc) {
		// Without the zone a link-local client (fe80::1%eth0) has: the
		// duplicate request log keeps none, and its calls must match
		// the next run's.
		key = drcKey{
			addr: ep.remote.Addr().Unmap().WithZone(""),
			xid:  h.XID, prog: h.Prog, vers: h.Vers, proc: h.Proc,
			sum: crc32.Checksum(d.Rest(), castagnoli), n: uint32(d.Remaining()),
		}
		var cached []byte
		var state drcState
		de, cached, state = s.drc.begin(key)
		switch state {
		case drcDone:
			s.stats.drcHits.Add(1)
			e.FixedOpaque(cached)
			if debug {
				log.Debug("nfsd: reply from duplicate request cache")
			}
			return sendReply
		case drcInProgress:
			s.stats.drcInProgress.Add(1)
			if debug {
				log.Debug("nfsd: duplicate of a call in progress dropped")
			}
			return dropCall
		case drcEvicted:
			req.MayHaveRun, req.Completed = true, true
			s.stats.drcEvictedHits.Add(1)
			s.logRetransmission(log, key.addr, false, "nfsd: retransmission of a call whose reply had left the duplicate request cache", "prog", h.Prog, "vers", h.Vers, "proc", h.Proc)
		}
		if s.DRCLog != nil {
			var mayHaveRun bool
			mayHaveRun, logSlot = s.DRCLog.begin(key, s.Clock())
			if mayHaveRun && !req.MayHaveRun {
				req.MayHaveRun = true
				s.stats.drcLogHits.Add(1)
				s.logRetransmission(log, key.addr, true, "nfsd: retransmission of a call begun before the restart", "prog", h.Prog, "vers", h.Vers, "proc", h.Proc)
			}
		}
	}

	st := s.invoke(ep.ctx, pe.p, req, e, start)
	v := sendReply
	if st != StatusOK {
		e.Truncate(start)
		v = s.encodeStatus(e, h.XID, pe, st, debug, log)
	} else if debug {
		log.Debug("nfsd: reply", "bytes", e.Len()-start)
	}
	if de != nil {
		if v == sendReply {
			s.drc.finish(de, e.Bytes()[start:], req.Refused)
			if req.Refused && logSlot != 0 {
				s.DRCLog.refused(logSlot, key)
			}
		} else {
			s.drc.forget(de)
		}
	}
	return v
}

// retryLogLines is how many retransmissions of calls that may have run
// are logged per client address, kind and minute. A front end resends a
// few after a restart or a burst of evictions (its calls in flight), each
// worth a line; a client that replays old XIDs with the same arguments
// in a loop gets one line per call that has an effect otherwise.
const retryLogLines = 32

// retryLogKey keys Server.retryLog: the client's address and whether the
// call was begun before the restart (else its reply left the cache).
type retryLogKey struct {
	addr    netip.Addr
	restart bool
}

// logRetransmission logs a retransmission of a call that may have run at
// Info, up to retryLogLines a minute per client address and kind; held_back
// counts those not logged since the previous line (the metrics count all).
func (s *Server) logRetransmission(log *slog.Logger, addr netip.Addr, restart bool, msg string, attrs ...any) {
	if ok, held := s.retryLog.AllowN(retryLogKey{addr, restart}, s.Clock(), retryLogLines); ok {
		if held > 0 {
			attrs = append(attrs, "held_back", held)
		}
		log.Info(msg, attrs...)
	}
}

// invoke runs the Program with the SUCCESS header already in e, so results
// are appended in place. A panic is recovered and becomes SYSTEM_ERR.
func (s *Server) invoke(ctx context.Context, p Program, req *Request, e *xdr.Encoder, start int) (st Status) {
	rpc.EncodeAccepted(e, req.XID, rpc.Success)
	defer func() {
		if r := recover(); r != nil {
			s.stats.panics.Add(1)
			req.Log.Error("nfsd: panic serving call", "prog", req.Prog, "vers", req.Vers, "proc", req.Proc,
				"panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			e.Truncate(start)
			st = StatusSystemErr
		}
	}()
	return p.Serve(ctx, req, e)
}

// encodeStatus appends the reply for a non-success Status.
func (s *Server) encodeStatus(e *xdr.Encoder, xid uint32, pe *progEntry, st Status, debug bool, log *slog.Logger) verdict {
	if debug {
		log.Debug("nfsd: reply", "accept", st.Accept, "auth", st.Auth, "drop", st.Drop)
	}
	switch {
	case st.Drop:
		s.stats.drops.Add(1)
		return dropCall
	case st.Auth != rpc.AuthOK:
		s.stats.authErrors.Add(1)
		rpc.EncodeAuthError(e, xid, st.Auth)
	case st.Accept == rpc.ProgMismatch:
		rpc.EncodeProgMismatch(e, xid, pe.low, pe.high)
	default:
		rpc.EncodeAccepted(e, xid, st.Accept)
	}
	return sendReply
}

// Buffer pools: records read from the wire and replies being built.
var (
	recPool = sync.Pool{New: func() any { return new([]byte) }}
	encPool = sync.Pool{New: func() any { return new(xdr.Encoder) }}
)

// maxPooled is the largest buffer kept in a pool: room for a record of
// the default maximum size (a 1 MiB WRITE or READ reply); anything bigger
// is left to the garbage collector.
const maxPooled = rpc.MaxRecord + 64<<10

// getRecord returns a pooled copy of b (a UDP datagram).
func getRecord(b []byte) *[]byte {
	p := recPool.Get().(*[]byte)
	if cap(*p) < len(b) {
		// Round up so that buffers are reused across similar sizes.
		*p = make([]byte, 0, max(512, 1<<bits.Len(uint(len(b)-1))))
	}
	*p = append((*p)[:0], b...)
	return p
}

func putRecord(p *[]byte) {
	if cap(*p) <= maxPooled {
		recPool.Put(p)
	}
}

func getEncoder() *xdr.Encoder {
	e := encPool.Get().(*xdr.Encoder)
	e.Reset()
	return e
}

func putEncoder(e *xdr.Encoder) {
	if cap(e.Bytes()) <= maxPooled {
		encPool.Put(e)
	}
}

// acquireWorker takes a worker token, or fails when stop or Shutdown comes
// first.
func (s *Server) acquireWorker(stop <-chan struct{}) bool {
	select {
	case s.workers <- struct{}{}:
		return true
	default:
	}
	select {
	case s.workers <- struct{}{}:
		return true
	case <-stop:
	case <-s.done:
	}
	return false
}

func (s *Server) releaseWorker() { <-s.workers }
