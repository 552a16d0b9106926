package nfsd_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// scrape GETs url and parses the Prometheus text format.
func scrape(t *testing.T, url string) map[string]*dto.MetricFamily {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s", url, resp.Status)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
		t.Fatalf("Content-Type %q, want the text format", ct)
	}
	p := expfmt.NewTextParser(model.UTF8Validation)
	fams, err := p.TextToMetricFamilies(resp.Body)
	if err != nil {
		t.Fatalf("parse /metrics: %v", err)
	}
	return fams
}

// sample sums the samples of family name whose labels include want: the
// value of counters and gauges, the sample count of histograms. ok is false
// when no sample matched.
func sample(fams map[string]*dto.MetricFamily, name string, want map[string]string) (v float64, ok bool) {
	f := fams[name]
	if f == nil {
		return 0, false
	}
next:
	for _, m := range f.GetMetric() {
		have := map[string]string{}
		for _, l := range m.GetLabel() {
			have[l.GetName()] = l.GetValue()
		}
		for k, w := range want {
			if have[k] != w {
				continue next
			}
		}
		ok = true
		switch {
		case m.Counter != nil:
			v += m.GetCounter().GetValue()
		case m.Gauge != nil:
			v += m.GetGauge().GetValue()
		case m.Histogram != nil:
			v += float64(m.GetHistogram().GetSampleCount())
		}
	}
	return v, ok
}

func labels(kv ...string) map[string]string {
	m := map[string]string{}
	for i := 0; i+1 < len(kv); i += 2 {
		m[kv[i]] = kv[i+1]
	}
	return m
}

// TestMetricsScrape runs a workload through a real mailnfsd with the
// instrumented NFS and MOUNT programs, then scrapes /metrics over HTTP and
// checks that each family moved as the workload says it must.
func TestMetricsScrape(t *testing.T) {
	srv := nfsdtest.StartServer(t)
	d := srv.Daemon
	reg := prometheus.NewRegistry()
	m := nfsd.NewMetrics(reg)
	d.Server.Register(nfsd.InstrumentProgram(d.NFS, m))
	d.Server.Register(nfsd.InstrumentProgram(d.Mount, m))
	m.CollectServer(d.Server)
	m.CollectExports(d.Exports)
	hs := httptest.NewServer(nfsd.MetricsHandler(reg))
	t.Cleanup(hs.Close)

	before := scrape(t, hs.URL)
	if v, ok := sample(before, "mailnfsd_rpc_calls_total", labels("procedure", "GETATTR", "status", "NFS3_OK")); !ok || v != 0 {
		t.Fatalf("before any call: GETATTR NFS3_OK = %v (present %v), want a 0 series", v, ok)
	}

	root := nfsdtest.AuthSys(0, 0)
	mnt := nfsdtest.Dial(t, "tcp", srv.MountAddr)
	dec, err := mnt.Call(nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcMnt), root, func(e *xdr.Encoder) {
		(&nfs3.DirPath{Path: srv.Export}).Encode(e)
	})
	if err != nil {
		t.Fatalf("MNT: %v", err)
	}
	var mr nfs3.MountRes3
	mr.Decode(dec)
	if dec.Err() != nil || mr.Status != nfs3.MountOK {
		t.Fatalf("MNT %s: %v %v", srv.Export, mr.Status, dec.Err())
	}
	if _, err := mnt.Call(nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcMnt), root, func(e *xdr.Encoder) {
		(&nfs3.DirPath{Path: "/no/such/export"}).Encode(e)
	}); err != nil {
		t.Fatalf("MNT of a missing export: %v", err)
	}
	fh := mr.Handle

	c := nfsdtest.Dial(t, "tcp", srv.NFSAddr)
	call := func(proc nfs3.Proc, args func(e *xdr.Encoder)) *xdr.Decoder {
		t.Helper()
		dec, err := c.Call(nfs3.Program, nfs3.Version, uint32(proc), root, args)
		if err != nil {
			t.Fatalf("%v: %v", proc, err)
		}
		return dec
	}
	for range 3 {
		call(nfs3.ProcGetattr, (&nfs3.GetattrArgs{Object: fh}).Encode)
	}
	var lr nfs3.LookupRes
	lr.Decode(call(nfs3.ProcLookup, (&nfs3.LookupArgs{Dir: fh, Name: "missing"}).Encode))
	if lr.Status != nfs3.StatusNoEnt {
		t.Fatalf("LOOKUP missing: %v", lr.Status)
	}
	var cr nfs3.CreateRes
	cr.Decode(call(nfs3.ProcCreate, (&nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: fh, Name: "msg"}, Mode: nfs3.Unchecked}).Encode))
	if cr.Status != nfs3.StatusOK || cr.Object == nil {
		t.Fatalf("CREATE: %v", cr.Status)
	}
	data := bytes.Repeat([]byte("x"), 1000)
	var wr nfs3.WriteRes
	wr.Decode(call(nfs3.ProcWrite, (&nfs3.WriteArgs{File: cr.Object, Count: uint32(len(data)), Stable: nfs3.FileSync, Data: data}).Encode))
	if wr.Status != nfs3.StatusOK || wr.Count != 1000 {
		t.Fatalf("WRITE: %v count %d", wr.Status, wr.Count)
	}
	var rr nfs3.ReadRes
	rr.Decode(call(nfs3.ProcRead, (&nfs3.ReadArgs{File: cr.Object, Count: 4096}).Encode))
	if rr.Status != nfs3.StatusOK || rr.Count != 1000 {
		t.Fatalf("READ: %v count %d", rr.Status, rr.Count)
	}
	// REMOVE syncs the directory under every commit model (CREATE may
	// sync only the new file).
	var rm nfs3.RemoveRes
	rm.Decode(call(nfs3.ProcRemove, (&nfs3.RemoveArgs{Dir: fh, Name: "msg"}).Encode))
	if rm.Status != nfs3.StatusOK {
		t.Fatalf("REMOVE: %v", rm.Status)
	}
	// GETATTR without its handle: GARBAGE_ARGS.
	var re *rpc.ReplyError
	if _, err := c.Call(nfs3.Program, nfs3.Version, uint32(nfs3.ProcGetattr), root, nil); !errors.As(err, &re) {
		t.Fatalf("GETATTR without args: %v, want a GARBAGE_ARGS reply error", err)
	}
	nfsdtest.Dial(t, "udp", srv.NFSAddr).Null(t, nfs3.Program, nfs3.Version)
	m.Denied("/export 10.0.0.0/8(ro)")
	m.Denied("/export 10.0.0.0/8(ro)")

	after := scrape(t, hs.URL)
	checks := []struct {
		name   string
		labels map[string]string
		want   float64 // at least
	}{
		{"mailnfsd_rpc_calls_total", labels("program", "nfs", "version", "3", "procedure", "GETATTR", "status", "NFS3_OK"), 3},
		{"mailnfsd_rpc_calls_total", labels("program", "nfs", "procedure", "LOOKUP", "status", "NFS3ERR_NOENT"), 1},
		{"mailnfsd_rpc_calls_total", labels("program", "nfs", "procedure", "CREATE", "status", "NFS3_OK"), 1},
		{"mailnfsd_rpc_calls_total", labels("program", "nfs", "procedure", "WRITE", "status", "NFS3_OK"), 1},
		{"mailnfsd_rpc_calls_total", labels("program", "nfs", "procedure", "READ", "status", "NFS3_OK"), 1},
		{"mailnfsd_rpc_calls_total", labels("program", "nfs", "procedure", "GETATTR", "status", "GARBAGE_ARGS"), 1},
		{"mailnfsd_rpc_calls_total", labels("program", "nfs", "procedure", "NULL", "status", "SUCCESS"), 1},
		{"mailnfsd_rpc_calls_total", labels("program", "mount", "version", "3", "procedure", "MNT", "status", "MNT3_OK"), 1},
		{"mailnfsd_rpc_calls_total", labels("program", "mount", "procedure", "MNT", "status", "MNT3ERR_ACCES"), 1},
		{"mailnfsd_rpc_duration_seconds", labels("program", "nfs", "procedure", "GETATTR"), 4},
		{"mailnfsd_rpc_duration_seconds", labels("program", "nfs", "procedure", "WRITE"), 1},
		{"mailnfsd_nfs_read_bytes_total", nil, 1000},
		{"mailnfsd_nfs_write_bytes_total", nil, 1000},
		{"mailnfsd_access_denials_total", labels("rule", "/export 10.0.0.0/8(ro)"), 2},
		{"mailnfsd_connections", nil, 2},
		{"mailnfsd_connections_accepted_total", nil, 2},
		{"mailnfsd_client_connections", labels("client", "127.0.0.1"), 2},
		{"mailnfsd_clients", nil, 1},
		{"mailnfsd_store_sync_requests_total", labels("export", srv.Export, "kind", "file"), 1},
		{"mailnfsd_store_sync_requests_total", labels("export", srv.Export, "kind", "dir"), 1},
		{"mailnfsd_store_syncs_total", labels("export", srv.Export), 2},
		{"mailnfsd_store_group_commit_mean_size", labels("export", srv.Export), 1},
	}
	for _, c := range checks {
		got, ok := sample(after, c.name, c.labels)
		if !ok || got < c.want {
			t.Errorf("%s%v = %v (present %v), want >= %v", c.name, c.labels, got, ok, c.want)
		}
	}
	// Exact counts where the workload fixes them.
	if got, _ := sample(after, "mailnfsd_nfs_read_bytes_total", nil); got != 1000 {
		t.Errorf("read bytes = %v, want 1000", got)
	}
	if got, _ := sample(after, "mailnfsd_rpc_calls_total", labels("procedure", "GETATTR", "status", "NFS3_OK")); got != 3 {
		t.Errorf("GETATTR NFS3_OK = %v, want 3", got)
	}
	if got, _ := sample(after, "mailnfsd_rpc_in_flight", labels("program", "nfs")); got != 0 {
		t.Errorf("in flight after the workload = %v, want 0", got)
	}
	for _, name := range []string{"mailnfsd_drc_hits_total", "mailnfsd_panics_total", "mailnfsd_in_flight", "mailnfsd_drc_entries",
		"mailnfsd_store_compressions_total", "mailnfsd_store_compress_stored_bytes_total",
		"mailnfsd_store_compress_dictionaries", "mailnfsd_store_compress_dictionary_trainings_total"} {
		if _, ok := sample(after, name, nil); !ok {
			t.Errorf("%s missing from the scrape", name)
		}
	}
	// The transport's own per-procedure count agrees with the decorator's.
	st := d.Server.Stats()
	if n := st.Calls[nfsd.CallKey{Prog: nfs3.Program, Proc: uint32(nfs3.ProcGetattr)}]; n != 4 {
		t.Errorf("transport counted %d GETATTR calls, want 4", n)
	}
	if cs := m.Clients(); len(cs) != 1 || cs[0].Addr != netip.MustParseAddr("127.0.0.1") || cs[0].Conns != 2 {
		t.Errorf("Clients() = %v, want 127.0.0.1 with 2 connections", cs)
	}
}

// TestInstrumentProgramKeepsCacheable checks that the decorator forwards
// Cacheable, so the duplicate request cache still replays WRITE.
func TestInstrumentProgramKeepsCacheable(t *testing.T) {
	m := nfsd.NewMetrics(prometheus.NewRegistry())
	p := nfsd.InstrumentProgram(&nfsd.NFS3{}, m)
	c, ok := p.(nfsd.Cacheable)
	if !ok {
		t.Fatal("instrumented NFS3 does not implement Cacheable")
	}
	if !c.NonIdempotent(3, uint32(nfs3.ProcWrite)) || c.NonIdempotent(3, uint32(nfs3.ProcGetattr)) {
		t.Error("NonIdempotent not forwarded")
	}
	if _, ok := nfsd.InstrumentProgram(&nfsd.Mount{}, m).(nfsd.Cacheable); ok {
		t.Error("instrumented Mount claims Cacheable")
	}
	if p.Prog() != nfs3.Program {
		t.Errorf("Prog() = %d", p.Prog())
	}
}

// rawProgram answers every call with fixed results, to drive the
// decorator's result parsing with arbitrary bytes.
type rawProgram struct {
	prog   uint32
	st     nfsd.Status
	out    []byte
	panics bool
}

func (p *rawProgram) Prog() uint32                 { return p.prog }
func (p *rawProgram) Versions() (low, high uint32) { return 3, 3 }
func (p *rawProgram) Serve(_ context.Context, _ *nfsd.Request, res *xdr.Encoder) nfsd.Status {
	if p.panics {
		panic("boom")
	}
	res.FixedOpaque(p.out)
	return p.st
}

func serve(p nfsd.Program, proc uint32) nfsd.Status {
	e := xdr.NewEncoder(nil)
	e.Uint32(0xdeadbeef) // stands for the reply header before the results
	return p.Serve(context.Background(), &nfsd.Request{Vers: 3, Proc: proc, Net: "tcp",
		Addr: netip.MustParseAddrPort("127.0.0.1:700")}, e)
}

// TestInstrumentStatuses covers the status labels the workload above does
// not reach: panics, drops, auth errors, unknown procedures and statuses.
func TestInstrumentStatuses(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := nfsd.NewMetrics(reg)
	word := func(v uint32) []byte { e := xdr.NewEncoder(nil); e.Uint32(v); return e.Bytes() }
	serve(nfsd.InstrumentProgram(&rawProgram{prog: nfs3.Program, st: nfsd.StatusOK, out: word(99999)}, m), uint32(nfs3.ProcLookup))
	serve(nfsd.InstrumentProgram(&rawProgram{prog: nfs3.Program, st: nfsd.StatusOK}, m), uint32(nfs3.ProcLookup))
	serve(nfsd.InstrumentProgram(&rawProgram{prog: nfs3.Program, st: nfsd.Status{Drop: true}}, m), uint32(nfs3.ProcRemove))
	serve(nfsd.InstrumentProgram(&rawProgram{prog: nfs3.Program, st: nfsd.Status{Accept: rpc.Success, Auth: rpc.AuthTooWeak}}, m), uint32(nfs3.ProcRemove))
	serve(nfsd.InstrumentProgram(&rawProgram{prog: nfs3.Program, st: nfsd.StatusProcUnavail}, m), 1<<20)
	serve(nfsd.InstrumentProgram(&rawProgram{prog: 400000, st: nfsd.StatusOK}, m), 7)
	func() {
		defer func() { recover() }()
		serve(nfsd.InstrumentProgram(&rawProgram{prog: nfs3.Program, panics: true}, m), uint32(nfs3.ProcCommit))
	}()
	// A truncated READ result counts the call but no bytes.
	serve(nfsd.InstrumentProgram(&rawProgram{prog: nfs3.Program, st: nfsd.StatusOK, out: append(word(0), word(1)...)}, m), uint32(nfs3.ProcRead))

	hs := httptest.NewServer(nfsd.MetricsHandler(reg))
	defer hs.Close()
	fams := scrape(t, hs.URL)
	for _, c := range []struct {
		labels map[string]string
		want   float64
	}{
		{labels("procedure", "LOOKUP", "status", "other"), 2},
		{labels("procedure", "REMOVE", "status", "DROPPED"), 1},
		{labels("procedure", "REMOVE", "status", "AUTH_TOOWEAK"), 1},
		{labels("procedure", "unknown", "status", "PROC_UNAVAIL"), 1},
		{labels("program", "400000", "procedure", "PROC_7", "status", "SUCCESS"), 1},
		{labels("procedure", "COMMIT", "status", "PANIC"), 1},
		{labels("procedure", "READ", "status", "NFS3_OK"), 1},
	} {
		if got, ok := sample(fams, "mailnfsd_rpc_calls_total", c.labels); !ok || got != c.want {
			t.Errorf("calls%v = %v (present %v), want %v", c.labels, got, ok, c.want)
		}
	}
	if got, _ := sample(fams, "mailnfsd_nfs_read_bytes_total", nil); got != 0 {
		t.Errorf("read bytes from a truncated result = %v, want 0", got)
	}
	if got, _ := sample(fams, "mailnfsd_rpc_in_flight", labels("program", "nfs")); got != 0 {
		t.Errorf("in flight after a panic = %v, want 0", got)
	}
}

// TestDeniedBounded checks that Denied stops creating series after 256
// distinct rules.
func TestDeniedBounded(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := nfsd.NewMetrics(reg)
	for i := range 300 {
		m.Denied(strings.Repeat("r", i+1))
	}
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == "mailnfsd_access_denials_total" {
			if n := len(f.GetMetric()); n != 257 {
				t.Errorf("%d denial series, want 256 rules + other", n)
			}
			return
		}
	}
	t.Error("no denial family")
}

// TestClientConnectionsTopN checks the bounded per-client series and the
// window expiry with an injected clock.
func TestClientConnectionsTopN(t *testing.T) {
	var mu sync.Mutex
	now := time.Unix(1e9, 0)
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	reg := prometheus.NewRegistry()
	m := nfsd.NewMetricsWithOptions(reg, nfsd.MetricsOptions{TopClients: 2, ClientWindow: time.Minute, Clock: clock})
	p := nfsd.InstrumentProgram(&rawProgram{prog: 400000, st: nfsd.StatusOK}, m)
	call := func(nw, addr string) {
		p.Serve(context.Background(), &nfsd.Request{Vers: 3, Net: nw, Addr: netip.MustParseAddrPort(addr)}, xdr.NewEncoder(nil))
	}
	// 10.0.0.1: 3 connections, 10.0.0.2: 2, 10.0.0.3: 1, 10.0.0.4: UDP only.
	for _, a := range []string{"10.0.0.1:1", "10.0.0.1:2", "10.0.0.1:3", "10.0.0.2:1", "10.0.0.2:2", "10.0.0.3:1", "10.0.0.1:1"} {
		call("tcp", a)
	}
	call("udp", "10.0.0.4:5")
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	if n := len(byName["mailnfsd_client_connections"].GetMetric()); n != 2 {
		t.Errorf("%d per-client series, want the top 2", n)
	}
	for addr, want := range map[string]float64{"10.0.0.1": 3, "10.0.0.2": 2} {
		if got, _ := sample(byName, "mailnfsd_client_connections", labels("client", addr)); got != want {
			t.Errorf("connections of %s = %v, want %v", addr, got, want)
		}
	}
	if got, _ := sample(byName, "mailnfsd_client_connections_other", nil); got != 1 {
		t.Errorf("other = %v, want 1", got)
	}
	if got, _ := sample(byName, "mailnfsd_clients", nil); got != 4 {
		t.Errorf("clients = %v, want 4", got)
	}

	mu.Lock()
	now = now.Add(2 * time.Minute)
	mu.Unlock()
	call("tcp", "10.0.0.3:1")
	if cs := m.Clients(); len(cs) != 1 || cs[0].Addr.String() != "10.0.0.3" {
		t.Errorf("after the window: %v, want only 10.0.0.3", cs)
	}
}

// FuzzInstrumentResults feeds arbitrary result bytes to the decorator's
// parsing of NFSv3 and MOUNT results: it must never panic, and must not
// count bytes for a result that does not decode.
func FuzzInstrumentResults(f *testing.F) {
	seed := func(words ...uint32) []byte {
		e := xdr.NewEncoder(nil)
		for _, w := range words {
			e.Uint32(w)
		}
		return e.Bytes()
	}
	f.Add(uint32(nfs3.ProcRead), seed(0, 0, 100, 1, 0))
	f.Add(uint32(nfs3.ProcWrite), seed(0, 0, 0, 100, 2, 0, 0))
	f.Add(uint32(nfs3.ProcWrite), seed(0, 1))
	f.Add(uint32(nfs3.ProcLookup), seed(2))
	f.Add(uint32(nfs3.ProcRead), []byte{0, 0})
	f.Add(uint32(99), seed(0))
	f.Fuzz(func(t *testing.T, proc uint32, out []byte) {
		m := nfsd.NewMetrics(prometheus.NewRegistry())
		for _, prog := range []uint32{nfs3.Program, nfs3.MountProgram} {
			p := nfsd.InstrumentProgram(&rawProgram{prog: prog, st: nfsd.StatusOK, out: out}, m)
			if st := serve(p, proc); st != nfsd.StatusOK {
				t.Fatalf("status changed to %v", st)
			}
		}
	})
}

// BenchmarkInstrument measures what the decorator adds to one successful
// call (clock reads, in-flight gauge, client tracker, counter, histogram).
func BenchmarkInstrument(b *testing.B) {
	ok := append(make([]byte, 0, 4), 0, 0, 0, 0) // NFS3_OK
	for _, tc := range []struct {
		name       string
		instrument bool
	}{{"bare", false}, {"instrumented", true}} {
		b.Run(tc.name, func(b *testing.B) {
			var p nfsd.Program = &rawProgram{prog: nfs3.Program, st: nfsd.StatusOK, out: ok}
			if tc.instrument {
				p = nfsd.InstrumentProgram(p, nfsd.NewMetrics(prometheus.NewRegistry()))
			}
			b.RunParallel(func(pb *testing.PB) {
				e := xdr.NewEncoder(make([]byte, 0, 64))
				req := &nfsd.Request{Vers: 3, Proc: uint32(nfs3.ProcGetattr), Net: "tcp",
					Addr: netip.MustParseAddrPort("10.1.2.11:800")}
				for pb.Next() {
					e.Reset()
					p.Serve(context.Background(), req, e)
				}
			})
		})
	}
}

// TestInstrumentConcurrent serves calls from several goroutines while
// scraping, for the race detector, and checks that no call is lost.
func TestInstrumentConcurrent(t *testing.T) {
	reg := prometheus.NewRegistry()
	m := nfsd.NewMetrics(reg)
	p := nfsd.InstrumentProgram(&rawProgram{prog: nfs3.Program, st: nfsd.StatusOK, out: []byte{0, 0, 0, 0}}, m)
	const workers, calls = 4, 500
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			for i := range calls {
				port := uint16(1000 + w*calls + i%50)
				p.Serve(context.Background(), &nfsd.Request{Vers: 3, Proc: uint32(nfs3.ProcGetattr), Net: "tcp",
					Addr: netip.AddrPortFrom(netip.MustParseAddr("10.1.2.11"), port)}, xdr.NewEncoder(nil))
			}
		})
	}
	wg.Go(func() {
		for range 20 {
			if _, err := reg.Gather(); err != nil {
				t.Error(err)
				return
			}
		}
	})
	wg.Wait()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	byName := map[string]*dto.MetricFamily{}
	for _, f := range fams {
		byName[f.GetName()] = f
	}
	if got, _ := sample(byName, "mailnfsd_rpc_calls_total", labels("procedure", "GETATTR", "status", "NFS3_OK")); got != workers*calls {
		t.Errorf("GETATTR NFS3_OK = %v, want %d", got, workers*calls)
	}
	if got, _ := sample(byName, "mailnfsd_client_connections", labels("client", "10.1.2.11")); got != workers*50 {
		t.Errorf("connections of 10.1.2.11 = %v, want %d", got, workers*50)
	}
}

// TestMetricsNonUTF8Export serves an export whose path is not UTF-8 (a
// Latin-1 directory name, written raw in the exports file, or as \351 in
// the Linux syntax; the parser accepts both) with metrics on. Prometheus label values must be UTF-8:
// the export's store series made every scrape fail with HTTP 500, and a
// refused MNT of its subdirectory, counted by rule, panicked and was
// answered SYSTEM_ERR (mailnfs deliver then failed with 75 instead of
// mounting the export). Such values are now labelled quoted.
func TestMetricsNonUTF8Export(t *testing.T) {
	const name = "bo\xe9te"
	reg := prometheus.NewRegistry()
	m := nfsd.NewMetrics(reg)
	srv := nfsdtest.StartServer(t,
		nfsdtest.WithConfig(func(c *nfsd.Config) {
			c.Denied = m.Denied
			c.Instrument = func(p nfsd.Program) nfsd.Program { return nfsd.InstrumentProgram(p, m) }
		}),
		nfsdtest.WithSetup(func(t testing.TB, root string) {
			if err := os.MkdirAll(filepath.Join(root, name, "sub"), 0o755); err != nil {
				t.Fatal(err)
			}
		}),
		nfsdtest.WithExports(func(root string) string {
			return root + "/" + name + " -maproot=0 -network 127.0.0.0/8\n"
		}))
	export := filepath.Join(srv.Root, name)
	m.CollectServer(srv.Daemon.Server)
	m.CollectExports(srv.Daemon.Exports)
	hs := httptest.NewServer(nfsd.MetricsHandler(reg))
	t.Cleanup(hs.Close)

	mnt := nfsdtest.Dial(t, "tcp", srv.MountAddr)
	root := nfsdtest.AuthSys(0, 0)
	for _, tc := range []struct {
		path string
		want nfs3.MountStat
	}{
		{export, nfs3.MountOK},
		{export + "/sub", nfs3.MountAcces}, // no alldirs: a denial, counted by rule
	} {
		dec, err := mnt.Call(nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcMnt), root, func(e *xdr.Encoder) {
			(&nfs3.DirPath{Path: tc.path}).Encode(e)
		})
		if err != nil {
			t.Fatalf("MNT %q: %v", tc.path, err)
		}
		var mr nfs3.MountRes3
		mr.Decode(dec)
		if mr.Status != tc.want {
			t.Errorf("MNT %q: %v, want %v", tc.path, mr.Status, tc.want)
		}
	}
	fams := scrape(t, hs.URL)
	quoted := strconv.Quote(export)
	if _, ok := sample(fams, "mailnfsd_store_syncs_total", labels("export", quoted)); !ok {
		t.Errorf("no mailnfsd_store_syncs_total{export=%s}", quoted)
	}
	if v, _ := sample(fams, "mailnfsd_access_denials_total", labels("rule", strconv.Quote("mount:alldirs:"+export))); v != 1 {
		t.Errorf("denials of the alldirs rule: %v, want 1", v)
	}
}
