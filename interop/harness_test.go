package interop

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/netnstest"
)

// Ports the server listens on inside its namespace.
const (
	nfsPort     = 2049
	mountPort   = 20048
	portmapPort = 111
)

// Test identity: files written through NFS belong to this uid/gid, which
// root squashing leaves alone.
const (
	testUID = 1000
	testGID = 1000
)

var (
	buildOnce sync.Once
	buildDir  string
	buildBin  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// moduleRoot returns the directory holding go.mod.
func moduleRoot(t testing.TB) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(out)))
}

// mailnfsdBinary builds cmd/mailnfsd once per test binary and returns its path.
func mailnfsdBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		buildDir, buildErr = os.MkdirTemp("", "mailnfs-interop-")
		if buildErr != nil {
			return
		}
		buildBin = filepath.Join(buildDir, "mailnfsd")
		cmd := exec.Command("go", "build", "-o", buildBin, "./cmd/mailnfsd")
		cmd.Dir = moduleRoot(t)
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build ./cmd/mailnfsd: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return buildBin
}

// serverOpts configures startServer.
type serverOpts struct {
	// ns runs the server in an existing namespace; nil creates one.
	ns *netnstest.NS
	// listen is the address to serve on; empty means 127.0.0.1.
	listen string
	// noPortmap starts the server without its portmapper.
	noPortmap bool
	// strace runs the server under strace, logging to server.straceLog.
	strace bool
	// straceSyscalls overrides the traced syscall set.
	straceSyscalls string
	// exports returns the exports file's content for the export root;
	// nil means "<root> 127.0.0.1(rw)".
	exports func(root string) string
	// setup runs on the export root before the server starts.
	setup func(t *testing.T, root string)
	// hostsAllow, if set, returns the content of a hosts.allow file
	// (written beside the exports file) passed with -hosts-allow.
	hostsAllow func(root string) string
}

// server is a mailnfsd running in its own network namespace.
type server struct {
	t    *testing.T
	ns   *netnstest.NS
	proc *netnstest.Proc
	argv []string
	// base holds export/, state/ and the exports file.
	base string
	// root is the export's directory on disk; it is also its export path.
	root        string
	stateDir    string
	exportsFile string
	straceLog   string
	hostsFile   string
	listen      string
	portmap     bool
}

// startServer starts mailnfsd in a fresh namespace (or o.ns) and waits
// until its ports accept connections.
func startServer(t *testing.T, o serverOpts) *server {
	t.Helper()
	netnstest.RequireRoot(t)
	bin := mailnfsdBinary(t)
	ns := o.ns
	if ns == nil {
		ns = netnstest.New(t, "interop")
	}
	listen := o.listen
	if listen == "" {
		listen = "127.0.0.1"
	}

	base := t.TempDir()
	// t.TempDir's parents are 0700; the store does not need that, but a
	// squashed peer must not trip over it either.
	for d := base; d != os.TempDir() && d != "/"; d = filepath.Dir(d) {
		_ = os.Chmod(d, 0o755)
	}
	s := &server{t: t, ns: ns, base: base, root: filepath.Join(base, "export"), stateDir: filepath.Join(base, "state"),
		exportsFile: filepath.Join(base, "exports"), listen: listen, portmap: !o.noPortmap}
	for _, d := range []string{s.root, s.stateDir} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Chown(s.root, testUID, testGID); err != nil {
		t.Fatal(err)
	}
	if o.setup != nil {
		o.setup(t, s.root)
	}
	exports := s.root + " 127.0.0.1(rw)\n"
	if o.exports != nil {
		exports = o.exports(s.root)
	}
	s.writeExports(exports)

	s.argv = []string{bin,
		"-exports", s.exportsFile,
		"-state-dir", s.stateDir,
		"-listen", listen,
		"-nfs-port", strconv.Itoa(nfsPort),
		"-mount-port", strconv.Itoa(mountPort),
		"-log-level", "debug",
	}
	if o.hostsAllow != nil {
		s.hostsFile = filepath.Join(base, "hosts.allow")
		s.writeHosts(o.hostsAllow(s.root))
		s.argv = append(s.argv, "-hosts-allow", s.hostsFile)
	}
	if o.noPortmap {
		s.argv = append(s.argv, "-portmap-port", "0")
	} else {
		s.argv = append(s.argv, "-portmap-port", strconv.Itoa(portmapPort))
	}
	if o.strace {
		netnstest.RequireTool(t, "strace")
		s.straceLog = filepath.Join(base, "strace.log")
		calls := o.straceSyscalls
		if calls == "" {
			calls = "read,write,writev,sendmsg,fsync,fdatasync,syncfs,sync_file_range,rename,renameat,renameat2"
		}
		s.argv = append([]string{"strace", "-f", "-qq", "-yy", "-xx", "-s", "64",
			"-e", "trace=" + calls, "-o", s.straceLog}, s.argv...)
	}
	s.start()
	return s
}

// writeExports replaces the exports file.
func (s *server) writeExports(content string) {
	s.t.Helper()
	if err := os.WriteFile(s.exportsFile, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// writeHosts replaces the hosts.allow file.
func (s *server) writeHosts(content string) {
	s.t.Helper()
	if err := os.WriteFile(s.hostsFile, []byte(content), 0o644); err != nil {
		s.t.Fatal(err)
	}
}

// start starts the server process and waits until it is ready.
func (s *server) start() {
	s.t.Helper()
	s.proc = s.ns.Start(s.argv...)
	s.waitReady()
}

// restart stops the server gracefully (failing the test unless it exits
// cleanly) and starts it again with the same flags, state and exports.
func (s *server) restart() {
	s.t.Helper()
	if err := s.stop(); err != nil {
		s.t.Fatalf("mailnfsd did not exit cleanly on SIGTERM: %v\n%s", err, s.proc.Log())
	}
	s.start()
}

// waitReady waits until the NFS (and, with a portmapper, the portmap) TCP
// port accepts a connection inside the namespace.
func (s *server) waitReady() {
	s.t.Helper()
	ports := []int{nfsPort, mountPort}
	if s.portmap {
		ports = append(ports, portmapPort)
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, port := range ports {
		addr := net.JoinHostPort(s.listen, strconv.Itoa(port))
		for {
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			c, err := s.ns.Dial(ctx, "tcp", addr)
			cancel()
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-s.proc.Done():
				s.t.Fatalf("mailnfsd exited before listening on %s: %v\n%s", addr, s.proc.Err(), s.proc.Log())
			default:
			}
			if time.Now().After(deadline) {
				s.t.Fatalf("mailnfsd not listening on %s after 30s: %v\n%s", addr, err, s.proc.Log())
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
}

// exec runs a peer tool inside the server's namespace with a timeout and
// returns its stdout; a failure is fatal and shows stderr and the server log.
func (s *server) exec(argv ...string) string {
	s.t.Helper()
	out, errOut, err := s.execErr(argv...)
	if err != nil {
		s.t.Fatalf("%v\nstdout:\n%s\nstderr:\n%s", err, out, errOut)
	}
	return out
}

// execErr is exec without the fatal error.
func (s *server) execErr(argv ...string) (stdout, stderr string, err error) {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	o, e, err := s.ns.Exec(ctx, argv...)
	return string(o), string(e), err
}

// url returns a libnfs URL for rel (relative to the export root) that finds
// the ports through the portmapper, with AUTH_SYS testUID/testGID.
func (s *server) url(rel string) string {
	return fmt.Sprintf("nfs://%s%s?version=3&uid=%d&gid=%d", s.listen, s.path(rel), testUID, testGID)
}

// urlPorts is url with explicit ports, for a server without portmapper.
func (s *server) urlPorts(rel string) string {
	return fmt.Sprintf("nfs://%s%s?version=3&uid=%d&gid=%d&nfsport=%d&mountport=%d",
		s.listen, s.path(rel), testUID, testGID, nfsPort, mountPort)
}

func (s *server) path(rel string) string {
	if rel == "" {
		return s.root
	}
	return s.root + "/" + strings.TrimPrefix(rel, "/")
}

// stop stops the server with SIGTERM (SIGKILL after 5 s) and returns its
// exit error.
func (s *server) stop() error { return s.proc.Stop() }
