package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

func TestParseMessageName(t *testing.T) {
	for _, tc := range []struct {
		in    string
		want  MessageName
		isErr bool
	}{
		{"1276528487.M364837P9451.kurkku,S=1355,W=1394:2,", MessageName{Unique: "1276528487.M364837P9451.kurkku,S=1355,W=1394", Size: 1355, Info: "2,"}, false},
		{"1.M2P3.h,S=10:2,FS", MessageName{Unique: "1.M2P3.h,S=10", Size: 10, Info: "2,FS", Flags: "FS"}, false},
		{"1.M2P3.h:2,Sa,extra", MessageName{Unique: "1.M2P3.h", Size: -1, Info: "2,Sa,extra", Flags: "Sa", Extra: ",extra"}, false},
		{"1.M2P3.h:1,experimental", MessageName{Unique: "1.M2P3.h", Size: -1, Info: "1,experimental"}, false},
		{"1.M2P3.h,S=x", MessageName{Unique: "1.M2P3.h,S=x", Size: -1}, false},
		{".hidden", MessageName{}, true},
		{"", MessageName{}, true},
		{":2,S", MessageName{}, true},
		{"a/b", MessageName{}, true},
	} {
		got, err := ParseMessageName(tc.in)
		if (err != nil) != tc.isErr || got != tc.want {
			t.Errorf("ParseMessageName(%q) = %+v, %v; want %+v (error %v)", tc.in, got, err, tc.want, tc.isErr)
		}
	}
}

func TestNormalizeFlags(t *testing.T) {
	for in, want := range map[string]string{"SF": "FS", "": "", "TSRPFD": "DFPRST", "SSa": "Sa", "baS": "Sab"} {
		if got, err := NormalizeFlags(in); err != nil || got != want {
			t.Errorf("NormalizeFlags(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for _, bad := range []string{"S,", "1", "S F", "é"} {
		if _, err := NormalizeFlags(bad); err == nil {
			t.Errorf("NormalizeFlags(%q) accepted", bad)
		}
	}
}

var uniqueRE = regexp.MustCompile(`^[0-9]+\.M[0-9]+P[0-9]+Q[0-9]+R[0-9a-f]{32}\.[^/:,]+$`)

func TestUniqueName(t *testing.T) {
	now := time.Unix(1700000000, 123456789)
	a := UniqueName(now, 42, 7, "front/1:x,y")
	if !strings.HasPrefix(a, "1700000000.M123456P42Q7R") || !uniqueRE.MatchString(a) {
		t.Errorf("UniqueName = %q", a)
	}
	if !strings.HasSuffix(a, `.front\0571\072x\054y`) {
		t.Errorf("host not escaped: %q", a)
	}
	if b := UniqueName(now, 42, 7, "front/1:x,y"); a == b {
		t.Errorf("two names from the same inputs are equal: the random part is missing")
	}
	mn, err := ParseMessageName(a + ",S=99")
	if err != nil || mn.Size != 99 || mn.Unique != a+",S=99" {
		t.Errorf("round trip: %+v %v", mn, err)
	}
}

func FuzzParseMessageName(f *testing.F) {
	for _, s := range []string{"1276528487.M364837P9451.kurkku,S=1355,W=1394:2,", "1.M2.h:2,FS", ".x", "a,S=-1:2,", ":", "1.h,S=99999999999999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := ParseMessageName(s)
		if err != nil {
			return
		}
		if m.Unique == "" || strings.Contains(m.Unique, ":") {
			t.Fatalf("unique %q from %q", m.Unique, s)
		}
		rebuilt := m.Unique
		if m.Info != "" || strings.Contains(s, ":") {
			rebuilt += ":" + m.Info
		}
		if rebuilt != s {
			t.Fatalf("%q does not rebuild: %q", s, rebuilt)
		}
		if m.Size < -1 {
			t.Fatalf("size %d", m.Size)
		}
		if fl, err := NormalizeFlags(m.Flags); err == nil {
			again, err := NormalizeFlags(fl)
			if err != nil || again != fl {
				t.Fatalf("NormalizeFlags not idempotent on %q", fl)
			}
			// A unique part of 253 bytes or more leaves no room for ":2,"
			// (SetFlags refuses it).
			if cur := CurName(m.Unique, fl); len(cur) <= 255 {
				if _, err := ParseMessageName(cur); err != nil {
					t.Fatalf("CurName does not parse: %v", err)
				}
			}
		}
	})
}

func maildirSetup(boxes ...string) nfsdtest.Option {
	return nfsdtest.WithSetup(func(t testing.TB, root string) {
		for _, b := range boxes {
			for _, d := range []string{"tmp", "new", "cur"} {
				if err := os.MkdirAll(filepath.Join(root, b, d), 0o700); err != nil {
					t.Fatal(err)
				}
			}
			// A Maildir++ folder (".Sent" in a Maildir of the list)
			// has its maildirfolder file, as maildirmake -f makes it.
			if strings.HasPrefix(filepath.Base(b), ".") && slices.Contains(boxes, filepath.Dir(b)) {
				if err := os.WriteFile(filepath.Join(root, b, "maildirfolder"), nil, 0o600); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

func TestMaildirLifecycle(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	c := dialServer(t, s, "", Options{Hostname: "front1"})
	ctx := context.Background()
	if err := c.MakeMaildir(ctx, "12/34-tevie/Maildir"); err != nil {
		t.Fatal(err)
	}
	if err := c.MakeMaildir(ctx, "12/34-tevie/Maildir"); err != nil {
		t.Fatalf("MakeMaildir on an existing Maildir: %v", err)
	}
	box := "12/34-tevie/Maildir"
	msg := []byte("From: a@example.com\r\nSubject: hi\r\n\r\nbody\r\n")
	before := time.Now().Add(-2 * time.Second)
	name, err := c.Deliver(ctx, box, bytes.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasSuffix(name, fmt.Sprintf(",S=%d", len(msg))) || !strings.Contains(name, ".front1,") {
		t.Errorf("delivered name %q", name)
	}
	disk := filepath.Join(s.Root, box)
	fi, err := os.Stat(filepath.Join(disk, "new", name))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 || fi.ModTime().Before(before) || fi.ModTime().After(time.Now().Add(2*time.Second)) {
		t.Errorf("delivered file mode %v mtime %v", fi.Mode(), fi.ModTime())
	}
	if got, _ := os.ReadFile(filepath.Join(disk, "new", name)); !bytes.Equal(got, msg) {
		t.Errorf("content on disk differs")
	}
	if ents, _ := os.ReadDir(filepath.Join(disk, "tmp")); len(ents) != 0 {
		t.Errorf("tmp/ not empty: %v", ents)
	}
	// A big message goes through UNSTABLE writes and COMMIT.
	big := bytes.Repeat([]byte("x"), 2*c.MaxWrite()+17)
	bigName, err := c.Deliver(ctx, box, bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	ms, err := c.List(ctx, box)
	if err != nil || len(ms) != 2 {
		t.Fatalf("List = %+v, %v", ms, err)
	}
	n, cnt, err := c.Usage(ctx, box)
	if err != nil || cnt != 2 || n != int64(len(msg)+len(big)) {
		t.Errorf("Usage = %d bytes %d msgs %v", n, cnt, err)
	}
	rc, err := c.Open(ctx, box, bigName)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, big) {
		t.Errorf("Open/read big: %d bytes, %v", len(got), err)
	}
	to, err := c.SetFlags(ctx, box, name, "SF")
	if err != nil || to != name+":2,FS" {
		t.Fatalf("SetFlags = %q, %v", to, err)
	}
	if _, err := os.Stat(filepath.Join(disk, "cur", name+":2,FS")); err != nil {
		t.Errorf("after SetFlags: %v", err)
	}
	to, err = c.SetFlags(ctx, box, name, "RS")
	if err != nil || to != name+":2,RS" {
		t.Fatalf("SetFlags again = %q, %v", to, err)
	}
	ms, _ = c.List(ctx, box)
	var flagged *Message
	for i := range ms {
		if ms[i].Key == name {
			flagged = &ms[i]
		}
	}
	if flagged == nil || flagged.Dir != "cur" || flagged.Flags != "RS" || flagged.Size != int64(len(msg)) {
		t.Errorf("listed flagged message: %+v", flagged)
	}
	rc, err = c.Open(ctx, box, name)
	if err != nil {
		t.Fatal(err)
	}
	got, _ = io.ReadAll(rc)
	if !bytes.Equal(got, msg) {
		t.Errorf("Open of a flagged message by key: %q", got)
	}
	if err := c.Delete(ctx, box, name); err != nil {
		t.Fatal(err)
	}
	if err := c.Delete(ctx, box, name); err == nil {
		t.Errorf("second Delete succeeded")
	}
	if ms, _ := c.List(ctx, box); len(ms) != 1 || ms[0].Key != bigName {
		t.Errorf("after Delete: %+v", ms)
	}

	// CleanTmp: an old file goes, a fresh one stays.
	tmpDir := filepath.Join(disk, "tmp")
	os.WriteFile(filepath.Join(tmpDir, "old"), []byte("x"), 0o600)
	os.WriteFile(filepath.Join(tmpDir, "fresh"), []byte("x"), 0o600)
	removed, err := c.CleanTmp(ctx, box, 0, time.Now().Add(37*time.Hour))
	if err != nil || len(removed) != 2 {
		t.Errorf("CleanTmp 37 h later: %v %v", removed, err)
	}
	os.WriteFile(filepath.Join(tmpDir, "fresh"), []byte("x"), 0o600)
	removed, err = c.CleanTmp(ctx, box, 0, time.Now())
	if err != nil || len(removed) != 0 {
		t.Errorf("CleanTmp now: %v %v", removed, err)
	}
}

// TestDeliverConcurrent: 16 goroutines x 500 deliveries to 20 mailboxes
// through one client: every message present exactly once, tmp/ empty.
func TestDeliverConcurrent(t *testing.T) {
	checkGoroutines(t)
	const workers, boxes = 16, 20
	const perWorker = 500
	var names []string
	for i := range boxes {
		names = append(names, fmt.Sprintf("u%02d/Maildir", i))
	}
	s := startServer(t, maildirSetup(names...))
	c := dialServer(t, s, "", Options{Hostname: "front1"})
	ctx := context.Background()

	var mu sync.Mutex
	delivered := map[string]string{} // name -> mailbox
	var wg sync.WaitGroup
	errs := make(chan error, workers)
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range perWorker {
				box := names[(w*perWorker+i)%boxes]
				body := fmt.Sprintf("Subject: %d-%d\r\n\r\n%s\r\n", w, i, strings.Repeat("m", (w*131+i*17)%3000))
				name, err := c.Deliver(ctx, box, strings.NewReader(body))
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				if _, dup := delivered[name]; dup {
					errs <- fmt.Errorf("name %s returned twice", name)
				}
				delivered[name] = box
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	if len(delivered) != workers*perWorker {
		t.Fatalf("%d deliveries, want %d", len(delivered), workers*perWorker)
	}
	seen := 0
	for _, box := range names {
		ents, err := os.ReadDir(filepath.Join(s.Root, box, "new"))
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range ents {
			if delivered[e.Name()] != box {
				t.Errorf("unexpected file %s in %s/new", e.Name(), box)
			}
			seen++
		}
		if tmp, _ := os.ReadDir(filepath.Join(s.Root, box, "tmp")); len(tmp) != 0 {
			t.Errorf("%s/tmp holds %d files", box, len(tmp))
		}
		ms, err := c.List(ctx, box)
		if err != nil || len(ms) != len(ents) {
			t.Errorf("List %s: %d messages, %d on disk, %v", box, len(ms), len(ents), err)
		}
	}
	if seen != workers*perWorker {
		t.Errorf("%d files in new/, want %d", seen, workers*perWorker)
	}
}

// TestDeliverReplyLost cuts the connection after the server ran the CREATE
// or the RENAME but before the client saw the reply. The client reconnects
// and resends the same XID; exactly one copy must result and tmp/ must end
// empty. Without a restart the server's duplicate request cache answers;
// with a restart in between (the DRC is gone) the call runs again: the
// GUARDED CREATE gets EXIST and the client adopts the empty file its own
// first transmission made; the RENAME gets NOENT and the client's
// LOOKUP-and-compare-fileid step recognises its own delivery.
func TestDeliverReplyLost(t *testing.T) {
	for _, tc := range []struct {
		name    string
		proc    int
		restart bool
	}{
		{"create", 8, false}, {"create/restart", 8, true},
		{"rename", 14, false}, {"rename/restart", 14, true},
	} {
		restart := tc.restart
		t.Run(tc.name, func(t *testing.T) {
			checkGoroutines(t)
			s := startServer(t, maildirSetup("box"))
			p := startCutProxy(t, s.NFSAddr.String())
			u := fmt.Sprintf("nfs://127.0.0.1%s?version=3&nfsport=%d&mountport=%d", s.Export, p.Port(), s.MountAddr.Port())
			c, err := Dial(context.Background(), u, Options{})
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			var onCut func()
			if restart {
				onCut = func() { s.Restart(t) }
			}
			p.Arm(tc.proc, onCut)
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			name, err := c.Deliver(ctx, "box", strings.NewReader("Subject: once\r\n\r\nonly once\r\n"))
			if err != nil {
				t.Fatal(err)
			}
			cuts, seen := p.Stats()
			if cuts != 1 {
				t.Fatalf("proxy cut %d times, want 1", cuts)
			}
			for xid, n := range seen {
				if n != 2 {
					t.Errorf("%s xid %#x sent %d times, want 2 (original + retransmission with the same xid)", tc.name, xid, n)
				}
			}
			ents, _ := os.ReadDir(filepath.Join(s.Root, "box", "new"))
			if len(ents) != 1 || ents[0].Name() != name {
				t.Errorf("new/ = %v, want exactly %s", ents, name)
			}
			if tmp, _ := os.ReadDir(filepath.Join(s.Root, "box", "tmp")); len(tmp) != 0 {
				t.Errorf("tmp/ = %v", tmp)
			}
		})
	}
}

// TestDeliverReplyLostStaleLate: the RENAME runs, its reply is lost, and
// the box comes back only after the caller's deadline, without its
// duplicate request log and with the Maildir restored from a copy that
// links its messages (so new/ and tmp/ are other directories, the
// messages the same files): the retransmitted RENAME, answered within the
// reply grace, is STALE, as it is after a restart with a new handle key.
// The message is in new/ by then, so the delivery must not be reported
// failed (an MTA would deliver it again): the look for it runs with a
// fresh deadline, as the other checks after a failure do.
func TestDeliverReplyLostStaleLate(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, maildirSetup("box"))
	p := startCutProxy(t, s.NFSAddr.String())
	u := fmt.Sprintf("nfs://127.0.0.1%s?version=3&nfsport=%d&mountport=%d", s.Export, p.Port(), s.MountAddr.Port())
	c, err := Dial(context.Background(), u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	p.Arm(14, func() {
		s.Stop(t)
		box := filepath.Join(s.Root, "box")
		for _, d := range []string{"tmp", "new", "cur"} {
			if err := os.MkdirAll(filepath.Join(box+".copy", d), 0o700); err != nil {
				t.Error(err)
			}
		}
		msgs, _ := os.ReadDir(filepath.Join(box, "new"))
		for _, m := range msgs {
			if err := os.Link(filepath.Join(box, "new", m.Name()), filepath.Join(box+".copy", "new", m.Name())); err != nil {
				t.Error(err)
			}
		}
		// The old Maildir leaves the export: its handles are STALE.
		if err := os.Rename(box, s.Root+".old-box"); err != nil {
			t.Error(err)
		}
		if err := os.Rename(box+".copy", box); err != nil {
			t.Error(err)
		}
		if err := os.Remove(filepath.Join(s.StateDir, "drc.log")); err != nil {
			t.Error(err)
		}
		s.Restart(t)
		<-ctx.Done()
	})
	name, err := c.Deliver(ctx, "box", strings.NewReader("Subject: once\r\n\r\nonly once\r\n"))
	if cuts, _ := p.Stats(); cuts != 1 {
		t.Fatalf("proxy cut %d times, want 1", cuts)
	}
	ents, _ := os.ReadDir(filepath.Join(s.Root, "box", "new"))
	if err != nil {
		t.Errorf("delivery reported failed (temporary %v) with %d messages in new/: %v", Temporary(err), len(ents), err)
	} else if len(ents) != 1 || ents[0].Name() != name {
		t.Errorf("new/ = %v, want exactly %s", ents, name)
	}
	if tmp, _ := os.ReadDir(filepath.Join(s.Root, "box", "tmp")); len(tmp) != 0 {
		t.Errorf("tmp/ = %v", tmp)
	}
}

// TestDeliverAcrossServerRestart: the client reconnects by itself after the
// server restarts, and its cached handles stay valid.
func TestDeliverAcrossServerRestart(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, maildirSetup("box"))
	c := dialServer(t, s, "", Options{RPC: RPCOptions{Conns: 2}})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if _, err := c.Deliver(ctx, "box", strings.NewReader("one")); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)
	for i := range 4 {
		if _, err := c.Deliver(ctx, "box", strings.NewReader(fmt.Sprint("after ", i))); err != nil {
			t.Fatalf("delivery %d after restart: %v", i, err)
		}
	}
	if ents, _ := os.ReadDir(filepath.Join(s.Root, "box", "new")); len(ents) != 5 {
		t.Errorf("new/ holds %d messages, want 5", len(ents))
	}
}

// TestSetFlagsNameTooLong: a message whose name leaves no room for
// ":2,<flags>" (another program's making) is refused with
// ErrBadMessageName, not sent to the server; it stays where it was.
func TestSetFlagsNameTooLong(t *testing.T) {
	const box = "Maildir"
	s := startServer(t, maildirSetup(box))
	c := dialServer(t, s, "", Options{})
	long := strings.Repeat("7", 250) + ",S=0" // 254 bytes
	if err := os.WriteFile(filepath.Join(s.Root, box, "new", long), nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := c.SetFlags(context.Background(), box, long, "S"); !errors.Is(err, ErrBadMessageName) {
		t.Errorf("SetFlags on a %d-byte name: %v, want ErrBadMessageName", len(long), err)
	}
	if _, err := os.Stat(filepath.Join(s.Root, box, "new", long)); err != nil {
		t.Errorf("the message moved: %v", err)
	}
}

// TestMakeMaildirFolder: a Maildir++ folder (".Sent") is made as Courier's
// maildirmake -f and Dovecot make one: a Maildir holding an empty
// "maildirfolder" file, which tells Courier's deliverquota, maildrop and
// imapd to keep the quota in the parent, inside a parent that is a Maildir
// itself (a quota delivery into the folder reads the parent's maildirsize).
func TestMakeMaildirFolder(t *testing.T) {
	s := startServer(t)
	c := dialServer(t, s, "", Options{Hostname: "front1"})
	ctx := context.Background()
	const box = "57/04-fold/Maildir"
	for _, f := range []string{box + "/.Sent", box + "/.INBOX.sub"} {
		if err := c.MakeMaildir(ctx, f); err != nil {
			t.Fatal(err)
		}
		if err := c.MakeMaildir(ctx, f); err != nil {
			t.Fatalf("MakeMaildir on an existing folder: %v", err)
		}
		fi, err := os.Stat(filepath.Join(s.Root, f, "maildirfolder"))
		if err != nil || !fi.Mode().IsRegular() || fi.Size() != 0 {
			t.Errorf("%s/maildirfolder: %v, %v; want an empty file", f, fi, err)
		}
	}
	for _, d := range []string{"tmp", "new", "cur"} {
		if _, err := os.Stat(filepath.Join(s.Root, box, d)); err != nil {
			t.Errorf("the folders' parent: %v", err)
		}
	}
	if _, err := os.Stat(filepath.Join(s.Root, box, "maildirfolder")); !os.IsNotExist(err) {
		t.Errorf("the Maildir itself has a maildirfolder file: %v", err)
	}
	if _, err := c.DeliverQuota(ctx, box+"/.Sent", strings.NewReader("Subject: x\r\n\r\nx\r\n"), Quota{Bytes: 1000}); err != nil {
		t.Errorf("a quota delivery into the new folder: %v", err)
	}
}
