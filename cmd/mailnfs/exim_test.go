//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestEximPipe runs the Exim router and pipe transport of README.md
// ("Worked example: Exim") in Debian's Exim 4.96 against a real mailnfsd:
// a message to a userdb user is delivered into the user's Maildir; one to
// a user whose storage box is unreachable is deferred (exit 75) and stays
// in Exim's queue; one over the user's Maildir++ quota bounces (exit 77);
// an unknown user is unrouteable. Exim 4.94 and later refuse a tainted
// $local_part in a pipe command, so the router takes the untainted name
// from the userdb source file (lsearch,ret=key) as $local_part_data.
func TestEximPipe(t *testing.T) {
	nfsdtest.RequireRoot(t)
	exim := netnstest.RequireTool(t, "exim4")
	s := nfsdtest.StartServer(t)
	dir := t.TempDir()
	for p := dir; p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755) // the transport runs as user mail
	}
	bin := filepath.Join(dir, "mailnfs")
	if out, err := exec.Command("go", "build", "-o", bin, ".").CombinedOutput(); err != nil {
		t.Fatalf("build mailnfs: %v\n%s", err, out)
	}
	for _, u := range []string{"tevie", "rolf", "Lazar"} {
		md := filepath.Join(s.Root, u, "Maildir")
		for _, d := range []string{"", "/tmp", "/new", "/cur"} {
			if err := os.MkdirAll(md+d, 0o700); err != nil {
				t.Fatal(err)
			}
			os.Chown(md+d, 2001, 2001)
		}
		os.Chown(filepath.Dir(md), 2001, 2001)
	}
	src, dat := filepath.Join(dir, "userdb"), filepath.Join(dir, "userdb.dat")
	userdb := fmt.Sprintf("tevie\tuid=2001|gid=2001|home=%[1]s/tevie|server=127.0.0.1:%[1]s\n"+
		"rolf\tuid=2001|gid=2001|home=%[1]s/rolf|server=127.0.0.1:%[1]s|quota=100S\n"+
		"golde\tuid=2001|gid=2001|home=%[1]s/golde|server=127.0.0.2:%[1]s\n"+
		"Lazar\tuid=2001|gid=2001|home=%[1]s/Lazar|server=127.0.0.1:%[1]s\n", s.Export)
	if err := os.WriteFile(src, []byte(userdb), 0o644); err != nil {
		t.Fatal(err)
	}
	mustRun(t, "", "userdb", "compile", src, dat)
	os.Chmod(dat, 0o644)

	spool := filepath.Join(dir, "spool")
	conf := filepath.Join(dir, "exim.conf")
	port := s.NFSAddr.Port()
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`primary_hostname = front1.example.test
domainlist local_domains = example.test
spool_directory = %[1]s
log_file_path = %[1]s/%%slog
keep_environment =
# Exim gives up root for a -C configuration it does not trust, to its own
# user; the test's Exim runs as root throughout so that the transport can
# switch to user mail, as an installed Exim does.
exim_user = root
exim_group = root
begin routers
# README.md, "Worked example: Exim", with this test's paths and ports
mailnfs_user:
  driver = accept
  domains = +local_domains
  local_parts = lsearch,ret=key;%[2]s
  transport = mailnfs_pipe
begin transports
mailnfs_pipe:
  driver = pipe
  command = %[3]s deliver -userdb %[4]s -nfsport %[5]d -mountport %[5]d -timeout 10s $local_part_data
  user = mail
  temp_errors = 75
  # the pipe transport's defaults are for mbox: no "From " line before
  # the message, no blank line after it
  message_prefix =
  message_suffix =
  return_path_add
  delivery_date_add
  envelope_to_add
  return_fail_output
  log_output
begin retry
*   *   F,1h,5m
`, spool, src, bin, dat, port)), 0o644); err != nil {
		t.Fatal(err)
	}
	send := func(rcpt, body string) {
		t.Helper()
		cmd := exec.Command(exim, "-C", conf, "-odi", "-f", "sender@example.test", rcpt)
		cmd.Stdin = strings.NewReader("Subject: via exim\n\n" + body + "\n")
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("exim %s: %v\n%s", rcpt, err, out)
		}
	}
	mainlog := func() string {
		b, _ := os.ReadFile(filepath.Join(spool, "mainlog"))
		return string(b)
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, f := range []string{"paniclog", "rejectlog"} {
				if b, err := os.ReadFile(filepath.Join(spool, f)); err == nil {
					t.Logf("Exim's %s:\n%s", f, b)
				}
			}
			msglogs, _ := filepath.Glob(filepath.Join(spool, "msglog", "*"))
			for _, f := range msglogs {
				b, _ := os.ReadFile(f)
				t.Logf("%s:\n%s", filepath.Base(f), b)
			}
		}
	})
	logged := func(marker, rcpt string) bool {
		for _, l := range strings.Split(mainlog(), "\n") {
			if strings.Contains(l, " "+marker+" ") && strings.Contains(l, rcpt) {
				return true
			}
		}
		return false
	}

	send("tevie@example.test", "hello tevie")
	ents, _ := os.ReadDir(filepath.Join(s.Root, "tevie/Maildir/new"))
	if !logged("=>", "tevie@example.test") || len(ents) != 1 {
		t.Fatalf("tevie: %d messages in new/, want 1; Exim's log:\n%s", len(ents), mainlog())
	}
	// The message as a Maildir holds it: Return-path first, neither the
	// pipe transport's default mbox "From " line before it nor its blank
	// line after the body.
	if b, _ := os.ReadFile(filepath.Join(s.Root, "tevie/Maildir/new", ents[0].Name())); !bytes.HasPrefix(b, []byte("Return-path: <sender@example.test>\n")) ||
		!bytes.HasSuffix(b, []byte("\n\nhello tevie\n")) || !bytes.Contains(b, []byte("\nEnvelope-to: tevie@example.test\n")) {
		t.Errorf("tevie's message: %q", b)
	}

	// Exim lower-cases the local part (and lsearch,ret=key returns it so):
	// Lazar of the userdb is "lazar" to mailnfs deliver.
	send("Lazar@example.test", "hello lazar")
	if ents, _ := os.ReadDir(filepath.Join(s.Root, "Lazar/Maildir/new")); !logged("=>", "Lazar@example.test") || len(ents) != 1 {
		t.Errorf("Lazar: %d messages in new/, want 1; Exim's log:\n%s", len(ents), mainlog())
	}

	// golde's box (127.0.0.2) does not answer: mailnfs exits 75 and Exim
	// keeps the message for a retry.
	send("golde@example.test", "hello golde")
	if !logged("==", "golde@example.test") {
		t.Errorf("golde: not deferred; Exim's log:\n%s", mainlog())
	}
	if out, _ := exec.Command(exim, "-C", conf, "-bp").CombinedOutput(); !strings.Contains(string(out), "golde@example.test") {
		t.Errorf("golde's message is not in Exim's queue:\n%s", out)
	}

	// rolf's quota is 100 bytes: mailnfs exits 77, Exim bounces.
	send("rolf@example.test", strings.Repeat("x", 200))
	if !logged("**", "rolf@example.test") || !strings.Contains(mainlog(), "over quota") {
		t.Errorf("rolf over quota: not bounced; Exim's log:\n%s", mainlog())
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root, "rolf/Maildir/new")); len(ents) != 0 {
		t.Errorf("rolf over quota: %d messages in new/", len(ents))
	}

	send("nobody@example.test", "hello")
	if !logged("**", "nobody@example.test") || !strings.Contains(mainlog(), "Unrouteable address") {
		t.Errorf("nobody: not unrouteable; Exim's log:\n%s", mainlog())
	}
}
