package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestParseQuota(t *testing.T) {
	for in, want := range map[string]Quota{
		"10000000S,1000C": {Bytes: 10000000, Count: 1000},
		"1000C,5S":        {Bytes: 5, Count: 1000},
		"2048S":           {Bytes: 2048},
		"7C":              {Count: 7},
	} {
		got, err := ParseQuota(in)
		if err != nil || got != want {
			t.Errorf("ParseQuota(%q) = %+v, %v; want %+v", in, got, err, want)
		}
		if again, err := ParseQuota(got.String()); err != nil || again != got {
			t.Errorf("ParseQuota(%q.String() = %q) = %+v, %v", in, got.String(), again, err)
		}
	}
	for _, bad := range []string{"", "S", "10X", "-5S", "10S,", "x5S", "5 S"} {
		if q, err := ParseQuota(bad); err == nil {
			t.Errorf("ParseQuota(%q) = %+v, want an error", bad, q)
		}
	}
}

// TestDeliverQuota delivers against a Maildir++ quota on a real mailnfsd:
// maildirsize is created from the messages already there (folders
// included, Trash not), each delivery appends its line, a message that
// does not fit is refused with ErrOverQuota and leaves nothing behind, a
// stale or long maildirsize is recalculated (so deletions made elsewhere
// count), and a delivery into a folder counts against its parent.
func TestDeliverQuota(t *testing.T) {
	const box = "56/78-q/Maildir"
	s := startServer(t, maildirSetup(box, box+"/.Sent", box+"/.Trash"))
	c := dialServer(t, s, "", Options{Hostname: "front1"})
	ctx := context.Background()
	disk := filepath.Join(s.Root, box)
	put := func(dir, name string, n int) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(disk, dir, name), bytes.Repeat([]byte("x"), n), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	// Already there: 1000 bytes in new/, 500 in .Sent/cur/, 4000 in .Trash (not counted).
	put("new", "1.M1P1.old,S=1000", 1000)
	put(".Sent/cur", "2.M1P1.old,S=500:2,S", 500)
	put(".Trash/cur", "3.M1P1.old,S=4000:2,ST", 4000)
	maildirsize := func() string {
		t.Helper()
		b, err := os.ReadFile(filepath.Join(disk, "maildirsize"))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	q := Quota{Bytes: 3000, Count: 5}
	msg := func(n int) *bytes.Reader { return bytes.NewReader(bytes.Repeat([]byte("m"), n)) }

	if _, err := c.DeliverQuota(ctx, box, msg(600), q); err != nil {
		t.Fatal(err)
	}
	if got, want := maildirsize(), "3000S,5C\n1500 2\n600 1\n"; got != want {
		t.Fatalf("maildirsize after the first delivery:\n%q\nwant\n%q", got, want)
	}
	// 2100 of 3000 bytes used: 901 bytes do not fit, 900 do; the refusal
	// writes nothing.
	if _, err := c.DeliverQuota(ctx, box, msg(901), q); !errors.Is(err, ErrOverQuota) || Temporary(err) {
		t.Fatalf("901 bytes over 2100 of 3000: %v (temporary %v), want ErrOverQuota, not temporary", err, Temporary(err))
	}
	if ents, _ := os.ReadDir(filepath.Join(disk, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ after a refusal: %v", ents)
	}
	if _, err := c.DeliverQuota(ctx, box, msg(900), q); err != nil {
		t.Fatalf("900 bytes over 2100 of 3000: %v", err)
	}
	// (The refusal recalculated first: there was more than one line.)
	if got, want := maildirsize(), "3000S,5C\n2100 3\n900 1\n"; got != want {
		t.Fatalf("maildirsize:\n%q\nwant\n%q", got, want)
	}
	// Full (3000 bytes). A reader deletes the old message elsewhere: the
	// refused delivery first recalculates (more than one usage line) and
	// then fits. A delivery into a folder counts against the parent.
	if err := os.Remove(filepath.Join(disk, "new", "1.M1P1.old,S=1000")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeliverQuota(ctx, box+"/.Sent", msg(700), q); err != nil {
		t.Fatalf("after a deletion: %v", err)
	}
	if got, want := maildirsize(), "3000S,5C\n2000 3\n700 1\n"; got != want {
		t.Fatalf("maildirsize after the recalculation:\n%q\nwant\n%q", got, want)
	}
	// Counted messages: 4 of 5.
	if _, err := c.DeliverQuota(ctx, box, msg(1), q); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeliverQuota(ctx, box, msg(1), q); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("a sixth message with a quota of 5: %v", err)
	}
	// Another quota definition, or a maildirsize of 5120 bytes or more, is
	// recalculated.
	if _, err := c.DeliverQuota(ctx, box, msg(10), Quota{Bytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if got, want := maildirsize(), "1048576S\n2701 5\n10 1\n"; got != want {
		t.Fatalf("maildirsize after a new quota:\n%q\nwant\n%q", got, want)
	}
	long := "1048576S\n" + strings.Repeat("1 1\n", 1300)
	if err := os.WriteFile(filepath.Join(disk, "maildirsize"), []byte(long), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeliverQuota(ctx, box, msg(10), Quota{Bytes: 1 << 20}); err != nil {
		t.Fatal(err)
	}
	if got, want := maildirsize(), "1048576S\n2711 6\n10 1\n"; got != want {
		t.Fatalf("maildirsize after a long one:\n%q\nwant\n%q", got, want)
	}
	// A fresh single-line maildirsize is trusted over quota: refused
	// without a recalculation, even though it overstates the usage.
	if err := os.WriteFile(filepath.Join(disk, "maildirsize"), []byte("1048576S\n1048570 6\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeliverQuota(ctx, box, msg(10), Quota{Bytes: 1 << 20}); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("over a fresh maildirsize: %v", err)
	}
	// Once it is 15 minutes old it is recalculated, and the message fits.
	old := time.Now().Add(-16 * time.Minute)
	if err := os.Chtimes(filepath.Join(disk, "maildirsize"), old, old); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeliverQuota(ctx, box, msg(10), Quota{Bytes: 1 << 20}); err != nil {
		t.Fatalf("over a stale maildirsize: %v", err)
	}
	ms, err := c.List(ctx, box)
	if err != nil {
		t.Fatal(err)
	}
	sent, err := c.List(ctx, box+"/.Sent")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 6 || len(sent) != 2 {
		t.Errorf("%d messages in the Maildir and %d in .Sent, want 6 and 2", len(ms), len(sent))
	}
	// Deleting a message counts in maildirsize; deleting from Trash does
	// not.
	before := maildirsize()
	if err := c.Delete(ctx, box, ms[0].Key); err != nil {
		t.Fatal(err)
	}
	if got, want := maildirsize(), before+fmt.Sprintf("-%d -1\n", ms[0].Size); got != want {
		t.Errorf("maildirsize after a deletion:\n%q\nwant\n%q", got, want)
	}
	if err := c.Delete(ctx, box+"/.Trash", "3.M1P1.old,S=4000"); err != nil {
		t.Fatal(err)
	}
	if got, want := maildirsize(), before+fmt.Sprintf("-%d -1\n", ms[0].Size); got != want {
		t.Errorf("maildirsize after a deletion from Trash:\n%q\nwant\n%q", got, want)
	}
	if ents, _ := os.ReadDir(filepath.Join(disk, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ at the end: %v", ents)
	}
}

// FuzzParseQuota: any definition either fails or round-trips through
// String.
func FuzzParseQuota(f *testing.F) {
	for _, s := range []string{"10000000S,1000C", "7C", "5S", "", "1S,2S", "99999999999999999999S"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := ParseQuota(s)
		if err != nil {
			return
		}
		if q.Bytes < 0 || q.Count < 0 {
			t.Fatalf("ParseQuota(%q) = %+v", s, q)
		}
		if q == (Quota{}) {
			return // "0S": no limit, which String writes as ""
		}
		if again, err := ParseQuota(q.String()); err != nil || again != q {
			t.Fatalf("ParseQuota(%q) = %+v; its String %q parses as %+v, %v", s, q, q.String(), again, err)
		}
	})
}

// FuzzParseMaildirsize: any file either is not one (nil) or sums its
// well-formed lines; nothing panics.
func FuzzParseMaildirsize(f *testing.F) {
	for _, s := range []string{"100S,3C\n60 1\n", "1S\n", "x", "100S\n-5 -1\n7 1\ngarbage\n1 2 3\n", "\n\n"} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ms := parseMaildirsize(b)
		if ms == nil {
			return
		}
		if ms.lines < 0 || ms.lines > bytes.Count(b, []byte("\n")) {
			t.Fatalf("%d usage lines in %d bytes with %d newlines", ms.lines, len(b), bytes.Count(b, []byte("\n")))
		}
	})
}

// TestQuotaWarn: a warning goes into the Maildir once its usage reaches
// the percentage, then not again for QuotaWarnEvery.
func TestQuotaWarn(t *testing.T) {
	const box = "90/12-warn/Maildir"
	s := startServer(t, maildirSetup(box))
	c := dialServer(t, s, "", Options{Hostname: "front1"})
	ctx := context.Background()
	q := Quota{Bytes: 1000}
	warning := []byte("Subject: Your mailbox is almost full\r\n\r\nPlease delete some mail.\r\n")
	warned := func() int {
		t.Helper()
		n := 0
		ents, _ := os.ReadDir(filepath.Join(s.Root, box, "new"))
		for _, e := range ents {
			if b, _ := os.ReadFile(filepath.Join(s.Root, box, "new", e.Name())); bytes.Equal(b, warning) {
				n++
			}
		}
		return n
	}
	if _, err := c.DeliverQuota(ctx, box, bytes.NewReader(bytes.Repeat([]byte("a"), 850)), q); err != nil {
		t.Fatal(err)
	}
	if sent, err := c.QuotaWarn(ctx, box, q, 90, warning); err != nil || sent || warned() != 0 {
		t.Fatalf("at 85%% of the quota, warn at 90%%: sent %v, %v, %d warnings", sent, err, warned())
	}
	if _, err := c.DeliverQuota(ctx, box, bytes.NewReader(bytes.Repeat([]byte("b"), 60)), q); err != nil {
		t.Fatal(err)
	}
	if sent, err := c.QuotaWarn(ctx, box, q, 90, warning); err != nil || !sent || warned() != 1 {
		t.Fatalf("at 91%%: sent %v, %v, %d warnings", sent, err, warned())
	}
	if sent, err := c.QuotaWarn(ctx, box, q, 90, warning); err != nil || sent || warned() != 1 {
		t.Fatalf("again at once: sent %v, %v, %d warnings", sent, err, warned())
	}
	old := time.Now().Add(-QuotaWarnEvery - time.Hour)
	if err := os.Chtimes(filepath.Join(s.Root, box, "quotawarn"), old, old); err != nil {
		t.Fatal(err)
	}
	if sent, err := c.QuotaWarn(ctx, box, q, 90, warning); err != nil || !sent || warned() != 2 {
		t.Fatalf("a day later: sent %v, %v, %d warnings", sent, err, warned())
	}
}

// TestDeliverQuotaNegativeUsage: a maildirsize whose lines sum to a
// negative usage (removals counted for messages that were never added) is
// recalculated before it is believed, as Courier's maildirquota.c and
// Dovecot do; trusting it let a message in over the quota.
func TestDeliverQuotaNegativeUsage(t *testing.T) {
	const box = "57/01-neg/Maildir"
	s := startServer(t, maildirSetup(box))
	c := dialServer(t, s, "", Options{Hostname: "front1"})
	ctx := context.Background()
	disk := filepath.Join(s.Root, box)
	if err := os.WriteFile(filepath.Join(disk, "new", "1.M1P1.old,S=900"), bytes.Repeat([]byte("x"), 900), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(disk, "maildirsize"), []byte("1000S\n-5000 -10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	q := Quota{Bytes: 1000}
	u, err := c.QuotaUsage(ctx, box, q, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := (QuotaUsage{Quota: q, Bytes: 900, Count: 1, Recalculated: true}); u != want {
		t.Errorf("QuotaUsage over a negative maildirsize = %+v, want %+v", u, want)
	}
	if err := os.WriteFile(filepath.Join(disk, "maildirsize"), []byte("1000S\n-5000 -10\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if name, err := c.DeliverQuota(ctx, box, bytes.NewReader(bytes.Repeat([]byte("m"), 500)), q); !errors.Is(err, ErrOverQuota) {
		t.Fatalf("500 bytes beside 900 of 1000 (maildirsize says -5000): %q, %v; want ErrOverQuota", name, err)
	}
	b, err := os.ReadFile(filepath.Join(disk, "maildirsize"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "1000S\n900 1\n"; got != want {
		t.Errorf("maildirsize after the refusal:\n%q\nwant\n%q", got, want)
	}
}

// TestQuotaWarnCountsWarning: the warning QuotaWarn puts into the Maildir
// is a message like any other and is appended to maildirsize, as Courier's
// deliverquota does ("the quota message's size itself is factored into
// the quota"); left out, maildirsize understated the usage until the next
// recalculation, and deleting the warning made it understate it twice.
func TestQuotaWarnCountsWarning(t *testing.T) {
	const box = "57/02-warn/Maildir"
	s := startServer(t, maildirSetup(box))
	c := dialServer(t, s, "", Options{Hostname: "front1"})
	ctx := context.Background()
	q := Quota{Bytes: 1000}
	warning := []byte("Subject: Your mailbox is almost full\r\n\r\nPlease delete some mail.\r\n")
	if _, err := c.DeliverQuota(ctx, box, bytes.NewReader(bytes.Repeat([]byte("a"), 950)), q); err != nil {
		t.Fatal(err)
	}
	if sent, err := c.QuotaWarn(ctx, box, q, 90, warning); err != nil || !sent {
		t.Fatalf("at 95%%: sent %v, %v", sent, err)
	}
	got, err := c.QuotaUsage(ctx, box, q, false)
	if err != nil {
		t.Fatal(err)
	}
	want, err := c.QuotaUsage(ctx, box, q, true)
	if err != nil {
		t.Fatal(err)
	}
	if got.Bytes != want.Bytes || got.Count != want.Count {
		t.Errorf("maildirsize after the warning says %d bytes in %d messages; the Maildir holds %d in %d", got.Bytes, got.Count, want.Bytes, want.Count)
	}
}

// TestDeliverQuotaIntoTrash: Trash is not counted (its messages are left
// out of a recalculation and its deletions are not appended), so a
// delivery into it is neither refused for the quota nor appended to
// maildirsize, as Courier's deliverquota skips the quota for it
// (maildirquota_countfolder). Counting it made maildirsize overstate the
// usage until the next recalculation.
func TestDeliverQuotaIntoTrash(t *testing.T) {
	const box = "57/03-trash/Maildir"
	s := startServer(t, maildirSetup(box, box+"/.Trash"))
	c := dialServer(t, s, "", Options{Hostname: "front1"})
	ctx := context.Background()
	disk := filepath.Join(s.Root, box)
	q := Quota{Bytes: 1000}
	if _, err := c.DeliverQuota(ctx, box, bytes.NewReader(bytes.Repeat([]byte("a"), 800)), q); err != nil {
		t.Fatal(err)
	}
	before, err := os.ReadFile(filepath.Join(disk, "maildirsize"))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeliverQuota(ctx, box+"/.Trash", bytes.NewReader(bytes.Repeat([]byte("t"), 600)), q); err != nil {
		t.Fatalf("600 bytes into Trash beside 800 of 1000 counted: %v", err)
	}
	after, err := os.ReadFile(filepath.Join(disk, "maildirsize"))
	if err != nil {
		t.Fatal(err)
	}
	if string(after) != string(before) {
		t.Errorf("maildirsize after a delivery into Trash:\n%q\nwant it unchanged:\n%q", after, before)
	}
	if ents, _ := os.ReadDir(filepath.Join(disk, ".Trash", "new")); len(ents) != 1 {
		t.Errorf(".Trash/new holds %d messages, want 1", len(ents))
	}
}

// TestQuotaUsageLongMaildirsize: a maildirsize of 5,120 bytes or more is
// recalculated, but its first line still says what the quota is (Courier
// reads it from the first 5,120 bytes); asked without a quota of its own,
// QuotaUsage reported none and left the long file as it was.
func TestQuotaUsageLongMaildirsize(t *testing.T) {
	const box = "57/05-long/Maildir"
	s := startServer(t, maildirSetup(box))
	c := dialServer(t, s, "", Options{Hostname: "front1"})
	ctx := context.Background()
	disk := filepath.Join(s.Root, box)
	if err := os.WriteFile(filepath.Join(disk, "new", "1.M1P1.old,S=300"), bytes.Repeat([]byte("x"), 300), 0o600); err != nil {
		t.Fatal(err)
	}
	long := "1000S,10C\n" + strings.Repeat("1 1\n", 1300)
	if err := os.WriteFile(filepath.Join(disk, "maildirsize"), []byte(long), 0o600); err != nil {
		t.Fatal(err)
	}
	u, err := c.QuotaUsage(ctx, box, Quota{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if want := (QuotaUsage{Quota: Quota{Bytes: 1000, Count: 10}, Bytes: 300, Count: 1, Recalculated: true}); u != want {
		t.Errorf("QuotaUsage over a long maildirsize = %+v, want %+v", u, want)
	}
	b, err := os.ReadFile(filepath.Join(disk, "maildirsize"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := string(b), "1000S,10C\n300 1\n"; got != want {
		t.Errorf("maildirsize afterwards:\n%.40q\nwant\n%q", got, want)
	}
}

// TestDeliverQuotaDottedMaildir: a Maildir whose name merely starts with a
// dot (a home's ".maildir", no maildirfolder file) keeps its own
// maildirsize, as Courier's deliverquota decides by that file; it was
// counted against the home directory above it.
func TestDeliverQuotaDottedMaildir(t *testing.T) {
	const home = "58/01-dot"
	const box = home + "/.maildir"
	s := startServer(t, maildirSetup(box))
	c := dialServer(t, s, "", Options{Hostname: "front1"})
	ctx := context.Background()
	q := Quota{Bytes: 1000}
	if _, err := c.DeliverQuota(ctx, box, bytes.NewReader(bytes.Repeat([]byte("d"), 300)), q); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(s.Root, home, "maildirsize")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a maildirsize in the home above the Maildir (stat: %v)", err)
	}
	b, err := os.ReadFile(filepath.Join(s.Root, box, "maildirsize"))
	if err != nil {
		t.Fatalf("the Maildir's own maildirsize: %v", err)
	}
	if want := "1000S\n0 0\n300 1\n"; string(b) != want {
		t.Errorf("maildirsize %q, want %q", b, want)
	}
	u, err := c.QuotaUsage(ctx, box, Quota{}, false)
	if err != nil {
		t.Fatal(err)
	}
	if u.Bytes != 300 || u.Count != 1 || u.Quota != q {
		t.Errorf("QuotaUsage %+v, want 300 bytes, 1 message, quota %+v", u, q)
	}
}
