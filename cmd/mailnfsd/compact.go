package main

import (
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/mailnfs/mailnfs/maildirfs"
)

// toolUsage is the help of the offline compact and expand subcommands.
const toolUsage = `usage: mailnfsd compact [-state-dir DIR] [-log-level L] [-log-format F] DIR
       mailnfsd expand  [-state-dir DIR] [-log-level L] [-log-format F] DIR

compact compresses (zstd) every message in a new/ or cur/ directory under
DIR that is not compressed yet; expand rewrites every compressed file under
DIR plain and removes the tree's compression mark. Both are crash-safe (an
interrupted run is finished by the next run or by the server) and can be run
again harmlessly.

Stop mailnfsd for DIR first (or remove DIR from its exports): the server must
not serve the tree meanwhile. -state-dir must be the server's: it holds the
handle key and the journal of the rewrites. Clients keep their file handles,
and mtimes do not change. A tree that mailnfsd has open is refused (a
store taken out of the exports by a reload stays open two minutes), and
mailnfsd does not open one while they run. DIR must be the export's root: compact trains a
dictionary on the tree's mail after its first 1,000 messages and keeps it in
DIR/mailnfs-zdict/ and in the state directory, where the server finds it.

`

// runTool runs "mailnfsd compact|expand [flags] DIR": it converts the tree
// with maildirfs.Compact or maildirfs.Expand and prints the totals. Exit
// status 0 on success, 1 on error, 2 for bad usage.
func runTool(cmd string, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("mailnfsd "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	stateDir := fs.String("state-dir", "/var/lib/mailnfsd", "the server's state `directory` (handle key, rewrite journal); must match mailnfsd's -state-dir")
	logLevel := fs.String("log-level", "info", "log `level`: debug, info, warn or error")
	logFormat := fs.String("log-format", "text", "log `format`: text or json (to stderr)")
	fs.Usage = func() {
		fmt.Fprint(stderr, toolUsage)
		fs.PrintDefaults()
	}
	// Flags may come before or after DIR.
	var dirs []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return 0
			}
			return 2
		}
		if fs.NArg() == 0 {
			break
		}
		dirs = append(dirs, fs.Arg(0))
		args = fs.Args()[1:]
	}
	if len(dirs) != 1 {
		fmt.Fprintf(stderr, "mailnfsd %s: want exactly one directory, got %d\n", cmd, len(dirs))
		fs.Usage()
		return 2
	}
	log, err := newLogger(*logLevel, *logFormat, stderr)
	if err != nil {
		fmt.Fprintf(stderr, "mailnfsd %s: %v\n", cmd, err)
		return 2
	}
	opts := maildirfs.Options{StateDir: *stateDir, Logger: log}
	var rep maildirfs.CompactReport
	if cmd == "compact" {
		rep, err = maildirfs.Compact(dirs[0], opts)
	} else {
		rep, err = maildirfs.Expand(dirs[0], opts)
	}
	if err == nil || rep.Files > 0 {
		fmt.Fprintf(stdout, "%s %s: %s\n", cmd, dirs[0], reportText(cmd, rep))
	}
	if err != nil {
		fmt.Fprintf(stderr, "mailnfsd %s %s: %v\n", cmd, dirs[0], err)
		return 1
	}
	return 0
}

// reportText formats a CompactReport: "12 files, 10 compressed, plain
// 81234 bytes, stored 23456 bytes, ratio 3.46".
func reportText(cmd string, r maildirfs.CompactReport) string {
	verb := "compressed"
	if cmd == "expand" {
		verb = "expanded"
	}
	ratio := "n/a"
	if r.StoredBytes > 0 {
		ratio = fmt.Sprintf("%.2f", float64(r.PlainBytes)/float64(r.StoredBytes))
	}
	return fmt.Sprintf("%d files, %d %s, plain %d bytes, stored %d bytes, ratio %s",
		r.Files, r.Changed, verb, r.PlainBytes, r.StoredBytes, ratio)
}
