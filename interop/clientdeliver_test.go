package interop

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/client"
)

// The Go client runs in a helper process inside the server's namespace (the
// test binary, re-executed with envHelper set), so every socket it opens,
// including redials from its own goroutines, is in that namespace.
const (
	envHelper    = "MAILNFS_INTEROP_HELPER"
	envHelperURL = "MAILNFS_INTEROP_URL"
	envHelperOut = "MAILNFS_INTEROP_OUT"
)

const clientDeliverers, clientPerDeliverer = 8, 500

// TestClientDeliveryHelper is not a test on its own: it is the body of the
// helper process of TestClientMaildirDelivery.
func TestClientDeliveryHelper(t *testing.T) {
	if os.Getenv(envHelper) != "deliver" {
		t.Skip("helper process for TestClientMaildirDelivery")
	}
	url, outPath := os.Getenv(envHelperURL), os.Getenv(envHelperOut)
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()
	var mu sync.Mutex
	var lines []string
	var wg sync.WaitGroup
	for w := 0; w < clientDeliverers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// One client (one connection pool) per deliverer, as separate
			// MTA processes would have.
			c, err := client.Dial(ctx, url, client.Options{Hostname: fmt.Sprintf("mta%d", w)})
			if err != nil {
				t.Errorf("deliverer %d: dial: %v", w, err)
				return
			}
			defer c.Close()
			for i := 0; i < clientPerDeliverer; i++ {
				name, err := c.Deliver(ctx, "Maildir", bytes.NewReader(message(w, i)))
				if err != nil {
					t.Errorf("deliverer %d message %d: %v", w, i, err)
					return
				}
				mu.Lock()
				lines = append(lines, fmt.Sprintf("%d %d %s", w, i, name))
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if err := os.WriteFile(outPath, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
}

// TestClientMaildirDelivery: 8 clients of package client deliver 500
// messages each with Deliver; afterwards, on the server's disk, every
// message is in new/ exactly once under the name Deliver returned, with its
// content intact, and tmp/ is empty.
func TestClientMaildirDelivery(t *testing.T) {
	if os.Getenv(envHelper) != "" {
		t.Skip("inside a helper process")
	}
	s := startServer(t, serverOpts{setup: func(t *testing.T, root string) { makeMaildir(t, root) }})
	out := filepath.Join(t.TempDir(), "delivered")
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	defer cancel()
	cmd := s.ns.Command(ctx, os.Args[0], "-test.run=^TestClientDeliveryHelper$", "-test.count=1", "-test.timeout=9m")
	cmd.Env = append(os.Environ(), envHelper+"=deliver", envHelperURL+"="+s.url(""), envHelperOut+"="+out)
	start := time.Now()
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("client helper: %v\n%s", err, b)
	}
	t.Logf("%d messages delivered by package client in %v", clientDeliverers*clientPerDeliverer, time.Since(start).Round(time.Millisecond))

	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	md := filepath.Join(s.root, "Maildir")
	names := map[string]bool{}
	sc := bufio.NewScanner(f)
	n, bad := 0, 0
	for sc.Scan() {
		var w, i int
		var name string
		if _, err := fmt.Sscanf(sc.Text(), "%d %d %s", &w, &i, &name); err != nil {
			t.Fatalf("helper output %q: %v", sc.Text(), err)
		}
		n++
		if names[name] {
			t.Errorf("name %s returned twice", name)
		}
		names[name] = true
		got, err := os.ReadFile(filepath.Join(md, "new", name))
		if err != nil {
			t.Errorf("message %d/%d: %v", w, i, err)
			continue
		}
		if !bytes.Equal(got, message(w, i)) {
			if bad++; bad < 10 {
				t.Errorf("new/%s (message %d/%d): content differs", name, w, i)
			}
		}
	}
	if n != clientDeliverers*clientPerDeliverer {
		t.Errorf("helper reported %d deliveries, want %d", n, clientDeliverers*clientPerDeliverer)
	}
	ents, err := os.ReadDir(filepath.Join(md, "new"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range ents {
		if !names[e.Name()] {
			t.Errorf("unexpected new/%s", e.Name())
		}
	}
	if len(ents) != len(names) {
		t.Errorf("new/ holds %d entries, want %d", len(ents), len(names))
	}
	if ents, err := os.ReadDir(filepath.Join(md, "tmp")); err != nil || len(ents) != 0 {
		t.Errorf("tmp/ holds %d entries (err %v), want none", len(ents), err)
	}
}
