package interop

import (
	"bytes"
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
)

// makeMaildir creates root/Maildir/{tmp,new,cur} owned by the test identity.
func makeMaildir(t *testing.T, root string) {
	t.Helper()
	for _, d := range []string{"Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"} {
		p := filepath.Join(root, d)
		if err := os.Mkdir(p, 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, testUID, testGID); err != nil {
			t.Fatal(err)
		}
	}
}

// message returns the content of deliverer w's i-th message. Sizes vary from
// a few hundred bytes to 8 KiB; every 50th is 70 KiB and takes two WRITEs.
func message(w, i int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: deliverer-%d@example.invalid\r\nSubject: message %d/%d\r\n\r\n", w, w, i)
	n := 300 + (i*7919+w*104729)%8000
	if i%50 == 49 {
		n = 70 << 10
	}
	line := fmt.Sprintf("body of %d/%d ", w, i)
	for b.Len() < n {
		b.WriteString(line)
	}
	b.WriteString("\r\n")
	return b.Bytes()
}

// TestMaildirConcurrentDelivery: 8 deliverers, 500 messages each, over raw
// NFSv3 the way an MTA delivers to Maildir: CREATE (guarded) in tmp/, WRITE
// FILE_SYNC, RENAME into new/. Afterwards, on the server's disk: all 4000
// are in new/, none twice, tmp/ is empty, every content intact.
func TestMaildirConcurrentDelivery(t *testing.T) {
	const deliverers, perDeliverer = 8, 500
	s := startServer(t, serverOpts{setup: func(t *testing.T, root string) { makeMaildir(t, root) }})

	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	start := time.Now()
	var wg sync.WaitGroup
	errs := make(chan error, deliverers)
	for w := 0; w < deliverers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := deliverMany(ctx, s, w, perDeliverer); err != nil {
				errs <- fmt.Errorf("deliverer %d: %w", w, err)
				cancel()
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if t.Failed() {
		return
	}
	t.Logf("%d messages delivered in %v", deliverers*perDeliverer, time.Since(start).Round(time.Millisecond))

	md := filepath.Join(s.root, "Maildir")
	if ents, err := os.ReadDir(filepath.Join(md, "tmp")); err != nil || len(ents) != 0 {
		t.Errorf("tmp/ holds %d entries (err %v), want none", len(ents), err)
	}
	if ents, err := os.ReadDir(filepath.Join(md, "cur")); err != nil || len(ents) != 0 {
		t.Errorf("cur/ holds %d entries (err %v), want none", len(ents), err)
	}
	ents, err := os.ReadDir(filepath.Join(md, "new"))
	if err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for _, e := range ents {
		if seen[e.Name()] {
			t.Errorf("new/%s listed twice", e.Name())
		}
		seen[e.Name()] = true
	}
	bad := 0
	for w := 0; w < deliverers; w++ {
		for i := 0; i < perDeliverer; i++ {
			name := messageName(w, i)
			if !seen[name] {
				t.Errorf("new/%s missing", name)
				continue
			}
			delete(seen, name)
			got, err := os.ReadFile(filepath.Join(md, "new", name))
			if err != nil {
				t.Error(err)
				continue
			}
			if sha256.Sum256(got) != sha256.Sum256(message(w, i)) {
				if bad++; bad < 10 {
					t.Errorf("new/%s: content differs (%d bytes, want %d)", name, len(got), len(message(w, i)))
				}
			}
		}
	}
	for name := range seen {
		t.Errorf("unexpected new/%s", name)
	}
	if bad > 0 {
		t.Errorf("%d messages with wrong content", bad)
	}
}

func messageName(w, i int) string {
	return fmt.Sprintf("1700000000.M%dP%d_%d.interop", i, 4000+w, w)
}

// deliverMany delivers n messages for deliverer w over its own connection.
func deliverMany(ctx context.Context, s *server, w, n int) error {
	c, err := dialRaw(ctx, s.ns, nfsPort, testUID, testGID)
	if err != nil {
		return err
	}
	defer c.Close()
	mc, err := dialRaw(ctx, s.ns, mountPort, testUID, testGID)
	if err != nil {
		return err
	}
	root, err := mc.mnt(s.root)
	mc.Close()
	if err != nil {
		return fmt.Errorf("MNT %s: %w", s.root, err)
	}
	tmp, err := c.lookupPath(root, "Maildir", "tmp")
	if err != nil {
		return err
	}
	newDir, err := c.lookupPath(root, "Maildir", "new")
	if err != nil {
		return err
	}
	for i := 0; i < n; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		name := messageName(w, i)
		fh, err := c.create(tmp, name)
		if err != nil {
			return err
		}
		if _, err := c.write(fh, 0, message(w, i), nfs3.FileSync); err != nil {
			return fmt.Errorf("%s: %w", name, err)
		}
		if err := c.rename(tmp, name, newDir, name); err != nil {
			return err
		}
	}
	return nil
}
