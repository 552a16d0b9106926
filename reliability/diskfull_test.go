//go:build linux

package reliability

import (
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
	s := newProcServer(t)
	mnt := loopfstest.Ext4(t, 48<<20, true)
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
	defer s.stop(t)
	var empty unix.Statfs_t
	if err := unix.Statfs(mnt, &empty); err != nil {
		t.Fatal(err)
	}
	reserved := empty.Bfree - empty.Bavail

	ctx := ctxT(t, 3*time.Minute)
	url := s.url() + "&uid=2001&gid=2001"
	var (
		mu    sync.Mutex
		acked = map[string][32]byte{} // message name in new/ -> SHA-256
		fails []error
	)
	deliver := func(c *client.Client, rng *mrand.Rand, n int) error {
		size := 1<<10 + rng.IntN(63<<10)
		if n%10 == 9 {
			size = 1<<20 + rng.IntN(512<<10)
		}
		msg := []byte(fmt.Sprintf("Subject: disk full %d\r\n\r\n%s\r\n", n, strings.Repeat("x", size)))
		rng.Shuffle(len(msg)-40, func(i, j int) { msg[40+i], msg[40+j] = msg[40+j], msg[40+i] })
		name, err := c.Deliver(ctx, "Maildir", strings.NewReader(string(msg)))
		mu.Lock()
		defer mu.Unlock()
		if err != nil {
			fails = append(fails, err)
			return err
		}
		acked[name] = sha256.Sum256(msg)
		return nil
	}
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Go(func() {
			c, err := dialRetry(ctx, url)
			if err != nil {
				t.Error(err)
				return
			}
			defer c.Close()
			rng := mrand.New(mrand.NewPCG(uint64(w), 7))
			failed := 0
			for n := 0; failed < 3 && ctx.Err() == nil; n++ {
				if deliver(c, rng, n) != nil {
					failed++
				}
			}
		})
	}
	wg.Wait()
	if len(acked) == 0 {
		t.Fatalf("no delivery succeeded: %v", fails)
	}
	for _, err := range fails {
		if !errors.Is(err, syscall.ENOSPC) || !client.Temporary(err) {
			t.Errorf("a delivery failed with %v (temporary %v), want NFS3ERR_NOSPC, temporary", err, client.Temporary(err))
		}
	}
	var full unix.Statfs_t
	if err := unix.Statfs(mnt, &full); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages delivered, %d deliveries refused; free 1 KiB blocks: %d (%d for users) empty, %d (%d) full",
		len(acked), len(fails), empty.Bfree*uint64(empty.Bsize)>>10, empty.Bavail*uint64(empty.Bsize)>>10, full.Bfree*uint64(full.Bsize)>>10, full.Bavail*uint64(full.Bsize)>>10)
	if full.Bfree < reserved*9/10 {
		t.Errorf("the users' deliveries left %d blocks free of a reserve of %d: they used it", full.Bfree, reserved)
	}
	checkDisk := func(when string) {
		t.Helper()
		if ents, err := os.ReadDir(filepath.Join(s.root, "Maildir/tmp")); err != nil || len(ents) != 0 {
			t.Errorf("%s: tmp/ holds %d entries (%v), want none", when, len(ents), err)
		}
		ents, err := os.ReadDir(filepath.Join(s.root, "Maildir/new"))
		if err != nil {
			t.Fatal(err)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(ents) != len(acked) {
			t.Errorf("%s: new/ holds %d messages, %d were acknowledged", when, len(ents), len(acked))
		}
		for _, e := range ents {
			want, ok := acked[e.Name()]
			b, err := os.ReadFile(filepath.Join(s.root, "Maildir/new", e.Name()))
			if !ok || err != nil || sha256.Sum256(b) != want {
				t.Errorf("%s: new/%s: acknowledged %v, read %d bytes (%v), intact %v", when, e.Name(), ok, len(b), err, sha256.Sum256(b) == want)
			}
		}
	}
	checkDisk("disk full")

	// Deleting some mail makes room again.
	c, err := dialRetry(ctx, url)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msgs, err := c.List(ctx, "Maildir")
	if err != nil {
		t.Fatalf("listing on a full disk: %v", err)
	}
	var freed int64
	for _, m := range msgs[:min(len(msgs), 40)] {
		if err := c.Delete(ctx, "Maildir", m.Key); err != nil {
			t.Fatalf("delete %s on a full disk: %v", m.Name, err)
		}
		freed += m.Size
		mu.Lock()
		delete(acked, m.Name)
		mu.Unlock()
	}
	rng := mrand.New(mrand.NewPCG(99, 7))
	for n := 0; n < 10; n++ {
		if err := deliver(c, rng, n); err != nil {
			t.Fatalf("delivery after freeing %d bytes: %v", freed, err)
		}
	}
	checkDisk("after deleting")
	if strings.Contains(readLog(t, s), "panic") {
		t.Errorf("the server log mentions a panic")
	}
}

func readLog(t *testing.T, s *procServer) string {
	t.Helper()
	b, err := os.ReadFile(s.logFile)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}
