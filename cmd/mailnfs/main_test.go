package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/nfsd"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

type result struct {
	code           int
	stdout, stderr string
}

func run(t *testing.T, stdin string, args ...string) result {
	t.Helper()
	var out, errb bytes.Buffer
	code := Run(context.Background(), args, strings.NewReader(stdin), &out, &errb)
	return result{code, out.String(), errb.String()}
}

func mustRun(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	r := run(t, stdin, args...)
	if r.code != 0 {
		t.Fatalf("mailnfs %v: exit %d\n%s%s", args, r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

func TestURLCommands(t *testing.T) {
	s := nfsdtest.StartServer(t)
	u := s.URL("12/34-tevie/Maildir") + "&uid=0&gid=0"
	msg := "From: a@example.com\nSubject: t\n\nhello\n"
	// The Maildir does not exist yet: deliver without -create defers.
	if r := run(t, msg, "deliver", s.URL("")+"&uid=0"); r.code != exitTempFail {
		t.Errorf("deliver into a non-Maildir: exit %d, want 75 (%s)", r.code, r.stderr)
	}
	if err := os.MkdirAll(filepath.Join(s.Root, "12/34-tevie/Maildir"), 0o755); err != nil {
		t.Fatal(err)
	}
	name := strings.TrimSpace(mustRun(t, msg, "deliver", "-create", "-hostname", "front1", u))
	if !strings.Contains(name, ".front1,S=") {
		t.Errorf("deliver printed %q", name)
	}
	ls := mustRun(t, "", "ls", u)
	if !strings.Contains(ls, "new\t"+fmt.Sprint(len(msg))+"\t-\t"+name) {
		t.Errorf("ls = %q", ls)
	}
	if got := mustRun(t, "", "cat", u, name); got != msg {
		t.Errorf("cat = %q", got)
	}
	if got := mustRun(t, "", "flag", u, name, "SR"); strings.TrimSpace(got) != "cur/"+name+":2,RS" {
		t.Errorf("flag = %q", got)
	}
	if _, err := os.Stat(filepath.Join(s.Root, "12/34-tevie/Maildir/cur", name+":2,RS")); err != nil {
		t.Error(err)
	}
	mustRun(t, "", "rm", u, name)
	if r := run(t, "", "cat", u, name); r.code == 0 {
		t.Errorf("cat after rm succeeded")
	}
	if r := run(t, "", "flag", u, name, "S!"); r.code == 0 {
		t.Errorf("bad flags accepted")
	}
}

func TestDeliverTempFailWhenServerDown(t *testing.T) {
	r := run(t, "x", "deliver", "-timeout", "3s", "nfs://127.0.0.1/x?nfsport=1&mountport=1")
	if r.code != exitTempFail {
		t.Errorf("exit %d, want 75: %s", r.code, r.stderr)
	}
	if r := run(t, "x", "deliver", "nfs://h/x?bogus=1"); r.code != exitUsage {
		t.Errorf("bad URL: exit %d", r.code)
	}
	if r := run(t, "x", "deliver"); r.code != exitUsage {
		t.Errorf("no target: exit %d", r.code)
	}
}

// A syntax error in the userdb source is data to fix (65), never a
// temporary failure a script would retry (75); the message names
// file:line.
func TestUserdbCompileSyntaxError(t *testing.T) {
	dir := t.TempDir()
	src, dat := filepath.Join(dir, "userdb"), filepath.Join(dir, "userdb.dat")
	if err := os.WriteFile(src, []byte("tevie uid=1\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r := run(t, "", "userdb", "compile", src, dat)
	if r.code != exitDataErr || !strings.Contains(r.stderr, src+":1:") {
		t.Errorf("compile of a bad line: exit %d, %q; want 65 and %s:1:", r.code, r.stderr, src)
	}
	if _, err := os.Stat(dat); !os.IsNotExist(err) {
		t.Errorf("a failed compile left %s: %v", dat, err)
	}
	// A quota= that does not parse, which would defer every delivery to
	// the user, is refused at its line.
	if err := os.WriteFile(src, []byte("# users\ntevie\tuid=2001|gid=2001|home=/mail1/tevie|server=s:/mail1|quota=10XS\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", "userdb", "compile", src, dat); r.code != exitDataErr || !strings.Contains(r.stderr, src+":2: user \"tevie\": ") {
		t.Errorf("compile of a bad quota=: exit %d, %q; want 65 and %s:2:", r.code, r.stderr, src)
	}
	// A missing source or database is no temporary failure either.
	if r := run(t, "", "userdb", "compile", filepath.Join(dir, "missing"), dat); r.code != exitSoftware {
		t.Errorf("compile of a missing source: exit %d, %q; want 70", r.code, r.stderr)
	}
	if r := run(t, "", "userdb", "-userdb", filepath.Join(dir, "missing.dat"), "lookup", "tevie"); r.code != exitSoftware {
		t.Errorf("lookup in a missing database: exit %d, %q; want 70", r.code, r.stderr)
	}
}

// TestDeliverUserdbNotCompiledYet: while a new source has been copied
// into place and not yet compiled, a user the MTA routes by the source
// (Exim's lsearch) is missing from userdb.dat; deliver defers (75) rather
// than bounce (67). Compiled, or compiled first and then moved into place
// (README's sequence), an unknown user is 67 again.
func TestDeliverUserdbNotCompiledYet(t *testing.T) {
	dir := t.TempDir()
	src, dat := filepath.Join(dir, "userdb"), filepath.Join(dir, "userdb.dat")
	line := "tevie\tuid=2001|gid=2001|home=/mail1/tevie|server=127.0.0.1:/mail1\n"
	if err := os.WriteFile(src, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", "userdb", "compile", src, dat); r.code != exitOK {
		t.Fatalf("compile: %d %s", r.code, r.stderr)
	}
	if r := run(t, "x\n", "deliver", "-userdb", dat, "nobody"); r.code != exitNoUser {
		t.Errorf("deliver to an unknown user: exit %d, %q; want 67", r.code, r.stderr)
	}
	// rsync -a: the new source keeps the master's mtime, older than the
	// compile.
	next := []byte(line + "golde\tuid=2002|gid=2001|home=/mail1/golde|server=127.0.0.1:/mail1\n")
	if err := os.WriteFile(src, next, 0o644); err != nil {
		t.Fatal(err)
	}
	older := time.Now().Add(-time.Hour)
	if err := os.Chtimes(src, older, older); err != nil {
		t.Fatal(err)
	}
	r := run(t, "x\n", "deliver", "-userdb", dat, "golde")
	if r.code != exitTempFail || !strings.Contains(r.stderr, "deferring until it is compiled") {
		t.Errorf("deliver to a user of the uncompiled source: exit %d, %q; want 75", r.code, r.stderr)
	}
	if r := run(t, "", "userdb", "compile", src, dat); r.code != exitOK {
		t.Fatalf("compile: %d %s", r.code, r.stderr)
	}
	if r := run(t, "x\n", "deliver", "-userdb", dat, "nobody"); r.code != exitNoUser {
		t.Errorf("deliver to an unknown user after the compile: exit %d, %q; want 67", r.code, r.stderr)
	}
	// Compiled as userdb.new, then renamed into place.
	if err := os.WriteFile(src+".new", append(next, "lazar\tuid=2003|gid=2001|home=/mail1/lazar|server=127.0.0.1:/mail1\n"...), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", "userdb", "compile", src+".new", dat); r.code != exitOK {
		t.Fatalf("compile: %d %s", r.code, r.stderr)
	}
	if err := os.Rename(src+".new", src); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "x\n", "deliver", "-userdb", dat, "nobody"); r.code != exitNoUser {
		t.Errorf("deliver to an unknown user after compile and mv: exit %d, %q; want 67", r.code, r.stderr)
	}
	// Compiled from a file elsewhere: the one beside, edited, is not
	// the database's source.
	other := filepath.Join(t.TempDir(), "users.txt")
	if err := os.WriteFile(other, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", "userdb", "compile", other, dat); r.code != exitOK {
		t.Fatalf("compile: %d %s", r.code, r.stderr)
	}
	if err := os.WriteFile(src, []byte("# stale\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "x\n", "deliver", "-userdb", dat, "nobody"); r.code != exitNoUser {
		t.Errorf("deliver to an unknown user, compiled from another file: exit %d, %q; want 67", r.code, r.stderr)
	}
}

// TestUserdbLookupFieldOrder: userdb lookup prints the extra fields in
// name order, so that two front ends' answers compare with diff.
func TestUserdbLookupFieldOrder(t *testing.T) {
	dir := t.TempDir()
	src, dat := filepath.Join(dir, "userdb"), filepath.Join(dir, "userdb.dat")
	line := "tevie\tuid=2001|gid=2001|home=/mail1/tevie|server=127.0.0.1:/mail1"
	for _, k := range []string{"zeta", "eta", "alpha", "lambda", "delta", "customer", "beta", "kappa", "gamma", "iota"} {
		line += "|" + k + "=1"
	}
	if err := os.WriteFile(src, []byte(line+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if r := run(t, "", "userdb", "compile", src, dat); r.code != exitOK {
		t.Fatalf("compile: %d %s", r.code, r.stderr)
	}
	r := run(t, "", "userdb", "-userdb", dat, "lookup", "tevie")
	want := "alpha\t1\nbeta\t1\ncustomer\t1\ndelta\t1\neta\t1\ngamma\t1\niota\t1\nkappa\t1\nlambda\t1\nzeta\t1\n"
	if r.code != exitOK || !strings.Contains(r.stdout, "server\t127.0.0.1:/mail1\n"+want+"url\t") {
		t.Errorf("lookup: exit %d\n%s", r.code, r.stdout)
	}
}

func TestUserdbRouting(t *testing.T) {
	s := nfsdtest.StartServer(t)
	dir := t.TempDir()
	src, dat := filepath.Join(dir, "userdb"), filepath.Join(dir, "userdb.dat")
	text := fmt.Sprintf("tevie\tuid=2001|gid=2001|home=%s/12/34-tevie|server=127.0.0.1:%s|customer=C00042\n", s.Export, s.Export)
	os.WriteFile(src, []byte(text), 0o600)
	if out := mustRun(t, "", "userdb", "compile", src, dat); !strings.Contains(out, "1 users") {
		t.Errorf("compile: %q", out)
	}
	out := mustRun(t, "", "userdb", "-userdb", dat, "lookup", "tevie")
	if !strings.Contains(out, "customer\tC00042") || !strings.Contains(out, "maildir\t12/34-tevie/Maildir") {
		t.Errorf("lookup: %q", out)
	}
	if r := run(t, "", "userdb", "-userdb", dat, "lookup", "nobody"); r.code != exitNoUser {
		t.Errorf("lookup nobody: exit %d", r.code)
	}
	if h := strings.TrimSpace(mustRun(t, "", "userdb", "hash", "tevie")); len(h) != len("12/34-tevie") {
		t.Errorf("hash: %q", h)
	}
	// A Maildir owned by the user; delivery runs as uid 2001 via AUTH_SYS.
	md := filepath.Join(s.Root, "12/34-tevie/Maildir")
	os.MkdirAll(md, 0o755)
	for _, d := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(md, d), 0o700)
	}
	for _, p := range []string{filepath.Join(s.Root, "12/34-tevie"), md, md + "/tmp", md + "/new", md + "/cur"} {
		os.Chown(p, 2001, 2001)
	}
	flags := []string{"-userdb", dat, "-portmap-port", fmt.Sprint(s.PortmapAddr.Port())}
	name := strings.TrimSpace(mustRun(t, "routed\n", append(append([]string{"deliver"}, flags...), "tevie")...))
	fi, err := os.Stat(filepath.Join(md, "new", name))
	if err != nil {
		t.Fatal(err)
	}
	if uid := fileUID(fi); uid != 2001 {
		t.Errorf("delivered file owned by %d, want 2001", uid)
	}
	if r := run(t, "x", append(append([]string{"deliver"}, flags...), "nobody")...); r.code != exitNoUser {
		t.Errorf("deliver to unknown user: exit %d", r.code)
	}
}

// TestDeliverQuotaExit: a user's quota= field in the userdb is enforced
// with maildirsize; over it, deliver exits 77 (as deliverquota) and leaves
// nothing; -quota overrides the field, and -quota none ignores it.
func TestDeliverQuotaExit(t *testing.T) {
	s := nfsdtest.StartServer(t)
	dir := t.TempDir()
	src, dat := filepath.Join(dir, "userdb"), filepath.Join(dir, "userdb.dat")
	text := fmt.Sprintf("rolf\tuid=0|gid=0|home=%s/56/78-rolf|server=127.0.0.1:%s|quota=100S,3C\n", s.Export, s.Export)
	os.WriteFile(src, []byte(text), 0o600)
	mustRun(t, "", "userdb", "compile", src, dat)
	md := filepath.Join(s.Root, "56/78-rolf/Maildir")
	for _, d := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(md, d), 0o700)
	}
	flags := []string{"-userdb", dat, "-portmap-port", fmt.Sprint(s.PortmapAddr.Port())}
	deliver := func(msg string, extra ...string) result {
		return run(t, msg, append(append(append([]string{"deliver"}, flags...), extra...), "rolf")...)
	}
	if r := deliver(strings.Repeat("a", 60)); r.code != exitOK {
		t.Fatalf("60 bytes under 100S: exit %d (%s)", r.code, r.stderr)
	}
	if r := deliver(strings.Repeat("b", 41)); r.code != exitNoPerm || !strings.Contains(r.stderr, "over quota") {
		t.Errorf("41 more bytes over 100S: exit %d, want 77 (%s)", r.code, r.stderr)
	}
	if b, err := os.ReadFile(filepath.Join(md, "maildirsize")); err != nil || string(b) != "100S,3C\n60 1\n" {
		t.Errorf("maildirsize = %q, %v", b, err)
	}
	// Now 101 of 1000 bytes: over 10%, so -quota-warn 10 adds the warning.
	warnMsg := filepath.Join(dir, "quotawarnmsg")
	os.WriteFile(warnMsg, []byte("Subject: mailbox almost full\n\nplease clean up\n"), 0o644)
	if r := deliver(strings.Repeat("c", 41), "-quota", "1000S", "-quota-warn", "10", "-quota-warn-msg", warnMsg); r.code != exitOK {
		t.Errorf("with -quota 1000S: exit %d (%s)", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(md, "quotawarn")); err != nil {
		t.Errorf("no quota warning sent: %v", err)
	}
	if r := deliver(strings.Repeat("d", 500), "-quota", "none"); r.code != exitOK {
		t.Errorf("with -quota none: exit %d (%s)", r.code, r.stderr)
	}
	if r := deliver("x", "-quota", "10X"); r.code != exitUsage {
		t.Errorf("with -quota 10X: exit %d, want 64", r.code)
	}
	if ents, _ := os.ReadDir(filepath.Join(md, "new")); len(ents) != 4 {
		t.Errorf("new/ holds %d messages, want 3 and the warning", len(ents))
	}
	// mailnfs quota reads maildirsize (last rewritten for -quota 1000S,
	// before the 41-byte delivery), and -recalc recounts under the
	// user's own quota.
	q := append(append([]string{"quota"}, flags...), "rolf")
	if out := mustRun(t, "", q...); !strings.Contains(out, "quota\t100S,3C\n") || !strings.Contains(out, "bytes\t") {
		t.Errorf("mailnfs quota:\n%s", out)
	}
	out := mustRun(t, "", append(append([]string{"quota"}, flags...), "-recalc", "rolf")...)
	if want := "quota\t100S,3C\nbytes\t647 of 100 (647%)\nmessages\t4 of 3 (133%)\nsource\tcounted now\n"; out != want {
		t.Errorf("mailnfs quota -recalc:\n%s\nwant\n%s", out, want)
	}
	if b, err := os.ReadFile(filepath.Join(md, "maildirsize")); err != nil || string(b) != "100S,3C\n647 4\n" {
		t.Errorf("maildirsize after -recalc = %q, %v", b, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(md, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ holds %d entries", len(ents))
	}
}

func TestMountTest(t *testing.T) {
	s := nfsdtest.StartServer(t)
	r := run(t, "", "mount-test", s.PortmapAddr.String())
	if r.code != 0 || !strings.Contains(r.stdout, "answers every step") || strings.Contains(r.stdout, "FAIL") {
		t.Errorf("mount-test: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	// Its trace names the program of each portmapper lookup.
	for _, want := range []string{"GETPORT MOUNT v3 over TCP", "GETPORT NFS v3 over TCP"} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("mount-test trace lacks %q:\n%s", want, r.stdout)
		}
	}
	r = run(t, "", "mount-test", s.URL("nonexistent"))
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL  MNT") {
		t.Errorf("mount-test of a missing path: exit %d\n%s", r.code, r.stdout)
	}
}

// TestLibnfsInterop: a message delivered by mailnfs is read back
// byte-identical by libnfs's nfs-cat, and a file written by nfs-cp is read
// by mailnfs cat.
func TestLibnfsInterop(t *testing.T) {
	if _, err := exec.LookPath("nfs-cat"); err != nil {
		t.Skip("libnfs-utils not installed")
	}
	s := nfsdtest.StartServer(t)
	md := filepath.Join(s.Root, "box")
	for _, d := range []string{"tmp", "new", "cur"} {
		os.MkdirAll(filepath.Join(md, d), 0o755)
	}
	msg := strings.Repeat("Subject: interop\r\n\r\nline of text\r\n", 2000)
	name := strings.TrimSpace(mustRun(t, msg, "deliver", s.URL("box")+"&uid=0&gid=0"))
	out, err := exec.Command("nfs-cat", s.URL("box/new/"+name)).Output()
	if err != nil {
		t.Fatalf("nfs-cat: %v", err)
	}
	if string(out) != msg {
		t.Errorf("nfs-cat read %d bytes, want %d identical", len(out), len(msg))
	}
	local := filepath.Join(t.TempDir(), "m")
	os.WriteFile(local, []byte("From libnfs\n"), 0o644)
	dst := "1700000000.M1P1Q1.libnfs,S=12"
	if b, err := exec.Command("nfs-cp", local, s.URL("box/new/"+dst)).CombinedOutput(); err != nil {
		t.Fatalf("nfs-cp: %v %s", err, b)
	}
	if got := mustRun(t, "", "cat", s.URL("box")+"&uid=0", dst); got != "From libnfs\n" {
		t.Errorf("cat of the nfs-cp file: %q", got)
	}
}

// -h after a command asks for its flags: they are printed and the exit is
// 0, not the usage error (64) a script would take for a mistake.
func TestSubcommandHelp(t *testing.T) {
	for _, cmd := range []string{"deliver", "ls", "quota"} {
		r := run(t, "", cmd, "-h")
		if r.code != exitOK {
			t.Errorf("mailnfs %s -h: exit %d, want 0", cmd, r.code)
		}
		if !strings.Contains(r.stderr, "-timeout") {
			t.Errorf("mailnfs %s -h printed no flags: %q", cmd, r.stderr)
		}
	}
	if r := run(t, "", "deliver", "-bogus"); r.code != exitUsage {
		t.Errorf("mailnfs deliver -bogus: exit %d, want %d", r.code, exitUsage)
	}
}

// deliver -create with a URL whose Maildir (and its parent) does not exist
// yet creates them, as it does for a userdb user.
func TestDeliverCreateURLMissingPath(t *testing.T) {
	s := nfsdtest.StartServer(t)
	u := s.URL("56/78-newuser/Maildir") + "&uid=0&gid=0"
	msg := "Subject: first\n\nhello\n"
	r := run(t, msg, "deliver", "-create", u)
	if r.code != 0 {
		t.Fatalf("deliver -create into a missing path: exit %d: %s", r.code, r.stderr)
	}
	name := strings.TrimSpace(r.stdout)
	b, err := os.ReadFile(filepath.Join(s.Root, "56/78-newuser/Maildir/new", name))
	if err != nil || string(b) != msg {
		t.Errorf("delivered message: %q, %v", b, err)
	}
	for _, d := range []string{"tmp", "cur"} {
		if fi, err := os.Stat(filepath.Join(s.Root, "56/78-newuser/Maildir", d)); err != nil || !fi.IsDir() {
			t.Errorf("%s/: %v", d, err)
		}
	}
	// Without -create the same kind of path defers (75), creating nothing.
	if r := run(t, msg, "deliver", s.URL("90/12-other/Maildir")+"&uid=0&gid=0"); r.code != exitTempFail {
		t.Errorf("deliver without -create into a missing path: exit %d, want 75", r.code)
	}
	if _, err := os.Stat(filepath.Join(s.Root, "90")); err == nil {
		t.Error("deliver without -create made directories")
	}
}

// A URL naming a Maildir++ folder delivers into the folder but keeps the
// quota in the parent Maildir's maildirsize (one per Maildir, as Courier
// and Dovecot keep it); it started a maildirsize of its own in the folder.
func TestDeliverQuotaFolderURL(t *testing.T) {
	s := nfsdtest.StartServer(t)
	md := filepath.Join(s.Root, "u1/Maildir")
	for _, d := range []string{"tmp", "new", "cur", ".Sent/tmp", ".Sent/new", ".Sent/cur"} {
		if err := os.MkdirAll(filepath.Join(md, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(md, ".Sent/maildirfolder"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	msg := "Subject: sent\n\nhello\n"
	r := run(t, msg, "deliver", "-quota", "100000S", s.URL("u1/Maildir/.Sent")+"&uid=0&gid=0")
	if r.code != 0 {
		t.Fatalf("deliver into a folder URL: exit %d: %s", r.code, r.stderr)
	}
	name := strings.TrimSpace(r.stdout)
	if _, err := os.Stat(filepath.Join(md, ".Sent/new", name)); err != nil {
		t.Errorf("message not in .Sent/new: %v", err)
	}
	if _, err := os.Stat(filepath.Join(md, ".Sent/maildirsize")); err == nil {
		t.Error("the folder got a maildirsize of its own")
	}
	b, err := os.ReadFile(filepath.Join(md, "maildirsize"))
	if err != nil || !strings.HasPrefix(string(b), "100000S\n") {
		t.Errorf("parent maildirsize: %q, %v", b, err)
	}
	// Listing through the folder URL still lists the folder.
	if ls := mustRun(t, "", "ls", s.URL("u1/Maildir/.Sent")+"&uid=0"); !strings.Contains(ls, name) {
		t.Errorf("ls of the folder URL: %q", ls)
	}
	// A Maildir that only has a dotted name (no maildirfolder) keeps its
	// own quota.
	dot := filepath.Join(s.Root, "u2/.maildir")
	for _, d := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(dot, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	if r := run(t, msg, "deliver", "-quota", "100000S", s.URL("u2/.maildir")+"&uid=0&gid=0"); r.code != 0 {
		t.Fatalf("deliver into u2/.maildir: exit %d: %s", r.code, r.stderr)
	}
	if _, err := os.Stat(filepath.Join(dot, "maildirsize")); err != nil {
		t.Errorf("u2/.maildir has no maildirsize of its own: %v", err)
	}
}

// TestMountTestBracketedIPv6Host: mount-test takes an IPv6 host in
// brackets without a port, as in a URL ([fd00::1]), and asks the
// portmapper on port 111 there.
func TestMountTestBracketedIPv6Host(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "mtest6")
	bin := filepath.Join(t.TempDir(), "mailnfs")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build mailnfs: %v\n%s", err, out)
	}
	// The server's sockets are made in the namespace, where port 111 is
	// free.
	err := ns.Do(func() error {
		nfsdtest.StartServer(t, nfsdtest.WithConfig(func(c *nfsd.Config) { c.Listen, c.PortmapPort = "::1", portmap.Port }))
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, host := range []string{"::1", "[::1]", "[::1]:111"} {
		out, errOut, err := ns.Exec(ctx, bin, "mount-test", host)
		if err != nil || !strings.Contains(string(out), "answers every step") {
			t.Errorf("mount-test %s: %v\n%s%s", host, err, out, errOut)
		}
	}
}

// TestURLBareIPv6Host: libnfs URLs name an IPv6 host without brackets
// (nfs://::1/export; libnfs 4.0 refuses [::1]); mailnfs reads such a URL
// as libnfs does, so one URL serves both.
func TestURLBareIPv6Host(t *testing.T) {
	s := nfsdtest.StartServer(t, nfsdtest.WithConfig(func(c *nfsd.Config) { c.Listen = "::1" }))
	for _, d := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(s.Root, "box", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	u := s.URL("box") + "&uid=0&gid=0"
	if !strings.HasPrefix(u, "nfs://::1/") {
		t.Fatalf("URL %s", u)
	}
	name := strings.TrimSpace(mustRun(t, "Subject: v6\n\nbody\n", "deliver", u))
	if _, err := os.Stat(filepath.Join(s.Root, "box", "new", name)); err != nil {
		t.Fatalf("delivered %q: %v", name, err)
	}
}
