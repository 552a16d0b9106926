package nfsd

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/maildirfs"
)

// TestStoreCountersSurviveReload: an export's store counters in the
// metrics never go down while the process runs. A reload that drops a
// path and brings it back after retireGrace (or finds another directory
// there) opens a new store, whose own counts start at zero; before, the
// path's mailnfsd_store_* counters fell back to zero with it (70 syncs,
// then 0, seen on a running mailnfsd after such a reload).
func TestStoreCountersSurviveReload(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("maildirfs needs root (CAP_DAC_READ_SEARCH)")
	}
	defer func(g time.Duration) { retireGrace = g }(retireGrace)
	retireGrace = 50 * time.Millisecond
	dir := t.TempDir()
	box, other := filepath.Join(dir, "box"), filepath.Join(dir, "other")
	for _, d := range []string{box, other} {
		exNoErr(t, os.Mkdir(d, 0o755))
	}
	table := func(paths ...string) *ExportTable {
		text := ""
		for _, p := range paths {
			text += p + " 127.0.0.1(rw,no_root_squash)\n"
		}
		tab, err := ParseExports("exports", []byte(text), nil)
		exNoErr(t, err)
		return tab
	}
	x, err := OpenExports(table(box, other), ExportsOptions{StateDir: filepath.Join(dir, "state")})
	exNoErr(t, err)
	defer func() { exNoErr(t, x.Close()) }()
	reg := prometheus.NewRegistry()
	NewMetrics(reg).CollectExports(x)

	// counter returns the sample of a store counter family for box.
	counter := func(name string, kv ...string) float64 {
		t.Helper()
		fams, err := reg.Gather()
		exNoErr(t, err)
		for _, f := range fams {
			if f.GetName() != name {
				continue
			}
		next:
			for _, m := range f.GetMetric() {
				have := map[string]string{}
				for _, l := range m.GetLabel() {
					have[l.GetName()] = l.GetValue()
				}
				want := append([]string{"export", box}, kv...)
				for i := 0; i+1 < len(want); i += 2 {
					if have[want[i]] != want[i+1] {
						continue next
					}
				}
				return m.GetCounter().GetValue()
			}
		}
		t.Fatalf("no %s%v for %s in the scrape", name, kv, box)
		return 0
	}
	req := &Request{Addr: netip.MustParseAddrPort("127.0.0.1:900"), AuthSys: &rpc.AuthSysParms{UID: 0}}
	n := 0
	work := func() {
		// Namespace operations: directory sync requests and handle
		// cache hits on box's store.
		t.Helper()
		for range 3 {
			acc, err := x.Authorize(req, x.Store(box).Root())
			exNoErr(t, err)
			n++
			_, _, _, err = acc.Store.Mkdir(x.Store(box).Root(), acc.Cred, fmt.Sprint("d", n), maildirfs.SetAttr{})
			exNoErr(t, err)
		}
	}
	families := [][]string{
		{"mailnfsd_store_sync_requests_total", "kind", "dir"},
		{"mailnfsd_store_syncs_total", "kind", "dir"},
		{"mailnfsd_store_handle_cache_hits_total"},
	}
	last := make([]float64, len(families))
	check := func(step string) {
		t.Helper()
		for i, f := range families {
			v := counter(f[0], f[1:]...)
			if v < last[i] {
				t.Errorf("%s: %s%v went down from %v to %v", step, f[0], f[1:], last[i], v)
			}
			last[i] = v
		}
	}
	work()
	check("before any reload")
	if last[0] == 0 {
		t.Fatal("MKDIRs made no directory sync requests")
	}
	first := x.Store(box)

	// Dropped, and back after its store was closed: a new store.
	exNoErr(t, x.Reload(table(other)))
	deadline := time.Now().Add(5 * time.Second)
	for {
		x.mu.Lock()
		n := len(x.mu.retired)
		x.mu.Unlock()
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the dropped store was not closed after its grace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	exNoErr(t, x.Reload(table(box, other)))
	exTrue(t, x.Store(box) != first, "the path back after the grace has its old store")
	check("back after the grace")
	work()
	check("after more work on the new store")

	// Another directory at the path: the old store is retired (still
	// open for the grace), the new one serves.
	exNoErr(t, os.Rename(box, box+".old"))
	exNoErr(t, os.Mkdir(box, 0o755))
	exNoErr(t, x.Reload(table(box, other)))
	check("directory replaced, old store still open")
	time.Sleep(4 * retireGrace)
	check("directory replaced, old store closed")
	work()
	check("after work on the third store")
}
