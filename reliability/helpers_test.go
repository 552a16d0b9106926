package reliability

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// freePort returns a port that is free on 127.0.0.1 for both TCP and UDP
// at the time of the call.
func freePort(t testing.TB) int {
	t.Helper()
	for range 50 {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		port := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(port))
		ln.Close()
		if err != nil {
			continue
		}
		pc.Close()
		return port
	}
	t.Fatal("no free port on 127.0.0.1")
	return 0
}

// procServer is the real mailnfsd binary serving one export on fixed
// 127.0.0.1 ports, so it can be killed and started again in the same place.
type procServer struct {
	bin                          string
	base, root, stateDir, export string
	exportsFile, logFile         string
	nfsPort, pmPort              int
	cmd                          *exec.Cmd
	starts                       int
}

// newProcServer prepares an export with a Maildir under a fresh temporary
// directory; start runs the binary.
func newProcServer(t testing.TB) *procServer {
	t.Helper()
	nfsdtest.RequireRoot(t)
	base := t.TempDir()
	for d := base; d != os.TempDir() && d != "/" && d != "."; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	s := &procServer{
		bin:         nfsdtest.Binary(t),
		base:        base,
		root:        filepath.Join(base, "export"),
		stateDir:    filepath.Join(base, "state"),
		exportsFile: filepath.Join(base, "exports"),
		logFile:     filepath.Join(base, "mailnfsd.log"),
		nfsPort:     freePort(t),
		pmPort:      freePort(t),
	}
	s.export = s.root
	for _, d := range []string{"", "Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"} {
		if err := os.Mkdir(filepath.Join(s.root, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	line := fmt.Sprintf("%s 127.0.0.0/8(rw,no_root_squash)\n", s.root)
	if err := os.WriteFile(s.exportsFile, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if s.cmd != nil {
			s.kill(t)
		}
		if t.Failed() {
			if b, err := os.ReadFile(s.logFile); err == nil {
				tail := string(b)
				if len(tail) > 8000 {
					tail = tail[len(tail)-8000:]
				}
				t.Logf("mailnfsd log (tail):\n%s", tail)
			}
		}
	})
	return s
}

// url is the nfs:// URL of the export with the ports named, so the client
// needs no portmapper.
func (s *procServer) url() string {
	return fmt.Sprintf("nfs://127.0.0.1:%d%s?version=3&nfsport=%d&mountport=%d", s.pmPort, s.export, s.nfsPort, s.nfsPort)
}

// start runs mailnfsd and waits until its NFS port accepts connections.
func (s *procServer) start(t testing.TB) {
	t.Helper()
	lf, err := os.OpenFile(s.logFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer lf.Close()
	fmt.Fprintf(lf, "=== start %d at %s\n", s.starts, time.Now().Format(time.RFC3339Nano))
	cmd := exec.Command(s.bin,
		"-exports", s.exportsFile, "-listen", "127.0.0.1",
		"-nfs-port", strconv.Itoa(s.nfsPort), "-portmap-port", strconv.Itoa(s.pmPort),
		"-state-dir", s.stateDir, "-log-level", "info", "-shutdown-timeout", "5s")
	cmd.Stdout, cmd.Stderr = lf, lf
	if err := cmd.Start(); err != nil {
		t.Fatalf("start mailnfsd: %v", err)
	}
	s.cmd = cmd
	s.starts++
	deadline := time.Now().Add(20 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", s.nfsPort), time.Second)
		if err == nil {
			c.Close()
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("mailnfsd did not listen on %d: %v", s.nfsPort, err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// kill sends SIGKILL and reaps the process.
func (s *procServer) kill(t testing.TB) {
	t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGKILL)
	_ = s.cmd.Wait()
	s.cmd = nil
}

// stop sends SIGTERM and waits for a clean exit.
func (s *procServer) stop(t testing.TB) {
	t.Helper()
	if s.cmd == nil {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- s.cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("mailnfsd exit after SIGTERM: %v", err)
		}
	case <-time.After(15 * time.Second):
		t.Errorf("mailnfsd did not stop within 15 s of SIGTERM; killing")
		_ = s.cmd.Process.Signal(syscall.SIGKILL)
		<-done
	}
	s.cmd = nil
}

// procStatus returns a field of /proc/PID/status in kB (VmRSS, VmHWM).
func procStatus(pid int, field string) (int64, error) {
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		k, v, ok := strings.Cut(sc.Text(), ":")
		if !ok || k != field {
			continue
		}
		v = strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB"))
		return strconv.ParseInt(v, 10, 64)
	}
	return 0, fmt.Errorf("/proc/%d/status: no %s", pid, field)
}

// openFDs counts the entries of /proc/PID/fd.
func openFDs(pid int) (int, error) {
	es, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	return len(es), err
}

// ctxT is a context that ends with the test's deadline (less a margin) or d.
func ctxT(t testing.TB, d time.Duration) context.Context {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}
