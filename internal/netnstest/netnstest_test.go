package netnstest

import (
	"context"
	"errors"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestNameShape(t *testing.T) {
	a, b := newName("Interop/Portmap Test"), newName("Interop/Portmap Test")
	if a == b {
		t.Fatalf("two names collide: %s", a)
	}
	if !strings.HasPrefix(a, Prefix) || strings.ContainsAny(a, " /") {
		t.Fatalf("bad name %q", a)
	}
	pid, ok := stalePID(a)
	if !ok || pid != os.Getpid() {
		t.Fatalf("stalePID(%q) = %d, %v; want %d", a, pid, ok, os.Getpid())
	}
	for _, bad := range []string{"mnfs-", "mnfs-x-1", "other-12-ab", "mnfs-12"} {
		if _, ok := stalePID(bad); ok {
			t.Errorf("stalePID(%q) accepted", bad)
		}
	}
	if got := sanitize("ABCDEFGHIJKLMNOPQRSTUVWXYZ"); len(got) > 16 {
		t.Errorf("sanitize did not shorten: %q", got)
	}
}

func TestNamespaceLifecycle(t *testing.T) {
	var name string
	var pid int
	t.Run("inner", func(t *testing.T) {
		ns := New(t, "life")
		name = ns.Name
		if _, err := os.Stat(filepath.Join(netnsDir, name)); err != nil {
			t.Fatalf("namespace file: %v", err)
		}
		out, _, err := ns.Exec(context.Background(), "ip", "-o", "link", "show", "lo")
		if err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(string(out), "UP") {
			t.Fatalf("lo not up: %s", out)
		}
		// Only lo exists in a fresh namespace.
		out, _, err = ns.Exec(context.Background(), "ip", "-o", "link")
		if err != nil {
			t.Fatal(err)
		}
		if n := strings.Count(strings.TrimSpace(string(out)), "\n") + 1; n != 1 {
			t.Fatalf("fresh namespace has %d links:\n%s", n, out)
		}
		p := ns.Start("sleep", "300")
		pid = p.Pid()
		if err := syscall.Kill(pid, 0); err != nil {
			t.Fatalf("started process not alive: %v", err)
		}
	})
	if _, err := os.Stat(filepath.Join(netnsDir, name)); !os.IsNotExist(err) {
		t.Fatalf("namespace %s survived cleanup: %v", name, err)
	}
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("process %d survived cleanup", pid)
	}
}

func TestExecFailure(t *testing.T) {
	ns := New(t, "fail")
	_, _, err := ns.Exec(context.Background(), "sh", "-c", "echo oops >&2; exit 3")
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 3 {
		t.Fatalf("err = %v, want exit status 3", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	start := time.Now()
	if _, _, err := ns.Exec(ctx, "sleep", "30"); err == nil {
		t.Fatal("sleep survived context deadline")
	}
	if d := time.Since(start); d > 10*time.Second {
		t.Fatalf("cancel took %v", d)
	}
}

func TestStartCapturesLog(t *testing.T) {
	ns := New(t, "log")
	p := ns.Start("sh", "-c", "echo hello; echo world >&2")
	select {
	case <-p.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("process did not exit")
	}
	if err := p.Err(); err != nil {
		t.Fatal(err)
	}
	if log := p.Log(); !strings.Contains(log, "hello") || !strings.Contains(log, "world") {
		t.Fatalf("log = %q", log)
	}
}

// TestPrivateLoopback shows that two namespaces can both listen on the same
// loopback port (the reason interop tests can own port 111), and that a
// socket made by Do lives in the namespace it was made in.
func TestPrivateLoopback(t *testing.T) {
	a, b := New(t, "a"), New(t, "b")
	la, err := a.Listen("tcp", "127.0.0.1:111")
	if err != nil {
		t.Fatal(err)
	}
	defer la.Close()
	lb, err := b.Listen("tcp", "127.0.0.1:111")
	if err != nil {
		t.Fatal(err)
	}
	defer lb.Close()
	go func() {
		c, err := la.Accept()
		if err == nil {
			_, _ = io.WriteString(c, "A")
			c.Close()
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := a.Dial(ctx, "tcp", "127.0.0.1:111")
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(c)
	c.Close()
	if string(got) != "A" {
		t.Fatalf("read %q from namespace a, want A", got)
	}
	out, _, err := a.Exec(ctx, "cat", "/proc/net/tcp")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), ":006F") {
		t.Fatalf("listener not in namespace a:\n%s", out)
	}
}

// TestDoRestoresThread checks that Do switches the calling thread into the
// namespace and back.
func TestDoRestoresThread(t *testing.T) {
	ns := New(t, "do")
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	self := func() string {
		l, err := os.Readlink("/proc/thread-self/ns/net")
		if err != nil {
			t.Fatal(err)
		}
		return l
	}
	before := self()
	var inside string
	if err := ns.Do(func() error { inside = self(); return nil }); err != nil {
		t.Fatal(err)
	}
	if inside == before {
		t.Fatalf("Do did not switch namespaces (%s)", inside)
	}
	if after := self(); after != before {
		t.Fatalf("thread left in %s, want %s", after, before)
	}
	want := errors.New("from fn")
	if err := ns.Do(func() error { return want }); !errors.Is(err, want) {
		t.Fatalf("Do returned %v, want fn's error", err)
	}
}

func TestBridge(t *testing.T) {
	br := NewBridge(t, 3)
	srv, srvAddr := br.Host("srv", 1)
	cli, cliAddr := br.Host("cli", 2)
	if srvAddr.String() != "10.77.3.1" || cliAddr.String() != "10.77.3.2" {
		t.Fatalf("addresses %v %v", srvAddr, cliAddr)
	}
	ln, err := srv.Listen("tcp", srvAddr.String()+":2049")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	peer := make(chan string, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			peer <- err.Error()
			return
		}
		peer <- c.RemoteAddr().String()
		c.Close()
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	c, err := cli.Dial(ctx, "tcp", srvAddr.String()+":2049")
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	if got := <-peer; !strings.HasPrefix(got, cliAddr.String()+":") {
		t.Fatalf("server saw peer %q, want %s", got, cliAddr)
	}
	// The client namespace has no route beyond the bridge network.
	out, _, err := cli.Exec(ctx, "ip", "route")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "default") {
		t.Fatalf("unexpected default route:\n%s", out)
	}
}

func TestSweepStale(t *testing.T) {
	RequireRoot(t)
	// A pid that surely belonged to a process that has exited.
	cmd := exec.Command("true")
	if err := cmd.Run(); err != nil {
		t.Fatal(err)
	}
	dead := cmd.Process.Pid
	name := Prefix + strconv.Itoa(dead) + "-stale-test"
	if out, err := exec.Command(lookIP(), "netns", "add", name).CombinedOutput(); err != nil {
		t.Fatalf("%v %s", err, out)
	}
	t.Cleanup(func() { _ = exec.Command(lookIP(), "netns", "del", name).Run() })
	mine := New(t, "keep")
	sweepStale(t, lookIP())
	if _, err := os.Stat(filepath.Join(netnsDir, name)); !os.IsNotExist(err) {
		t.Fatalf("stale namespace %s not swept", name)
	}
	if _, err := os.Stat(filepath.Join(netnsDir, mine.Name)); err != nil {
		t.Fatalf("live namespace %s swept: %v", mine.Name, err)
	}
}
