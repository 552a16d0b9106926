package client

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// startGoNFS builds and runs cmd/gonfs-baseline (stock go-nfs) on a fresh
// directory and returns the directory and the TCP address serving NFS and
// MOUNT.
func startGoNFS(t *testing.T) (dir, addr string) {
	t.Helper()
	if testing.Short() {
		t.Skip("builds and runs the go-nfs baseline server")
	}
	bin := filepath.Join(t.TempDir(), "gonfs-baseline")
	if out, err := exec.Command("go", "build", "-o", bin, "github.com/mailnfs/mailnfs/cmd/gonfs-baseline").CombinedOutput(); err != nil {
		t.Fatalf("build gonfs-baseline: %v\n%s", err, out)
	}
	dir = t.TempDir()
	cmd := exec.Command(bin, "-dir", dir, "-listen", "127.0.0.1:0")
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(os.Interrupt)
		cmd.Wait()
	})
	line, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatalf("gonfs-baseline: %v", err)
	}
	addr = strings.TrimSpace(strings.TrimPrefix(line, "listening on "))
	go io.Copy(io.Discard, stdout)
	return dir, addr
}

// TestAgainstGoNFS runs the Maildir API and the basic calls against stock
// go-nfs, which lacks a portmapper (the URL names the ports), EXCLUSIVE
// create and a DRC; Deliver needs none of them (it creates GUARDED).
func TestAgainstGoNFS(t *testing.T) {
	dir, addr := startGoNFS(t)
	for _, d := range []string{"box/tmp", "box/new", "box/cur"} {
		os.MkdirAll(filepath.Join(dir, d), 0o755)
	}
	_, port, _ := strings.Cut(addr, ":")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c, err := Dial(ctx, fmt.Sprintf("nfs://127.0.0.1/?version=3&nfsport=%s&mountport=%s", port, port), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Null(ctx); err != nil {
		t.Fatal(err)
	}
	msg := []byte("Subject: go-nfs\r\n\r\nbody\r\n")
	name, err := c.Deliver(ctx, "box", bytes.NewReader(msg))
	if err != nil {
		t.Fatalf("Deliver: %v", err)
	}
	if got, err := os.ReadFile(filepath.Join(dir, "box/new", name)); err != nil || !bytes.Equal(got, msg) {
		t.Errorf("delivered file: %q %v", got, err)
	}
	if ents, _ := os.ReadDir(filepath.Join(dir, "box/tmp")); len(ents) != 0 {
		t.Errorf("tmp/ not empty")
	}
	ms, err := c.List(ctx, "box")
	if err != nil || len(ms) != 1 || ms[0].Size != int64(len(msg)) {
		t.Errorf("List: %+v %v", ms, err)
	}
	rc, err := c.Open(ctx, "box", name)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(rc)
	if !bytes.Equal(got, msg) {
		t.Errorf("Open: %q", got)
	}
	if _, err := c.SetFlags(ctx, "box", name, "S"); err != nil {
		t.Errorf("SetFlags: %v", err)
	}
	if err := c.Delete(ctx, "box", name); err != nil {
		t.Errorf("Delete: %v", err)
	}
	if err := c.WriteFile(ctx, "box/plain", []byte("data"), 0o644); err != nil {
		t.Errorf("WriteFile: %v", err)
	}
	if b, err := c.ReadFile(ctx, "box/plain"); err != nil || string(b) != "data" {
		t.Errorf("ReadFile: %q %v", b, err)
	}
	if _, err := c.FSStat(ctx, c.Root()); err != nil {
		t.Errorf("FSStat: %v", err)
	}
}
