// Package netnstest gives tests private Linux network namespaces: each one has
// its own loopback, so a test can bind the portmapper's port 111 or build a
// small 10.77.x.y network of veth pairs on a bridge without touching the
// host's interfaces. Creating namespaces needs root and the ip(8) tool.
//
// Every namespace is named mnfs-<pid>-<random>, so parallel test processes
// never collide, and is deleted in a t.Cleanup, after the processes started
// in it are killed. Namespaces left behind by a test process that no longer
// exists are swept the first time New runs.
//
// Tests that need root call RequireRoot first. It skips when not root, unless
// MAILNFS_REQUIRE_ROOT_TESTS=1 is set (CI does), in which case it fails, so a
// root-only test can never silently skip in CI.
package netnstest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/logtest"
)

// EnvRequireRoot names the environment variable that turns a skip for lack
// of root (or of the ip tool) into a test failure. CI sets it to 1.
const EnvRequireRoot = "MAILNFS_REQUIRE_ROOT_TESTS"

// Prefix starts the name of every namespace this package creates.
const Prefix = "mnfs-"

// netnsDir is where ip(8) keeps named namespaces.
const netnsDir = "/var/run/netns"

// RootRequired reports whether EnvRequireRoot is set to a true value.
func RootRequired() bool {
	v, _ := strconv.ParseBool(os.Getenv(EnvRequireRoot))
	return v
}

// RequireRoot skips t with a clear reason when the process is not root or
// ip(8) is missing, unless EnvRequireRoot is set, in which case t fails.
func RequireRoot(t testing.TB) {
	t.Helper()
	var reason string
	switch {
	case os.Geteuid() != 0:
		reason = "needs root (network namespaces)"
	case lookIP() == "":
		reason = "needs ip(8) from iproute2 (run scripts/deps.sh)"
	default:
		return
	}
	if RootRequired() {
		t.Fatalf("%s, and %s=1 forbids skipping", reason, EnvRequireRoot)
	}
	t.Skipf("%s; set %s=1 to make this a failure", reason, EnvRequireRoot)
}

// RequireTool is like RequireRoot for an external program: it returns the
// program's path, or skips (fails under EnvRequireRoot) when it is missing.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p := lookPath(name)
	if p != "" {
		return p
	}
	if RootRequired() {
		t.Fatalf("%s not found (run scripts/deps.sh), and %s=1 forbids skipping", name, EnvRequireRoot)
	}
	t.Skipf("%s not found; run scripts/deps.sh", name)
	return ""
}

// lookPath finds name on PATH or in the sbin directories a test's PATH may lack.
func lookPath(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/sbin", "/usr/bin", "/bin"} {
		p := filepath.Join(d, name)
		if fi, err := os.Stat(p); err == nil && fi.Mode()&0o111 != 0 && !fi.IsDir() {
			return p
		}
	}
	return ""
}

func lookIP() string { return lookPath("ip") }

// NS is a network namespace created for one test.
type NS struct {
	// Name is the namespace's name, as used by "ip netns exec".
	Name string

	t  testing.TB
	ip string

	mu    sync.Mutex
	procs []*Proc // guarded by mu
}

var sweepOnce sync.Once

// New creates a namespace whose name starts with Prefix and contains label
// (shortened to keep names readable), brings its loopback up and registers a
// cleanup that kills the processes started in it and deletes it, also when
// the test fails. New calls RequireRoot.
func New(t testing.TB, label string) *NS {
	t.Helper()
	RequireRoot(t)
	ip := lookIP()
	sweepOnce.Do(func() { sweepStale(t, ip) })

	name := newName(label)
	ns := &NS{Name: name, t: t, ip: ip}
	if out, err := run(context.Background(), ip, "netns", "add", name); err != nil {
		t.Fatalf("ip netns add %s: %v\n%s", name, err, out)
	}
	t.Cleanup(ns.destroy)
	if out, err := run(context.Background(), ip, "-n", name, "link", "set", "lo", "up"); err != nil {
		t.Fatalf("ip -n %s link set lo up: %v\n%s", name, err, out)
	}
	return ns
}

// newName returns mnfs-<pid>-<label>-<random>; the pid lets a later run tell
// whether the creator is still alive.
func newName(label string) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	label = sanitize(label)
	if label == "" {
		return fmt.Sprintf("%s%d-%s", Prefix, os.Getpid(), hex.EncodeToString(b[:]))
	}
	return fmt.Sprintf("%s%d-%s-%s", Prefix, os.Getpid(), label, hex.EncodeToString(b[:]))
}

func sanitize(s string) string {
	var sb strings.Builder
	for _, r := range strings.ToLower(s) {
		if sb.Len() >= 16 {
			break
		}
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			sb.WriteRune(r)
		case r == '-' || r == '_' || r == '/':
			sb.WriteByte('-')
		}
	}
	return strings.Trim(sb.String(), "-")
}

// stalePID parses the creator pid out of a namespace name made by newName.
func stalePID(name string) (int, bool) {
	rest, ok := strings.CutPrefix(name, Prefix)
	if !ok {
		return 0, false
	}
	p, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	pid, err := strconv.Atoi(p)
	if err != nil || pid <= 0 {
		return 0, false
	}
	return pid, true
}

// sweepStale deletes mnfs-* namespaces whose creating process is gone: they
// are leftovers of a crashed or killed earlier run. Namespaces of live
// processes (parallel test binaries) are left alone.
func sweepStale(t testing.TB, ip string) {
	ents, err := os.ReadDir(netnsDir)
	if err != nil {
		return
	}
	for _, e := range ents {
		pid, ok := stalePID(e.Name())
		if !ok || pid == os.Getpid() {
			continue
		}
		if err := syscall.Kill(pid, 0); err == nil || errors.Is(err, syscall.EPERM) {
			continue // creator alive
		}
		killPids(ip, e.Name())
		if out, err := run(context.Background(), ip, "netns", "del", e.Name()); err != nil {
			t.Logf("netnstest: sweeping stale namespace %s: %v %s", e.Name(), err, out)
		} else {
			t.Logf("netnstest: swept stale namespace %s", e.Name())
		}
	}
}

// killPids SIGKILLs every process still inside namespace name.
func killPids(ip, name string) {
	out, err := run(context.Background(), ip, "netns", "pids", name)
	if err != nil {
		return
	}
	for _, f := range strings.Fields(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 0 && pid != os.Getpid() {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
}

func (ns *NS) destroy() {
	ns.mu.Lock()
	procs := ns.procs
	ns.procs = nil
	ns.mu.Unlock()
	for _, p := range procs {
		p.Stop()
	}
	killPids(ns.ip, ns.Name)
	// A process killed a moment ago may still hold the namespace; ip netns
	// del only unmounts the name, so retrying is about clean error reporting.
	var lastErr error
	var lastOut []byte
	for i := 0; i < 20; i++ {
		out, err := run(context.Background(), ns.ip, "netns", "del", ns.Name)
		if err == nil {
			return
		}
		lastErr, lastOut = err, out
		time.Sleep(50 * time.Millisecond)
	}
	ns.t.Errorf("netnstest: ip netns del %s: %v\n%s", ns.Name, lastErr, lastOut)
}

// run runs argv and returns its combined output.
func run(ctx context.Context, argv ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	var buf bytes.Buffer
	cmd.Stdout = &buf
	cmd.Stderr = &buf
	err := cmd.Run()
	return buf.Bytes(), err
}

// IP runs "ip -n NAME args..." and fails the test on error.
func (ns *NS) IP(args ...string) {
	ns.t.Helper()
	argv := append([]string{ns.ip, "-n", ns.Name}, args...)
	if out, err := run(context.Background(), argv...); err != nil {
		ns.t.Fatalf("%s: %v\n%s", strings.Join(argv, " "), err, out)
	}
}

// Command returns an exec.Cmd that runs argv inside the namespace (through
// "ip netns exec"), with the process in its own process group.
func (ns *NS) Command(ctx context.Context, argv ...string) *exec.Cmd {
	full := append([]string{"netns", "exec", ns.Name}, argv...)
	cmd := exec.CommandContext(ctx, ns.ip, full...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	return cmd
}

// Exec runs argv inside the namespace and returns its stdout and stderr.
// The error is non-nil when the command fails to start or exits non-zero
// (*exec.ExitError), or when ctx ends first.
func (ns *NS) Exec(ctx context.Context, argv ...string) (stdout, stderr []byte, err error) {
	cmd := ns.Command(ctx, argv...)
	var o, e bytes.Buffer
	cmd.Stdout = &o
	cmd.Stderr = &e
	err = cmd.Run()
	if err != nil {
		err = fmt.Errorf("%s (in %s): %w", strings.Join(argv, " "), ns.Name, err)
	}
	return o.Bytes(), e.Bytes(), err
}

// Exec runs argv inside ns; see NS.Exec.
func Exec(ctx context.Context, ns *NS, argv ...string) (stdout, stderr []byte, err error) {
	return ns.Exec(ctx, argv...)
}

// Proc is a background process started in a namespace by Start.
type Proc struct {
	// Cmd is the running command (through "ip netns exec").
	Cmd *exec.Cmd

	log  *logtest.Buffer
	done chan struct{}
	err  error // set before done is closed

	stopOnce sync.Once
}

// Start starts argv in the background inside the namespace, capturing its
// stdout and stderr. The process is killed (SIGTERM, then SIGKILL after 5 s)
// at cleanup, and its output is logged if the test failed.
func (ns *NS) Start(argv ...string) *Proc {
	ns.t.Helper()
	return ns.StartCmd(ns.Command(context.Background(), argv...))
}

// StartCmd starts a command made by Command (the caller may have set Dir,
// Env or Stdin) like Start does. Stdout and Stderr must be unset.
func (ns *NS) StartCmd(cmd *exec.Cmd) *Proc {
	ns.t.Helper()
	p := &Proc{Cmd: cmd, log: &logtest.Buffer{}, done: make(chan struct{})}
	cmd.Stdout = p.log
	cmd.Stderr = p.log
	if err := cmd.Start(); err != nil {
		ns.t.Fatalf("start %s in %s: %v", strings.Join(cmd.Args, " "), ns.Name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	ns.mu.Lock()
	ns.procs = append(ns.procs, p)
	ns.mu.Unlock()
	name := strings.Join(cmd.Args, " ")
	if len(cmd.Args) > 4 {
		name = strings.Join(cmd.Args[4:], " ") // after "ip netns exec NAME"
	}
	ns.t.Cleanup(func() {
		p.Stop()
		if ns.t.Failed() {
			ns.t.Logf("output of %q in %s:\n%s", name, ns.Name, p.Log())
		}
	})
	return p
}

// Start starts argv in the background inside ns; see NS.Start.
func Start(ns *NS, argv ...string) *Proc { return ns.Start(argv...) }

// Pid returns the process id. Because "ip netns exec" execs the command
// in place, it is the command's own pid.
func (p *Proc) Pid() int { return p.Cmd.Process.Pid }

// Log returns everything the process wrote so far.
func (p *Proc) Log() string { return p.log.String() }

// Done is closed when the process has exited.
func (p *Proc) Done() <-chan struct{} { return p.done }

// Err returns the process's exit error; call it only after Done is closed.
func (p *Proc) Err() error { return p.err }

// Signal sends sig to the process group.
func (p *Proc) Signal(sig syscall.Signal) error {
	return syscall.Kill(-p.Cmd.Process.Pid, sig)
}

// Stop sends SIGTERM, waits up to 5 s, then SIGKILLs the process group and
// waits for the exit. It returns the exit error. Stop is idempotent.
func (p *Proc) Stop() error {
	p.stopOnce.Do(func() {
		select {
		case <-p.done:
			return
		default:
		}
		_ = p.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(5 * time.Second):
			_ = p.Signal(syscall.SIGKILL)
			<-p.done
		}
	})
	<-p.done
	return p.err
}

// Dial connects to address (e.g. "127.0.0.1:2049") from inside the namespace.
func (ns *NS) Dial(ctx context.Context, network, address string) (net.Conn, error) {
	var c net.Conn
	err := ns.Do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, address)
		return err
	})
	return c, err
}

// Listen listens on address inside the namespace.
func (ns *NS) Listen(network, address string) (net.Listener, error) {
	var ln net.Listener
	err := ns.Do(func() error {
		var err error
		ln, err = net.Listen(network, address)
		return err
	})
	return ln, err
}

// ListenPacket opens a packet socket on address inside the namespace.
func (ns *NS) ListenPacket(network, address string) (net.PacketConn, error) {
	var pc net.PacketConn
	err := ns.Do(func() error {
		var err error
		pc, err = net.ListenPacket(network, address)
		return err
	})
	return pc, err
}
