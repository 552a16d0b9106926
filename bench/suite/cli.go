package suite

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// Exit codes of Main.
const (
	ExitOK       = 0
	ExitFailed   = 1 // verification failed: something was lost, duplicated or corrupted
	ExitUsage    = 2
	ExitRunError = 3
)

type targetList []string

func (t *targetList) String() string     { return strings.Join(*t, ",") }
func (t *targetList) Set(s string) error { *t = append(*t, s); return nil }

type sizeFlag struct{ p *int }

func (s sizeFlag) String() string {
	if s.p == nil || *s.p <= 0 {
		return "mix"
	}
	return strconv.Itoa(*s.p)
}

func (s sizeFlag) Set(v string) error {
	if v == "mix" {
		*s.p = -1
		return nil
	}
	n, err := strconv.Atoi(v)
	if err != nil || n < 200 || n > 256<<20 {
		return errors.New(`want "mix" or a size in bytes (200 .. 256 MiB)`)
	}
	*s.p = n
	return nil
}

// isTTY reports whether f is a terminal.
func isTTY(f *os.File) bool {
	_, err := unix.IoctlGetTermios(int(f.Fd()), ioctlGetTermios)
	return err == nil
}

const usageText = `usage: %[1]s [flags] WORKLOAD      run a workload (deliver, pop3, postmark, bigdir, mixed)
       %[1]s compare A.json B.json   print the changes from run A to run B

Targets (-target, repeatable; several are measured interleaved, side by side):
  nfs://host[:port]/export[?nfsport=P&mountport=P&uid=N&gid=N]   any NFSv3 server, no kernel mount
  dir:/path                                                      a local Maildir (fsync of file and directory)
  self                                                           mailnfsd started in this process on a temp dir
  server:mailnfsd, server:gonfs, server:ganesha                   a server process in its own network namespace
                                                                 (package bench's runners; workers run inside it)

Exit status: 0 ok, 1 verification failed (loss, duplicate, corruption), 2 usage, 3 the run could not be carried out.

Flags:
`

// Main is the mailnfs bench command: args are the arguments after the
// program (or subcommand) name. It returns the exit status.
func Main(ctx context.Context, prog string, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "compare" {
		if len(args) != 3 {
			fmt.Fprintf(stderr, "usage: %s compare A.json B.json\n", prog)
			return ExitUsage
		}
		a, err := ReadJSONFile(args[1])
		if err != nil {
			fmt.Fprintln(stderr, err)
			return ExitRunError
		}
		b, err := ReadJSONFile(args[2])
		if err != nil {
			fmt.Fprintln(stderr, err)
			return ExitRunError
		}
		if err := Compare(stdout, a, b); err != nil {
			fmt.Fprintln(stderr, err)
			return ExitRunError
		}
		return ExitOK
	}
	fs := flag.NewFlagSet(prog, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, usageText, prog)
		fs.PrintDefaults()
	}
	p := DefaultParams()
	var targets targetList
	cfg := Config{}
	fs.Var(&targets, "target", "target to measure (repeatable; default self)")
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured time per target, split over the rounds")
	fs.IntVar(&cfg.Rounds, "rounds", 3, "interleaved rounds")
	fs.IntVar(&cfg.Frontends, "frontends", 0, "front-end processes (0: workers run in this process)")
	fs.BoolVar(&cfg.NetNS, "netns", false, "each front end in its own network namespace on a private 10.x net (root, self target)")
	fs.BoolVar(&cfg.Keep, "keep", false, "keep the run directory in each target")
	fs.IntVar(&p.Mailboxes, "mailboxes", p.Mailboxes, "mailboxes (deliver, pop3, mixed)")
	fs.IntVar(&p.Concurrency, "concurrency", 0, "deliverers / session workers / PostMark instances / listers (0: 8, or 1 for postmark and bigdir)")
	fs.IntVar(&p.Sessions, "sessions", p.Sessions, "session workers of mixed")
	fs.Var(sizeFlag{&p.Size}, "size", `message size in bytes, or "mix" (2 KiB median, tail to 1 MiB)`)
	fs.IntVar(&p.Preload, "preload", p.Preload, "messages per mailbox before pop3/mixed sessions")
	fs.Float64Var(&p.DeleteFraction, "delete", p.DeleteFraction, "share of the messages a session deletes")
	fs.IntVar(&p.Count, "count", 0, "deliveries per deliverer and round (0: until the round's time is up)")
	fs.IntVar(&p.PMFiles, "pm.files", p.PMFiles, "PostMark: pool size (set number)")
	fs.IntVar(&p.PMTransactions, "pm.transactions", p.PMTransactions, "PostMark: transactions")
	fs.IntVar(&p.PMLow, "pm.low", p.PMLow, "PostMark: smallest file")
	fs.IntVar(&p.PMHigh, "pm.high", p.PMHigh, "PostMark: largest file")
	fs.IntVar(&p.PMBiasRead, "pm.bias-read", p.PMBiasRead, "PostMark: read vs append, out of 10 (-1: neither)")
	fs.IntVar(&p.PMBiasCreate, "pm.bias-create", p.PMBiasCreate, "PostMark: create vs delete, out of 10 (-1: neither)")
	fs.Int64Var(&p.PMSeed, "pm.seed", p.PMSeed, "PostMark: random seed")
	fs.BoolVar(&p.PMSync, "pm.sync", false, "PostMark: fsync every write on dir: targets (PostMark never does; NFS writes are always FILE_SYNC)")
	fs.IntVar(&p.BigDirN, "bigdir.n", p.BigDirN, "bigdir: messages in the listed mailbox")
	jsonOut := fs.String("json", "", "write the report as JSON to `FILE`")
	htmlOut := fs.String("html", "", "write a self-contained HTML report to `FILE`")
	progress := fs.String("progress", "auto", "live progress line: auto (on a terminal), on, off")
	verbose := fs.Bool("v", false, "log progress events to stderr")
	if err := fs.Parse(args); err != nil {
		return ExitUsage
	}
	if fs.NArg() != 1 {
		fs.Usage()
		return ExitUsage
	}
	cfg.Workload = fs.Arg(0)
	cfg.Params = p
	cfg.Targets = targets
	if len(cfg.Targets) == 0 {
		cfg.Targets = []string{"self"}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelInfo
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	switch *progress {
	case "on":
		cfg.Progress = stderr
	case "auto":
		if f, ok := stderr.(*os.File); ok && isTTY(f) {
			cfg.Progress = stderr
		}
	case "off":
	default:
		fmt.Fprintln(stderr, "-progress: want auto, on or off")
		return ExitUsage
	}
	rep, err := Run(ctx, cfg)
	if err != nil {
		fmt.Fprintln(stderr, err)
		return ExitRunError
	}
	if err := WriteTable(stdout, rep); err != nil {
		fmt.Fprintln(stderr, err)
		return ExitRunError
	}
	if *jsonOut != "" {
		if err := WriteJSONFile(*jsonOut, rep); err != nil {
			fmt.Fprintln(stderr, err)
			return ExitRunError
		}
	}
	if *htmlOut != "" {
		f, err := os.Create(*htmlOut)
		if err == nil {
			err = WriteHTML(f, rep)
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fmt.Fprintln(stderr, err)
			return ExitRunError
		}
	}
	if rep.Failed() {
		fmt.Fprintln(stderr, "FAILED: verification found lost, duplicated or corrupted messages (see above); the figures do not count")
		return ExitFailed
	}
	return ExitOK
}
