package nfsd

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/maildirfs"
)

// Daemon is a running mailnfsd: the transport with the NFSv3, MOUNT and
// (unless Config.NoPortmap) portmapper programs, serving TCP and UDP on
// each configured port over the live export table.
type Daemon struct {
	// Server is the transport.
	Server *Server
	// Exports is the live export table (Reload swaps it).
	Exports *Exports
	// NFS and Mount are the programs served.
	NFS   *NFS3
	Mount *Mount
	// Portmap is the in-process portmapper, nil with Config.NoPortmap.
	Portmap *Portmap
	// Hosts enforces the hosts_access files (Server.Gate); with no
	// Config.HostsAllow it holds no rules and lets everything through.
	Hosts *HostsGate

	cfg Config
	log *slog.Logger

	nfsAddr, mountAddr, portmapAddr netip.AddrPort

	// rpcbind and mappings are set with NoPortmap; registered says the
	// system's rpcbind holds our mappings (Shutdown then removes them).
	// watchStop ends watchRpcbind, watchDone says it has.
	rpcbind    *RpcbindClient
	mappings   []RpcbindMapping
	registered atomic.Bool
	watchStop  chan struct{}
	watchDone  chan struct{}

	drcLog *DRCLog // Server.DRCLog, closed by Shutdown
	// drcStop ends watchStateDir, drcDone says it has.
	drcStop, drcDone chan struct{}
	keyFailed        atomic.Bool // checkStateDir's last key write-back failed (logged)

	wg       sync.WaitGroup // serve loops
	fatal    chan error     // a serve loop that failed other than by Shutdown
	reloadMu sync.Mutex     // serialises Reload
	stopOnce sync.Once
	stopErr  error
}

// Start loads the exports, opens their stores, binds every port (TCP and
// UDP), registers the programs with the portmapper and starts serving. On
// error nothing is left open or listening.
func Start(ctx context.Context, cfg Config) (_ *Daemon, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	d := &Daemon{cfg: cfg, log: log}
	table, err := d.loadTable()
	if err != nil {
		return nil, err
	}
	hosts, err := d.loadHosts()
	if err != nil {
		return nil, err
	}
	logTableWarnings(log, table)
	for _, w := range PublicExposure(cfg.Listen, table, InterfaceAddrs()) {
		log.Warn("private network guard: " + w)
	}
	noChown := os.Geteuid() != 0
	if noChown {
		log.Warn("not running as root: files created over NFS belong to mailnfsd's own uid, not the caller's (no chown)", "uid", os.Geteuid())
	}
	if err := os.MkdirAll(cfg.StateDir, 0o700); err != nil {
		return nil, fmt.Errorf("state directory: %w", err)
	}
	switch fs := stateDirFS(cfg.StateDir); fs {
	case "tmpfs", "ramfs":
		log.Warn("the state directory is on "+fs+", which a reboot empties: the handle key goes with it, and after every reboot the front ends' handles fail with NFS3ERR_BADHANDLE until they mount again; put -state-dir on a disk (default /var/lib/mailnfsd)", "state_dir", cfg.StateDir)
	case "nfs":
		log.Warn("the state directory is on NFS: mailnfsd's start then depends on another server (or on itself, if it is one of its exports), and the locks of drc.log and the compression journal on that server's lock manager; put -state-dir on a local disk (default /var/lib/mailnfsd)", "state_dir", cfg.StateDir)
	}
	d.Exports, err = OpenExports(table, ExportsOptions{
		StateDir:   cfg.StateDir,
		Logger:     log,
		NoChown:    noChown,
		SyncWindow: cfg.SyncWindow,

		HandleSearch: cfg.HandleSearch,
		Denied:       cfg.Denied,
	})
	if err != nil {
		return nil, err
	}
	var (
		lns []net.Listener
		pcs []net.PacketConn
	)
	defer func() {
		if err != nil {
			for _, ln := range lns {
				ln.Close()
			}
			for _, pc := range pcs {
				pc.Close()
			}
			d.Exports.Close()
			if d.drcLog != nil {
				d.drcLog.Close()
			}
		}
	}()

	// Bind: one TCP listener and one UDP socket per distinct port.
	bind := func(port int) (netip.AddrPort, error) {
		ln, pc, err := listenPair(cfg.Listen, port)
		if err != nil {
			return netip.AddrPort{}, err
		}
		lns, pcs = append(lns, ln), append(pcs, pc)
		return ln.Addr().(*net.TCPAddr).AddrPort(), nil
	}
	if d.nfsAddr, err = bind(cfg.NFSPort); err != nil {
		return nil, fmt.Errorf("NFS port: %w%s", err, inUseHint(err, "another NFS server (the kernel's nfs-server or nfsd, or another mailnfsd) holds it: stop it"))
	}
	d.mountAddr = d.nfsAddr
	if cfg.MountPort != 0 && cfg.MountPort != cfg.NFSPort {
		if d.mountAddr, err = bind(cfg.MountPort); err != nil {
			return nil, fmt.Errorf("MOUNT port: %w%s", err, inUseHint(err, "another process (a mountd?) holds it: stop it, or choose another port"))
		}
	}
	if !cfg.NoPortmap {
		switch {
		case cfg.PortmapPort != 0 && cfg.PortmapPort == int(d.nfsAddr.Port()):
			d.portmapAddr = d.nfsAddr
		case cfg.PortmapPort != 0 && cfg.PortmapPort == int(d.mountAddr.Port()):
			d.portmapAddr = d.mountAddr
		default:
			if d.portmapAddr, err = bind(cfg.PortmapPort); err != nil {
				return nil, fmt.Errorf("portmap port: %w%s", err, inUseHint(err, "another portmapper (the system's rpcbind?) holds it: stop it, or serve no portmapper and register with it (mailnfsd -portmap-port 0)"))
			}
		}
	}

	d.Server = &Server{Logger: log, OutOfFds: maildirfs.ShedUnused}
	if cfg.ConfigureServer != nil {
		cfg.ConfigureServer(d.Server)
	}
	if d.Server.DRCLog == nil {
		path := filepath.Join(cfg.StateDir, DRCLogFile)
		l, loaded, err := OpenDRCLog(path, 0, d.Server.DRCTTL, time.Now())
		switch {
		case errors.Is(err, ErrDRCLogBusy):
			// Another server shares the state directory (the handle key
			// may be shared; the log cannot): serve without it.
			log.Warn("serving without a duplicate request log: calls retransmitted after a restart may fail with NOENT or EXIST", "err", err)
		case errors.Is(err, ErrDRCLogUnwritable):
			// A full or read-only state directory: the log is worth
			// less than the service. The earlier run's calls are kept.
			log.Error("serving without a duplicate request log: calls retransmitted after the next restart may fail with NOENT or EXIST; make room in the state directory and restart", "err", err, "calls_from_earlier_run", loaded)
			d.Server.DRCLog = l
		case err != nil:
			return nil, err
		default:
			l.Logger = log
			d.Server.DRCLog, d.drcLog = l, l
			log.Info("duplicate request log opened", "path", path, "calls_from_earlier_run", loaded)
		}
	}
	d.Hosts = NewHostsGate(hosts, log, d.Server.Clock)
	d.Hosts.OnDenied = cfg.Denied
	if next := d.Server.Gate; next != nil {
		d.Server.Gate = func(req *Request) Status {
			if st := d.Hosts.Gate(req); st != (Status{}) {
				return st
			}
			return next(req)
		}
	} else {
		d.Server.Gate = d.Hosts.Gate
	}
	// A host whose every call the rules refuse holds no connection.
	if next := d.Server.ConnGate; next != nil {
		d.Server.ConnGate = func(remote, local netip.AddrPort) bool {
			return d.Hosts.AcceptConn(remote, local) && next(remote, local)
		}
	} else {
		d.Server.ConnGate = d.Hosts.AcceptConn
	}
	if hosts != nil {
		log.Info("hosts_access rules in force", "files", hosts.Files, "rules", len(hosts.Rules),
			"mountd", hosts.Names(DaemonMountd), "nfsd", hosts.Names(DaemonNFSD))
	}
	d.NFS = &NFS3{Auth: d.Exports, Logger: log}
	d.Mount = &Mount{Exports: d.Exports}
	d.register(d.NFS)
	d.register(d.Mount)

	// tcp6 and udp6 only for IPv6 sockets: an IPv4-mapped listen address
	// (::ffff:10.1.2.1), or every address on a host without IPv6, is
	// served on IPv4 sockets.
	ipv6 := d.nfsAddr.Addr().Unmap().Is6()
	maps := ServiceMappings(d.nfsAddr.Port(), d.mountAddr.Port(), ipv6)
	if cfg.NoPortmap {
		d.registerRpcbind(ctx, maps)
	} else {
		d.Portmap = NewPortmap(d.portmapAddr.Port())
		if ipv6 {
			for _, netid := range []string{portmap.NetidTCP6, portmap.NetidUDP6} {
				for v := uint32(portmap.V2); v <= portmap.V4; v++ {
					if err := d.Portmap.SetLocal(portmap.Prog, v, netid, d.portmapAddr.Port()); err != nil {
						return nil, err
					}
				}
			}
		}
		for _, m := range maps {
			if err := d.Portmap.SetLocal(m.Prog, m.Vers, m.Netid, m.Port); err != nil {
				return nil, err
			}
		}
		d.register(d.Portmap)
	}

	d.fatal = make(chan error, len(lns)+len(pcs))
	for _, ln := range lns {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := d.Server.Serve(ln); err != nil && !errors.Is(err, ErrServerClosed) {
				d.fatal <- fmt.Errorf("serve tcp %s: %w", ln.Addr(), err)
			}
		}()
	}
	for _, pc := range pcs {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := d.Server.ServeUDP(pc); err != nil && !errors.Is(err, ErrServerClosed) {
				d.fatal <- fmt.Errorf("serve udp %s: %w", pc.LocalAddr(), err)
			}
		}()
	}
	d.drcStop, d.drcDone = make(chan struct{}), make(chan struct{})
	go d.watchStateDir(DefaultDRCLogCheck)
	attrs := []any{"exports", len(table.Exports), "nfs", d.nfsAddr, "mount", d.mountAddr, "state_dir", cfg.StateDir}
	switch {
	case d.Portmap != nil:
		attrs = append(attrs, "portmap", d.portmapAddr)
	case d.registered.Load():
		attrs = append(attrs, "portmap", "system rpcbind")
	default:
		attrs = append(attrs, "portmap", "none (not registered with a system rpcbind: clients must name the ports until it is)")
	}
	log.Info("mailnfsd serving", attrs...)
	return d, nil
}

// logTableWarnings logs the exports file's warnings (ExportTable.Warnings),
// the same lines -check-config prints.
func logTableWarnings(log *slog.Logger, t *ExportTable) {
	for _, w := range t.Warnings {
		log.Warn("exports: " + w.String())
	}
}

// DefaultRpcbindCheck is how often a daemon without a portmapper of its
// own checks that the system's rpcbind still holds its mappings.
const DefaultRpcbindCheck = 30 * time.Second

// registerRpcbind registers with the system's rpcbind; without one, the
// server still runs and clients need port= and mountport= until
// watchRpcbind finds an rpcbind and registers.
func (d *Daemon) registerRpcbind(ctx context.Context, maps []RpcbindMapping) {
	d.rpcbind, d.mappings = d.cfg.Rpcbind, maps
	if d.rpcbind == nil {
		d.rpcbind = &RpcbindClient{}
	}
	if err := d.registerMappings(ctx); err != nil {
		d.log.Warn("not registered with the system rpcbind; clients must name the ports (port=, mountport=) until it is", "err", err)
	} else {
		d.log.Info("registered with the system rpcbind", "mappings", len(maps))
	}
	every := d.cfg.RpcbindCheck
	if every == 0 {
		every = DefaultRpcbindCheck
	}
	if every < 0 {
		return
	}
	d.watchStop, d.watchDone = make(chan struct{}), make(chan struct{})
	go d.watchRpcbind(every)
}

// registerMappings (re)registers the mappings; after a failure it removes what
// it set, so that no half registration stays.
func (d *Daemon) registerMappings(ctx context.Context) error {
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if err := d.rpcbind.Register(rctx, d.mappings); err != nil {
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = d.rpcbind.Unregister(uctx, d.mappings)
		return err
	}
	d.registered.Store(true)
	return nil
}

// watchRpcbind asks the system's rpcbind every interval for the NFS v3
// TCP port (and, when that is ours, MOUNT v3's) and registers again when
// it has none: an rpcbind started
// after mailnfsd, or restarted without its warm-start state, would
// otherwise send every front end's mount away until mailnfsd restarts.
// A port of another server is left alone (logged once); an rpcbind that
// does not answer is logged once per outage.
func (d *Daemon) watchRpcbind(every time.Duration) {
	defer close(d.watchDone)
	t := time.NewTicker(every)
	defer t.Stop()
	var (
		down, foreign bool // logged and not yet over
		nfsPort       = d.nfsAddr.Port()
	)
	for {
		select {
		case <-d.watchStop:
			return
		case <-t.C:
		}
		ctx, cancel := context.WithTimeout(context.Background(), every)
		port, err := d.rpcbind.GetPort(ctx, rpc.ProgNFS, 3, portmap.IPProtoTCP)
		switch {
		case err != nil:
			if !down {
				d.log.Warn("system rpcbind does not answer; will register again when it does", "err", err)
			}
			down = true
		case port == nfsPort:
			down, foreign = false, false
			// MOUNT may be gone alone (a local mountd that stopped
			// unregistered it): the front ends could not mount.
			if mport, err := d.rpcbind.GetPort(ctx, rpc.ProgMount, 3, portmap.IPProtoTCP); err == nil && mport == 0 {
				d.registerAgain("MOUNT")
			}
		case port != 0:
			down = false
			if !foreign {
				d.log.Warn("the system rpcbind maps NFS v3 to another server's port; leaving it", "port", port, "ours", nfsPort)
			}
			foreign = true
		default:
			down, foreign = false, false
			d.registerAgain("NFS")
		}
		cancel()
	}
}

// registerAgain registers the mappings the system rpcbind has lost (what
// names the program found missing) with SETs alone, not Register's UNSET
// then SET: a server that took a mapping since the watch looked keeps it,
// and so does each of ours still there (refused, counted as already).
func (d *Daemon) registerAgain(what string) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	refused, err := d.rpcbind.RegisterAbsent(ctx, d.mappings)
	if err != nil {
		d.log.Warn("registering again with the system rpcbind failed", "missing", what, "err", err)
		return
	}
	d.registered.Store(true)
	d.log.Info("registered with the system rpcbind again: it had lost our mappings", "missing", what, "mappings", len(d.mappings)-refused, "already", refused)
}

// checkStateDir puts back what an operator cleaning up removed from the
// state directory while mailnfsd runs: drc.log (DRCLog.Check) and the
// handle key, which the stores sign with and which the next start would
// otherwise replace with a new one, failing every front end's handles
// with NFS3ERR_BADHANDLE (maildirfs.RestoreKey).
func (d *Daemon) checkStateDir() {
	if d.drcLog != nil {
		d.drcLog.Check()
	}
	restored, err := maildirfs.RestoreKey(d.cfg.StateDir)
	switch {
	case err != nil && !d.keyFailed.Swap(true):
		d.log.Error("the handle key is gone from the state directory and writing it back failed: the next start will make a new key and front ends' handles will fail with NFS3ERR_BADHANDLE until they mount again; will try again", "state_dir", d.cfg.StateDir, "err", err)
	case restored:
		d.log.Warn("the handle key was gone from the state directory while mailnfsd ran (the directory removed or emptied); wrote back the key this process signs handles with, so that they survive the next restart", "state_dir", d.cfg.StateDir)
	}
	if err == nil {
		d.keyFailed.Store(false)
	}
}

// watchStateDir checks every interval that the state directory still
// holds drc.log and the handle key (checkStateDir).
func (d *Daemon) watchStateDir(every time.Duration) {
	defer close(d.drcDone)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-d.drcStop:
			return
		case <-t.C:
			d.checkStateDir()
		}
	}
}

// inUseHint returns "; " and hint when err says the port is taken, for
// the operator who starts mailnfsd on a box where a system service still
// holds it; else "".
func inUseHint(err error, hint string) string {
	if errors.Is(err, syscall.EADDRINUSE) {
		return "; " + hint
	}
	return ""
}

// listenPair binds TCP and UDP on the same port of host; port 0 picks a
// port free for both.
func listenPair(host string, port int) (net.Listener, net.PacketConn, error) {
	for try := 0; ; try++ {
		addr := net.JoinHostPort(host, strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			return nil, nil, err
		}
		p := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", net.JoinHostPort(host, strconv.Itoa(p)))
		if err == nil {
			return ln, pc, nil
		}
		ln.Close()
		if port != 0 || try == 20 {
			return nil, nil, err
		}
	}
}

// loadTable reads and parses the exports.
func (d *Daemon) loadTable() (*ExportTable, error) {
	opts := d.cfg.ParseOptions
	if opts == nil {
		opts = &ParseOptions{LookupHost: LookupHost}
	}
	if d.cfg.ExportsText != "" {
		return ParseExports("exports", []byte(d.cfg.ExportsText), opts)
	}
	return LoadExports(d.cfg.ExportsFile, opts)
}

// loadHosts reads the hosts_access files; nil without Config.HostsAllow.
func (d *Daemon) loadHosts() (*HostsAccess, error) {
	return LoadHostsConfig(d.cfg.HostsAllow, d.cfg.HostsDeny, &HostsOptions{LookupHost: d.lookupHost()})
}

func (d *Daemon) lookupHost() func(string) ([]netip.Addr, error) {
	if d.cfg.ParseOptions != nil {
		return d.cfg.ParseOptions.LookupHost
	}
	return LookupHost
}

// HostsDenyPath returns the hosts.deny file used with allow and the
// HostsDeny setting deny (see Config.HostsDeny): "" when there is none.
func HostsDenyPath(allow, deny string) string {
	switch {
	case allow == "" || deny == "none":
		return ""
	case deny != "":
		return deny
	}
	return filepath.Join(filepath.Dir(allow), "hosts.deny")
}

// LoadHostsConfig loads hosts.allow and the hosts.deny that goes with it
// (HostsDenyPath); nil rules when allow is empty.
func LoadHostsConfig(allow, deny string, opts *HostsOptions) (*HostsAccess, error) {
	if allow == "" {
		if deny != "" && deny != "none" {
			return nil, errors.New("a hosts.deny file is given without hosts.allow")
		}
		return nil, nil
	}
	return LoadHostsAccess(allow, HostsDenyPath(allow, deny), opts)
}

// LookupHost resolves a host name of an exports file with the system
// resolver (hosts file, then DNS), bounded to 5 seconds: the default
// ParseOptions.LookupHost of Start.
func LookupHost(name string) ([]netip.Addr, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	return net.DefaultResolver.LookupNetIP(ctx, "ip", name)
}

// NFSAddr returns the address the NFS program listens on (TCP and UDP).
func (d *Daemon) NFSAddr() netip.AddrPort { return d.nfsAddr }

// MountAddr returns the MOUNT address; it equals NFSAddr when MOUNT shares
// the NFS port.
func (d *Daemon) MountAddr() netip.AddrPort { return d.mountAddr }

// PortmapAddr returns the portmapper's address, or the zero AddrPort with
// Config.NoPortmap.
func (d *Daemon) PortmapAddr() netip.AddrPort { return d.portmapAddr }

// Fatal delivers an error when a serve loop stops for a reason other than
// Shutdown (the daemon is then only partly serving and should stop).
func (d *Daemon) Fatal() <-chan error { return d.fatal }

// Reload re-reads the exports and the hosts_access files and swaps both
// in. Both files are parsed before either changes: on any error (parse, or
// an export that cannot be opened) the old rules of both stay in force,
// the error is logged and returned. Calls already running finish under
// the rules they started with. It also checks that drc.log is still in
// the state directory (DRCLog.Check).
func (d *Daemon) Reload() error {
	d.reloadMu.Lock()
	defer d.reloadMu.Unlock()
	d.checkStateDir() // a SIGHUP after cleaning up need not wait for the timer
	table, err := d.loadTable()
	var hosts *HostsAccess
	if err == nil {
		hosts, err = d.loadHosts()
	}
	if err == nil {
		err = d.Exports.Reload(table)
	}
	if err != nil {
		d.log.Error("reload failed; keeping the previous exports and hosts_access rules", "err", err)
		return err
	}
	d.Hosts.Set(hosts)
	logTableWarnings(d.log, table)
	for _, w := range PublicExposure(d.cfg.Listen, table, InterfaceAddrs()) {
		d.log.Warn("private network guard: " + w)
	}
	attrs := []any{"exports", len(table.Exports)}
	if hosts != nil {
		attrs = append(attrs, "hosts_rules", len(hosts.Rules))
	}
	d.log.Info("exports and hosts_access reloaded", attrs...)
	return nil
}

// Shutdown stops taking calls, lets the calls in flight finish (until ctx
// ends), removes rpcbind registrations and closes the stores. It is safe
// to call more than once; later calls return the first result.
func (d *Daemon) Shutdown(ctx context.Context) error {
	d.stopOnce.Do(func() {
		var errs []error
		if err := d.Server.Shutdown(ctx); err != nil {
			errs = append(errs, fmt.Errorf("drain: %w", err))
		}
		d.wg.Wait()
		if d.watchStop != nil {
			close(d.watchStop)
			<-d.watchDone
		}
		if d.drcStop != nil {
			close(d.drcStop)
			<-d.drcDone
		}
		if d.registered.Load() {
			uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
			// Only what still maps to us: the watch leaves alone a
			// mapping another server took, and so does the stop.
			if err := d.rpcbind.UnregisterOwn(uctx, d.mappings); err != nil {
				errs = append(errs, fmt.Errorf("rpcbind: %w", err))
			}
			cancel()
		}
		if err := d.Exports.Close(); err != nil {
			errs = append(errs, err)
		}
		if d.drcLog != nil {
			if err := d.drcLog.Close(); err != nil {
				errs = append(errs, fmt.Errorf("duplicate request log: %w", err))
			}
		}
		d.stopErr = errors.Join(errs...)
		if d.stopErr != nil {
			d.log.Error("mailnfsd stopped with errors", "err", d.stopErr)
		} else {
			d.log.Info("mailnfsd stopped")
		}
	})
	return d.stopErr
}

// register adds p to the transport, wrapped by Config.Instrument if set.
func (d *Daemon) register(p Program) {
	if d.cfg.Instrument != nil {
		p = d.cfg.Instrument(p)
	}
	d.Server.Register(p)
}

// Run starts a daemon for cfg, serves until ctx ends (or a serve loop
// fails), then shuts down within cfg.ShutdownTimeout. reload, if not nil,
// triggers Reload on each receive (cmd/mailnfsd feeds it SIGHUP). Run
// returns nil after a clean shutdown.
func Run(ctx context.Context, cfg Config, reload <-chan os.Signal) error {
	d, err := Start(ctx, cfg)
	if err != nil {
		return err
	}
	if cfg.Started != nil {
		cfg.Started(d)
	}
	var fatal error
loop:
	for {
		select {
		case <-ctx.Done():
			break loop
		case fatal = <-d.Fatal():
			break loop
		case <-reload:
			_ = d.Reload() // logged; the old table stays
		}
	}
	timeout := cfg.ShutdownTimeout
	if timeout == 0 {
		timeout = DefaultShutdownTimeout
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	err = d.Shutdown(sctx)
	return errors.Join(fatal, err)
}
