package nfsd

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// Metric names all start with this prefix.
const metricsNamespace = "mailnfsd"

// Defaults for the zero fields of MetricsOptions.
const (
	DefaultTopClients   = 20
	DefaultClientWindow = DefaultIdleTimeout
	// maxTrackedConns bounds the (client, port) pairs the client tracker
	// keeps; pairs beyond it are counted only in the overflow counter.
	maxTrackedConns = 1 << 16
	// maxDenialRules bounds the distinct rule labels Denied creates.
	maxDenialRules = 256
)

// latencyBuckets span a cached GETATTR (tens of microseconds) to a slow
// fsync under load (seconds).
var latencyBuckets = []float64{
	0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01,
	0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10,
}

// MetricsOptions configure NewMetricsWithOptions. Every field is optional.
type MetricsOptions struct {
	// TopClients is how many client addresses get their own
	// mailnfsd_client_connections series; the others are summed into
	// mailnfsd_client_connections_other. Zero means 20.
	TopClients int
	// ClientWindow is how long a TCP (address, port) pair counts as a
	// connection after its last call. Zero means DefaultIdleTimeout, the
	// transport's idle timeout: a connection silent for longer has been
	// closed by the server.
	ClientWindow time.Duration
	// Clock returns the current time for latencies and the client window.
	// Nil means time.Now.
	Clock func() time.Time
}

// Metrics holds mailnfsd's Prometheus metrics. It is fed by Programs
// wrapped with InstrumentProgram, by Denied, and, at scrape time, by the
// snapshots of the Server and Exports given to CollectServer and
// CollectExports. Only cmd registers it on a registry that is served; the
// library never touches the default registry. A Metrics is safe for
// concurrent use.
type Metrics struct {
	reg   prometheus.Registerer
	clock func() time.Time

	calls      *prometheus.CounterVec   // program, version, procedure, status
	duration   *prometheus.HistogramVec // program, version, procedure
	inFlight   *prometheus.GaugeVec     // program
	readBytes  prometheus.Counter
	writeBytes prometheus.Counter

	denials struct {
		sync.Mutex
		vec  *prometheus.CounterVec // rule
		seen map[string]bool        // labels created, at most maxDenialRules
	}

	clients *clientTracker
}

// NewMetrics creates the metrics with default options and registers them on
// reg. It panics if they are already registered there (a programmer error).
func NewMetrics(reg prometheus.Registerer) *Metrics {
	return NewMetricsWithOptions(reg, MetricsOptions{})
}

// NewMetricsWithOptions is NewMetrics with options.
func NewMetricsWithOptions(reg prometheus.Registerer, opts MetricsOptions) *Metrics {
	if opts.TopClients <= 0 {
		opts.TopClients = DefaultTopClients
	}
	if opts.ClientWindow <= 0 {
		opts.ClientWindow = DefaultClientWindow
	}
	if opts.Clock == nil {
		opts.Clock = time.Now
	}
	m := &Metrics{reg: reg, clock: opts.Clock}
	m.calls = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "rpc_calls_total",
		Help: "RPC calls served by a program, by procedure and result: the nfsstat3 (NFSv3) or " +
			"mountstat3 (MNT) of an accepted reply, SUCCESS for procedures without a status, " +
			"else the RPC accept or auth status, DROPPED (no reply) or PANIC. Calls answered " +
			"from the duplicate request cache or refused by the gate are not counted here.",
	}, []string{"program", "version", "procedure", "status"})
	m.duration = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: metricsNamespace, Name: "rpc_duration_seconds",
		Help:    "Time a program took to serve a call, by procedure (excludes queueing and reply writing).",
		Buckets: latencyBuckets,
	}, []string{"program", "version", "procedure"})
	m.inFlight = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: metricsNamespace, Name: "rpc_in_flight",
		Help: "Calls being served by a program now.",
	}, []string{"program"})
	m.readBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "nfs_read_bytes_total",
		Help: "Data bytes returned by successful NFSv3 READs.",
	})
	m.writeBytes = prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "nfs_write_bytes_total",
		Help: "Data bytes accepted by successful NFSv3 WRITEs (the count of the reply).",
	})
	m.denials.vec = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: metricsNamespace, Name: "access_denials_total",
		Help: "Calls or mounts denied, by the rule that denied them (\"other\" once 256 distinct rules were seen).",
	}, []string{"rule"})
	m.denials.seen = make(map[string]bool)
	m.clients = newClientTracker(opts.TopClients, opts.ClientWindow, opts.Clock)
	reg.MustRegister(m.calls, m.duration, m.inFlight, m.readBytes, m.writeBytes, m.denials.vec, m.clients)
	return m
}

// Denied counts one denial by rule, a short name the access layer chooses
// (Config.Denied lists them: "hosts_access:FILE:LINE:COL", "mount:host:/mail1",
// "nfs:host:/mail1", ...). Rules come from the configuration, so their
// number is small; to stay bounded anyway, labels after the 256th distinct
// rule are counted as "other". cmd/mailnfsd passes it as Config.Denied.
func (m *Metrics) Denied(rule string) {
	rule = labelValue(rule)
	m.denials.Lock()
	if !m.denials.seen[rule] {
		if len(m.denials.seen) >= maxDenialRules {
			rule = "other"
		}
		m.denials.seen[rule] = true
	}
	m.denials.Unlock()
	m.denials.vec.WithLabelValues(rule).Inc()
}

// labelValue returns s as a label value: s itself when it is valid UTF-8,
// else s quoted as a Go string ("/srv/bo\xe9te" with the quotes), which
// no valid value equals (export paths start with /, rules with a word).
// Export paths are bytes (an exports file may name a Latin-1 directory,
// written raw or as \351), and a label value that is not UTF-8 made
// the client library panic: every scrape failed with HTTP 500, and a MNT
// refused on such an export was answered SYSTEM_ERR.
func labelValue(s string) string {
	if utf8.ValidString(s) {
		return s
	}
	return strconv.Quote(s)
}

// MetricsHandler serves the metrics gathered by g in the Prometheus text
// (or negotiated OpenMetrics) format. Errors while gathering are answered
// with HTTP 500, so a broken collector is noticed rather than hidden.
func MetricsHandler(g prometheus.Gatherer) http.Handler {
	return promhttp.HandlerFor(g, promhttp.HandlerOpts{ErrorHandling: promhttp.HTTPErrorOnError})
}

// ----------------------------------------------------------------------
// The Program decorator.

// procMetrics are one procedure's precomputed series, so the common path
// (a successful call) does no label lookup.
type procMetrics struct {
	name   string
	ok     prometheus.Counter  // status = the success label
	dur    prometheus.Observer // latency histogram
	okName string              // "NFS3_OK", "MNT3_OK" or "SUCCESS"
	kind   procKind
}

// procKind says how to read a procedure's results.
type procKind uint8

const (
	kindPlain  procKind = iota // no status in the results: SUCCESS
	kindNFS3                   // results start with nfsstat3
	kindNFS3Rd                 // READ3res: nfsstat3, post_op_attr, count
	kindNFS3Wr                 // WRITE3res: nfsstat3, wcc_data, count
	kindMount                  // MNT: results start with mountstat3 (v1: an errno)
)

// maxLabelledProcs bounds per-procedure series for programs this package
// does not know; higher procedure numbers share the "unknown" label.
const maxLabelledProcs = 64

type instrumented struct {
	p         Program
	m         *Metrics
	prog      string
	low, high uint32
	inFlight  prometheus.Gauge
	versions  [][]*procMetrics // [vers-low][proc]
	unknown   []*procMetrics   // [vers-low]: procedures without a name
}

type instrumentedCacheable struct {
	*instrumented
	c Cacheable
}

// NonIdempotent forwards to the wrapped Program, so the duplicate request
// cache works as without the decorator.
func (i instrumentedCacheable) NonIdempotent(vers, proc uint32) bool {
	return i.c.NonIdempotent(vers, proc)
}

var (
	_ Program   = (*instrumented)(nil)
	_ Cacheable = instrumentedCacheable{}
)

// InstrumentProgram returns p decorated with m: every call is counted by
// procedure and result, timed, and counted in flight; NFSv3 READ and WRITE
// add their data bytes. The result implements Cacheable exactly when p
// does. Register the result with the Server in place of p.
//
// Programs are named "nfs", "mount", "portmap" (version 2) or "rpcbind"
// (versions 3 and 4); others by number. Only procedure numbers the program
// defines get their own label, so a client sending random procedure numbers
// cannot grow the series without bound.
func InstrumentProgram(p Program, m *Metrics) Program {
	in := &instrumented{p: p, m: m}
	in.low, in.high = p.Versions()
	num := p.Prog()
	in.prog = programLabel(num)
	in.inFlight = m.inFlight.WithLabelValues(in.prog)
	nv := 0
	if in.high >= in.low {
		nv = int(min(in.high-in.low, 15)) + 1 // a program serves a handful of versions
	}
	for v := range nv {
		vers := in.low + uint32(v)
		vl := strconv.FormatUint(uint64(vers), 10)
		names := procNames(num, vers)
		procs := make([]*procMetrics, len(names))
		for proc, name := range names {
			procs[proc] = in.newProc(vl, name, procKindOf(num, vers, uint32(proc)))
		}
		in.versions = append(in.versions, procs)
		in.unknown = append(in.unknown, in.newProc(vl, "unknown", kindPlain))
	}
	if c, ok := p.(Cacheable); ok {
		return instrumentedCacheable{in, c}
	}
	return in
}

func (in *instrumented) newProc(vers, name string, kind procKind) *procMetrics {
	pm := &procMetrics{name: name, kind: kind, okName: "SUCCESS"}
	switch kind {
	case kindNFS3, kindNFS3Rd, kindNFS3Wr:
		pm.okName = nfs3.StatusOK.String()
	case kindMount:
		pm.okName = nfs3.MountOK.String()
	}
	pm.ok = in.m.calls.WithLabelValues(in.prog, vers, name, pm.okName)
	pm.dur = in.m.duration.WithLabelValues(in.prog, vers, name)
	return pm
}

// Prog returns the wrapped Program's number.
func (in *instrumented) Prog() uint32 { return in.p.Prog() }

// Versions returns the wrapped Program's versions.
func (in *instrumented) Versions() (low, high uint32) { return in.low, in.high }

// lookup returns the series of one call and its version label.
func (in *instrumented) lookup(vers, proc uint32) *procMetrics {
	if vers < in.low || int(vers-in.low) >= len(in.versions) {
		return nil
	}
	v := int(vers - in.low)
	if procs := in.versions[v]; proc < uint32(len(procs)) {
		return procs[proc]
	}
	return in.unknown[v]
}

// Serve runs the wrapped Program and records the call. A panic in the
// Program is counted as PANIC and left to the transport to recover.
func (in *instrumented) Serve(ctx context.Context, req *Request, res *xdr.Encoder) (st Status) {
	pm := in.lookup(req.Vers, req.Proc)
	if pm == nil {
		// The transport checks the version range before Serve; a
		// caller that did not gets no series.
		return in.p.Serve(ctx, req, res)
	}
	start := in.m.clock()
	in.m.clients.seen(req.Net, req.Addr, start)
	in.inFlight.Inc()
	before := res.Len()
	finished := false
	defer func() {
		in.inFlight.Dec()
		pm.dur.Observe(in.m.clock().Sub(start).Seconds())
		if !finished {
			in.m.calls.WithLabelValues(in.prog, versionLabel(req.Vers), pm.name, "PANIC").Inc()
		}
	}()
	st = in.p.Serve(ctx, req, res)
	finished = true
	if st != StatusOK {
		in.m.calls.WithLabelValues(in.prog, versionLabel(req.Vers), pm.name, statusLabel(st)).Inc()
		return st
	}
	in.record(pm, req.Vers, res.Bytes()[before:])
	return st
}

// record counts an accepted reply whose results are out.
func (in *instrumented) record(pm *procMetrics, vers uint32, out []byte) {
	if pm.kind == kindPlain {
		pm.ok.Inc()
		return
	}
	var d xdr.Decoder
	d.Reset(out)
	code := d.Uint32()
	if d.Err() != nil {
		// A Program that claimed success but sent no status.
		in.m.calls.WithLabelValues(in.prog, versionLabel(vers), pm.name, "other").Inc()
		return
	}
	if pm.kind == kindMount {
		if ms := nfs3.MountStat(code); ms == nfs3.MountOK {
			pm.ok.Inc()
		} else {
			in.m.calls.WithLabelValues(in.prog, versionLabel(vers), pm.name, mountStatusLabel(ms)).Inc()
		}
		return
	}
	s := nfs3.Status(code)
	if s != nfs3.StatusOK {
		in.m.calls.WithLabelValues(in.prog, versionLabel(vers), pm.name, nfs3StatusLabel(s)).Inc()
		return
	}
	pm.ok.Inc()
	switch pm.kind {
	case kindNFS3Rd:
		// READ3resok (RFC 1813 §3.3.6): post_op_attr, count, eof, data.
		if d.Bool() {
			d.FixedOpaque(nfs3.FattrSize)
		}
		if n := d.Uint32(); d.Err() == nil {
			in.m.readBytes.Add(float64(n))
		}
	case kindNFS3Wr:
		// WRITE3resok (RFC 1813 §3.3.7): wcc_data, count, committed, verf.
		if d.Bool() {
			d.FixedOpaque(wccAttrSize)
		}
		if d.Bool() {
			d.FixedOpaque(nfs3.FattrSize)
		}
		if n := d.Uint32(); d.Err() == nil {
			in.m.writeBytes.Add(float64(n))
		}
	}
}

// wccAttrSize is the encoded size of wcc_attr: size3 and two nfstime3.
const wccAttrSize = 8 + 8 + 8

func versionLabel(v uint32) string {
	switch v {
	case 1:
		return "1"
	case 2:
		return "2"
	case 3:
		return "3"
	case 4:
		return "4"
	}
	return strconv.FormatUint(uint64(v), 10)
}

func programLabel(prog uint32) string {
	switch prog {
	case nfs3.Program:
		return "nfs"
	case nfs3.MountProgram:
		return "mount"
	case portmap.Prog:
		return "portmap"
	}
	return strconv.FormatUint(uint64(prog), 10)
}

var (
	pmapV2Names = []string{"NULL", "SET", "UNSET", "GETPORT", "DUMP", "CALLIT"}
	rpcbV3Names = []string{"NULL", "SET", "UNSET", "GETADDR", "DUMP", "CALLIT", "GETTIME",
		"UADDR2TADDR", "TADDR2UADDR"}
	rpcbV4Names = []string{"NULL", "SET", "UNSET", "GETADDR", "DUMP", "BCAST", "GETTIME",
		"UADDR2TADDR", "TADDR2UADDR", "GETVERSADDR", "INDIRECT", "GETADDRLIST", "GETSTAT"}
)

// procNames returns the names of a program version's procedures, indexed
// by procedure number.
func procNames(prog, vers uint32) []string {
	var names []string
	switch prog {
	case nfs3.Program:
		if vers == nfs3.Version {
			for p := nfs3.ProcNull; p <= nfs3.ProcCommit; p++ {
				names = append(names, p.String())
			}
		}
	case nfs3.MountProgram:
		for p := nfs3.MountProcNull; p <= nfs3.MountProcExportAll; p++ {
			names = append(names, p.String())
		}
	case portmap.Prog:
		switch vers {
		case portmap.V2:
			names = pmapV2Names
		case portmap.V3:
			names = rpcbV3Names
		case portmap.V4:
			names = rpcbV4Names
		}
	default:
		for p := range maxLabelledProcs {
			names = append(names, "PROC_"+strconv.Itoa(p))
		}
	}
	return names
}

func procKindOf(prog, vers, proc uint32) procKind {
	switch prog {
	case nfs3.Program:
		switch nfs3.Proc(proc) {
		case nfs3.ProcNull:
			return kindPlain
		case nfs3.ProcRead:
			return kindNFS3Rd
		case nfs3.ProcWrite:
			return kindNFS3Wr
		}
		return kindNFS3
	case nfs3.MountProgram:
		if nfs3.MountProc(proc) == nfs3.MountProcMnt {
			return kindMount
		}
	}
	return kindPlain
}

// nfs3StatusLabel names an nfsstat3; values outside RFC 1813 are "other"
// so a buggy store cannot create series without bound.
func nfs3StatusLabel(s nfs3.Status) string {
	if _, ok := n3StatusIndex[s]; ok {
		return s.String()
	}
	return "other"
}

var mountStatuses = []nfs3.MountStat{nfs3.MountOK, nfs3.MountPerm, nfs3.MountNoEnt, nfs3.MountIO,
	nfs3.MountAcces, nfs3.MountNotDir, nfs3.MountInval, nfs3.MountNameTooLong, nfs3.MountNotSupp,
	nfs3.MountServerFault}

func mountStatusLabel(s nfs3.MountStat) string {
	if slices.Contains(mountStatuses, s) {
		return s.String()
	}
	return "other"
}

func statusLabel(st Status) string {
	switch {
	case st.Drop:
		return "DROPPED"
	case st.Auth != rpc.AuthOK:
		return st.Auth.String()
	}
	return st.Accept.String()
}

// ----------------------------------------------------------------------
// Connections per client address.

// clientTracker estimates open TCP connections per client address from the
// calls it sees: a (address, source port) pair that made a call within the
// window counts as one connection. The transport closes connections idle
// for longer than its IdleTimeout, which is the default window, so the
// estimate errs towards counting a just-closed connection for a while, and
// never misses a connection that is doing work. UDP callers count as
// clients but not as connections.
//
// Cardinality is bounded twice: at most maxTrackedConns pairs are kept
// (later ones are counted in mailnfsd_client_tracker_overflow_total), and
// only the TopClients addresses with the most connections get their own
// series; the rest are summed into mailnfsd_client_connections_other. A
// mail cluster has a handful of front ends, so in practice every front end
// has its own series.
type clientTracker struct {
	top    int
	window time.Duration
	clock  func() time.Time

	// tcp and udp map a connection (netip.AddrPort) or a UDP client
	// (netip.Addr) to its last call, a *atomic.Int64 of Unix nanoseconds:
	// a known key is updated without a lock. mu serialises inserts (which
	// check the bound) and expiry.
	tcp, udp sync.Map
	mu       sync.Mutex
	size     atomic.Int64 // entries in tcp and udp
	overflow atomic.Uint64

	connsDesc, otherDesc, clientsDesc, overflowDesc *prometheus.Desc
}

func newClientTracker(top int, window time.Duration, clock func() time.Time) *clientTracker {
	t := &clientTracker{top: top, window: window, clock: clock}
	t.connsDesc = prometheus.NewDesc(metricsNamespace+"_client_connections",
		fmt.Sprintf("TCP connections per client address (the top %d), estimated from calls: a "+
			"(address, port) pair with a call in the last %v counts.", top, window),
		[]string{"client"}, nil)
	t.otherDesc = prometheus.NewDesc(metricsNamespace+"_client_connections_other",
		"TCP connections of the client addresses not listed in mailnfsd_client_connections.", nil, nil)
	t.clientsDesc = prometheus.NewDesc(metricsNamespace+"_clients",
		"Distinct client addresses with a call (TCP or UDP) inside the window.", nil, nil)
	t.overflowDesc = prometheus.NewDesc(metricsNamespace+"_client_tracker_overflow_total",
		"Calls from connections not tracked because the tracker was full.", nil, nil)
	return t
}

// seen records a call from addr over network nw ("tcp" or "udp") at now.
func (t *clientTracker) seen(nw string, addr netip.AddrPort, now time.Time) {
	if !addr.IsValid() {
		return
	}
	var (
		m   *sync.Map
		key any
	)
	if nw == "udp" {
		m, key = &t.udp, addr.Addr().Unmap()
	} else {
		m, key = &t.tcp, netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	}
	ns := now.UnixNano()
	if v, ok := m.Load(key); ok {
		v.(*atomic.Int64).Store(ns)
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if v, ok := m.Load(key); ok {
		v.(*atomic.Int64).Store(ns)
		return
	}
	if t.size.Load() >= maxTrackedConns {
		t.expireLocked(now)
		if t.size.Load() >= maxTrackedConns {
			t.overflow.Add(1)
			return
		}
	}
	v := new(atomic.Int64)
	v.Store(ns)
	m.Store(key, v)
	t.size.Add(1)
}

// expireLocked drops entries idle for longer than the window. t.mu is held.
func (t *clientTracker) expireLocked(now time.Time) {
	limit := now.Add(-t.window).UnixNano()
	for _, m := range []*sync.Map{&t.tcp, &t.udp} {
		m.Range(func(k, v any) bool {
			if v.(*atomic.Int64).Load() < limit {
				m.Delete(k)
				t.size.Add(-1)
			}
			return true
		})
	}
}

// ClientConns is one client address and its estimated TCP connections.
type ClientConns struct {
	Addr  netip.Addr
	Conns int
}

// snapshot returns the clients by connections (most first, then by
// address), and the number of distinct client addresses.
func (t *clientTracker) snapshot() (byConns []ClientConns, clients int, overflow uint64) {
	t.mu.Lock()
	t.expireLocked(t.clock())
	t.mu.Unlock()
	per := make(map[netip.Addr]int)
	all := make(map[netip.Addr]bool)
	t.tcp.Range(func(k, _ any) bool {
		per[k.(netip.AddrPort).Addr()]++
		return true
	})
	t.udp.Range(func(k, _ any) bool {
		all[k.(netip.Addr)] = true
		return true
	})
	for a, n := range per {
		all[a] = true
		byConns = append(byConns, ClientConns{a, n})
	}
	slices.SortFunc(byConns, func(x, y ClientConns) int {
		if x.Conns != y.Conns {
			return y.Conns - x.Conns
		}
		return x.Addr.Compare(y.Addr)
	})
	return byConns, len(all), t.overflow.Load()
}

// Clients returns the client addresses with their estimated TCP
// connections, most connections first (for a status page or a test).
func (m *Metrics) Clients() []ClientConns {
	cs, _, _ := m.clients.snapshot()
	return cs
}

// Describe implements prometheus.Collector.
func (t *clientTracker) Describe(ch chan<- *prometheus.Desc) {
	ch <- t.connsDesc
	ch <- t.otherDesc
	ch <- t.clientsDesc
	ch <- t.overflowDesc
}

// Collect implements prometheus.Collector.
func (t *clientTracker) Collect(ch chan<- prometheus.Metric) {
	cs, clients, overflow := t.snapshot()
	other := 0
	for i, c := range cs {
		if i < t.top {
			ch <- prometheus.MustNewConstMetric(t.connsDesc, prometheus.GaugeValue, float64(c.Conns), c.Addr.String())
		} else {
			other += c.Conns
		}
	}
	ch <- prometheus.MustNewConstMetric(t.otherDesc, prometheus.GaugeValue, float64(other))
	ch <- prometheus.MustNewConstMetric(t.clientsDesc, prometheus.GaugeValue, float64(clients))
	ch <- prometheus.MustNewConstMetric(t.overflowDesc, prometheus.CounterValue, float64(overflow))
}

// ----------------------------------------------------------------------
// Snapshot collectors.

// CollectServer registers a collector that reads s.Stats() at every scrape:
// open connections, calls in flight, DRC hits and size, RPC-level errors,
// panics and drops. It panics if called twice for the same Metrics (the
// series would collide).
func (m *Metrics) CollectServer(s *Server) {
	m.reg.MustRegister(newServerCollector(s))
}

// CollectExports registers a collector that reads the Stats of every
// export (Exports.PathStats) at every scrape (the exports in force then):
// sync requests and actual syncs (their ratio is the group commit size),
// sync errors, open nodes and handle cache hits, labelled by export path.
// Counters are summed over every store that served the path, so a reload
// that gives it a new store does not take them back to zero. It panics if
// called twice for the same Metrics.
func (m *Metrics) CollectExports(x *Exports) {
	m.reg.MustRegister(newStoreCollector(x))
}

func desc(name, help string, labels ...string) *prometheus.Desc {
	return prometheus.NewDesc(metricsNamespace+"_"+name, help, labels, nil)
}

type serverCollector struct {
	s *Server

	conns, accepted, rejected, evicted, inFlight, badCalls, badRecords, rpcErrors, gateRefusals,
	drcHits, drcInProgress, drcLogHits, drcEvictedHits, drcEntries, drcBytes, drcEvictedKeys, panics, drops, udpTooLong, udpForged *prometheus.Desc
}

func newServerCollector(s *Server) *serverCollector {
	return &serverCollector{
		s:              s,
		conns:          desc("connections", "Open TCP connections."),
		accepted:       desc("connections_accepted_total", "TCP connections accepted and kept."),
		rejected:       desc("connections_rejected_total", "TCP connections closed at once because MaxConns or MaxConnsPerHost was reached and no connection was idle."),
		evicted:        desc("connections_evicted_total", "Idle TCP connections closed to make room for a new one at MaxConns or MaxConnsPerHost."),
		inFlight:       desc("in_flight", "Calls being served by the transport now (all programs)."),
		badCalls:       desc("bad_calls_total", "Records that did not decode as an RPC call header."),
		badRecords:     desc("bad_records_total", "TCP connections closed for a broken or oversized record."),
		rpcErrors:      desc("rpc_errors_total", "RPC-level error replies sent by the transport itself, by kind.", "kind"),
		gateRefusals:   desc("gate_refusals_total", "Calls answered by the transport's gate instead of the program."),
		drcHits:        desc("drc_hits_total", "Replies resent from the duplicate request cache."),
		drcInProgress:  desc("drc_in_progress_drops_total", "Retransmissions dropped while the original call ran."),
		drcLogHits:     desc("drc_log_retransmissions_total", "Calls begun by an earlier run of the server and retransmitted to this one (duplicate request log)."),
		drcEvictedHits: desc("drc_evicted_retransmissions_total", "Retransmissions of calls this run began whose replies had been evicted from the duplicate request cache for room (run again, answered as done where their effect is there)."),
		drcEntries:     desc("drc_entries", "Replies held in the duplicate request cache."),
		drcBytes:       desc("drc_bytes", "Bytes of replies held in the duplicate request cache."),
		drcEvictedKeys: desc("drc_evicted_keys", "Calls evicted from the duplicate request cache for room whose keys it still remembers."),
		panics:         desc("panics_total", "Program panics answered with SYSTEM_ERR."),
		drops:          desc("drops_total", "Calls answered with no reply."),
		udpTooLong:     desc("udp_reply_too_long_total", "UDP replies dropped for exceeding one datagram."),
		udpForged:      desc("udp_forged_mapped_total", "Datagrams dropped for an IPv4-mapped source sent to an IPv6 address (forged)."),
	}
}

// Describe implements prometheus.Collector.
func (c *serverCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.conns, c.accepted, c.rejected, c.evicted, c.inFlight, c.badCalls,
		c.badRecords, c.rpcErrors, c.gateRefusals, c.drcHits, c.drcInProgress, c.drcLogHits, c.drcEvictedHits, c.drcEntries,
		c.drcBytes, c.drcEvictedKeys, c.panics, c.drops, c.udpTooLong, c.udpForged} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *serverCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.s.Stats()
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge(c.conns, float64(st.Conns))
	counter(c.accepted, st.ConnsAccepted)
	counter(c.rejected, st.ConnsRejected)
	counter(c.evicted, st.ConnsEvicted)
	gauge(c.inFlight, float64(st.InFlight))
	counter(c.badCalls, st.BadCalls)
	counter(c.badRecords, st.BadRecords)
	counter(c.rpcErrors, st.RPCMismatch, "rpc_mismatch")
	counter(c.rpcErrors, st.AuthErrors, "auth_error")
	counter(c.rpcErrors, st.ProgUnavail, "prog_unavail")
	counter(c.rpcErrors, st.ProgMismatch, "prog_mismatch")
	counter(c.gateRefusals, st.GateRefusals)
	counter(c.drcHits, st.DRCHits)
	counter(c.drcInProgress, st.DRCInProgressDrops)
	counter(c.drcLogHits, st.DRCLogRetransmissions)
	counter(c.drcEvictedHits, st.DRCEvictedRetransmissions)
	gauge(c.drcEntries, float64(st.DRCEntries))
	gauge(c.drcBytes, float64(st.DRCBytes))
	gauge(c.drcEvictedKeys, float64(st.DRCEvictedKeys))
	counter(c.panics, st.Panics)
	counter(c.drops, st.Drops)
	counter(c.udpTooLong, st.UDPReplyTooLong)
	counter(c.udpForged, st.UDPForgedMapped)
}

type storeCollector struct {
	x *Exports

	syncCalls, syncs, syncErrors, groupSize, openNodes, cacheHits, cacheMisses,
	compress, compressPlain, compressStored, compressDicts, compressTrainings *prometheus.Desc
}

func newStoreCollector(x *Exports) *storeCollector {
	return &storeCollector{
		x: x,
		syncCalls: desc("store_sync_requests_total",
			"Requests for a sync (kind=file: of a file, as after a stable WRITE, COMMIT, SETATTR or CREATE; "+
				"kind=dir: of a directory, as after a namespace operation; which ones an operation needs "+
				"depends on the file system's commit model), by export.", "export", "kind"),
		syncs: desc("store_syncs_total",
			"fsync/fdatasync system calls after group commit, by export. "+
				"rate(store_sync_requests_total)/rate(store_syncs_total) is the mean group commit size.",
			"export", "kind"),
		syncErrors: desc("store_sync_errors_total", "Failed syncs (each rotates the write verifier), by export.", "export"),
		groupSize: desc("store_group_commit_mean_size",
			"Sync requests per actual sync since mailnfsd started serving the export, by export (1 = no coalescing).", "export"),
		openNodes:   desc("store_open_nodes", "Objects with an open fd in the store's handle cache, by export.", "export"),
		cacheHits:   desc("store_handle_cache_hits_total", "Handle resolutions served from the open-fd cache, by export.", "export"),
		cacheMisses: desc("store_handle_cache_misses_total", "Handle resolutions that needed open_by_handle_at, by export.", "export"),
		compress: desc("store_compressions_total",
			"Compression at rest, by export and result: compressed in place, expanded before a "+
				"modification, dropped (queue full) or failed.", "export", "result"),
		compressPlain: desc("store_compress_plain_bytes_total",
			"Sizes of the files compressed, before compression, by export.", "export"),
		compressStored: desc("store_compress_stored_bytes_total",
			"Sizes of the files compressed, as stored, by export.", "export"),
		compressDicts: desc("store_compress_dictionaries",
			"Compression dictionaries the store trained on its own mail (kept for reading), by export.", "export"),
		compressTrainings: desc("store_compress_dictionary_trainings_total",
			"Dictionaries trained and adopted by this process, by export.", "export"),
	}
}

// Describe implements prometheus.Collector.
func (c *storeCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.syncCalls, c.syncs, c.syncErrors, c.groupSize, c.openNodes,
		c.cacheHits, c.cacheMisses, c.compress, c.compressPlain, c.compressStored, c.compressDicts, c.compressTrainings} {
		ch <- d
	}
}

// Collect implements prometheus.Collector.
func (c *storeCollector) Collect(ch chan<- prometheus.Metric) {
	table := c.x.Table()
	if table == nil {
		return
	}
	seen := make(map[string]bool, len(table.Exports))
	for _, e := range table.Exports {
		if seen[e.Path] {
			continue
		}
		seen[e.Path] = true
		// Summed over the stores that served the path, so that a
		// reload that opens a new one does not reset the counters.
		st, ok := c.x.PathStats(e.Path)
		if !ok {
			continue
		}
		label := labelValue(e.Path)
		counter := func(d *prometheus.Desc, v uint64, labels ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
		}
		counter(c.syncCalls, st.FileSyncCalls, label, "file")
		counter(c.syncCalls, st.DirSyncCalls, label, "dir")
		counter(c.syncs, st.FileSyncs, label, "file")
		counter(c.syncs, st.DirSyncs, label, "dir")
		counter(c.syncErrors, st.SyncErrors, label)
		mean := 0.0
		if st.SyncBatches > 0 {
			mean = float64(st.SyncCalls) / float64(st.SyncBatches)
		}
		ch <- prometheus.MustNewConstMetric(c.groupSize, prometheus.GaugeValue, mean, label)
		ch <- prometheus.MustNewConstMetric(c.openNodes, prometheus.GaugeValue, float64(st.OpenNodes), label)
		counter(c.cacheHits, st.CacheHits, label)
		counter(c.cacheMisses, st.CacheMisses, label)
		counter(c.compress, st.Compressed, label, "compressed")
		counter(c.compress, st.Expanded, label, "expanded")
		counter(c.compress, st.CompressDropped, label, "dropped")
		counter(c.compress, st.CompressFailed, label, "failed")
		counter(c.compressPlain, st.CompressPlainBytes, label)
		counter(c.compressStored, st.CompressStoredBytes, label)
		ch <- prometheus.MustNewConstMetric(c.compressDicts, prometheus.GaugeValue, float64(st.CompressDicts), label)
		counter(c.compressTrainings, st.CompressTrainings, label)
	}
}
