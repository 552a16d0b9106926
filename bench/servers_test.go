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

func requireRoot(t *testing.T) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("bench: needs root (network namespaces, /proc/PID/clear_refs)")
	}
}

// testBinary builds the main package pkg once per test binary.
func testBinary(t *testing.T, pkg string) string {
	t.Helper()
	binMu.Lock()
	defer binMu.Unlock()
	if p, ok := binBuilt[pkg]; ok {
		return p
	}
	ctx := context.Background()
	root, err := ModuleRoot(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if binDir == "" {
		if binDir, err = os.MkdirTemp("", "mnfs-bench-bin-"); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(binDir, filepath.Base(pkg))
	if err := Build(ctx, root, pkg, out); err != nil {
		t.Fatal(err)
	}
	binBuilt[pkg] = out
	return out
}

func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

func TestStartServer(t *testing.T) {
	requireRoot(t)
	for _, tc := range []ServerOptions{
		{Kind: KindMailnfsd},
		{Kind: KindGoNFS},
		{Kind: KindGanesha},
	} {
		t.Run(tc.Kind, func(t *testing.T) {
			if tc.Kind == KindMailnfsd && !haveMailnfsd(t) {
				t.Skip("cmd/mailnfsd does not exist yet")
			}
			tc.Bin = testServerBin(t, tc.Kind)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			tc.UID, tc.GID = 1000, 1000
			s, err := StartServer(ctx, tc)
			if err != nil {
				t.Fatal(err)
			}
			pid, ns, dir := s.PID(), s.NS.Name, s.Dir
			if ok, err := listening(pid, s.NFSPort); err != nil || !ok {
				t.Errorf("port %d not listening in %s (%v)", s.NFSPort, ns, err)
			}
			if err := ResetPeakRSS(pid); err != nil {
				t.Errorf("ResetPeakRSS: %v", err)
			}
			ps, err := SampleProc(pid)
			if err != nil {
				t.Fatal(err)
			}
			if ps.PeakRSS <= 0 || ps.RSS <= 0 {
				t.Errorf("SampleProc(%d) = %+v, want RSS and peak > 0", pid, ps)
			}
			fi, err := os.Stat(s.Export)
			if err != nil || !fi.IsDir() {
				t.Fatalf("export %s: %v", s.Export, err)
			}
			if err := s.Stop(); err != nil {
				t.Fatal(err)
			}
			if _, err := os.Stat(dir); !os.IsNotExist(err) {
				t.Errorf("server dir %s still there after Stop (%v)", dir, err)
			}
			if _, err := os.Stat("/proc/" + itoa(pid)); !os.IsNotExist(err) {
				t.Errorf("server process %d still alive after Stop", pid)
			}
			stale, err := StaleNetNS()
			if err != nil {
				t.Fatal(err)
			}
			for _, n := range stale {
				if n == ns {
					t.Errorf("namespace %s not deleted", ns)
				}
			}
		})
	}
}

// TestStartServerFailureCleansUp starts a "server" that exits at once and
// checks that StartServer reports it and leaves no namespace or directory.
func TestStartServerFailureCleansUp(t *testing.T) {
	requireRoot(t)
	before, err := StaleNetNS()
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	s, err := StartServer(ctx, ServerOptions{Kind: KindGoNFS, Bin: "/bin/false", Dir: dir})
	if err == nil {
		s.Stop()
		t.Fatal("StartServer of /bin/false succeeded")
	}
	if !strings.Contains(err.Error(), "exited during start") {
		t.Errorf("error %q does not say the server exited", err)
	}
	after, err := StaleNetNS()
	if err != nil {
		t.Fatal(err)
	}
	for _, n := range after {
		if !slices.Contains(before, n) {
			t.Errorf("namespace %s left behind", n)
		}
	}
	if ents, _ := os.ReadDir(dir); len(ents) != 0 {
		t.Errorf("%d entries left in %s", len(ents), dir)
	}
}

// TestRemoveNetNS leaves a process in a namespace, as a killed run would,
// and checks that the clean-up kills it and deletes the namespace.
func TestRemoveNetNS(t *testing.T) {
	requireRoot(t)
	ns, err := NewNetNS(context.Background(), "cleantest")
	if err != nil {
		t.Fatal(err)
	}
	cmd := ns.Command(context.Background(), "sleep", "60")
	if err := cmd.Start(); err != nil {
		ns.Close()
		t.Fatal(err)
	}
	waited := make(chan error, 1)
	go func() { waited <- cmd.Wait() }()
	// ip netns exec joins the namespace, then execs sleep: wait for that.
	for i := 0; ; i++ {
		out, _ := exec.Command("ip", "netns", "pids", ns.Name).Output()
		if strings.TrimSpace(string(out)) != "" {
			break
		}
		if i == 500 {
			t.Fatal("the process never showed up in the namespace")
		}
		time.Sleep(10 * time.Millisecond)
	}
	if err := removeNetNS(ns.Name); err != nil {
		t.Fatal(err)
	}
	select {
	case <-waited:
	case <-time.After(10 * time.Second):
		cmd.Process.Kill()
		t.Fatal("process in the namespace survived")
	}
	stale, err := StaleNetNS()
	if err != nil {
		t.Fatal(err)
	}
	if slices.Contains(stale, ns.Name) {
		t.Errorf("namespace %s still there", ns.Name)
	}
}
