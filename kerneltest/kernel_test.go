package kerneltest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mailnfs/mailnfs/internal/loopfstest"
	"github.com/mailnfs/mailnfs/internal/netnstest"
)

// guestMaildirs are the Maildirs the guest delivers into, with the owner the
// server must give what each run creates.
var guestRuns = []Run{
	// root on the front end is squashed to nobody (65534) by default.
	{Name: "root", UID: 0, GID: 0, Maildir: "root/Maildir", Writers: 4, Messages: 40, BigMiB: 8, Flag: 30, Delete: 10},
	// an ordinary mail uid owns what it delivers into its own Maildir.
	{Name: "tevie", UID: 2001, GID: 2001, Maildir: "12/34-tevie/Maildir", Writers: 4, Messages: 40, BigMiB: 0, Flag: 20, Delete: 5},
	// what a front end does besides delivering (guest runPosix): cp of
	// 20 MiB in and out, parallel O_DIRECT readers, O_APPEND, ls -l of
	// 20k entries, mv, ln, chmod, mkdir -p, rm -rf, symlinks, touch -d,
	// flock under nolock, close-to-open across two mounts, truncation
	// while open; then root, squashed, in the same tree.
	{Name: "posix", UID: 2001, GID: 2001, Maildir: "posix/2001", Posix: true, ListDir: "list20k", ListFiles: 20000},
	{Name: "posix-root", UID: 0, GID: 0, Maildir: "posix/root", Posix: true},
	// messages compressed at rest by a third export (-compress=zstd),
	// then read, flagged, appended to, truncated, rewritten, touched and
	// linked by the kernel (guest runCompressed).
	{Name: "compressed", UID: 2001, GID: 2001, Maildir: "34/56-zed/Maildir", Messages: 12, Compressed: true},
	// the storage box's mailnfsd is restarted while uid 2001 delivers and
	// holds a half-written file open (guest runRestart).
	{Name: "restart", UID: 2001, GID: 2001, Maildir: "56/78-rolf/Maildir", Writers: 4, Messages: 20, BigMiB: 16, Restart: len(restartSignals)},
	// uid 2001 fills a second export on a 32 MiB ext4 of its own (15%
	// reserved for root) until
	// deliveries fail with ENOSPC, deletes 10 messages and delivers 5
	// more (guest runFull).
	{Name: "full", UID: 2001, GID: 2001, Maildir: "90/12-full/Maildir", Writers: 2, Messages: 5, Delete: 10, Full: true},
}

// restartSignals stop mailnfsd at the guest's restart requests, in turn.
var restartSignals = []syscall.Signal{syscall.SIGTERM, syscall.SIGKILL, syscall.SIGKILL, syscall.SIGKILL}

// restartRuns is the number of restarts the guest runs ask for.
func restartRuns() int {
	n := 0
	for _, r := range guestRuns {
		n += r.Restart
	}
	return n
}

// Run mirrors guest.Run (the guest is a separate main package).
type Run struct {
	Name       string `json:"name"`
	UID        int    `json:"uid"`
	GID        int    `json:"gid"`
	Maildir    string `json:"maildir"`
	Writers    int    `json:"writers"`
	Messages   int    `json:"messages"`
	BigMiB     int    `json:"big_mib"`
	Flag       int    `json:"flag"`
	Delete     int    `json:"delete"`
	Restart    int    `json:"restart"`
	Full       bool   `json:"full"`
	Posix      bool   `json:"posix"`
	ListDir    string `json:"list_dir"`
	ListFiles  int    `json:"list_files"`
	Compressed bool   `json:"compressed"`
}

type message struct {
	Dir    string `json:"dir"`
	Name   string `json:"name"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

type result struct {
	Run      string    `json:"run"`
	UID      int       `json:"uid"`
	Messages []message `json:"messages"`
	BigName  string    `json:"big_name"`
	BigSHA   string    `json:"big_sha256"`
	BigSize  int       `json:"big_size"`
	Seconds  float64   `json:"seconds"`
	Before   int       `json:"before"`
	After    int       `json:"after"`
	Resent   int64     `json:"resent"`
	// Full runs: refused deliveries and the first refusal's error.
	Refused      int    `json:"refused"`
	RefusedErr   string `json:"refused_err"`
	FullFreeKiB  uint64 `json:"full_free_kib"`
	FullAvailKiB uint64 `json:"full_avail_kib"`
	// Posix runs: seconds per step, failed steps, statfs of the mount.
	Reread int64              `json:"reread"`
	Steps  map[string]float64 `json:"steps"`
	Failed []string           `json:"failed"`
	Statfs *struct {
		TotalKiB  uint64 `json:"total_kib"`
		FreeKiB   uint64 `json:"free_kib"`
		AvailKiB  uint64 `json:"avail_kib"`
		Files     uint64 `json:"files"`
		FilesFree uint64 `json:"files_free"`
	} `json:"statfs"`
}

// owners maps a guest uid to the owner the server must record.
var owners = map[int]uint32{0: 65534, 2001: 2001}

func TestLinuxKernelClient(t *testing.T) {
	if testing.Short() {
		t.Skip("boots a kernel under QEMU; skipped in -short")
	}
	netnstest.RequireRoot(t)
	qemu := netnstest.RequireTool(t, "qemu-system-x86_64")
	busybox := netnstest.RequireTool(t, "busybox")
	if out, err := exec.Command("file", "-L", busybox).Output(); err == nil && !bytes.Contains(out, []byte("statically linked")) {
		t.Fatalf("%s is not static (install busybox-static): %s", busybox, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 8*time.Minute)
	defer cancel()

	k, err := FetchKernel(ctx)
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	guestBin := filepath.Join(dir, "guest")
	if err := BuildGuest(ctx, guestBin); err != nil {
		t.Fatal(err)
	}
	mailnfsd := filepath.Join(dir, "mailnfsd")
	if out, err := exec.CommandContext(ctx, "go", "build", "-o", mailnfsd, "../cmd/mailnfsd").CombinedOutput(); err != nil {
		t.Fatalf("build mailnfsd: %v\n%s", err, out)
	}

	export := filepath.Join(dir, "export")
	// The Full runs' export: a file system of its own, small enough to
	// fill, with 15% reserved for root (4.8 MiB: well above the guest's
	// statfs granularity of 1 MiB).
	fullFS := loopfstest.Ext4(t, 32<<20, true, "-m", "15")
	var fullSt syscall.Statfs_t
	if err := syscall.Statfs(fullFS, &fullSt); err != nil {
		t.Fatal(err)
	}
	// What ext4 keeps from users: root's blocks and its own.
	reserveKiB := (uint64(fullSt.Bfree) - uint64(fullSt.Bavail)) * uint64(fullSt.Bsize) >> 10
	fullExport := filepath.Join(fullFS, "export")
	// The Compressed runs' export compresses messages at rest.
	zExport := filepath.Join(dir, "zexport")
	exportOf := func(r Run) string {
		switch {
		case r.Full:
			return fullExport
		case r.Compressed:
			return zExport
		}
		return export
	}
	for _, r := range guestRuns {
		if r.Posix {
			p := filepath.Join(export, r.Maildir)
			if err := os.MkdirAll(p, 0o755); err != nil {
				t.Fatal(err)
			}
			os.Chmod(filepath.Dir(p), 0o755)
			owner := int(owners[r.UID])
			if err := os.Chown(p, owner, owner); err != nil {
				t.Fatal(err)
			}
			if r.ListDir != "" {
				makeListDir(t, filepath.Join(export, r.ListDir), r.ListFiles, owner)
			}
			continue
		}
		export := exportOf(r)
		owner := int(owners[r.UID])
		for _, sub := range []string{"tmp", "new", "cur"} {
			p := filepath.Join(export, r.Maildir, sub)
			if err := os.MkdirAll(p, 0o700); err != nil {
				t.Fatal(err)
			}
		}
		// As an operator does (chown 2001:2001 /usr/mail1/12/34-tevie): the
		// home belongs to the user, the hash directories above it to root.
		home := filepath.Join(export, filepath.Dir(r.Maildir))
		for p := filepath.Dir(home); p != export; p = filepath.Dir(p) {
			os.Chmod(p, 0o755)
		}
		filepath.Walk(home, func(p string, _ os.FileInfo, _ error) error {
			return os.Lchown(p, owner, owner)
		})
	}
	os.Chmod(export, 0o755)
	os.Chmod(fullExport, 0o755)
	os.Chmod(zExport, 0o755)
	// The control file the guest polls during the restart run: the test
	// rewrites it in place once the new server listens.
	control := filepath.Join(export, "ctl", "epoch")
	if err := os.MkdirAll(filepath.Dir(control), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(control, []byte("server 1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	exports := filepath.Join(dir, "exports")
	if err := os.WriteFile(exports, []byte(export+" -network 127.0.0.0 -mask 255.0.0.0\n"+fullExport+" -network 127.0.0.0 -mask 255.0.0.0\n"+
		zExport+" -compress=zstd -network 127.0.0.0 -mask 255.0.0.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cfg, _ := json.Marshal(map[string]any{
		"server":       "10.0.2.2",
		"export":       export,
		"options":      "vers=3,proto=tcp,mountproto=tcp,nolock",
		"control":      "ctl/epoch",
		"full_export":  fullExport,
		"second_mount": "/mnt3",
		"z_export":     zExport,
		"runs":         guestRuns,
	})
	initrd := filepath.Join(dir, "initrd")
	if err := BuildInitramfs(k, guestBin, busybox, cfg, initrd); err != nil {
		t.Fatal(err)
	}

	ns := netnstest.New(t, "kernel")
	args := []string{mailnfsd, "-exports", exports, "-state-dir", filepath.Join(dir, "state"),
		"-listen", "127.0.0.1", "-nfs-port", "2049", "-portmap-port", "111", "-log-level", "info"}
	srv := ns.Start(args...)
	waitListening(t, ns, srv, "127.0.0.1:111", "127.0.0.1:2049")

	console := newConsole()
	qcmd := ns.Command(ctx, qemu, "-machine", "pc,accel=tcg", "-m", "512", "-smp", "1",
		"-nographic", "-no-reboot", "-kernel", k.Vmlinuz, "-initrd", initrd,
		"-append", "console=ttyS0 loglevel=5 panic=-1",
		"-nic", "user,model=virtio-net-pci")
	qcmd.Stdout, qcmd.Stderr = console, console
	if err := qcmd.Start(); err != nil {
		t.Fatalf("qemu: %v", err)
	}
	t0 := time.Now()
	qemuDone := make(chan error, 1)
	go func() { qemuDone <- qcmd.Wait() }()

	// A restart each time the guest asks for one: the signal restartSignals
	// names (SIGTERM: drain and exit 0; SIGKILL: a crash), then the same
	// command line again, then the control file's new epoch.
	type restartInfo struct {
		sig             syscall.Signal
		asked, down, up time.Duration
	}
	var restarts []restartInfo
	servers := []*netnstest.Proc{srv}
	var restartErr error
	var qerr error
wait:
	for {
		select {
		case qerr = <-qemuDone:
			break wait
		case <-console.restart:
			ri := restartInfo{sig: restartSignals[min(len(restarts), len(restartSignals)-1)], asked: time.Since(t0)}
			t1 := time.Now()
			old := srv
			old.Signal(ri.sig)
			<-old.Done()
			if err := old.Err(); ri.sig == syscall.SIGTERM && err != nil && restartErr == nil {
				restartErr = fmt.Errorf("mailnfsd exited with %v after SIGTERM; its log (tail):\n%s", err, tail(old.Log(), 40))
			}
			ri.down = time.Since(t1)
			srv = ns.Start(args...)
			servers = append(servers, srv)
			waitListening(t, ns, srv, "127.0.0.1:111", "127.0.0.1:2049")
			ri.up = time.Since(t1)
			restarts = append(restarts, ri)
			if err := os.WriteFile(control, []byte(fmt.Sprintf("server %d\n", len(restarts)+1)), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	err = qerr
	elapsed := time.Since(t0)
	fail := func(format string, args ...any) {
		t.Helper()
		t.Errorf(format, args...)
		t.Logf("guest console (tail):\n%s", tail(console.String(), 80))
		t.Logf("mailnfsd log (tail):\n%s", tail(srv.Log(), 60))
		t.FailNow()
	}
	if err != nil {
		fail("qemu: %v after %v", err, elapsed)
	}
	if restartErr != nil {
		fail("restart: %v", restartErr)
	}
	if want := restartRuns(); len(restarts) != want {
		fail("the guest asked for %d server restarts, want %d", len(restarts), want)
	}
	out := console.String()
	if !strings.Contains(out, "MAILNFS-DONE ok") {
		fail("guest did not finish cleanly after %v", elapsed)
	}
	var kernel string
	var results []result
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := strings.TrimRight(sc.Text(), "\r")
		if i := strings.Index(line, "MAILNFS-GUEST kernel "); i >= 0 {
			kernel = strings.TrimSpace(line[i+len("MAILNFS-GUEST kernel "):])
		}
		if i := strings.Index(line, "MAILNFS-RESULT "); i >= 0 {
			var r result
			if err := json.Unmarshal([]byte(line[i+len("MAILNFS-RESULT "):]), &r); err != nil {
				fail("bad result line %q: %v", line, err)
			}
			results = append(results, r)
		}
	}
	if len(results) != len(guestRuns) {
		fail("got %d results, want %d", len(results), len(guestRuns))
	}
	for i, r := range results {
		run := guestRuns[i]
		if run.Restart > 0 {
			// Delivered without pause across the restart: at least
			// Messages before it was asked for and Messages after.
			if r.Before < run.Messages || r.After < run.Messages || len(r.Messages) < r.Before+r.After {
				t.Errorf("%s: guest reports %d messages, %d before the restart and %d after, want at least %d each",
					r.Run, len(r.Messages), r.Before, r.After, run.Messages)
			}
		} else if run.Full {
			// Refused with ENOSPC (the guest checks each), and the
			// users stopped short of the reserve: when they did, the
			// guest's statfs (FSSTAT) saw the reserve free and little
			// else.
			t.Logf("%s: %d deliveries refused, the first with %q; when full the guest saw %d KiB free, %d KiB for users (reserve %d KiB)",
				r.Run, r.Refused, r.RefusedErr, r.FullFreeKiB, r.FullAvailKiB, reserveKiB)
			if r.Refused == 0 {
				t.Errorf("%s: no delivery was refused: the file system did not fill", r.Run)
			}
			// The guest's figures are rounded down to its block size
			// (1 MiB); for users, at most the refused messages' removed
			// tmp/ files are free.
			if maxAvail := uint64(r.Refused)*256 + 1024; r.FullFreeKiB+1024 < reserveKiB*9/10 || r.FullAvailKiB > maxAvail {
				t.Errorf("%s: when full, %d KiB free and %d KiB for users; want the reserve (%d KiB) free and at most %d KiB for users", r.Run, r.FullFreeKiB, r.FullAvailKiB, reserveKiB, maxAvail)
			}
		} else if run.Compressed {
			for _, f := range r.Failed {
				t.Errorf("%s: %s", r.Run, f)
			}
			// The messages the guest left unchanged (all but five)
			// are still stored compressed (maildirfs doc.go).
			ents, _ := os.ReadDir(filepath.Join(zExport, run.Maildir, "cur"))
			z := 0
			for _, e := range ents {
				if v := make([]byte, 64); func() bool {
					n, err := unix.Getxattr(filepath.Join(zExport, run.Maildir, "cur", e.Name()), "user.mailnfs.z", v)
					return err == nil && n > 2 && v[0] == 'Z'
				}() {
					z++
				}
			}
			if len(ents) != run.Messages || z < run.Messages-5 {
				t.Errorf("%s: %d messages in cur/ on the server, %d stored compressed; want %d, at least %d", r.Run, len(ents), z, run.Messages, run.Messages-5)
			}
			t.Logf("run %s as uid %d: %d messages compressed by the server in %.1fs, then changed by the guest in %.1fs; %d still compressed; reading them through the page cache fetched %d bytes again", r.Run, run.UID, run.Messages, r.Steps["wait-compressed"], r.Steps["changes"], z, r.Reread)
			continue
		} else if run.Posix {
			checkPosix(t, export, run, r)
			continue
		} else if want := run.Writers*run.Messages - run.Delete; len(r.Messages) != want {
			t.Errorf("%s: guest reports %d messages, want %d", r.Run, len(r.Messages), want)
		}
		checkMaildir(t, filepath.Join(exportOf(run), run.Maildir), r, owners[run.UID])
		if r.BigName != "" {
			b, err := os.ReadFile(filepath.Join(export, run.Maildir, r.BigName))
			if err != nil || len(b) != r.BigSize || hexSum(b) != r.BigSHA {
				t.Errorf("%s: big file on server: %d bytes, err %v, sha match %v", r.Run, len(b), err, err == nil && hexSum(b) == r.BigSHA)
			}
		}
		t.Logf("run %s as uid %d: %d messages checked on the server, guest workload %.1fs", r.Run, run.UID, len(r.Messages), r.Seconds)
		if run.Restart > 0 {
			for _, ri := range restarts {
				t.Logf("restart: asked %v after boot, %v to exit %v, listening again after %v",
					ri.asked.Round(time.Millisecond), ri.sig, ri.down.Round(time.Millisecond), ri.up.Round(time.Millisecond))
			}
			// Calls the kernel sent again to a restarted server that the
			// one before had begun (nfsd.DRCLog), and of those, the ones
			// whose effect was already there and that were answered as
			// done instead of with their error.
			var begun, done int
			for _, p := range servers {
				for _, l := range strings.Split(p.Log(), "\n") {
					if strings.Contains(l, "retransmission of a call begun before the restart\"") {
						begun++
					} else if strings.Contains(l, "answered as done") {
						done++
						t.Logf("server: %s", l)
					}
				}
			}
			t.Logf("%s: %d messages delivered before the first restart, %d after the last; the kernel sent %d bytes of WRITE again; %d calls begun before a restart were sent again, %d of them answered as done",
				r.Run, r.Before, r.After, r.Resent, begun, done)
		}
	}
	t.Logf("Linux %s NFSv3 client: boot+mount+workload+umount in %v", kernel, elapsed.Round(time.Second))
	if t.Failed() {
		t.Logf("mailnfsd log (tail):\n%s", tail(srv.Log(), 60))
	}
}

// makeListDir makes n files m00000.. of i%97 bytes in dir, owned by owner,
// for the guest's ls -l.
func makeListDir(t *testing.T, dir string, n, owner int) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	body := bytes.Repeat([]byte("x"), 97)
	for i := 0; i < n; i++ {
		p := filepath.Join(dir, fmt.Sprintf("m%05d", i))
		if err := os.WriteFile(p, body[:i%97], 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chown(p, owner, owner); err != nil {
			t.Fatal(err)
		}
	}
}

// checkPosix reports the steps of a Posix run that failed in the guest,
// compares its statfs of the mount with the export's file system, and
// checks on the server's disk what the uid-2001 run left behind.
func checkPosix(t *testing.T, export string, run Run, r result) {
	t.Helper()
	for _, f := range r.Failed {
		t.Errorf("%s: guest step %s", r.Run, f)
	}
	names := make([]string, 0, len(r.Steps))
	for n := range r.Steps {
		names = append(names, n)
	}
	sort.Strings(names)
	var steps []string
	for _, n := range names {
		steps = append(steps, fmt.Sprintf("%s %.1fs", n, r.Steps[n]))
	}
	t.Logf("run %s as uid %d: %d steps in %.1fs: %s", r.Run, run.UID, len(steps), r.Seconds, strings.Join(steps, ", "))
	var st syscall.Statfs_t
	if err := syscall.Statfs(export, &st); err != nil {
		t.Fatal(err)
	}
	if g := r.Statfs; g == nil {
		t.Errorf("%s: no statfs from the guest", r.Run)
	} else {
		// The guest rounds up to its block size (1 MiB: Linux
		// nfs_statfs); free space moves while other work runs on
		// this disk.
		total := uint64(st.Blocks) * uint64(st.Bsize) >> 10
		free := uint64(st.Bfree) * uint64(st.Bsize) >> 10
		if g.TotalKiB < total || g.TotalKiB >= total+1024 || g.Files != st.Files ||
			g.AvailKiB > g.FreeKiB || g.FreeKiB > free+free/20 || g.FreeKiB+free/20 < free {
			t.Errorf("%s: guest statfs %+v; the export's file system has %d KiB, %d KiB free, %d files", r.Run, *g, total, free, st.Files)
		}
	}
	if run.UID != 2001 {
		return
	}
	d := filepath.Join(export, run.Maildir)
	for name, want := range map[string]string{"b/x": "x\n", "b/y": "new y\n", "b/sub/f": "f\n", "trunc": "short\n", "b/h3": "linked\n"} {
		if b, err := os.ReadFile(filepath.Join(d, name)); err != nil || string(b) != want {
			t.Errorf("%s: %s on the server: %q, %v; want %q", r.Run, name, b, err, want)
		}
	}
	var fi unix.Stat_t
	if err := unix.Stat(filepath.Join(d, "times"), &fi); err != nil || fi.Mtim != (unix.Timespec{Sec: 4000000000, Nsec: 999999999}) || fi.Atim != (unix.Timespec{Sec: 1500000000, Nsec: 5}) {
		t.Errorf("%s: times on the server: atime %v mtime %v, %v", r.Run, fi.Atim, fi.Mtim, err)
	}
	if err := unix.Stat(filepath.Join(d, "b/h3"), &fi); err != nil || fi.Nlink != 2 {
		t.Errorf("%s: b/h3 on the server has %d links, %v; want 2", r.Run, fi.Nlink, err)
	}
	if err := unix.Stat(filepath.Join(d, "modes"), &fi); err != nil || fi.Mode&0o7777 != 0o600 {
		t.Errorf("%s: modes on the server: mode %o, %v; want 600", r.Run, fi.Mode&0o7777, err)
	}
	if l, err := os.Readlink(filepath.Join(d, "slup")); err != nil || l != "../2001/b/y" {
		t.Errorf("%s: slup on the server links to %q, %v", r.Run, l, err)
	}
	if _, err := os.Lstat(filepath.Join(d, "deep")); !os.IsNotExist(err) {
		t.Errorf("%s: deep/ on the server after rm -rf: %v", r.Run, err)
	}
}

// checkMaildir compares the server's Maildir with the guest's manifest:
// exactly the reported messages, once each, intact, owned by owner, and an
// empty tmp/.
func checkMaildir(t *testing.T, md string, r result, owner uint32) {
	t.Helper()
	want := map[string]message{}
	for _, m := range r.Messages {
		want[m.Dir+"/"+m.Name] = m
	}
	var got []string
	for _, sub := range []string{"new", "cur"} {
		ents, err := os.ReadDir(filepath.Join(md, sub))
		if err != nil {
			t.Fatalf("%s: %v", r.Run, err)
		}
		for _, e := range ents {
			got = append(got, sub+"/"+e.Name())
		}
	}
	sort.Strings(got)
	for _, k := range got {
		m, ok := want[k]
		if !ok {
			t.Errorf("%s: unexpected %s on the server", r.Run, k)
			continue
		}
		delete(want, k)
		p := filepath.Join(md, k)
		b, err := os.ReadFile(p)
		if err != nil {
			t.Errorf("%s: %v", r.Run, err)
			continue
		}
		if len(b) != m.Size || hexSum(b) != m.SHA256 {
			t.Errorf("%s: %s differs on the server (%d bytes, want %d)", r.Run, k, len(b), m.Size)
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err == nil && st.Uid != owner {
			t.Errorf("%s: %s owned by uid %d, want %d", r.Run, k, st.Uid, owner)
		}
	}
	for k := range want {
		t.Errorf("%s: %s missing on the server", r.Run, k)
	}
	if ents, err := os.ReadDir(filepath.Join(md, "tmp")); err != nil || len(ents) != 0 {
		t.Errorf("%s: tmp/ not empty on the server: %d entries (%v)", r.Run, len(ents), err)
	}
}

func hexSum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// console collects the guest's console output and sends on restart each
// time the guest asks for a server restart.
type console struct {
	mu      sync.Mutex
	buf     bytes.Buffer
	asked   int
	restart chan struct{}
}

const restartMarker = "MAILNFS-RESTART-SERVER"

func newConsole() *console { return &console{restart: make(chan struct{}, 64)} }

func (c *console) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.buf.Write(p)
	for n := bytes.Count(c.buf.Bytes(), []byte(restartMarker)); c.asked < n; c.asked++ {
		c.restart <- struct{}{}
	}
	return len(p), nil
}

func (c *console) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.buf.String()
}

// waitListening waits until every address accepts TCP connections inside ns.
func waitListening(t *testing.T, ns *netnstest.NS, p *netnstest.Proc, addrs ...string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, a := range addrs {
		for {
			c, err := ns.Dial(context.Background(), "tcp", a)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.Done():
				t.Fatalf("mailnfsd exited: %v\n%s", p.Err(), p.Log())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("mailnfsd not listening on %s: %v\n%s", a, err, p.Log())
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}
