package bench

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// haveMailnfsd reports whether cmd/mailnfsd exists yet (it is written in
// parallel with the bench; once it exists it is always tested).
func haveMailnfsd(t *testing.T) bool {
	root, err := ModuleRoot(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	_, err = os.Stat(filepath.Join(root, "cmd", "mailnfsd"))
	return err == nil
}

// TestRunTiny runs the whole orchestration at a tiny scale against every
// server and checks that each step was measured and verified.
func TestRunTiny(t *testing.T) {
	requireRoot(t)
	kinds := []string{KindGoNFS, KindGanesha}
	if haveMailnfsd(t) {
		kinds = append([]string{KindMailnfsd}, kinds...)
	} else {
		t.Log("cmd/mailnfsd does not exist yet: running without it")
	}
	var servers []ServerOptions
	for _, k := range kinds {
		servers = append(servers, ServerOptions{Kind: k, Bin: testServerBin(t, k)})
	}
	census := 0
	if _, err := exec.LookPath("strace"); err == nil {
		census = 16
	}
	const count, listN = 24, 300
	cfg := Config{
		Servers:       servers,
		Driver:        []string{testBinary(t, "./bench/cmd/nfsbench"), "step", "-client", "client"},
		Concurrencies: []int{1, 4},
		Count:         count,
		Size:          3000,
		Mailboxes:     3,
		ListEntries:   listN,
		ListPasses:    2,
		CensusCount:   census,
		UID:           1000, GID: 1000,
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := Run(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Failures) > 0 {
		t.Errorf("failures:\n%s", strings.Join(rep.Failures, "\n"))
	}
	if got, want := len(rep.Deliver), len(kinds)*2; got != want {
		t.Fatalf("%d delivery rows, want %d", got, want)
	}
	for i, d := range rep.Deliver {
		wantServer, wantC := kinds[i%len(kinds)], []int{1, 4}[i/len(kinds)]
		if d.Server != wantServer || d.Concurrency != wantC {
			t.Errorf("row %d is %s c=%d, want %s c=%d (interleaved order)", i, d.Server, d.Concurrency, wantServer, wantC)
		}
		if d.Delivered != count || d.Errors != 0 {
			t.Errorf("%s c=%d: delivered %d with %d errors, want %d", d.Server, d.Concurrency, d.Delivered, d.Errors, count)
		}
		// count timed deliveries plus one warm-up per deliverer.
		if !d.Verify.OK() || d.Verify.Found != count+d.Concurrency {
			t.Errorf("%s c=%d: verification %v, want ok (%d)", d.Server, d.Concurrency, d.Verify, count+d.Concurrency)
		}
		if perfAvailable() {
			// go-nfs never syncs; Ganesha syncs every message's data once.
			switch spd := d.SyncsPerDelivery(); {
			case d.Server == KindGoNFS && spd != 0, d.Server == KindGanesha && spd < 1, spd < 0:
				t.Errorf("%s c=%d: %v syncs per delivery (%v)", d.Server, d.Concurrency, spd, d.Syncs)
			}
		}
		if d.Elapsed <= 0 || d.Latency.P50 <= 0 || d.Latency.P99 < d.Latency.P50 || d.PeakRSS <= 0 {
			t.Errorf("%s c=%d: implausible measurement %+v", d.Server, d.Concurrency, d)
		}
	}
	if len(rep.List) != len(kinds) {
		t.Fatalf("%d listing rows, want %d", len(rep.List), len(kinds))
	}
	for _, l := range rep.List {
		if len(l.Seen) != 2 || l.Seen[0] != listN || l.Seen[1] != listN {
			t.Errorf("%s listed %v entries, want %d twice", l.Server, l.Seen, listN)
		}
	}
	if census > 0 {
		for _, c := range rep.Census {
			if c.Deliveries != census {
				t.Errorf("%s census counted %d deliveries, want %d", c.Server, c.Deliveries, census)
			}
			// Ganesha fsyncs FILE_SYNC writes; go-nfs never syncs.
			if c.Server == KindGanesha && c.PerDelivery() < 1 {
				t.Errorf("ganesha census: %v syncs per delivery, want >= 1", c.PerDelivery())
			}
			if c.Server == KindGoNFS && c.PerDelivery() != 0 {
				t.Errorf("gonfs census: %v syncs per delivery, want 0", c.PerDelivery())
			}
		}
	}
	var md strings.Builder
	if err := rep.WriteMarkdown(&md, "go test ./bench"); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"| server | deliverers | deliveries/s |", "| ganesha | 4 |", "`go test ./bench`"} {
		if !strings.Contains(md.String(), want) {
			t.Errorf("report lacks %q:\n%s", want, md.String())
		}
	}
	if len(rep.Namespaces) != len(kinds) {
		t.Errorf("run used namespaces %v, want one per server", rep.Namespaces)
	}
	stale, err := StaleNetNS()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range stale {
		if slices.Contains(rep.Namespaces, n) {
			t.Errorf("namespace %s left behind", n)
		}
	}
}

// TestRunRawDriver runs the bench's own raw client (FILE_SYNC and
// UNSTABLE+COMMIT) against go-nfs at a tiny scale.
func TestRunRawDriver(t *testing.T) {
	requireRoot(t)
	for _, write := range []string{"filesync", "unstable"} {
		t.Run(write, func(t *testing.T) {
			cfg := Config{
				Servers:       []ServerOptions{{Kind: KindGoNFS, Bin: testServerBin(t, KindGoNFS)}},
				Driver:        []string{testBinary(t, "./bench/cmd/nfsbench"), "step", "-client", "raw", "-write", write},
				Concurrencies: []int{3},
				Count:         30,
				Size:          SizeMix,
				Mailboxes:     2,
				ListEntries:   -1,
				UID:           1000, GID: 1000,
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			rep, err := Run(ctx, cfg)
			if err != nil {
				t.Fatal(err)
			}
			if len(rep.Failures) > 0 {
				t.Errorf("failures:\n%s", strings.Join(rep.Failures, "\n"))
			}
			if len(rep.Deliver) != 1 || !rep.Deliver[0].Verify.OK() || rep.Deliver[0].Verify.Found != 33 {
				t.Errorf("got %+v, want one verified step of 30+3 deliveries", rep.Deliver)
			}
		})
	}
}
