//go:build linux

package reliability

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/internal/loopfstest"
	"golang.org/x/sys/unix"
)

// TestDiskFull fills the storage box's mail file system (a 48 MiB ext4
// with a journal, 5% reserved for root) through the real mailnfsd: four
// deliverers of uid 2001 deliver messages of 1 to 64 KiB and one in ten
// over 1 MiB (UNSTABLE WRITEs and COMMIT) until deliveries fail. Each
// failure must be NFS3ERR_NOSPC, which client.Temporary calls temporary (an
// MTA defers, it does not bounce); every acknowledged message must be in
// new/ once and intact and no other file there or in tmp/ (the client
// removes a message it could not finish); the server must still serve;
// the reserve must be untouched (users' writes run with the user's fsuid);
// and once some mail is deleted, delivery works again.
func TestDiskFull(t *testing.T) {
	f := startFill(t, loopfstest.Ext4(t, 48<<20, true))
	var empty unix.Statfs_t
	if err := unix.Statfs(f.mnt, &empty); err != nil {
		t.Fatal(err)
	}
	reserved := empty.Bfree - empty.Bavail
	f.fill(syscall.ENOSPC)
	var full unix.Statfs_t
	if err := unix.Statfs(f.mnt, &full); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages delivered, %d deliveries refused; free KiB: %d (%d for users) empty, %d (%d) full",
		len(f.acked), len(f.fails), empty.Bfree*uint64(empty.Bsize)>>10, empty.Bavail*uint64(empty.Bsize)>>10, full.Bfree*uint64(full.Bsize)>>10, full.Bavail*uint64(full.Bsize)>>10)
	if full.Bfree < reserved*9/10 {
		t.Errorf("the users' deliveries left %d blocks free of a reserve of %d: they used it", full.Bfree, reserved)
	}
	f.check("disk full")
	f.freeAndDeliver()
	f.check("after deleting")
}

// fillEnv is a real mailnfsd serving a Maildir of uid 2001 on the file
// system mounted at mnt, and the messages delivered to it.
type fillEnv struct {
	t   *testing.T
	s   *procServer
	mnt string
	url string

	mu    sync.Mutex
	acked map[string][32]byte // message name in new/ -> SHA-256
	fails []error
}

func startFill(t *testing.T, mnt string) *fillEnv {
	s := newProcServer(t)
	s.root = filepath.Join(mnt, "export")
	s.export = s.root
	for _, d := range []string{"", "Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"} {
		p := filepath.Join(s.root, d)
		if err := os.Mkdir(p, 0o755); err != nil {
			t.Fatal(err)
		}
		if d != "" {
			if err := os.Chown(p, 2001, 2001); err != nil {
				t.Fatal(err)
			}
		}
	}
	line := fmt.Sprintf("%s 127.0.0.0/8(rw,root_squash)\n", s.root)
	if err := os.WriteFile(s.exportsFile, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	s.start(t)
	t.Cleanup(func() {
		s.stop(t)
		if b, err := os.ReadFile(s.logFile); err == nil && strings.Contains(string(b), "panic") {
			t.Errorf("the server log mentions a panic")
		}
	})
	return &fillEnv{t: t, s: s, mnt: mnt, url: s.url() + "&uid=2001&gid=2001", acked: map[string][32]byte{}}
}

// deliver delivers message n (1 to 64 KiB; every tenth over 1 MiB) and
// records the outcome.
func (f *fillEnv) deliver(c *client.Client, rng *mrand.Rand, n int) error {
	size := 1<<10 + rng.IntN(63<<10)
	if n%10 == 9 {
		size = 1<<20 + rng.IntN(512<<10)
	}
	msg := []byte(fmt.Sprintf("Subject: full %d\r\n\r\n%s\r\n", n, strings.Repeat("x", size)))
	rng.Shuffle(len(msg)-40, func(i, j int) { msg[40+i], msg[40+j] = msg[40+j], msg[40+i] })
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name, err := c.Deliver(ctx, "Maildir", strings.NewReader(string(msg)))
	f.mu.Lock()
	defer f.mu.Unlock()
	if err != nil {
		f.fails = append(f.fails, err)
		return err
	}
	f.acked[name] = sha256.Sum256(msg)
	return nil
}

// fill delivers with four clients until each has been refused three
// times; every refusal must be want, and temporary.
func (f *fillEnv) fill(want syscall.Errno) {
	t := f.t
	ctx := ctxT(t, 3*time.Minute)
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			c, err := dialRetry(ctx, f.url)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			rng := mrand.New(mrand.NewPCG(uint64(w), 7))
			for n, failed := 0, 0; failed < 3 && ctx.Err() == nil; n++ {
				if f.deliver(c, rng, n) != nil {
					failed++
				}
			}
		})
	}
	wg.Wait()
	if len(f.acked) == 0 {
		t.Fatalf("no delivery succeeded: %v", f.fails)
	}
	for _, err := range f.fails {
		if !errors.Is(err, want) || !client.Temporary(err) {
			t.Errorf("a delivery failed with %v (temporary %v), want %v, temporary", err, client.Temporary(err), want)
		}
	}
}

// check compares the Maildir on disk with the acknowledged messages.
func (f *fillEnv) check(when string) {
	t := f.t
	t.Helper()
	md := filepath.Join(f.s.root, "Maildir")
	if ents, err := os.ReadDir(filepath.Join(md, "tmp")); err != nil || len(ents) != 0 {
		t.Errorf("%s: tmp/ holds %d entries (%v), want none", when, len(ents), err)
	}
	ents, err := os.ReadDir(filepath.Join(md, "new"))
	if err != nil {
		t.Fatal(err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if len(ents) != len(f.acked) {
		t.Errorf("%s: new/ holds %d messages, %d were acknowledged", when, len(ents), len(f.acked))
	}
	for _, e := range ents {
		want, ok := f.acked[e.Name()]
		b, err := os.ReadFile(filepath.Join(md, "new", e.Name()))
		if !ok || err != nil || sha256.Sum256(b) != want {
			t.Errorf("%s: new/%s: acknowledged %v, read %d bytes (%v), intact %v", when, e.Name(), ok, len(b), err, sha256.Sum256(b) == want)
		}
	}
}

// freeAndDeliver deletes 40 messages over NFS, on the full file system,
// and more until they freed freeBytes (room for the 10 deliveries that
// follow: at most 9 x 64 KiB + 1.5 MiB, and their blocks), and then
// delivers 10 more, which must all succeed.
func (f *fillEnv) freeAndDeliver() {
	t := f.t
	ctx := ctxT(t, time.Minute)
	c, err := dialRetry(ctx, f.url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs, err := c.List(ctx, "Maildir")
	if err != nil {
		t.Fatalf("listing when full: %v", err)
	}
	const freeBytes = 3 << 20
	var freed int64
	for i, m := range msgs {
		if i >= 40 && freed >= freeBytes {
			break
		}
		if err := c.Delete(ctx, "Maildir", m.Key); err != nil {
			t.Fatalf("delete %s when full: %v", m.Name, err)
		}
		freed += m.Size
		f.mu.Lock()
		delete(f.acked, m.Name)
		f.mu.Unlock()
	}
	rng := mrand.New(mrand.NewPCG(99, 7))
	for n := range 10 {
		if err := f.deliver(c, rng, n); err != nil {
			t.Fatalf("delivery after freeing %d bytes: %v", freed, err)
		}
	}
}
