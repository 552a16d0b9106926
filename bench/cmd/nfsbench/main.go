// Command nfsbench compares NFSv3 servers on Maildir work: durable
// deliveries at several concurrencies and a 100,000-entry READDIRPLUS
// listing, for mailnfsd, the stock go-nfs server and NFS-Ganesha, each in
// its own network namespace, interleaved in one run (see package bench).
//
// Usage (as root, from the module):
//
//	go run ./bench/cmd/nfsbench [flags]
//
// It prints a markdown report and writes it, with a JSON copy, to -out.
// "nfsbench step" is the driver mode the orchestrator runs inside each
// namespace; it speaks the step protocol on stdin/stdout.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/mailnfs/mailnfs/bench"
)

func main() {
	if len(os.Args) > 1 && os.Args[1] == "step" {
		if err := step(os.Args[2:]); err != nil {
			fmt.Fprintln(os.Stderr, "nfsbench step:", err)
			os.Exit(1)
		}
		return
	}
	code, err := run(os.Args[1:])
	if err != nil {
		fmt.Fprintln(os.Stderr, "nfsbench:", err)
		os.Exit(2)
	}
	os.Exit(code)
}

// dialers are the Session implementations -client chooses from; unstable
// selects UNSTABLE WRITE + COMMIT where the client lets the caller choose.
var dialers = map[string]func(o bench.RawOptions) bench.Dialer{
	"raw":    bench.RawDialer,
	"client": func(bench.RawOptions) bench.Dialer { return dialClient },
}

// clientNames describe the -client choices in the report.
var clientNames = map[string]string{
	"raw/filesync":    "the bench's raw NFSv3 client (GUARDED CREATE, FILE_SYNC WRITE, RENAME; one call at a time per mount)",
	"raw/unstable":    "the bench's raw NFSv3 client (GUARDED CREATE, UNSTABLE WRITE + COMMIT, RENAME; one call at a time per mount)",
	"client/filesync": "package client (Deliver: GUARDED CREATE with mode 0600 in tmp/, one FILE_SYNC WRITE up to wtmax else UNSTABLE WRITEs + COMMIT, RENAME into new/)",
	"client/unstable": "package client (Deliver: GUARDED CREATE with mode 0600 in tmp/, one FILE_SYNC WRITE up to wtmax else UNSTABLE WRITEs + COMMIT, RENAME into new/)",
}

func step(args []string) error {
	fs := flag.NewFlagSet("step", flag.ContinueOnError)
	client := fs.String("client", "client", "NFS client implementation: client or raw")
	write := fs.String("write", "filesync", "how the raw client writes: filesync or unstable (+COMMIT)")
	dircount := fs.Uint("dircount", 0, "raw client: READDIRPLUS dircount (0: 64 KiB)")
	maxcount := fs.Uint("maxcount", 0, "raw client: READDIRPLUS maxcount (0: 256 KiB)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	mk, ok := dialers[*client]
	if !ok {
		return fmt.Errorf("unknown -client %q", *client)
	}
	dial := mk(bench.RawOptions{Unstable: *write == "unstable", DirCount: uint32(*dircount), MaxCount: uint32(*maxcount)})
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	return bench.ServeStep(ctx, os.Stdin, os.Stdout, dial)
}

// altName is the second mailnfsd of -servers, started with -alt-flags;
// dirsyncName a second Ganesha, on the file system of -dirsync-dir.
const (
	altName     = "mailnfsd-alt"
	dirsyncName = "ganesha-dirsync"
)

func run(args []string) (int, error) {
	fs := flag.NewFlagSet("nfsbench", flag.ContinueOnError)
	servers := fs.String("servers", "mailnfsd,gonfs,ganesha", "servers to compare, in order: mailnfsd, gonfs, ganesha, mailnfsd-alt, ganesha-dirsync")
	mailnfsd := fs.String("mailnfsd", "", "mailnfsd binary (default: go build ./cmd/mailnfsd)")
	gonfs := fs.String("gonfs", "", "gonfs-baseline binary (default: go build ./cmd/gonfs-baseline)")
	mailnfsdFlags := fs.String("mailnfsd-flags", "", "extra flags for mailnfsd, space-separated (e.g. \"-sync-window 200us\")")
	altFlags := fs.String("alt-flags", "", "extra flags for mailnfsd-alt, a second mailnfsd measured side by side with the first; list it in -servers")
	altBin := fs.String("alt-bin", "", "mailnfsd-alt's binary (default: the same as mailnfsd's)")
	dirsyncDir := fs.String("dirsync-dir", "", "for ganesha-dirsync in -servers, a second Ganesha whose exports live here: a file system mounted with -o dirsync, so that its CREATE, RENAME and REMOVE are durable when they return (needs -list -1)")
	conc := fs.String("c", "1,8,32", "concurrent deliverers per step, comma-separated")
	duration := fs.Duration("duration", 5*time.Second, "length of each delivery step")
	count := fs.Int("count", 0, "deliveries per step instead of -duration (0: use -duration)")
	size := fs.String("size", "4096", "message size in bytes, or \"mix\" for a mail-like size mix (median ~2.3 KiB, tail to 1 MiB)")
	write := fs.String("write", "filesync", "raw client: FILE_SYNC WRITEs (filesync) or UNSTABLE WRITEs + COMMIT (unstable)")
	dircount := fs.Uint("dircount", 0, "raw client: READDIRPLUS dircount (0: 64 KiB)")
	maxcount := fs.Uint("maxcount", 0, "raw client: READDIRPLUS maxcount (0: 256 KiB)")
	mailboxes := fs.Int("mailboxes", 8, "Maildirs per delivery step")
	rounds := fs.Int("rounds", 1, "repeat the interleaved delivery sequence this many times")
	list := fs.Int("list", 100_000, "entries of the directory listed with READDIRPLUS (negative: skip)")
	listPasses := fs.Int("list-passes", 2, "times the directory is listed")
	census := fs.Int("census", 0, "deliveries in an extra strace sync census step per server (0: skip; delivery steps count syncs with perf anyway)")
	noPerf := fs.Bool("no-perf", false, "do not count server sync calls with perf during delivery steps")
	uid := fs.Uint("uid", 1000, "AUTH_SYS uid (owns the export trees)")
	gid := fs.Uint("gid", 1000, "AUTH_SYS gid")
	shared := fs.Bool("shared", false, "all deliverers of a step share one mount (default: one each)")
	client := fs.String("client", "client", "NFS client implementation for the driver: client (package client) or raw (the bench's own)")
	dir := fs.String("dir", "", "where exports live (default: $TMPDIR); must not be a tmpfs")
	out := fs.String("out", "bench/out", "directory for the report (markdown and JSON)")
	command := fs.String("command", "", "command line to print in the report (default: this one)")
	verbose := fs.Bool("v", false, "log progress to stderr")
	clean := fs.Bool("clean", false, "remove namespaces (and kill their processes) left by a killed run, then exit; not while another run is active")
	nice := fs.Int("nice", 0, "run servers and drivers under nice -n N (e.g. -10 on a machine busy with other work)")
	if err := fs.Parse(args); err != nil {
		return 2, err
	}
	if os.Geteuid() != 0 {
		return 2, errors.New("must run as root (network namespaces, /proc/PID/clear_refs)")
	}
	if *clean {
		names, err := bench.CleanStale()
		for _, n := range names {
			fmt.Println("removed", n)
		}
		if err != nil {
			return 1, err
		}
		return 0, nil
	}
	if _, ok := dialers[*client]; !ok {
		return 2, fmt.Errorf("unknown -client %q", *client)
	}
	msgSize := bench.SizeMix
	if *size != "mix" {
		n, err := strconv.Atoi(*size)
		if err != nil || n < 200 || n > 16<<20 {
			return 2, fmt.Errorf("-size: want a byte count in [200, 16 MiB] or \"mix\", got %q", *size)
		}
		msgSize = n
	}
	if *write != "filesync" && *write != "unstable" {
		return 2, fmt.Errorf("-write: want filesync or unstable, got %q", *write)
	}
	var cs []int
	for f := range strings.SplitSeq(*conc, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return 2, fmt.Errorf("-c: bad concurrency %q", f)
		}
		cs = append(cs, n)
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))

	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	self, err := os.Executable()
	if err != nil {
		return 2, err
	}
	cfg := bench.Config{
		Driver: []string{self, "step", "-client", *client, "-write", *write,
			"-dircount", strconv.FormatUint(uint64(*dircount), 10), "-maxcount", strconv.FormatUint(uint64(*maxcount), 10)},
		Concurrencies: cs, Duration: *duration, Count: *count, Size: msgSize,
		Mailboxes: *mailboxes, Rounds: *rounds, ListEntries: *list, ListPasses: *listPasses,
		CensusCount: *census, NoPerf: *noPerf, Nice: *nice, UID: uint32(*uid), GID: uint32(*gid), SharedSession: *shared,
		Dir: *dir, Logger: log, Client: clientNames[*client+"/"+*write],
	}
	if *list < 0 {
		cfg.ListEntries = -1
	}
	var binDir string
	built := map[string]string{} // package -> binary: mailnfsd and mailnfsd-alt share one build
	build := func(pkg string) (string, error) {
		if p, ok := built[pkg]; ok {
			return p, nil
		}
		root, err := bench.ModuleRoot(ctx)
		if err != nil {
			return "", err
		}
		if binDir == "" {
			if binDir, err = os.MkdirTemp("", "mnfs-bench-bin-"); err != nil {
				return "", err
			}
		}
		p := filepath.Join(binDir, filepath.Base(pkg))
		if err := bench.Build(ctx, root, pkg, p); err != nil {
			return "", err
		}
		built[pkg] = p
		return p, nil
	}
	defer func() {
		if binDir != "" {
			os.RemoveAll(binDir)
		}
	}()
	for k := range strings.SplitSeq(*servers, ",") {
		so := bench.ServerOptions{Kind: strings.TrimSpace(k)}
		switch so.Kind {
		case altName:
			so.Kind, so.Name = bench.KindMailnfsd, altName
		case dirsyncName:
			if *dirsyncDir == "" || *list >= 0 {
				return 2, fmt.Errorf("-servers %s needs -dirsync-dir and -list -1", dirsyncName)
			}
			so.Kind, so.Name, so.Dir = bench.KindGanesha, dirsyncName, *dirsyncDir
		}
		switch so.Kind {
		case bench.KindMailnfsd:
			so.Args = strings.Fields(*mailnfsdFlags)
			if so.Name == altName {
				so.Args = strings.Fields(*altFlags)
				if *altBin != "" {
					so.Bin = *altBin
					break
				}
			}
			if so.Bin = *mailnfsd; so.Bin == "" {
				if so.Bin, err = build("./cmd/mailnfsd"); err != nil {
					return 2, err
				}
			}
		case bench.KindGoNFS:
			if so.Bin = *gonfs; so.Bin == "" {
				if so.Bin, err = build("./cmd/gonfs-baseline"); err != nil {
					return 2, err
				}
			}
		case bench.KindGanesha:
		default:
			return 2, fmt.Errorf("-servers: unknown server %q", so.Kind)
		}
		cfg.Servers = append(cfg.Servers, so)
	}

	rep, err := bench.Run(ctx, cfg)
	if err != nil {
		return 2, err
	}
	cmdline := *command
	if cmdline == "" {
		cmdline = "go run ./bench/cmd/nfsbench " + strings.Join(args, " ")
	}
	if err := writeReport(rep, cmdline, *out, os.Stdout); err != nil {
		return 2, err
	}
	if len(rep.Failures) > 0 {
		return 1, nil
	}
	return 0, nil
}

// writeReport prints the markdown report to w and stores it, with a JSON
// copy, as OUT/bench-<time>.{md,json} and OUT/latest.md.
func writeReport(rep *bench.Report, cmdline, out string, w io.Writer) error {
	var md strings.Builder
	if err := rep.WriteMarkdown(&md, cmdline); err != nil {
		return err
	}
	if _, err := io.WriteString(w, md.String()); err != nil {
		return err
	}
	if out == "" {
		return nil
	}
	if err := os.MkdirAll(out, 0o755); err != nil {
		return err
	}
	stamp := rep.Started.UTC().Format("20060102-150405")
	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		return err
	}
	for name, b := range map[string][]byte{
		"bench-" + stamp + ".md":   []byte(md.String()),
		"latest.md":                []byte(md.String()),
		"bench-" + stamp + ".json": js,
	} {
		if err := os.WriteFile(filepath.Join(out, name), b, 0o644); err != nil {
			return err
		}
	}
	fmt.Fprintf(os.Stderr, "report written to %s/bench-%s.md\n", out, stamp)
	return nil
}
