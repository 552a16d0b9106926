package main

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// startSmallStateDir starts the real mailnfsd with a compressing export
// holding an empty Maildir and its -state-dir on a 6 MiB tmpfs of its
// own, and waits until it listens. It returns the server, the export and
// state directories and the NFS and portmapper ports.
func startSmallStateDir(t *testing.T) (*proc, string, string, []int) {
	t.Helper()
	nfsdtest.RequireRoot(t)
	dir := t.TempDir()
	export, exports := compressingExport(t, dir)
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", state, "tmpfs", 0, "size=6m,mode=0700"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(state, unix.MNT_DETACH) })
	ports := freePorts(t, 2)
	p := startBinary(t, "-exports", exports, "-state-dir", state,
		"-listen", "127.0.0.1", "-nfs-port", strconv.Itoa(ports[0]), "-portmap-port", strconv.Itoa(ports[1]))
	p.waitListening(t, ports...)
	return p, export, state, ports
}

// fillFile writes chunk-sized blocks to a new file at path until its file
// system is full.
func fillFile(t *testing.T, path string, chunk int) {
	t.Helper()
	fill, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	for buf := make([]byte, chunk); ; {
		if _, err := fill.Write(buf); err != nil {
			break
		}
	}
	fill.Close()
}

// TestFullStateDirCompression runs a real mailnfsd compressing an export
// with its state directory on a small tmpfs, fills the tmpfs and delivers
// 300 messages. The deliveries must succeed and read back (the state
// directory holds nothing they need: drc.log was allocated at start), and
// the compression worker, whose journal is in the full state directory,
// must say so once a minute, naming the journal, not once per group of
// messages (dozens of lines a second while mail arrives) with a bare "no
// space left on device" that reads as a full mail disk.
func TestFullStateDirCompression(t *testing.T) {
	p, export, state, ports := startSmallStateDir(t)

	// Fill the state directory's file system.
	fillFile(t, filepath.Join(state, "fill"), 64<<10)

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := p.dialAsRoot(ctx, t, ports[1], export)
	msg := "Subject: x\n\n" + strings.Repeat("a line of mail that compresses well\n", 500)
	var names []string
	for range 300 {
		name, err := c.Deliver(ctx, "Maildir", strings.NewReader(msg))
		if err != nil {
			t.Fatalf("delivery with the state directory full: %v", err)
		}
		names = append(names, name)
	}
	for _, name := range names[len(names)-3:] {
		r, err := c.Open(ctx, "Maildir", name)
		if err != nil {
			t.Fatal(err)
		}
		b, err := io.ReadAll(r)
		r.Close()
		if err != nil || string(b) != msg {
			t.Fatalf("%s read back %d bytes, err %v", name, len(b), err)
		}
	}
	// Let the worker take what is queued.
	time.Sleep(time.Second)
	const line = `msg="maildirfs: background compression`
	n := p.stopAndCount(t, line)[0]
	log := p.stderr.String()
	if n == 0 {
		t.Fatalf("compression with the state directory full logged nothing:\n%s", log)
	}
	if n > 1 {
		t.Errorf("300 deliveries with the state directory full: %d lines %s, want one a minute", n, line)
	}
	for _, l := range strings.Split(log, "\n") {
		if strings.Contains(l, line) && !strings.Contains(l, filepath.Join(state, "maildirfs-z")) {
			t.Errorf("the line does not name the compression journal in the state directory:\n%s", l)
			break
		}
	}
}

// TestStateDirOnTmpfs starts a real mailnfsd with its state directory on
// a disk, then on a tmpfs (a -state-dir under /run, or a RuntimeDirectory=
// by mistake). A reboot empties a tmpfs and the handle key with it, so
// that every reboot of the box fails every handle the front ends hold:
// that must be warned about at start, and a disk must not be.
func TestStateDirOnTmpfs(t *testing.T) {
	p, _, port, args := stormServerArgs(t)
	stateDir := args[3]
	const warn = "the state directory is on tmpfs, which a reboot empties"
	if code := p.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr.String())
	}
	if log := p.stderr.String(); strings.Contains(log, warn) {
		t.Errorf("a state directory on a disk is warned about:\n%s", log)
	}
	if err := unix.Mount("tmpfs", stateDir, "tmpfs", 0, "size=8m,mode=0700"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(stateDir, unix.MNT_DETACH) })
	p = startBinary(t, args...)
	p.waitListening(t, port)
	if code := p.stop(t, os.Interrupt); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr.String())
	}
	if log := p.stderr.String(); !strings.Contains(log, warn) || !strings.Contains(log, "state_dir="+stateDir) {
		t.Errorf("a state directory on tmpfs is not warned about:\n%s", log)
	}
}

// TestFullStateDirExpand: a WRITE into a message the store has compressed
// first expands it, journalling the plain content in the state
// directory. With the state directory full (its own small file system)
// that WRITE fails, and the mail disk has room: the log must say why,
// naming the journal, or the operator looks at the wrong disk. Once the
// state directory has room again, the WRITE succeeds and the message is
// intact.
func TestFullStateDirExpand(t *testing.T) {
	p, export, state, ports := startSmallStateDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := p.dialAsRoot(ctx, t, ports[1], export)
	msg := "Subject: x\n\n" + strings.Repeat("a line of mail that compresses well\n", 500)
	name, err := c.Deliver(ctx, "Maildir", strings.NewReader(msg))
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(export, "Maildir/new", name)
	for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		if st, err := os.Stat(file); err == nil && st.Size() < int64(len(msg))/2 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("not compressed after 30 s")
		}
	}
	fillFile(t, filepath.Join(state, "fill"), 4096)
	fh, _, err := c.LookupPath(ctx, "Maildir/new/"+name)
	if err != nil {
		t.Fatal(err)
	}
	before := len(p.stderr.String())
	_, werr := c.Write(ctx, fh, 0, []byte("X"), client.FileSync)
	if werr == nil {
		t.Skip("the WRITE into a compressed message succeeded with the state directory full")
	}
	// The log reaches p.stderr through a pipe: wait for it.
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(20 * time.Millisecond) {
		log := p.stderr.String()[before:]
		if strings.Contains(log, filepath.Join(state, "maildirfs-z")) {
			break
		}
		if time.Now().After(deadline) {
			t.Errorf("a WRITE failed (%v) for want of room in the state directory; the log does not name the journal there:\n%s", werr, log)
			break
		}
	}
	if err := os.Remove(filepath.Join(state, "fill")); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write(ctx, fh, 0, []byte("X"), client.FileSync); err != nil {
		t.Fatalf("WRITE with room in the state directory again: %v", err)
	}
	b, err := os.ReadFile(file)
	if err != nil || string(b) != "X"+msg[1:] {
		t.Fatalf("the message after the WRITE: %d bytes, err %v", len(b), err)
	}
}

// TestStartFullStateDir starts a real mailnfsd whose state directory has
// room for the handle key but not for drc.log (4 MiB): a full /var at a
// restart. drc.log only protects retransmissions across a restart; the
// box must serve without it, saying so once, not refuse to start (exit
// 1, and under systemd a restart loop until someone frees space).
func TestStartFullStateDir(t *testing.T) {
	nfsdtest.RequireRoot(t)
	dir := t.TempDir()
	export := filepath.Join(dir, "export")
	for _, d := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(export, "Maildir", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	state := filepath.Join(dir, "state")
	if err := os.Mkdir(state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount("tmpfs", state, "tmpfs", 0, "size=1m,mode=0700"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(state, unix.MNT_DETACH) })
	exports := filepath.Join(dir, "exports")
	writeFile(t, exports, export+" -maproot=0:0 -network 127.0.0.0/8\n")
	ports := freePorts(t, 2)
	p := startBinary(t, "-exports", exports, "-state-dir", state,
		"-listen", "127.0.0.1", "-nfs-port", strconv.Itoa(ports[0]), "-portmap-port", strconv.Itoa(ports[1]))
	p.waitListening(t, ports...)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c := p.dialAsRoot(ctx, t, ports[1], export)
	if _, err := c.Deliver(ctx, "Maildir", strings.NewReader("Subject: x\n\nx\n")); err != nil {
		t.Fatal(err)
	}
	const line = "serving without a duplicate request log"
	if n := p.stopAndCount(t, line)[0]; n != 1 {
		t.Errorf("%q logged %d times, want once:\n%s", line, n, p.stderr.String())
	}
}
