package bench

import (
	"os"
	"path/filepath"
	"slices"
	"testing"
	"time"
)

func TestParseStatCPU(t *testing.T) {
	// A real /proc/PID/stat line with a command name holding ") (".
	line := []byte("4242 (we) (ird) S 1 4242 4242 0 -1 4194560 1000 0 0 0 150 50 7 3 20 0 9 0 100 1000000 200 18446744073709551615 1 1 0 0 0 0 0 0 0 0 0 0 17 1 0 0 0 0 0")
	got, err := parseStatCPU(line)
	if err != nil {
		t.Fatal(err)
	}
	if want := 210 * time.Second / clockTicks; got != want {
		t.Errorf("parseStatCPU = %v, want %v", got, want)
	}
	if _, err := parseStatCPU([]byte("1 (x) S 1 2")); err == nil {
		t.Error("short line: no error")
	}
}

func TestSampleProcSelf(t *testing.T) {
	s, err := SampleProc(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	if s.RSS <= 0 || s.PeakRSS < s.RSS {
		t.Errorf("SampleProc(self) = %+v", s)
	}
}

func TestParsePerfCSV(t *testing.T) {
	in := "# started on Sat Nov 28\n\n" +
		"12,,syscalls:sys_enter_fsync,1000,100.00,,\n" +
		"3,,syscalls:sys_enter_fdatasync,1000,100.00,,\n" +
		"<not counted>,,syscalls:sys_enter_syncfs,0,0.00,,\n"
	got := parsePerfCSV(in)
	if got["fsync"] != 12 || got["fdatasync"] != 3 || got["syncfs"] != 0 || len(got) != 3 {
		t.Errorf("parsePerfCSV = %v", got)
	}
}

func TestParseStraceSummary(t *testing.T) {
	in := `% time     seconds  usecs/call     calls    errors syscall
------ ----------- ----------- --------- --------- ----------------
 90.00    0.000900           9       100           fsync
 10.00    0.000100          10        10         2 fdatasync
------ ----------- ----------- --------- --------- ----------------
100.00    0.001000           9       110         2 total
`
	p := filepath.Join(t.TempDir(), "s")
	if err := os.WriteFile(p, []byte(in), 0o600); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	got, err := parseStraceSummary(f)
	if err != nil {
		t.Fatal(err)
	}
	if got["fsync"] != 100 || got["fdatasync"] != 10 || len(got) != 2 {
		t.Errorf("parseStraceSummary = %v", got)
	}
}

func FuzzParseStatCPU(f *testing.F) {
	f.Add([]byte("1 (init) S 0 1 1 0 -1 4194560 1 0 0 0 5 6 7 8 20 0 1 0 1 1 1"))
	f.Add([]byte(")"))
	f.Fuzz(func(t *testing.T, b []byte) {
		if d, err := parseStatCPU(b); err == nil && d%(time.Second/clockTicks) != 0 {
			t.Fatalf("parseStatCPU(%q) = %v, not a whole number of ticks", b, d)
		}
	})
}

func FuzzParsePerfCSV(f *testing.F) {
	f.Add("12,,syscalls:sys_enter_fsync,1000,100.00,,\n")
	f.Add(",,,\n<not counted>,,syscalls:sys_enter_sync")
	f.Fuzz(func(t *testing.T, s string) {
		for k, v := range parsePerfCSV(s) {
			if !slices.Contains(syncCalls, k) || v < 0 {
				t.Fatalf("parsePerfCSV(%q) has %q = %d", s, k, v)
			}
		}
	})
}

// TestParseNFSURL: the raw driver reads URLs as package client does, a
// bare IPv6 host (libnfs's form) included; it took the last group of
// nfs://fd00::1/... for a port and dialled host "fd00:".
func TestParseNFSURL(t *testing.T) {
	for _, c := range []struct {
		in   string
		want nfsURL
	}{
		{"nfs://127.0.0.1/srv/mail?version=3&nfsport=2050&mountport=2051&uid=5&gid=6", nfsURL{"127.0.0.1", "/srv/mail", 2050, 2051, 5, 6}},
		{"nfs://fd00::1/usr/mail1?nfsport=2049", nfsURL{"fd00::1", "/usr/mail1", 2049, 2049, 0, 0}},
		{"nfs://[::1]/x", nfsURL{"::1", "/x", 2049, 2049, 0, 0}},
	} {
		got, err := parseNFSURL(c.in)
		if err != nil || got != c.want {
			t.Errorf("parseNFSURL(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
	}
	if _, err := parseNFSURL("http://127.0.0.1/x"); err == nil {
		t.Error("an http URL was accepted")
	}
}
