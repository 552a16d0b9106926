//go:build linux

package client

import (
	"bytes"
	"context"
	"fmt"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestDovecotReadsMaildir checks the Maildir that DeliverQuota, SetFlags
// and Delete leave on a real mailnfsd with Dovecot's own tools, as the
// IMAP server on the storage box's other side sees it: doveadm (run as the
// mailbox's uid, on the export's disk) must list every message with its
// size and flags, and its Maildir++ quota backend must read our
// maildirsize; in turn our client must read the lines Dovecot appends when
// it expunges, and Dovecot the file our recalculation writes.
func TestDovecotReadsMaildir(t *testing.T) {
	nfsdtest.RequireRoot(t)
	doveadm := netnstest.RequireTool(t, "doveadm")
	setpriv := netnstest.RequireTool(t, "setpriv")
	const home, uid = "12/34-tevie", 2001
	box := home + "/Maildir"
	s := startServer(t, nfsdtest.WithSetup(func(t testing.TB, root string) {
		for _, d := range []string{"12", home, box, box + "/tmp", box + "/new", box + "/cur"} {
			p := filepath.Join(root, d)
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			if d != "12" {
				if err := os.Chown(p, uid, uid); err != nil {
					t.Fatal(err)
				}
			}
		}
	}))
	for p := s.Root; p != "/"; p = filepath.Dir(p) {
		os.Chmod(p, 0o755) // uid 2001's doveadm walks down to the Maildir
	}
	ctx := context.Background()
	c, err := Dial(ctx, s.URL("")+fmt.Sprintf("&uid=%d&gid=%d", uid, uid), Options{Hostname: "front1"})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()

	q := Quota{Bytes: 1000000, Count: 100}
	sizes := []int{100, 2000, 5000}
	var names []string
	for _, n := range sizes {
		name, err := c.DeliverQuota(ctx, box, bytes.NewReader(bytes.Repeat([]byte("y"), n)), q)
		if err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	if _, err := c.SetFlags(ctx, box, names[1], "S"); err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	os.Chmod(dir, 0o777)
	conf := filepath.Join(dir, "dovecot.conf")
	if err := os.WriteFile(conf, []byte(fmt.Sprintf(`base_dir = %s
log_path = /dev/stderr
ssl = no
protocols =
mail_location = maildir:~/Maildir
mail_plugins = quota
plugin {
  quota = maildir:User quota
  quota_rule = *:storage=1000000B:messages=100
}
`, dir)), 0o644); err != nil {
		t.Fatal(err)
	}
	dove := func(args ...string) string {
		t.Helper()
		cmd := exec.Command(setpriv, append([]string{"--reuid=" + strconv.Itoa(uid), "--regid=" + strconv.Itoa(uid), "--clear-groups", doveadm, "-c", conf}, args...)...)
		cmd.Env = []string{"USER=tevie", "HOME=" + filepath.Join(s.Root, home), "PATH=/usr/bin:/bin"}
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("doveadm %s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return string(out)
	}
	// -f tab: a header line, then a line of tab-separated fields per
	// message.
	fetched := map[string]map[string]string{}
	lines := strings.Split(strings.TrimSpace(dove("-f", "tab", "fetch", "guid flags size.physical", "mailbox", "INBOX", "all")), "\n")
	for _, l := range lines[1:] {
		f := strings.Split(l, "\t")
		if len(f) == 3 {
			fetched[f[0]] = map[string]string{"flags": f[1], "size.physical": f[2]}
		}
	}
	if len(fetched) != len(names) {
		t.Errorf("doveadm fetch lists %d messages, want %d: %v", len(fetched), len(names), fetched)
	}
	for i, name := range names {
		m := fetched[name] // Dovecot's GUID of a Maildir message is its base name
		if m == nil {
			t.Errorf("doveadm fetch does not list %s", name)
			continue
		}
		if m["size.physical"] != strconv.Itoa(sizes[i]) {
			t.Errorf("%s: size.physical %s, want %d", name, m["size.physical"], sizes[i])
		}
		if seen := strings.Contains(m["flags"], `\Seen`); seen != (i == 1) {
			t.Errorf("%s: flags %q", name, m["flags"])
		}
	}
	quota := func() (kib, msgs int64) {
		t.Helper()
		for _, l := range strings.Split(dove("quota", "get"), "\n") {
			f := strings.Fields(l)
			if len(f) >= 5 && f[0] == "User" {
				n, _ := strconv.ParseInt(f[3], 10, 64)
				switch f[2] {
				case "STORAGE":
					kib = n
				case "MESSAGE":
					msgs = n
				}
			}
		}
		return kib, msgs
	}
	total := int64(sizes[0] + sizes[1] + sizes[2])
	if kib, msgs := quota(); kib != int64(math.Ceil(float64(total)/1024)) || msgs != 3 {
		t.Errorf("doveadm quota get: %d KiB in %d messages, want %d bytes in 3", kib, msgs, total)
	}

	// Dovecot expunges the first message and appends its line; our client
	// reads it.
	dove("expunge", "mailbox", "INBOX", "guid", names[0])
	u, err := c.QuotaUsage(ctx, box, q, false)
	if err != nil || u.Recalculated || u.Bytes != total-int64(sizes[0]) || u.Count != 2 {
		t.Errorf("QuotaUsage after Dovecot's expunge: %+v, %v; want %d bytes in 2 from maildirsize", u, err, total-int64(sizes[0]))
	}
	// Our recalculation, read by Dovecot.
	if u, err := c.QuotaUsage(ctx, box, q, true); err != nil || u.Bytes != total-int64(sizes[0]) || u.Count != 2 {
		t.Errorf("QuotaUsage recalculated: %+v, %v", u, err)
	}
	if b, err := os.ReadFile(filepath.Join(s.Root, box, "maildirsize")); err != nil || string(b) != fmt.Sprintf("1000000S,100C\n%d 2\n", total-int64(sizes[0])) {
		t.Errorf("maildirsize after our recalculation: %q, %v", b, err)
	}
	if _, msgs := quota(); msgs != 2 {
		t.Errorf("doveadm quota get after our recalculation: %d messages, want 2", msgs)
	}
	// And Dovecot sees our deletion.
	if err := c.Delete(ctx, box, names[2]); err != nil {
		t.Fatal(err)
	}
	if _, msgs := quota(); msgs != 1 {
		t.Errorf("doveadm quota get after our deletion: %d messages, want 1", msgs)
	}
}
