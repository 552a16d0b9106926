// Command mailnfsd is the mailnfs NFSv3 server: it serves the directories
// of an exports file (FreeBSD or Linux syntax) over NFSv3 and MOUNT, with a
// built-in portmapper, to Maildir clients.
//
// Usage:
//
//	mailnfsd [-exports /etc/exports] [-hosts-allow /etc/hosts.allow [-hosts-deny FILE|none]]
//	         [-listen ADDR] [-nfs-port 2049]
//	         [-mount-port N] [-portmap-port 111] [-state-dir /var/lib/mailnfsd]
//	         [-log-level info] [-log-format text] [-metrics 127.0.0.1:9139]
//	mailnfsd -check-config [-exports FILE] [-hosts-allow FILE] [-listen ADDR]
//	mailnfsd -demo DIR
//	mailnfsd compact [-state-dir /var/lib/mailnfsd] DIR
//	mailnfsd expand [-state-dir /var/lib/mailnfsd] DIR
//
// SIGTERM and SIGINT stop it after the calls in flight are answered (a
// second one during that stops it at once, exit status 1); SIGHUP
// re-reads the exports and hosts_access files (a broken file keeps the old
// rules of both, logged). -hosts-allow enforces hosts_access(5) rules:
// "rpcbind"/"portmap" guard the portmapper, "mountd" and "nfsd" guard MOUNT
// and NFS when named; hosts.deny beside hosts.allow is read too unless
// -hosts-deny names another file or "none". At start (and in
// -check-config) mailnfsd warns when it listens on, or an export admits,
// addresses outside loopback/RFC 1918/fc00::/7/fe80::/10, and when it is
// not root (created files then belong to its own uid).
// -demo DIR creates DIR/export with a sample Maildir and serves it to
// loopback clients, printing how to reach it.
// compact and expand (compact.go) convert a tree offline to zstd
// compression at rest (the exports option -compress=zstd) and back; stop
// the server for that tree first and pass its -state-dir.
//
// Exit status: 0 after a clean stop or a good -check-config, 1 when the
// server fails or the configuration has errors, 2 for bad flags.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"runtime"
	"strings"
	"syscall"
	"time"

	"github.com/mailnfs/mailnfs/internal/sysmonhold"
	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/nfsd"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

// flags are the command line, before they become an nfsd.Config.
type flags struct {
	exports, hostsAllow, hostsDeny, listen string
	stateDir, demo, metrics                string
	nfsPort, mountPort, portmapPort, procs int
	checkConfig, sysmonHold                bool
	logLevel, logFormat                    string
	syncWindow, shutdownTimeout            time.Duration
	set                                    map[string]bool // flags given explicitly
}

// usage is what mailnfsd -h prints before the flags: what the flag list
// cannot say (the subcommands, the environment, signals, exit status).
const usage = `usage: mailnfsd [flags]                 serve the exports over NFSv3, MOUNT and a portmapper
       mailnfsd -check-config [flags]  check the exports and hosts_access files, then exit
       mailnfsd -demo DIR [flags]      serve a sample Maildir under DIR to loopback clients
       mailnfsd compact [-state-dir DIR] DIR
       mailnfsd expand [-state-dir DIR] DIR
                                       convert a tree to zstd compression at rest and back,
                                       with the server stopped for it (mailnfsd compact -h)

SIGHUP re-reads the exports and hosts_access files (a broken file keeps the
old rules of both); SIGTERM or SIGINT stops after the calls in flight are
answered (-shutdown-timeout), a second one at once (exit status 1). ` + pprofEnv + `=127.0.0.1:6060 in the environment
serves net/http/pprof there (loopback only; for debugging).
Exit status: 0 after a clean stop or a good -check-config, 1 when the server
fails, stops with errors or is stopped by a second signal, or the
configuration has errors, 2 for bad flags.

Flags:
`

func parseFlags(args []string, stderr io.Writer) (*flags, error) {
	f := &flags{set: map[string]bool{}}
	fs := flag.NewFlagSet("mailnfsd", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, usage)
		fs.PrintDefaults()
	}
	fs.StringVar(&f.exports, "exports", "/etc/exports", "exports `file` (FreeBSD or Linux syntax); SIGHUP re-reads it")
	fs.StringVar(&f.hostsAllow, "hosts-allow", "", "hosts_access(5) `file` (daemons rpcbind/portmap, mountd, nfsd); SIGHUP re-reads it")
	fs.StringVar(&f.hostsDeny, "hosts-deny", "", "hosts.deny `file` searched after -hosts-allow (default: hosts.deny beside it if present; \"none\": no deny file)")
	fs.StringVar(&f.listen, "listen", "", "IP `address` to serve on (default: every address)")
	fs.IntVar(&f.nfsPort, "nfs-port", 2049, "NFS `port` (TCP and UDP)")
	fs.IntVar(&f.mountPort, "mount-port", 0, "MOUNT `port` (TCP and UDP); 0 serves MOUNT on the NFS port")
	fs.IntVar(&f.portmapPort, "portmap-port", 111, "built-in portmapper `port`; 0 runs none and registers with the system rpcbind")
	fs.StringVar(&f.stateDir, "state-dir", "/var/lib/mailnfsd", "`directory` for the file handle key and the duplicate request log (drc.log); handles survive restarts only with the same key")
	fs.BoolVar(&f.checkConfig, "check-config", false, "parse the exports and hosts_access files, print errors as file:line:col or a summary (and private-network warnings), and exit")
	fs.StringVar(&f.logLevel, "log-level", "info", "log `level`: debug (traces every call), info, warn or error")
	fs.StringVar(&f.logFormat, "log-format", "text", "log `format`: text or json (to stderr)")
	fs.DurationVar(&f.syncWindow, "sync-window", 0, "group commit wait (`duration`, e.g. 200us); 0 syncs at once")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", nfsd.DefaultShutdownTimeout, "on SIGTERM, how long to wait for calls in flight (`duration`)")
	fs.StringVar(&f.metrics, "metrics", "", "serve Prometheus metrics at http://`ADDR`/metrics (e.g. 127.0.0.1:9139; keep it on loopback or a management network); empty: off")
	fs.IntVar(&f.procs, "procs", 0, "Go scheduler slots for calls (GOMAXPROCS, `N`); 0: $GOMAXPROCS if set, else four per CPU the process may use (at most CPUs+16), so that calls run while others wait in fsync")
	fs.BoolVar(&f.sysmonHold, "sysmon-hold", true, "keep the Go runtime's monitor thread from waking every 20us while calls are served (one extra scheduler slot, held by a goroutine in 5 ms sleeps; docs/operations.md); false: the stock runtime")
	fs.StringVar(&f.demo, "demo", "", "create `DIR`/export with a sample Maildir and serve it to 127.0.0.0/8")
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "mailnfsd: unexpected argument %q\n", fs.Arg(0))
		fs.Usage()
		return nil, errors.New("usage")
	}
	fs.Visit(func(fl *flag.Flag) { f.set[fl.Name] = true })
	return f, nil
}

func newLogger(level, format string, w io.Writer) (*slog.Logger, error) {
	var l slog.Level
	if err := l.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("-log-level %q: want debug, info, warn or error", level)
	}
	o := &slog.HandlerOptions{Level: l}
	var newHandler func(io.Writer) slog.Handler
	switch format {
	case "text":
		newHandler = func(w io.Writer) slog.Handler { return slog.NewTextHandler(w, o) }
	case "json":
		newHandler = func(w io.Writer) slog.Handler { return slog.NewJSONHandler(w, o) }
	default:
		return nil, fmt.Errorf("-log-format %q: want text or json", format)
	}
	if f, ok := w.(*os.File); ok && journalStream(f) {
		// Under systemd: each line with its priority for the journal.
		return slog.New(newPriorityHandler(w, newHandler)), nil
	}
	return slog.New(newHandler(w)), nil
}

// config turns the flags into an nfsd.Config.
func (f *flags) config(log *slog.Logger) nfsd.Config {
	c := nfsd.Config{
		ExportsFile:     f.exports,
		HostsAllow:      f.hostsAllow,
		HostsDeny:       f.hostsDeny,
		Listen:          f.listen,
		NFSPort:         f.nfsPort,
		MountPort:       f.mountPort,
		PortmapPort:     f.portmapPort,
		NoPortmap:       f.portmapPort == 0,
		StateDir:        f.stateDir,
		SyncWindow:      f.syncWindow,
		ShutdownTimeout: f.shutdownTimeout,
		Logger:          log,
	}
	return c
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "compact" || args[0] == "expand") {
		return runTool(args[0], args[1:], stdout, stderr)
	}
	f, err := parseFlags(args, stderr)
	if err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return 0
		}
		return 2
	}
	log, err := newLogger(f.logLevel, f.logFormat, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "mailnfsd: %v\n", err)
		return 2
	}
	cfg := f.config(log)
	// A -metrics that is no host:port fails the check and the start
	// alike, as a bad flag; one that is taken fails only the start.
	if err := checkMetricsAddr(f.metrics); err != nil {
		fmt.Fprintf(stderr, "mailnfsd: %v\n", err)
		return 2
	}
	if f.checkConfig {
		// Flags the server refuses at start (a -listen that is not an
		// IP address, a port out of range) fail the check as they fail
		// the start.
		if err := cfg.Validate(); err != nil {
			fmt.Fprintf(stderr, "mailnfsd: %v\n", err)
			return 2
		}
		return checkConfig(f, stdout, stderr)
	}
	if f.demo != "" {
		if err := setupDemo(f, &cfg, stdout); err != nil {
			fmt.Fprintf(stderr, "mailnfsd: demo: %v\n", err)
			return 1
		}
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "mailnfsd: %v\n", err)
		return 2
	}

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	finished := make(chan struct{})
	defer close(finished)
	// Notify before anything listens: a signal that came before it would
	// kill the process by the default action, mid-start.
	sigs := make(chan os.Signal, 2)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	defer signal.Stop(sigs)
	go stopOnSignal(log, sigs, cancel, finished)
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	if f.demo != "" {
		cfg.Started = func(d *nfsd.Daemon) { printDemo(stdout, d, cfg) }
	}
	if f.metrics != "" {
		stopMetrics, err := setupMetrics(f.metrics, &cfg, log)
		if err != nil {
			fmt.Fprintf(stderr, "mailnfsd: %v\n", err)
			return 1
		}
		defer stopMetrics()
	}
	runtime.GOMAXPROCS(procs(f.procs))
	if f.sysmonHold {
		defer sysmonhold.Start().Stop()
	}
	if err := nfsd.Run(ctx, cfg, hup); err != nil {
		fmt.Fprintf(stderr, "mailnfsd: %v\n", err)
		return 1
	}
	return 0
}

// stopOnSignal calls cancel on the first SIGTERM or SIGINT from sigs, and exits the
// process at once, status 1, on a second one before finished closes: an
// operator who sends it again (Ctrl-C twice, kill twice) wants the drain
// (up to -shutdown-timeout, 30 s) cut short, as from most daemons. That
// is as safe as a kill: every reply sent was durable when sent, drc.log's
// records are in the page cache for the next start to answer the
// interrupted calls' retransmissions as done, and a registration with the
// system rpcbind left behind is replaced at the next start.
func stopOnSignal(log *slog.Logger, sigs <-chan os.Signal, cancel func(), finished <-chan struct{}) {
	select {
	case sig := <-sigs:
		log.Info("stopping after the calls in flight; send SIGTERM or SIGINT again to exit at once", "signal", sig.String())
		cancel()
	case <-finished:
		return
	}
	select {
	case sig := <-sigs:
		log.Error("second signal while stopping: exiting at once, calls in flight unanswered (clients retransmit them to the next start)", "signal", sig.String())
		os.Exit(1)
	case <-finished:
	}
}

// procs is the GOMAXPROCS for the -procs flag n; a GOMAXPROCS in the
// environment is taken as it is. The default is four Ps per CPU the
// runtime would use, at most 16 more than the CPUs: a call that waits in
// fsync holds its P until the runtime's monitor takes it back (20 µs or
// more later), and with more Ps than CPUs the calls behind it start at
// once instead. Measured side by side on 2 vCPUs (nfsbench -alt-flags, 3
// rounds, 2026-11-29): 8 Ps against 2 gave 8%, 8% and 33% more
// deliveries/s at 1, 8 and 32 deliverers and 8% slower 100k listings; 32
// Ps did worse than 8 at 32 deliverers (0.89x, with 1.17x the CPU per
// delivery). Larger boxes are untested, hence the cap.
func procs(n int) int {
	switch {
	case n > 0:
		return n
	case os.Getenv("GOMAXPROCS") != "":
		return runtime.GOMAXPROCS(0)
	}
	n = runtime.GOMAXPROCS(0)
	return min(4*n, n+16)
}

// checkConfig parses the exports file and the hosts_access files the way
// the server would (host names resolved, export directories checked),
// reports errors (exit 1) or a summary, and prints the exports file's
// warnings (nfsd.ExportTable.Warnings), exports that would not be served
// because their mp/mountpoint directory is not mounted
// (nfsd.CheckMountpoints) and exposure outside private networks
// (warnings do not fail the check). A compressing export that overlaps
// another (nfsd.CheckCompressOverlap), or a state directory whose handle
// key the stores would refuse (maildirfs.CheckStateDir), is an error, as
// it fails the start.
func checkConfig(f *flags, stdout, stderr io.Writer) int {
	path := f.exports
	table, err := nfsd.LoadExports(path, &nfsd.ParseOptions{LookupHost: nfsd.LookupHost})
	hosts, herr := nfsd.LoadHostsConfig(f.hostsAllow, f.hostsDeny, &nfsd.HostsOptions{LookupHost: nfsd.LookupHost})
	if err != nil || herr != nil {
		if err != nil {
			fmt.Fprintln(stderr, err)
		}
		if herr != nil {
			fmt.Fprintln(stderr, herr)
		}
		return 1
	}
	var problems []string
	for _, e := range table.Exports {
		st, err := os.Stat(e.Path)
		switch {
		case err != nil:
			problems = append(problems, fmt.Sprintf("%s: export %s: %v", e.Pos, e.Path, errors.Unwrap(err)))
		case !st.IsDir():
			problems = append(problems, fmt.Sprintf("%s: export %s is not a directory", e.Pos, e.Path))
		}
	}
	if len(problems) == 0 {
		if err := nfsd.CheckCompressOverlap(table); err != nil {
			problems = append(problems, err.Error())
		}
	}
	// A handle key the start would refuse fails the check too, or the
	// unit's ExecStartPre passes and the start fails in a loop.
	if err := maildirfs.CheckStateDir(f.stateDir); err != nil && len(table.Exports) > 0 {
		problems = append(problems, "-state-dir: "+err.Error())
	}
	if len(problems) > 0 {
		fmt.Fprintln(stderr, strings.Join(problems, "\n"))
		return 1
	}
	fmt.Fprintf(stdout, "%s: OK, %s", path, table.Summary())
	if hosts != nil {
		fmt.Fprintf(stdout, "%s: OK, %d hosts_access rules (MOUNT checked: %v, NFS checked: %v)\n",
			strings.Join(hosts.Files, ", "), len(hosts.Rules), hosts.Names(nfsd.DaemonMountd), hosts.Names(nfsd.DaemonNFSD))
	}
	for _, w := range append(table.Warnings, nfsd.CheckMountpoints(table)...) {
		fmt.Fprintf(stdout, "warning: %s\n", w)
	}
	for _, w := range nfsd.PublicExposure(f.listen, table, nfsd.InterfaceAddrs()) {
		fmt.Fprintf(stdout, "warning: private network guard: %s\n", w)
	}
	return 0
}
