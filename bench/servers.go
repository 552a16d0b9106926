package bench

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Server kinds understood by StartServer.
const (
	KindMailnfsd = "mailnfsd"
	KindGoNFS    = "gonfs"
	KindGanesha  = "ganesha"
)

// defaultGoNFSHandleLimit is go-nfs's CachingHandler size, as in go-nfs's
// own osnfs example.
const defaultGoNFSHandleLimit = 1024

// Ports every server uses inside its own namespace.
const (
	nfsPort     = 2049
	ganeshaMNT  = 20048
	portmapPort = 111
)

// ServerOptions says how to start one server under test.
type ServerOptions struct {
	// Kind is KindMailnfsd, KindGoNFS or KindGanesha.
	Kind string
	// Name is how reports, logs and namespaces call the server. Zero:
	// Kind. Two servers of one kind (say mailnfsd with different Args)
	// need different names.
	Name string
	// Bin is the server binary. Zero: "ganesha.nfsd" for Ganesha; required
	// for the others.
	Bin string
	// Dir is the parent directory for the server's temporary directory
	// (export, config, state, logs). Zero: os.TempDir(). It should be on the
	// disk being measured, not a tmpfs.
	Dir string
	// Owner is the uid:gid that owns the export root; the driver uses the
	// same ids in AUTH_SYS. Zero: 0:0.
	UID, GID uint32
	// GoNFSHandleLimit is go-nfs's CachingHandler size. Zero: 1024 (the
	// value of go-nfs's own example).
	GoNFSHandleLimit int
	// Args are extra command-line arguments for mailnfsd or gonfs-baseline
	// (e.g. "-sync-window", "200us"), after the bench's own.
	Args []string
	// Nice, when not zero, starts the server under nice(1) with this
	// increment (negative: higher priority, for measuring on a busy
	// machine). The driver of its steps gets the same.
	Nice int
	// Logger receives start/stop events. Zero: discard.
	Logger *slog.Logger
	// StartTimeout bounds the wait for the server's ports. Zero: 20 s.
	StartTimeout time.Duration
}

// Server is one running server under test.
type Server struct {
	// Kind is the server kind; Name is how reports call it.
	Kind, Name string
	// NS is the namespace the server (and its driver) live in.
	NS *NetNS
	// Export is the export's root directory on disk.
	Export string
	// MountPath is the path the client mounts (MNT argument).
	MountPath string
	// NFSPort and MountPort are the ports inside NS.
	NFSPort, MountPort int
	// Dir is the server's temporary directory (removed by Stop).
	Dir string
	// Nice is the nice(1) increment of the server and its drivers.
	Nice int

	log   *slog.Logger
	procs []*serverProc // started order; stopped in reverse
	main  *serverProc   // the process whose resources are measured
}

type serverProc struct {
	name string
	cmd  *exec.Cmd
	done chan struct{} // closed when Wait returned
	err  error         // Wait's result, valid after done
	logf *os.File
}

// PID is the process ID of the measured server process.
func (s *Server) PID() int { return s.main.cmd.Process.Pid }

// URL is the client URL of the export, valid inside s.NS.
func (s *Server) URL(uid, gid uint32) string {
	return fmt.Sprintf("nfs://127.0.0.1%s?version=3&nfsport=%d&mountport=%d&uid=%d&gid=%d",
		s.MountPath, s.NFSPort, s.MountPort, uid, gid)
}

// StartServer starts a server of opts.Kind in a fresh network namespace on a
// fresh export directory and waits until its ports listen. On error nothing
// is left behind.
func StartServer(ctx context.Context, opts ServerOptions) (_ *Server, err error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.StartTimeout == 0 {
		opts.StartTimeout = 20 * time.Second
	}
	if opts.GoNFSHandleLimit == 0 {
		opts.GoNFSHandleLimit = defaultGoNFSHandleLimit
	}
	switch opts.Kind {
	case KindMailnfsd, KindGoNFS:
		if opts.Bin == "" {
			return nil, fmt.Errorf("bench: %s needs a binary", opts.Kind)
		}
	case KindGanesha:
		if opts.Bin == "" {
			opts.Bin = "ganesha.nfsd"
		}
	default:
		return nil, fmt.Errorf("bench: unknown server kind %q", opts.Kind)
	}
	name := opts.Name
	if name == "" {
		name = opts.Kind
	}
	dir, err := os.MkdirTemp(opts.Dir, "mnfs-bench-"+name+"-")
	if err != nil {
		return nil, err
	}
	s := &Server{Kind: opts.Kind, Name: name, Dir: dir, NFSPort: nfsPort, MountPort: nfsPort,
		Nice: opts.Nice, log: opts.Logger.With("server", name)}
	defer func() {
		if err != nil {
			if serr := s.Stop(); serr != nil {
				err = fmt.Errorf("%w; cleanup also failed: %v", err, serr)
			}
		}
	}()
	s.Export = filepath.Join(dir, "export")
	s.MountPath = s.Export
	if err := os.Mkdir(s.Export, 0o755); err != nil {
		return nil, err
	}
	if err := os.Chown(s.Export, int(opts.UID), int(opts.GID)); err != nil {
		return nil, err
	}
	s.NS, err = NewNetNS(ctx, name)
	if err != nil {
		return nil, err
	}
	startCtx, cancel := context.WithTimeout(ctx, opts.StartTimeout)
	defer cancel()
	switch opts.Kind {
	case KindMailnfsd:
		err = s.startMailnfsd(startCtx, opts)
	case KindGoNFS:
		err = s.startGoNFS(startCtx, opts)
	case KindGanesha:
		err = s.startGanesha(startCtx, opts)
	}
	if err != nil {
		return nil, err
	}
	s.log.Info("server started", "pid", s.PID(), "netns", s.NS.Name, "export", s.Export)
	return s, nil
}

func (s *Server) startMailnfsd(ctx context.Context, opts ServerOptions) error {
	exports := filepath.Join(s.Dir, "exports")
	// Linux exports(5) syntax: read-write for loopback (the namespace has
	// nothing else), root not squashed like the other servers.
	if err := os.WriteFile(exports, []byte(s.Export+" 127.0.0.0/8(rw,no_root_squash)\n"), 0o644); err != nil {
		return err
	}
	state := filepath.Join(s.Dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		return err
	}
	args := append([]string{"-exports", exports, "-listen", "127.0.0.1",
		"-nfs-port", strconv.Itoa(nfsPort), "-mount-port", strconv.Itoa(nfsPort),
		"-portmap-port", strconv.Itoa(portmapPort), "-state-dir", state, "-log-level", "warn"}, opts.Args...)
	argv := s.niced(opts.Bin, args...)
	p, err := s.start("mailnfsd", s.NS.Command(ctx, argv[0], argv[1:]...))
	if err != nil {
		return err
	}
	s.main = p
	return s.waitListen(ctx, p, nfsPort)
}

func (s *Server) startGoNFS(ctx context.Context, opts ServerOptions) error {
	args := append([]string{"-dir", s.Export, "-listen", fmt.Sprintf("127.0.0.1:%d", nfsPort),
		"-handle-limit", strconv.Itoa(opts.GoNFSHandleLimit)}, opts.Args...)
	argv := s.niced(opts.Bin, args...)
	p, err := s.start("gonfs", s.NS.Command(ctx, argv[0], argv[1:]...))
	if err != nil {
		return err
	}
	s.main = p
	return s.waitListen(ctx, p, nfsPort)
}

// ganeshaConf is NFS-Ganesha's configuration: NFSv3 only over TCP, no NLM or
// RQUOTA, one FSAL_VFS export, root not squashed, recovery state kept in the
// bench's temporary directory. There is deliberately no Bind_addr: inside a
// fresh namespace Ganesha's lookup of it fails; the namespace confines it.
const ganeshaConf = `NFS_CORE_PARAM {
	Protocols = 3;
	NFS_Port = %d;
	MNT_Port = %d;
	Enable_NLM = false;
	Enable_RQUOTA = false;
	Enable_UDP = false;
}
NFSV4 {
	Graceless = true;
	RecoveryRoot = "%s";
}
EXPORT {
	Export_Id = 1;
	Path = "%s";
	Pseudo = "/bench";
	Protocols = 3;
	Transports = TCP;
	Access_Type = RW;
	Squash = No_Root_Squash;
	SecType = sys;
	FSAL { Name = VFS; }
}
LOG { Default_Log_Level = WARN; }
`

func (s *Server) startGanesha(ctx context.Context, opts ServerOptions) error {
	if _, err := exec.LookPath(opts.Bin); err != nil {
		return fmt.Errorf("bench: %s not found (apt-get install -y nfs-ganesha nfs-ganesha-vfs): %w", opts.Bin, err)
	}
	if _, err := exec.LookPath("rpcbind"); err != nil {
		return fmt.Errorf("bench: rpcbind not found (apt-get install -y rpcbind): %w", err)
	}
	recov := filepath.Join(s.Dir, "recovery")
	if err := os.Mkdir(recov, 0o700); err != nil {
		return err
	}
	conf := filepath.Join(s.Dir, "ganesha.conf")
	if err := os.WriteFile(conf, fmt.Appendf(nil, ganeshaConf, nfsPort, ganeshaMNT, recov, s.Export), 0o644); err != nil {
		return err
	}
	s.MountPort = ganeshaMNT
	// rpcbind gets a private mount namespace with a tmpfs on /run, so its
	// socket and state files do not meet the host's. Debian's rpcbind crashes
	// with -h 127.0.0.1; -f (foreground) -w (warm start) is what works. It
	// owns the mount namespace Ganesha then joins.
	rb, err := s.start("rpcbind", s.NS.Command(ctx, "unshare", "-m", "--propagation", "private",
		"sh", "-c", "mount -t tmpfs -o mode=0755 tmpfs /run && exec rpcbind -f -w"))
	if err != nil {
		return err
	}
	if err := s.waitListen(ctx, rb, portmapPort); err != nil {
		return err
	}
	// nsenter execs in place: its PID is ganesha.nfsd's.
	g, err := s.start("ganesha", exec.Command("nsenter", append([]string{"-t", strconv.Itoa(rb.cmd.Process.Pid), "-m", "-n"},
		s.niced(opts.Bin, "-F", "-f", conf, "-L", filepath.Join(s.Dir, "ganesha.log"), "-p", filepath.Join(s.Dir, "ganesha.pid"))...)...))
	if err != nil {
		return err
	}
	s.main = g
	if err := s.waitListen(ctx, g, nfsPort); err != nil {
		return err
	}
	return s.waitListen(ctx, g, ganeshaMNT)
}

// niced returns the command line name args..., under nice(1) when s.Nice is
// set (nice execs in place, so the PID stays the program's).
func (s *Server) niced(name string, args ...string) []string {
	if s.Nice == 0 {
		return append([]string{name}, args...)
	}
	return append([]string{"nice", "-n", strconv.Itoa(s.Nice), name}, args...)
}

// start starts cmd with its output in DIR/name.log.
func (s *Server) start(name string, cmd *exec.Cmd) (*serverProc, error) {
	f, err := os.Create(filepath.Join(s.Dir, name+".out"))
	if err != nil {
		return nil, err
	}
	cmd.Stdout, cmd.Stderr = f, f
	// The server dies with the bench (the thread that started it, strictly;
	// Go keeps that thread alive while the program runs).
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	// A server outlives the context that started it; Stop ends it politely.
	if cmd.Cancel != nil {
		cmd.Cancel = func() error { return nil }
	}
	if err := cmd.Start(); err != nil {
		f.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p := &serverProc{name: name, cmd: cmd, done: make(chan struct{}), logf: f}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	s.procs = append(s.procs, p)
	return p, nil
}

// waitListen polls /proc/PID/net/tcp{,6} (which show the namespace of PID)
// until a socket listens on port.
func (s *Server) waitListen(ctx context.Context, p *serverProc, port int) error {
	for {
		select {
		case <-p.done:
			return fmt.Errorf("bench: %s exited during start: %v\n%s", p.name, p.err, s.tail(p.name))
		default:
		}
		if ok, err := listening(p.cmd.Process.Pid, port); err == nil && ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("bench: %s: port %d not listening: %w\n%s", p.name, port, ctx.Err(), s.tail(p.name))
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// listening reports whether pid's network namespace has a TCP socket in
// LISTEN state (0A) on port.
func listening(pid, port int) (bool, error) {
	want := fmt.Sprintf(":%04X", port)
	for _, f := range []string{"tcp", "tcp6"} {
		fh, err := os.Open(fmt.Sprintf("/proc/%d/net/%s", pid, f))
		if err != nil {
			return false, err
		}
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) > 3 && strings.HasSuffix(fields[1], want) && fields[3] == "0A" {
				fh.Close()
				return true, nil
			}
		}
		fh.Close()
	}
	return false, nil
}

// Exited reports whether the measured server process has exited, and if so
// how, with the end of its output.
func (s *Server) Exited() (bool, string) {
	select {
	case <-s.main.done:
		return true, fmt.Sprintf("%s exited: %v\n%s", s.main.name, s.main.err, s.tail(s.main.name))
	default:
		return false, ""
	}
}

// tail returns the end of a process's output file, for error messages.
func (s *Server) tail(name string) string {
	b, _ := os.ReadFile(filepath.Join(s.Dir, name+".out"))
	if g, err := os.ReadFile(filepath.Join(s.Dir, "ganesha.log")); err == nil && name == "ganesha" {
		b = append(b, g...)
	}
	if len(b) > 2000 {
		b = b[len(b)-2000:]
	}
	return string(b)
}

// Stop stops the server's processes (SIGTERM, SIGKILL after 5 s), deletes
// its namespace and its temporary directory. It is safe to call twice.
func (s *Server) Stop() error {
	var errs []error
	for i := len(s.procs) - 1; i >= 0; i-- {
		p := s.procs[i]
		select {
		case <-p.done:
		default:
			_ = p.cmd.Process.Signal(syscall.SIGTERM)
			select {
			case <-p.done:
			case <-time.After(5 * time.Second):
				s.log.Warn("server did not stop on SIGTERM; killing", "proc", p.name)
				_ = p.cmd.Process.Kill()
				<-p.done
			}
		}
		p.logf.Close()
	}
	s.procs = nil
	if s.NS != nil {
		if err := s.NS.Close(); err != nil {
			errs = append(errs, err)
		}
		s.NS = nil
	}
	if s.Dir != "" {
		if err := os.RemoveAll(s.Dir); err != nil {
			errs = append(errs, err)
		}
		s.Dir = ""
	}
	return errors.Join(errs...)
}
