package main

import (
	"bytes"
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestDemoNotRoot runs make run's server as a user without privileges
// (uid 65534, as setpriv would): it may make kernel file handles but not
// open them (open_by_handle_at needs CAP_DAC_READ_SEARCH), so it finds
// handles it has not cached by searching the demo export. It must serve
// the sample Maildir (it stopped at once before), link files (linkat
// AT_EMPTY_PATH needs the same capability before Linux 6.10), and keep
// handles valid across a restart: a handle taken before it answers after
// it, with the same bytes; one whose file was removed is STALE.
func TestDemoNotRoot(t *testing.T) {
	nfsdtest.RequireRoot(t) // to start it as another user
	const uid = 65534
	base := t.TempDir()
	for p := base; p != "/"; p = filepath.Dir(p) {
		if fi, err := os.Stat(p); err == nil && fi.Mode().Perm()&0o005 != 0o005 {
			os.Chmod(p, fi.Mode().Perm()|0o005) // t.TempDir's parents are 0700
		}
	}
	dir := filepath.Join(base, "demo")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, uid); err != nil {
		t.Fatal(err)
	}
	bin := filepath.Join(base, "mailnfsd")
	data, err := os.ReadFile(nfsdtest.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	ports := freePorts(t, 2)
	start := func() *proc {
		cmd := exec.Command(bin, "-demo", dir, "-nfs-port", strconv.Itoa(ports[0]), "-portmap-port", strconv.Itoa(ports[1]))
		cmd.Dir = dir
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uid, Gid: uid, Groups: []uint32{}}}
		p := startCmd(t, cmd)
		p.waitListening(t, ports...)
		return p
	}
	p := start()
	if !strings.Contains(p.stderr.String(), "found by searching the export") {
		t.Errorf("no warning about handle search in the log:\n%s", p.stderr.String())
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	md := filepath.Join(dir, "export", demoMaildir)
	url := "nfs://127.0.0.1:" + strconv.Itoa(ports[1]) + md + "?uid=" + strconv.Itoa(uid) + "&gid=" + strconv.Itoa(uid)
	c, err := client.Dial(ctx, url, client.Options{})
	if err != nil {
		t.Fatalf("dial %s: %v\n%s", url, err, p.stderr.String())
	}
	msgs, err := os.ReadDir(filepath.Join(md, "new"))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("demo Maildir new/: %v %v", msgs, err)
	}
	welcome, err := os.ReadFile(filepath.Join(md, "new", msgs[0].Name()))
	if err != nil {
		t.Fatal(err)
	}
	msgFH, _, err := c.LookupPath(ctx, "new/"+msgs[0].Name())
	if err != nil {
		t.Fatalf("lookup of the welcome message: %v\n%s", err, p.stderr.String())
	}
	if got, err := c.ReadAll(ctx, msgFH); err != nil || !bytes.Equal(got, welcome) {
		t.Fatalf("read of the welcome message: %v, %d bytes, want %d", err, len(got), len(welcome))
	}
	// A delivery: tmp/ -> new/, plus a hard link, then a file removed.
	body := bytes.Repeat([]byte("mail over a server without privileges\n"), 300)
	if err := c.WriteFile(ctx, "tmp/m1", body, 0o600); err != nil {
		t.Fatalf("write tmp/m1: %v\n%s", err, p.stderr.String())
	}
	tmpFH, _, err := c.LookupPath(ctx, "tmp")
	if err != nil {
		t.Fatal(err)
	}
	newFH, _, err := c.LookupPath(ctx, "new")
	if err != nil {
		t.Fatal(err)
	}
	m1, _, err := c.Lookup(ctx, tmpFH, "m1")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Link(ctx, m1, newFH, "m1-link"); err != nil {
		t.Fatalf("LINK: %v\n%s", err, p.stderr.String())
	}
	if err := c.Rename(ctx, tmpFH, "m1", newFH, "m1"); err != nil {
		t.Fatalf("RENAME: %v", err)
	}
	if err := c.WriteFile(ctx, "tmp/gone", []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	gone, _, err := c.Lookup(ctx, tmpFH, "gone")
	if err != nil {
		t.Fatal(err)
	}
	if err := c.Remove(ctx, tmpFH, "gone"); err != nil {
		t.Fatal(err)
	}
	c.Close()
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.stderr.String())
	}

	// After a restart nothing is cached: the handles are found by search.
	p = start()
	c, err = client.Dial(ctx, url, client.Options{})
	if err != nil {
		t.Fatalf("dial after restart: %v\n%s", err, p.stderr.String())
	}
	defer c.Close()
	if got, err := c.ReadAll(ctx, msgFH); err != nil || !bytes.Equal(got, welcome) {
		t.Errorf("welcome message by its old handle after a restart: %v, %d bytes", err, len(got))
	}
	if got, err := c.ReadAll(ctx, m1); err != nil || !bytes.Equal(got, body) {
		t.Errorf("new/m1 by the handle it had in tmp/, after a restart: %v, %d bytes", err, len(got))
	}
	if a, err := c.Getattr(ctx, m1); err != nil || a.Nlink != 2 {
		t.Errorf("GETATTR of new/m1 after a restart: %v, %+v (want 2 links)", err, a)
	}
	if _, err := c.Getattr(ctx, gone); !client.IsStatus(err, client.NFS3ErrStale) {
		t.Errorf("GETATTR of a removed file's handle after a restart: %v, want NFS3ERR_STALE", err)
	}
	var st syscall.Stat_t
	if err := syscall.Stat(filepath.Join(md, "new", "m1"), &st); err != nil || st.Uid != uid || st.Nlink != 2 {
		t.Errorf("new/m1 on disk: %v, uid %d, %d links", err, st.Uid, st.Nlink)
	}
	if _, err := os.Stat(filepath.Join(md, "tmp", "m1")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("tmp/m1 still there: %v", err)
	}
}
