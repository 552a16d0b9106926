package main

import (
	"io"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestMetricsFlag runs the binary with -metrics and checks that the calls
// it served show up in a scrape: per-procedure counters of NFS and MOUNT
// (instrumented from the first call) and the transport's snapshot.
func TestMetricsFlag(t *testing.T) {
	nfsdtest.RequireRoot(t)
	dir := t.TempDir()
	export := filepath.Join(dir, "export")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	exports := filepath.Join(dir, "exports")
	writeFile(t, exports, export+" -network 127.0.0.0/8\n")
	ports := freePorts(t, 3)
	nfsPort, pmPort, metricsPort := ports[0], ports[1], ports[2]
	metricsAddr := "127.0.0.1:" + strconv.Itoa(metricsPort)
	p := startBinary(t, "-exports", exports, "-state-dir", filepath.Join(dir, "state"),
		"-listen", "127.0.0.1", "-nfs-port", strconv.Itoa(nfsPort), "-portmap-port", strconv.Itoa(pmPort),
		"-metrics", metricsAddr)
	p.waitListening(t, nfsPort, pmPort, metricsPort)

	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(nfsPort))
	c := nfsdtest.Dial(t, "tcp", addr)
	mountOn(t, c, export)
	for i := 0; i < 3; i++ {
		c.Null(t, nfs3.Program, nfs3.Version)
	}
	// A refused MNT is counted as a denial by its rule.
	d, err := c.Call(nfs3.MountProgram, 3, uint32(nfs3.MountProcMnt), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
		(&nfs3.DirPath{Path: filepath.Join(dir, "elsewhere")}).Encode(e)
	})
	if err != nil {
		t.Fatal(err)
	}
	var mnt nfs3.MountRes3
	mnt.Decode(d)
	if mnt.Status != nfs3.MountAcces {
		t.Fatalf("MNT of an unexported path: %v, want MNT3ERR_ACCES", mnt.Status)
	}

	var body string
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get("http://" + metricsAddr + "/metrics")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			body = string(b)
		}
		if strings.Contains(body, "mailnfsd_rpc_calls_total") || time.Now().After(deadline) {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	var series []string
	for _, l := range strings.Split(body, "\n") {
		if strings.HasPrefix(l, "mailnfsd_") {
			series = append(series, l)
		}
	}
	if len(series) == 0 {
		t.Fatalf("no mailnfsd_ series in the scrape:\n%.2000s", body)
	}
	// counted sums the samples of rpc_calls_total (or of the series named
	// by a first argument ending in "{") whose lines contain all of sub.
	counted := func(sub ...string) float64 {
		name := "mailnfsd_rpc_calls_total{"
		if len(sub) > 0 && strings.HasSuffix(sub[0], "{") {
			name, sub = sub[0], sub[1:]
		}
		var n float64
	lines:
		for _, l := range series {
			if !strings.HasPrefix(l, name) {
				continue
			}
			for _, s := range sub {
				if !strings.Contains(l, s) {
					continue lines
				}
			}
			v, err := strconv.ParseFloat(l[strings.LastIndexByte(l, ' ')+1:], 64)
			if err == nil {
				n += v
			}
		}
		return n
	}
	if n := counted(`procedure="MNT"`, `program="mount"`, `status="MNT3_OK"`); n != 1 {
		t.Errorf("MNT counted %v times, want 1", n)
	}
	if n := counted(`mailnfsd_access_denials_total{`, `rule="mount:not_exported"`); n != 1 {
		t.Errorf("denials of rule mount:not_exported: %v, want 1", n)
	}
	if n := counted(`procedure="NULL"`, `program="nfs"`); n != 3 {
		t.Errorf("NFS NULL counted %v times, want 3", n)
	}
	for _, w := range []string{"mailnfsd_connections_accepted_total", "mailnfsd_store_syncs_total", "go_goroutines"} {
		if !strings.Contains(body, w) {
			t.Errorf("scrape lacks %s", w)
		}
	}
	if t.Failed() {
		t.Logf("mailnfsd series:\n%s", strings.Join(series, "\n"))
	}
}
