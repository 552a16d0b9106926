// Command mailnfs is the front end's tool for Maildirs on mailnfs storage
// boxes, spoken over NFSv3 without a kernel mount.
//
//	mailnfs deliver TARGET < message        store a message (MTA transport)
//	mailnfs ls TARGET                       list messages
//	mailnfs cat TARGET KEY                  print a message
//	mailnfs flag TARGET KEY FLAGS           set maildir flags (moves new -> cur)
//	mailnfs rm TARGET KEY                   delete a message
//	mailnfs clean-tmp TARGET                remove tmp/ files older than 36 h
//	mailnfs quota [-recalc] TARGET          Maildir++ quota and usage (maildirsize)
//	mailnfs userdb compile [SRC [DST]]      compile the userdb text to userdb.dat
//	mailnfs userdb lookup USER              show a user and their route
//	mailnfs userdb hash USER                print the hashed home for a new user
//	mailnfs mount-test URL|HOST[:PORT]      diagnose a storage box
//	mailnfs bench [flags] WORKLOAD          benchmark targets (nfs://, dir:, self); see bench/suite
//
// TARGET is a Maildir named by an nfs:// URL
// (nfs://host[:portmapper-port]/export/path/to/Maildir?uid=N&gid=N, with
// optional nfsport= and mountport=) or a user name looked up in the
// compiled userdb. KEY is a message's unique name (as deliver prints it,
// without the ":2,flags" part) or its file name.
//
// deliver exits 0 only once the message has been renamed into new/; 75
// (EX_TEMPFAIL) on any failure that may pass (network, server, a full disk
// or a disk quota on the box), so the MTA retries; 77 (EX_NOPERM) over the
// user's Maildir++ quota (-quota, or the userdb's quota= field), as
// Courier's deliverquota; 67 (EX_NOUSER) for an unknown user (75 while
// the userdb source beside userdb.dat changed after it was compiled from
// it); 65
// (EX_DATAERR) for an oversized message; 64 (EX_USAGE) for bad arguments. mount-test exits 1
// when a step fails. userdb exits 65 for a syntax error in the source, 67
// for an unknown user and 70 for anything else. Other commands exit 75 on
// temporary failures and 70 otherwise.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"os/signal"
	"path"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/mailnfs/mailnfs/bench/suite"
	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/client/userdb"
)

// Exit codes from sysexits.h.
const (
	exitOK       = 0
	exitUsage    = 64
	exitDataErr  = 65
	exitNoUser   = 67
	exitSoftware = 70
	exitTempFail = 75
	exitNoPerm   = 77 // over a Maildir++ quota, as Courier's deliverquota
)

func main() {
	suite.WorkerMain() // a bench front-end process exits inside
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := Run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// Config is what the common flags set.
type Config struct {
	UserDB                          string        // compiled userdb path
	Timeout                         time.Duration // whole-command deadline
	Hostname                        string        // AUTH_SYS machine name and Maildir host part
	PortmapPort, NFSPort, MountPort int           // overrides for userdb routes; 0 = default/portmapper
	Verbose                         bool
	Create                          bool   // deliver: create the Maildir if missing
	Quota                           string // deliver, quota: Maildir++ quota; "" = the userdb's quota= field, if any
	Recalc                          bool   // quota: recalculate maildirsize
	QuotaWarn                       int    // deliver: warn at this percentage of the quota
	QuotaWarnMsg                    string // deliver: the warning message's file
}

// Validate checks the flag values.
func (c *Config) Validate() error {
	if c.Timeout <= 0 {
		return fmt.Errorf("-timeout must be positive")
	}
	for _, p := range []int{c.PortmapPort, c.NFSPort, c.MountPort} {
		if p < 0 || p > 65535 {
			return fmt.Errorf("port %d out of range", p)
		}
	}
	return nil
}

type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// Run runs one mailnfs command and returns its exit code.
func Run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		fmt.Fprintln(stderr, usage)
		return exitUsage
	}
	cmd, args := args[0], args[1:]
	if cmd == "bench" {
		return suite.Main(ctx, "mailnfs bench", args, stdout, stderr)
	}
	var cfg Config
	fs := flag.NewFlagSet("mailnfs "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&cfg.UserDB, "userdb", "/etc/mailnfs/userdb.dat", "compiled userdb used to resolve user names")
	fs.DurationVar(&cfg.Timeout, "timeout", 2*time.Minute, "deadline for the whole command")
	fs.StringVar(&cfg.Hostname, "hostname", "", "machine name for AUTH_SYS and Maildir names (default: os hostname)")
	fs.IntVar(&cfg.PortmapPort, "portmap-port", 0, "portmapper port for userdb routes (default 111)")
	fs.IntVar(&cfg.NFSPort, "nfsport", 0, "NFS port for userdb routes (default: ask the portmapper)")
	fs.IntVar(&cfg.MountPort, "mountport", 0, "MOUNT port for userdb routes (default: ask the portmapper)")
	fs.BoolVar(&cfg.Verbose, "v", false, "log protocol events to stderr")
	if cmd == "deliver" {
		fs.BoolVar(&cfg.Create, "create", false, "create the Maildir (tmp, new, cur) if it is missing")
		fs.StringVar(&cfg.Quota, "quota", "", "Maildir++ quota such as 10000000S,1000C (default: the user's quota= field in the userdb; none for a URL); over it, exit 77; \"none\": no quota")
		fs.IntVar(&cfg.QuotaWarn, "quota-warn", 0, "after a delivery, put the -quota-warn-msg message into the Maildir when it is this `percent` full (at most once a day); 0: never")
		fs.StringVar(&cfg.QuotaWarnMsg, "quota-warn-msg", "/etc/mailnfs/quotawarnmsg", "the quota warning, a complete message (`file`)")
	}
	if cmd == "quota" {
		fs.StringVar(&cfg.Quota, "quota", "", "Maildir++ quota to report against (default: the user's quota= field, else maildirsize's own)")
		fs.BoolVar(&cfg.Recalc, "recalc", false, "recount the messages and rewrite maildirsize")
	}
	if cmd == "-h" || cmd == "help" || cmd == "--help" {
		fmt.Fprintln(stdout, usage)
		return exitOK
	}
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK // asked for: the flags are printed
		}
		return exitUsage
	}
	if cfg.Quota != "" && cfg.Quota != "none" {
		if _, err := client.ParseQuota(cfg.Quota); err != nil {
			fmt.Fprintf(stderr, "mailnfs: -quota: %v\n", err)
			return exitUsage
		}
	}
	if cfg.QuotaWarn < 0 || cfg.QuotaWarn > 100 {
		fmt.Fprintf(stderr, "mailnfs: -quota-warn %d: want a percentage\n", cfg.QuotaWarn)
		return exitUsage
	}
	if err := cfg.Validate(); err != nil {
		fmt.Fprintf(stderr, "mailnfs: %v\n", err)
		return exitUsage
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Timeout)
	defer cancel()
	logger := slog.New(slog.DiscardHandler)
	if cfg.Verbose {
		logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	r := &runner{cfg: cfg, log: logger, stdin: stdin, stdout: stdout, stderr: stderr}
	rest := fs.Args()
	var err error
	switch cmd {
	case "deliver":
		return r.deliver(ctx, rest)
	case "ls":
		err = r.ls(ctx, rest)
	case "cat":
		err = r.cat(ctx, rest)
	case "flag":
		err = r.flag(ctx, rest)
	case "rm":
		err = r.rm(ctx, rest)
	case "clean-tmp":
		err = r.cleanTmp(ctx, rest)
	case "quota":
		err = r.quota(ctx, rest)
	case "userdb":
		err = r.userdb(rest)
	case "mount-test":
		err = r.mountTest(ctx, rest)
	default:
		err = usageError{fmt.Sprintf("unknown command %q\n%s", cmd, usage)}
	}
	if err == nil {
		return exitOK
	}
	fmt.Fprintf(stderr, "mailnfs %s: %v\n", cmd, err)
	var ue usageError
	var se *userdb.SyntaxError
	switch {
	case errors.Is(err, errMountTest):
		return 1
	case errors.As(err, &ue):
		return exitUsage
	case errors.As(err, &se):
		return exitDataErr // a userdb source line to fix, not to retry
	case errors.Is(err, userdb.ErrNotFound):
		return exitNoUser
	case cmd == "userdb":
		// Local files only (a missing source, an unwritable directory,
		// a damaged userdb.dat): nothing that passes by retrying, and
		// client.Temporary would take them for transport errors.
		return exitSoftware
	case client.Temporary(err):
		return exitTempFail
	}
	return exitSoftware
}

const usage = `usage: mailnfs COMMAND [flags] ARGS
  deliver TARGET < message      store a message in TARGET's Maildir (exit 75 = try again)
  ls TARGET                     list messages (dir, size, flags, key)
  cat TARGET KEY                print a message
  flag TARGET KEY FLAGS         set maildir flags, e.g. FS (moves new -> cur)
  rm TARGET KEY                 delete a message
  clean-tmp TARGET              remove tmp/ files older than 36 hours
  quota [-recalc] TARGET        Maildir++ quota and usage (maildirsize)
  userdb compile [SRC [DST]]    compile /etc/mailnfs/userdb to userdb.dat
  userdb lookup USER            show a user's fields and route
  userdb hash USER              print the hashed home (NN/MM-user) for a new user
  mount-test URL|HOST[:PORT]    portmapper, MOUNT and NFS round trip with a diagnosis
  bench -h                      the benchmark suite: deliver, pop3, postmark, bigdir, mixed
TARGET: nfs://host[:pmport]/export/path/Maildir?uid=N&gid=N[&nfsport=P&mountport=P] or a userdb user.
Flags (before ARGS): -userdb FILE -timeout D -hostname H -portmap-port P -nfsport P -mountport P -v; deliver: -create -quota Q -quota-warn PCT -quota-warn-msg FILE; quota: -quota Q -recalc`

type runner struct {
	cfg            Config
	log            *slog.Logger
	stdin          io.Reader
	stdout, stderr io.Writer
}

// open dials TARGET and returns the client, the mailbox path inside its
// root, and the user's userdb fields (nil for a URL).
func (r *runner) open(ctx context.Context, target string) (*client.Client, string, map[string]string, error) {
	opts := client.Options{Hostname: r.cfg.Hostname, Logger: r.log}
	if strings.HasPrefix(target, "nfs://") {
		t, err := client.ParseURL(target)
		if err != nil {
			return nil, "", nil, err
		}
		c, box, err := r.dialURL(ctx, target, t, opts)
		return c, box, nil, err
	}
	db, err := userdb.Open(r.cfg.UserDB)
	if err != nil {
		return nil, "", nil, err
	}
	e, err := db.Lookup(target)
	db.Close()
	if err != nil {
		return nil, "", nil, err
	}
	route, err := e.Route()
	if err != nil {
		return nil, "", nil, err
	}
	t, err := client.ParseURL(route.URL())
	if err != nil {
		return nil, "", nil, err
	}
	if r.cfg.PortmapPort != 0 {
		t.PortmapPort = r.cfg.PortmapPort
	}
	t.NFSPort, t.MountPort = r.cfg.NFSPort, r.cfg.MountPort
	c, err := client.DialTarget(ctx, t, opts)
	return c, route.Maildir, e.Fields, err
}

// dialURL dials the URL target, parsed as t, and returns the client and
// the mailbox path inside its root. A URL naming a Maildir++ folder (a
// last component such as ".Sent" holding a maildirfolder file) is dialled
// at the Maildir above it, with the folder as the mailbox, so that its
// quota is the parent's (one maildirsize per Maildir, as Courier and
// Dovecot keep it). With -create, a path that does not exist yet is
// dialled at the nearest existing directory above it, the rest being the
// mailbox for MakeMaildir to create.
func (r *runner) dialURL(ctx context.Context, target string, t client.Target, opts client.Options) (*client.Client, string, error) {
	clean := path.Clean("/" + t.Path)
	if base := path.Base(clean); strings.HasPrefix(base, ".") && base != "." && base != ".." && path.Dir(clean) != "/" {
		up := t
		up.Path = path.Dir(clean)
		c, err := client.DialTarget(ctx, up, opts)
		var answered *client.Error
		switch {
		case err == nil:
			// A folder is what Courier and Dovecot make it: a directory
			// with a maildirfolder file (a Maildir that merely has a
			// dotted name, such as ~/.maildir, is not one).
			if _, _, err := c.LookupPath(ctx, base+"/maildirfolder"); err == nil {
				return c, base, nil
			}
			c.Close()
		case !errors.As(err, &answered):
			// The box did not answer: dialling the URL itself would
			// only wait as long again.
			return nil, "", err
		}
	}
	c, err := client.DialTarget(ctx, t, opts)
	if err == nil || !r.cfg.Create || !client.IsStatus(err, client.NFS3ErrNoEnt) {
		return c, "", err
	}
	parts := strings.Split(strings.Trim(clean, "/"), "/")
	for k := len(parts) - 1; k >= 1; k-- {
		up := t
		up.Path = "/" + strings.Join(parts[:k], "/")
		c, err := client.DialTarget(ctx, up, opts)
		if err == nil {
			return c, strings.Join(parts[k:], "/"), nil
		}
		if !client.IsStatus(err, client.NFS3ErrNoEnt) {
			return nil, "", err
		}
	}
	return nil, "", fmt.Errorf("%s: no directory of its path exists on the server", target)
}

// sourceChanged reports whether the userdb source beside the compiled
// database dat (dat without ".dat") is the file dat was compiled from and
// has changed since (DB.SourceChanged).
func sourceChanged(dat string) (string, bool) {
	src, ok := strings.CutSuffix(dat, ".dat")
	if !ok {
		return "", false
	}
	db, err := userdb.Open(dat)
	if err != nil {
		return "", false
	}
	defer db.Close()
	return src, db.SourceChanged(src)
}

func need(args []string, n int, what string) error {
	if len(args) != n {
		return usageError{"want " + what}
	}
	return nil
}

func (r *runner) deliver(ctx context.Context, args []string) int {
	fail := func(code int, err error) int {
		fmt.Fprintf(r.stderr, "mailnfs deliver: %v\n", err)
		return code
	}
	if err := need(args, 1, "TARGET"); err != nil {
		return fail(exitUsage, err)
	}
	c, box, fields, err := r.open(ctx, args[0])
	if errors.Is(err, userdb.ErrNotFound) {
		if src, ok := sourceChanged(r.cfg.UserDB); ok {
			// The user may be in the source that the MTA routes
			// by and not yet in the database compiled from it.
			return fail(exitTempFail, fmt.Errorf("%w; %s changed after %s was compiled from it: deferring until it is compiled again", err, src, r.cfg.UserDB))
		}
		return fail(exitNoUser, err)
	}
	if errors.Is(err, client.ErrBadURL) {
		return fail(exitUsage, err)
	}
	if err != nil {
		// Unreachable box, unreadable userdb: let the MTA retry.
		return fail(exitTempFail, err)
	}
	defer c.Close()
	if r.cfg.Create {
		if err := c.MakeMaildir(ctx, box); err != nil {
			return fail(exitTempFail, err)
		}
	}
	q, err := r.quotaOf(fields)
	if err != nil {
		// A bad quota= in the userdb: an operator must fix it.
		return fail(exitTempFail, fmt.Errorf("user %s: %w", args[0], err))
	}
	name, err := c.DeliverQuota(ctx, box, r.stdin, q)
	switch {
	case errors.Is(err, client.ErrMessageTooLarge):
		return fail(exitDataErr, err)
	case errors.Is(err, client.ErrOverQuota):
		return fail(exitNoPerm, err)
	case err != nil:
		// Anything else may pass (or needs an operator): never bounce
		// mail for it, defer.
		return fail(exitTempFail, err)
	}
	fmt.Fprintln(r.stdout, name)
	if r.cfg.QuotaWarn > 0 && q != (client.Quota{}) {
		// The message is delivered; a warning that fails is only reported.
		warning, err := os.ReadFile(r.cfg.QuotaWarnMsg)
		if err == nil {
			_, err = c.QuotaWarn(ctx, box, q, r.cfg.QuotaWarn, warning)
		}
		if err != nil {
			fmt.Fprintf(r.stderr, "mailnfs deliver: quota warning: %v\n", err)
		}
	}
	return exitOK
}

// withMailbox checks that args has n arguments (what names them in the
// usage error), dials the Maildir named by args[0] and runs fn with the
// client and the mailbox path inside its root.
func (r *runner) withMailbox(ctx context.Context, args []string, n int, what string, fn func(c *client.Client, box string) error) error {
	if err := need(args, n, what); err != nil {
		return err
	}
	c, box, _, err := r.open(ctx, args[0])
	if err != nil {
		return err
	}
	defer c.Close()
	return fn(c, box)
}

func (r *runner) ls(ctx context.Context, args []string) error {
	return r.withMailbox(ctx, args, 1, "TARGET", func(c *client.Client, box string) error {
		ms, err := c.List(ctx, box)
		if err != nil {
			return err
		}
		var total int64
		for _, m := range ms {
			fmt.Fprintf(r.stdout, "%s\t%d\t%s\t%s\n", m.Dir, m.Size, orDash(m.Flags), m.Key)
			total += max(m.Size, 0)
		}
		fmt.Fprintf(r.stderr, "%d messages, %d bytes\n", len(ms), total)
		return nil
	})
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func (r *runner) cat(ctx context.Context, args []string) error {
	return r.withMailbox(ctx, args, 2, "TARGET KEY", func(c *client.Client, box string) error {
		rc, err := c.Open(ctx, box, args[1])
		if err != nil {
			return err
		}
		defer rc.Close()
		_, err = io.Copy(r.stdout, rc)
		return err
	})
}

func (r *runner) flag(ctx context.Context, args []string) error {
	if len(args) == 2 {
		args = append(args, "") // clear all flags
	}
	return r.withMailbox(ctx, args, 3, "TARGET KEY FLAGS", func(c *client.Client, box string) error {
		name, err := c.SetFlags(ctx, box, args[1], args[2])
		if err != nil {
			return err
		}
		fmt.Fprintln(r.stdout, "cur/"+name)
		return nil
	})
}

func (r *runner) rm(ctx context.Context, args []string) error {
	return r.withMailbox(ctx, args, 2, "TARGET KEY", func(c *client.Client, box string) error {
		return c.Delete(ctx, box, args[1])
	})
}

// quotaOf returns the Maildir++ quota to apply: -quota if given ("none":
// no quota), else the userdb's quota= field (fields is nil for a URL).
func (r *runner) quotaOf(fields map[string]string) (client.Quota, error) {
	spec := r.cfg.Quota
	if spec == "" {
		spec = fields["quota"]
	}
	if spec == "" || spec == "none" {
		return client.Quota{}, nil
	}
	return client.ParseQuota(spec)
}

// quota prints the Maildir++ quota and usage of TARGET's Maildir: bytes,
// messages, and each against its limit.
func (r *runner) quota(ctx context.Context, args []string) error {
	if err := need(args, 1, "TARGET"); err != nil {
		return err
	}
	c, box, fields, err := r.open(ctx, args[0])
	if err != nil {
		return err
	}
	defer c.Close()
	q, err := r.quotaOf(fields)
	if err != nil {
		return err
	}
	u, err := c.QuotaUsage(ctx, box, q, r.cfg.Recalc)
	if err != nil {
		return err
	}
	of := func(used, limit int64) string {
		if limit <= 0 {
			return fmt.Sprint(used)
		}
		return fmt.Sprintf("%d of %d (%.0f%%)", used, limit, 100*float64(used)/float64(limit))
	}
	src := "maildirsize"
	if u.Recalculated {
		src = "counted now"
	}
	quota := u.Quota.String()
	if quota == "" {
		quota = "none"
	}
	fmt.Fprintf(r.stdout, "quota\t%s\nbytes\t%s\nmessages\t%s\nsource\t%s\n", quota, of(u.Bytes, u.Quota.Bytes), of(u.Count, u.Quota.Count), src)
	return nil
}

func (r *runner) cleanTmp(ctx context.Context, args []string) error {
	return r.withMailbox(ctx, args, 1, "TARGET", func(c *client.Client, box string) error {
		removed, err := c.CleanTmp(ctx, box, 0, time.Now())
		for _, n := range removed {
			fmt.Fprintln(r.stdout, "removed tmp/"+n)
		}
		return err
	})
}

func (r *runner) userdb(args []string) error {
	if len(args) == 0 {
		return usageError{"want compile, lookup or hash"}
	}
	switch args[0] {
	case "compile":
		src, dst := "/etc/mailnfs/userdb", r.cfg.UserDB
		if len(args) > 1 {
			src = args[1]
		}
		if len(args) > 2 {
			dst = args[2]
		}
		if len(args) > 3 {
			return usageError{"want userdb compile [SRC [DST]]"}
		}
		// A quota= that does not parse would defer every delivery to
		// the user: refuse it here, at its line.
		n, err := userdb.Compile(src, dst, func(e *userdb.Entry) error {
			if q, ok := e.Fields["quota"]; ok {
				_, err := client.ParseQuota(q)
				return err
			}
			return nil
		})
		if err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "%s: %d users\n", dst, n)
		return nil
	case "lookup":
		if err := need(args[1:], 1, "userdb lookup USER"); err != nil {
			return err
		}
		db, err := userdb.Open(r.cfg.UserDB)
		if err != nil {
			return err
		}
		e, err := db.Lookup(args[1])
		db.Close()
		if err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "name\t%s\nuid\t%d\ngid\t%d\nhome\t%s\nserver\t%s\n", e.Name, e.UID, e.GID, e.Home, e.Server)
		if e.Mail != "" {
			fmt.Fprintf(r.stdout, "mail\t%s\n", e.Mail)
		}
		for _, k := range slices.Sorted(maps.Keys(e.Fields)) {
			fmt.Fprintf(r.stdout, "%s\t%s\n", k, e.Fields[k])
		}
		route, err := e.Route()
		if err != nil {
			return err
		}
		fmt.Fprintf(r.stdout, "url\t%s\nmaildir\t%s\n", route.URL(), route.Maildir)
		return nil
	case "hash":
		if err := need(args[1:], 1, "userdb hash USER"); err != nil {
			return err
		}
		fmt.Fprintln(r.stdout, userdb.HashedHome(args[1]))
		return nil
	}
	return usageError{fmt.Sprintf("unknown userdb command %q", args[0])}
}
