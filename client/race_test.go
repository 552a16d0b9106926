package client

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/client/userdb"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// Tests of the Maildir calls when another front end, or a slow server,
// acts between a client's calls: a real mailnfsd behind a cutProxy.

// proxied dials s through a new cutProxy (NFS only; MOUNT direct).
func proxied(t *testing.T, s *nfsdtest.TestServer) (*Client, *cutProxy) {
	t.Helper()
	p := startCutProxy(t, s.NFSAddr.String())
	u := fmt.Sprintf("nfs://127.0.0.1%s?version=3&nfsport=%d&mountport=%d", s.Export, p.Port(), s.MountAddr.Port())
	c, err := Dial(context.Background(), u, Options{Hostname: "front1"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c, p
}

// beforeFirst makes p run f just before it forwards the next call of NFS
// procedure proc (once).
func beforeFirst(p *cutProxy, proc nfs3.Proc, f func()) {
	var once sync.Once
	p.Intercept(func(got uint32, _ []byte, _ net.Conn) bool {
		if got == uint32(proc) {
			once.Do(f)
		}
		return false
	})
}

// silentListener listens on addr and accepts connections, never
// answering on them (a storage box that has hung); the listener and
// every connection are closed when the test ends.
func silentListener(t *testing.T, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, err
	}
	var mu sync.Mutex
	var conns []net.Conn
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		mu.Lock()
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
	})
	return ln, nil
}

func dirNames(t *testing.T, dir string) []string {
	t.Helper()
	ents, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

// Another front end renames the message (an IMAP server's flag change)
// between Delete's look-up and its REMOVE: Delete follows it and removes
// it, rather than taking the NOENT for "removed by someone else".
func TestDeleteFollowsRename(t *testing.T) {
	for _, tc := range []struct{ name, from, to string }{
		{"new to cur", "new/%s", "cur/%s:2,S"},
		{"flag change in cur", "cur/%s:2,S", "cur/%s:2,RS"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := startServer(t, maildirSetup("box"))
			disk := filepath.Join(s.Root, "box")
			key := "1700000000.M1P1R0123456789abcdef.other,S=2"
			if err := os.WriteFile(filepath.Join(disk, fmt.Sprintf(tc.from, key)), []byte("x\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			c, p := proxied(t, s)
			beforeFirst(p, nfs3.ProcRemove, func() {
				if err := os.Rename(filepath.Join(disk, fmt.Sprintf(tc.from, key)), filepath.Join(disk, fmt.Sprintf(tc.to, key))); err != nil {
					t.Error(err)
				}
			})
			if err := c.Delete(context.Background(), "box", key); err != nil {
				t.Fatalf("Delete: %v", err)
			}
			if left := append(dirNames(t, filepath.Join(disk, "new")), dirNames(t, filepath.Join(disk, "cur"))...); len(left) != 0 {
				t.Errorf("Delete returned nil, but %v is still there", left)
			}
		})
	}
	t.Run("removed by someone else", func(t *testing.T) {
		s := startServer(t, maildirSetup("box"))
		disk := filepath.Join(s.Root, "box")
		key := "1700000000.M1P1R0123456789abcdef.other,S=2"
		if err := os.WriteFile(filepath.Join(disk, "new", key), []byte("x\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		c, p := proxied(t, s)
		beforeFirst(p, nfs3.ProcRemove, func() {
			if err := os.Remove(filepath.Join(disk, "new", key)); err != nil {
				t.Error(err)
			}
		})
		if err := c.Delete(context.Background(), "box", key); err != nil {
			t.Errorf("Delete of a message another front end removed meanwhile: %v, want nil", err)
		}
	})
}

// SetFlags follows a message another front end moved (new/ to cur/)
// between its look-up and its RENAME, and keeps the flags asked for.
func TestSetFlagsFollowsRename(t *testing.T) {
	s := startServer(t, maildirSetup("box"))
	disk := filepath.Join(s.Root, "box")
	c, p := proxied(t, s)
	ctx := context.Background()
	key, err := c.Deliver(ctx, "box", strings.NewReader("x\n"))
	if err != nil {
		t.Fatal(err)
	}
	beforeFirst(p, nfs3.ProcRename, func() {
		if err := os.Rename(filepath.Join(disk, "new", key), filepath.Join(disk, "cur", key+":2,S")); err != nil {
			t.Error(err)
		}
	})
	to, err := c.SetFlags(ctx, "box", key, "FS")
	if err != nil {
		t.Fatalf("SetFlags: %v", err)
	}
	if want := key + ":2,FS"; to != want {
		t.Errorf("SetFlags = %q, want %q", to, want)
	}
	if got := dirNames(t, filepath.Join(disk, "cur")); len(got) != 1 || got[0] != key+":2,FS" {
		t.Errorf("cur/ = %v, want [%s:2,FS]", got, key)
	}
}

// SetFlags keeps the text Dovecot keeps after the flags (reference.md
// §7.2).
func TestSetFlagsKeepsDovecotExtra(t *testing.T) {
	s := startServer(t, maildirSetup("box"))
	const key = "1700000000.M1P1.h,S=1"
	if err := os.WriteFile(filepath.Join(s.Root, "box", "cur", key+":2,S,extra"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := dialServer(t, s, "", Options{})
	to, err := c.SetFlags(context.Background(), "box", key, "FS")
	if err != nil || to != key+":2,FS,extra" {
		t.Errorf("SetFlags = %q, %v; want %q", to, err, key+":2,FS,extra")
	}
}

// A CREATE whose reply never comes may have made the file: the failed
// delivery removes it.
func TestDeliverCreateUnansweredRemovesTmp(t *testing.T) {
	s := startServer(t, maildirSetup("box"))
	c, p := proxied(t, s)
	if _, err := c.List(context.Background(), "box"); err != nil { // handles cached
		t.Fatal(err)
	}
	p.Mute(int(nfs3.ProcCreate))
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	_, err := c.Deliver(ctx, "box", strings.NewReader("x"))
	if err == nil || !Temporary(err) {
		t.Fatalf("Deliver with CREATE unanswered: %v, want a temporary error", err)
	}
	if left := dirNames(t, filepath.Join(s.Root, "box", "tmp")); len(left) != 0 {
		t.Errorf("failed delivery left tmp/ = %v", left)
	}
}

// A RENAME the server answers late: Deliver waits for the answer past
// its deadline (the grace); and if even that passes and the RENAME runs
// just before the cleanup's REMOVE, the message is found in new/ and the
// delivery counts as done. Either way: nil, the message once in new/,
// tmp/ empty.
func TestDeliverLateRename(t *testing.T) {
	for _, afterGrace := range []bool{false, true} {
		t.Run(fmt.Sprintf("afterGrace=%v", afterGrace), func(t *testing.T) {
			s := startServer(t, maildirSetup("box"))
			c, p := proxied(t, s)
			c.renameGrace = 2 * time.Second
			if _, err := c.List(context.Background(), "box"); err != nil {
				t.Fatal(err)
			}
			var mu sync.Mutex
			var held []byte
			var heldDst net.Conn
			release := func() {
				mu.Lock()
				defer mu.Unlock()
				if held != nil {
					heldDst.Write(rpc.FrameRecord(held))
					held = nil
				}
			}
			if afterGrace {
				p.Mute(int(nfs3.ProcRename)) // its reply never comes
			}
			p.Intercept(func(proc uint32, rec []byte, dst net.Conn) bool {
				switch nfs3.Proc(proc) {
				case nfs3.ProcRename:
					mu.Lock()
					defer mu.Unlock()
					if held != nil {
						return false
					}
					held, heldDst = rec, dst
					if !afterGrace {
						// The server runs it 1.5 s late: past the 1 s
						// deadline, within the grace.
						time.AfterFunc(1500*time.Millisecond, release)
					}
					return true
				case nfs3.ProcRemove:
					// The cleanup's REMOVE: the held RENAME runs first.
					release()
					time.Sleep(300 * time.Millisecond)
				}
				return false
			})
			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			name, err := c.Deliver(ctx, "box", strings.NewReader("Subject: late\r\n\r\nlate\r\n"))
			if err != nil {
				t.Fatalf("Deliver: %v (new/ = %v)", err, dirNames(t, filepath.Join(s.Root, "box", "new")))
			}
			if got := dirNames(t, filepath.Join(s.Root, "box", "new")); len(got) != 1 || got[0] != name {
				t.Errorf("new/ = %v, want [%s]", got, name)
			}
			if left := dirNames(t, filepath.Join(s.Root, "box", "tmp")); len(left) != 0 {
				t.Errorf("tmp/ = %v, want empty", left)
			}
		})
	}
}

// Dot entries of a Maildir's root that are not folders (a filter file,
// Dovecot's .dovecot.sieve symlink) do not stop quota deliveries.
func TestQuotaSkipsDotFiles(t *testing.T) {
	s := startServer(t, maildirSetup("box", "box/.Sent"))
	if err := os.WriteFile(filepath.Join(s.Root, "box", ".mailfilter"), []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("sieve/main.sieve", filepath.Join(s.Root, "box", ".dovecot.sieve")); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(s.Root, "box", ".Sent", "cur", "1.M1P1.h,S=5:2,S"), []byte("sent\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := dialServer(t, s, "", Options{})
	ctx := context.Background()
	if _, err := c.DeliverQuota(ctx, "box", strings.NewReader("hello"), Quota{Bytes: 1 << 20}); err != nil {
		t.Fatalf("DeliverQuota: %v", err)
	}
	u, err := c.QuotaUsage(ctx, "box", Quota{}, true)
	if err != nil {
		t.Fatal(err)
	}
	if u.Bytes != 10 || u.Count != 2 {
		t.Errorf("usage %d bytes in %d messages, want 10 in 2 (the delivery and .Sent's message)", u.Bytes, u.Count)
	}
}

// A message moved from new/ to cur/ while List reads the two directories
// is listed once, as in cur/.
func TestListRenamedDuringListing(t *testing.T) {
	s := startServer(t, maildirSetup("box"))
	disk := filepath.Join(s.Root, "box")
	c, p := proxied(t, s)
	ctx := context.Background()
	key, err := c.Deliver(ctx, "box", strings.NewReader("x\n"))
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	p.Intercept(func(proc uint32, _ []byte, _ net.Conn) bool {
		if proc == uint32(nfs3.ProcReaddirplus) {
			if n++; n == 2 { // new/ read, cur/ next
				if err := os.Rename(filepath.Join(disk, "new", key), filepath.Join(disk, "cur", key+":2,S")); err != nil {
					t.Error(err)
				}
			}
		}
		return false
	})
	ms, err := c.List(ctx, "box")
	if err != nil {
		t.Fatal(err)
	}
	if len(ms) != 1 || ms[0].Dir != "cur" || ms[0].Flags != "S" {
		t.Errorf("List = %+v, want the message once, in cur/ with flag S", ms)
	}
}

// A storage box that does not answer holds up only the users on it: a
// delivery to another box does not wait for its dial.
func TestRouterDeadBoxDoesNotBlockOthers(t *testing.T) {
	s := startServer(t, maildirSetup("live/Maildir"))
	hole, err := silentListener(t, "127.0.0.2:0")
	if err != nil {
		t.Skipf("no 127.0.0.2 here: %v", err)
	}
	text := fmt.Sprintf("live\tuid=0|gid=0|home=%s/live|server=127.0.0.1:%s\n", s.Export, s.Export) +
		"dead\tuid=0|gid=0|home=/srv/dead|server=127.0.0.2:/srv\n"
	es, err := userdb.Parse(strings.NewReader(text), "userdb")
	if err != nil {
		t.Fatal(err)
	}
	r := NewRouter(mustDB(t, es), Options{})
	defer r.Close()
	r.Adjust = func(tg *Target) {
		if tg.Host == "127.0.0.2" {
			tg.PortmapPort = hole.Addr().(*net.TCPAddr).Port
		} else {
			tg.PortmapPort = int(s.PortmapAddr.Port())
		}
	}
	dialing := make(chan struct{})
	deadDone := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		close(dialing)
		_, err := r.Deliver(ctx, "dead", strings.NewReader("x"))
		deadDone <- err
	}()
	<-dialing
	time.Sleep(200 * time.Millisecond) // the dead box's dial is under way
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := r.Deliver(ctx, "live", strings.NewReader("hi")); err != nil {
		t.Errorf("delivery to the live box while another box's dial hangs: %v", err)
	}
	var deadErr error
	select {
	case deadErr = <-deadDone:
		t.Errorf("the dead box's delivery ended before the live one was done: %v", deadErr)
	default:
		deadErr = <-deadDone
	}
	if deadErr == nil || !Temporary(deadErr) {
		t.Errorf("delivery to the dead box: %v, want a temporary error", deadErr)
	}
}

// A route's export path survives its URL whatever it holds.
func TestRouteURLEscapesExport(t *testing.T) {
	for _, export := range []string{"/srv/mail", "/srv/mail#2", "/srv/mail%41", "/srv/mail?x", "/srv/my mail"} {
		r := userdb.Route{Host: "box", Export: export, UID: 7, GID: 8}
		tg, err := ParseURL(r.URL())
		if err != nil {
			t.Errorf("%q: URL %q: %v", export, r.URL(), err)
			continue
		}
		if tg.Path != export || tg.UID == nil || *tg.UID != 7 || tg.GID == nil || *tg.GID != 8 {
			t.Errorf("%q: URL %q gives path %q uid %v gid %v", export, r.URL(), tg.Path, tg.UID, tg.GID)
		}
	}
}

// Callers waiting for a storage box's dial are bound by their own
// deadlines, not by that of the caller whose call started the dial.
func TestRouterWaitersKeepOwnDeadline(t *testing.T) {
	hole, err := silentListener(t, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	es, err := userdb.Parse(strings.NewReader("a\tuid=1|gid=1|home=/srv/a|server=127.0.0.1:/srv\nb\tuid=2|gid=2|home=/srv/b|server=127.0.0.1:/srv\n"), "userdb")
	if err != nil {
		t.Fatal(err)
	}
	r := NewRouter(mustDB(t, es), Options{})
	defer r.Close()
	r.Adjust = func(tg *Target) { tg.PortmapPort = hole.Addr().(*net.TCPAddr).Port }
	ctxA, cancelA := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelA()
	aDone := make(chan error, 1)
	go func() {
		_, _, err := r.Resolve(ctxA, "a")
		aDone <- err
	}()
	time.Sleep(50 * time.Millisecond) // a's dial is under way
	ctxB, cancelB := context.WithTimeout(context.Background(), 1500*time.Millisecond)
	defer cancelB()
	_, _, err = r.Resolve(ctxB, "b")
	if err == nil || ctxB.Err() == nil {
		t.Errorf("b, waiting for the same box, failed before its own deadline: %v", err)
	}
	if err := <-aDone; !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("a: %v, want its own deadline", err)
	}
}

// A server that stops reading (its process hung, the box's disk stuck):
// calls already written wait for replies that never come, and the next
// writes fill the socket and block. Every call still returns when its
// context ends, not WriteTimeout (30 s) later, whether it was blocked in
// the write or waiting its turn to write.
func TestCallsHonourDeadlineWhenServerStopsReading(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, maildirSetup("box"))
	p := startStallProxy(t, s.NFSAddr.String())
	u := fmt.Sprintf("nfs://127.0.0.1%s?version=3&nfsport=%d&mountport=%d", s.Export, p.Port(), s.MountAddr.Port())
	c, err := Dial(context.Background(), u, Options{Hostname: "front1", RPC: RPCOptions{WriteTimeout: 30 * time.Second}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	h, err := c.maildir(context.Background(), "box")
	if err != nil {
		t.Fatal(err)
	}
	mode := uint32(0o600)
	fh, _, err := c.Create(context.Background(), h.tmp, "big", Guarded, SetAttr{Mode: &mode}, [8]byte{})
	if err != nil {
		t.Fatal(err)
	}
	p.Stall(4096)
	const deadline = time.Second
	ctx, cancel := context.WithTimeout(context.Background(), deadline)
	defer cancel()
	start := time.Now()
	// Each WRITE is measured from the moment a bare goroutine saw the
	// context end, not from the deadline, and may take a few seconds
	// more: on a loaded machine (two cores, -race, other packages' tests)
	// the process is off the CPU for up to a second or two at a time,
	// and WRITEs returned 2.1 to 2.9 s after start. The bug this guards
	// against is a wait of WriteTimeout (30 s) after the end.
	ended := make(chan time.Duration, 1)
	go func() {
		<-ctx.Done()
		ended <- time.Since(start)
	}()
	var wg sync.WaitGroup
	took := make([]time.Duration, 16)
	errs := make([]error, len(took))
	data := make([]byte, 1<<20)
	for i := range took {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = c.Write(ctx, fh, uint64(i)<<20, data, Unstable)
			took[i] = time.Since(start)
		}()
	}
	wg.Wait()
	end := <-ended
	for i := range took {
		if errs[i] == nil || !Temporary(errs[i]) {
			t.Errorf("WRITE %d to a server not reading: %v, want a temporary error", i, errs[i])
		}
		if took[i] > end+5*time.Second {
			t.Errorf("WRITE %d with a %v deadline returned after %v; its context was seen ended after %v", i, deadline, took[i], end)
		}
	}
}
