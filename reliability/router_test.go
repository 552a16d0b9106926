package reliability

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/client/userdb"
)

// routerBoxes is a Router over two real mailnfsd boxes, each holding the
// Maildirs of two users.
type routerBoxes struct {
	boxes []*procServer
	users map[string]*procServer // user -> box
	r     *client.Router
	sent  map[string]int // user -> deliveries acknowledged
	// silentPort: with silent set, the portmapper port of a box that
	// takes connections and never answers, export /silent, user "silent".
	silentPort int
}

func newRouterBoxes(t *testing.T, silent bool) *routerBoxes {
	t.Helper()
	rb := &routerBoxes{users: map[string]*procServer{}, sent: map[string]int{}}
	var text strings.Builder
	if silent {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { ln.Close() })
		go func() {
			for {
				c, err := ln.Accept()
				if err != nil {
					return
				}
				defer c.Close()
			}
		}()
		rb.silentPort = ln.Addr().(*net.TCPAddr).Port
		text.WriteString("silent\tuid=3100|gid=3100|home=/silent/silent|server=127.0.0.1:/silent\n")
	}
	uid := 3001
	for b := range 2 {
		s := newProcServer(t)
		rb.boxes = append(rb.boxes, s)
		for u := range 2 {
			name := fmt.Sprintf("user%d%d", b, u)
			for _, d := range []string{"", "/Maildir", "/Maildir/tmp", "/Maildir/new", "/Maildir/cur"} {
				p := filepath.Join(s.root, name) + d
				if err := os.Mkdir(p, 0o700); err != nil {
					t.Fatal(err)
				}
				if err := os.Chown(p, uid, uid); err != nil {
					t.Fatal(err)
				}
			}
			fmt.Fprintf(&text, "%s\tuid=%d|gid=%d|home=%s/%s|server=127.0.0.1:%s\n", name, uid, uid, s.export, name, s.export)
			rb.users[name] = s
			uid++
		}
		s.start(t)
	}
	es, err := userdb.Parse(strings.NewReader(text.String()), "test")
	if err != nil {
		t.Fatal(err)
	}
	var enc strings.Builder
	if err := userdb.Encode(&enc, es); err != nil {
		t.Fatal(err)
	}
	db, err := userdb.Decode([]byte(enc.String()))
	if err != nil {
		t.Fatal(err)
	}
	rb.r = client.NewRouter(db, client.Options{RPC: client.RPCOptions{ReconnectTimeout: 5 * time.Second}})
	rb.r.Adjust = func(tg *client.Target) {
		if tg.Path == "/silent" {
			tg.PortmapPort = rb.silentPort
		}
		for _, s := range rb.boxes {
			if strings.HasPrefix(tg.Path, s.export) {
				tg.PortmapPort = s.pmPort
			}
		}
	}
	return rb
}

// deliverAll delivers one message to every user; each must succeed.
func (rb *routerBoxes) deliverAll(t *testing.T, what string) {
	t.Helper()
	for name := range rb.users {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := rb.r.Deliver(ctx, name, strings.NewReader("To: "+name+"\n\n"+what+"\n"))
		cancel()
		if err != nil {
			t.Errorf("%s: deliver to %s: %v (temporary %v)", what, name, err, client.Temporary(err))
			continue
		}
		rb.sent[name]++
	}
}

// check compares each user's new/ with the deliveries acknowledged: every
// one there, none twice, tmp/ empty.
func (rb *routerBoxes) check(t *testing.T) {
	t.Helper()
	for name, s := range rb.users {
		md := filepath.Join(s.root, name, "Maildir")
		news, _ := os.ReadDir(filepath.Join(md, "new"))
		tmps, _ := os.ReadDir(filepath.Join(md, "tmp"))
		if len(news) != rb.sent[name] || len(tmps) != 0 {
			t.Errorf("%s: %d in new/ and %d in tmp/, %d deliveries acknowledged", name, len(news), len(tmps), rb.sent[name])
		}
	}
}

// TestRouterAcrossBoxRestart: a long-lived Router (an MTA's) delivers to
// users on two boxes; one box is killed and started again on the same
// ports, once with the same state directory and once with a fresh one (a
// lost handle key: every handle the Router holds is BADHANDLE). The
// deliveries after each restart succeed with the same Router, none is
// stored twice, and Close returns promptly.
func TestRouterAcrossBoxRestart(t *testing.T) {
	rb := newRouterBoxes(t, false)
	rb.deliverAll(t, "before")
	box := rb.boxes[0]

	box.kill(t)
	box.start(t)
	rb.deliverAll(t, "after SIGKILL, same state dir")

	box.kill(t)
	if err := os.RemoveAll(box.stateDir); err != nil {
		t.Fatal(err)
	}
	box.start(t)
	rb.deliverAll(t, "after SIGKILL, new state dir")

	box.stop(t)
	if err := os.RemoveAll(box.stateDir); err != nil {
		t.Fatal(err)
	}
	box.start(t)
	rb.deliverAll(t, "after SIGTERM, new state dir")
	rb.check(t)

	start := time.Now()
	rb.r.Close()
	if d := time.Since(start); d > time.Second {
		t.Errorf("Router.Close took %v", d)
	} else {
		t.Logf("Router.Close took %v", d)
	}
}

// reload sends SIGHUP and gives mailnfsd a moment to read the file.
func (s *procServer) reload(t *testing.T) {
	t.Helper()
	if err := s.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	time.Sleep(300 * time.Millisecond)
}

// TestRouterExportReplacedOrRemoved: a box's export directory is replaced
// (new inodes, a reload): the Router's root handle is stale, and it mounts
// again instead of deferring every delivery until it is made anew. An
// export a reload dropped is a temporary error, and deliveries resume once
// it is back.
func TestRouterExportReplacedOrRemoved(t *testing.T) {
	rb := newRouterBoxes(t, false)
	defer rb.r.Close()
	rb.deliverAll(t, "before")
	box := rb.boxes[0]

	// The export directory replaced (a restored backup moved into place).
	fresh := box.root + ".new"
	if err := os.Mkdir(fresh, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, s := range rb.users {
		if s == box {
			// A copy: new inodes, so every handle of the old tree is stale.
			if out, err := exec.Command("cp", "-a", filepath.Join(box.root, name), fresh).CombinedOutput(); err != nil {
				t.Fatalf("cp: %v %s", err, out)
			}
		}
	}
	if err := os.Rename(box.root, box.root+".old"); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(fresh, box.root); err != nil {
		t.Fatal(err)
	}
	box.reload(t)
	rb.deliverAll(t, "after the export directory was replaced")
	rb.check(t)

	// The export removed from the exports file.
	other := filepath.Join(box.base, "other")
	os.Mkdir(other, 0o755)
	if err := os.WriteFile(box.exportsFile, []byte(other+" 127.0.0.0/8(rw,no_root_squash)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	box.reload(t)
	for name, s := range rb.users {
		if s != box {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := rb.r.Deliver(ctx, name, strings.NewReader("x\n"))
		cancel()
		// The box refuses the export it served before: a reload's
		// doing, to be put right; the MTA defers rather than bounces.
		if err == nil || !client.Temporary(err) {
			t.Errorf("export removed: %s: %v (temporary %v), want a temporary error", name, err, client.Temporary(err))
		}
	}
	// Put back, the same Router delivers again.
	if err := os.WriteFile(box.exportsFile, []byte(box.root+" 127.0.0.0/8(rw,no_root_squash)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	box.reload(t)
	rb.deliverAll(t, "after the export was put back")
	rb.check(t)
}

// TestRouterCloseStoppedBoxes: Close returns within a few seconds however
// many boxes do not answer (two stopped with SIGSTOP here), and ends a dial
// in progress (to a box that takes connections and never answers) rather
// than leaving it, and the delivery waiting for it, to run out their time.
func TestRouterCloseStoppedBoxes(t *testing.T) {
	rb := newRouterBoxes(t, true)
	rb.deliverAll(t, "before")
	for _, s := range rb.boxes {
		if err := s.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.cmd.Process.Signal(syscall.SIGCONT) })
	}
	dialing := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		_, err := rb.r.Deliver(ctx, "silent", strings.NewReader("x\n"))
		dialing <- err
	}()
	time.Sleep(200 * time.Millisecond) // the dial of /silent has begun
	start := time.Now()
	rb.r.Close()
	took := time.Since(start)
	t.Logf("Router.Close took %v", took)
	if took > 3*time.Second {
		t.Errorf("Router.Close took %v with two stopped boxes", took)
	}
	select {
	case err := <-dialing:
		if err == nil {
			t.Errorf("delivery to a silent box succeeded")
		}
	case <-time.After(time.Second):
		t.Errorf("a delivery waiting for a dial still waits 1 s after Close")
	}
}

// TestRouterBoxMovedPorts: a box down past ReconnectTimeout comes back on
// its ports and is reached again; a box that comes back on another NFS
// port (its portmapper says so) is dialled anew: a delivery that failed
// meanwhile is temporary, and the next ones succeed with the same Router.
func TestRouterBoxMovedPorts(t *testing.T) {
	rb := newRouterBoxes(t, false)
	defer rb.r.Close()
	rb.deliverAll(t, "before")
	box := rb.boxes[0]
	box.kill(t)
	time.Sleep(7 * time.Second) // past ReconnectTimeout (5 s)
	box.start(t)
	time.Sleep(1500 * time.Millisecond) // the 1 s redial backoff
	rb.deliverAll(t, "after 7 s down")

	box.kill(t)
	box.nfsPort = freePort(t)
	box.start(t)
	for name, s := range rb.users {
		if s != box {
			continue
		}
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		_, err := rb.r.Deliver(ctx, name, strings.NewReader("moved\n"))
		cancel()
		switch {
		case err == nil:
			rb.sent[name]++
		case !client.Temporary(err):
			t.Errorf("deliver to %s while its box moved: %v, not temporary", name, err)
		}
	}
	rb.deliverAll(t, "after the box moved to another NFS port")
	rb.check(t)
}
