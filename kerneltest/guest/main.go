//go:build linux

// Command guest is the /init of the kernel-client test's initramfs. Inside a
// QEMU guest running Debian's own kernel it loads the NFS client modules,
// brings up the network, mounts mailnfsd with the kernel's NFSv3 client and
// runs Maildir workloads through ordinary system calls (open O_EXCL, write,
// fsync, rename, link+unlink, readdir, O_DIRECT reads). It prints one
// "MAILNFS-RESULT {json}" line per run, then "MAILNFS-DONE ok" or
// "MAILNFS-DONE fail: reason", and powers the guest off.
package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Config is read from /config.json (written by the test).
type Config struct {
	Server  string `json:"server"`  // e.g. 10.0.2.2
	Export  string `json:"export"`  // e.g. /export
	Options string `json:"options"` // mount options without addr=
	// Control is a file (relative to the mount) whose content the test
	// changes once it has restarted the server (see runRestart).
	Control string `json:"control"`
	// FullExport, if set, is a second export, on a small file system of
	// its own, that the Full runs fill (mounted at /mnt2).
	FullExport string `json:"full_export"`
	// SecondMount, if set, mounts Export again there with nosharecache
	// (a second front end: caches of its own) for the Posix runs.
	SecondMount string `json:"second_mount"`
	// ZExport, if set, is an export that compresses messages at rest,
	// mounted at /mnt4 for the Compressed runs.
	ZExport string `json:"z_export"`
	Runs    []Run  `json:"runs"`
}

// Run is one workload, run under one uid.
type Run struct {
	Name     string `json:"name"`
	UID      int    `json:"uid"`
	GID      int    `json:"gid"`
	Maildir  string `json:"maildir"` // relative to the mount
	Writers  int    `json:"writers"`
	Messages int    `json:"messages"` // per writer
	BigMiB   int    `json:"big_mib"`
	Flag     int    `json:"flag"`   // messages moved to cur/ with :2,S
	Delete   int    `json:"delete"` // of those, removed
	// Restart: deliver while the test restarts the server this many
	// times (runRestart); Messages is then the least number delivered
	// before each restart and after the last, and BigMiB the size of the
	// file streamed across the first.
	Restart int `json:"restart"`
	// Full: deliver messages of 256 KiB into the second export until its
	// file system is full (runFull), then delete Delete of them and
	// deliver Messages more.
	Full bool `json:"full"`
	// Posix: run runPosix in Maildir (a directory of the run's uid)
	// instead of delivering; ListDir holds ListFiles files made by the
	// test for ls -l.
	Posix     bool   `json:"posix"`
	ListDir   string `json:"list_dir"`
	ListFiles int    `json:"list_files"`
	// Compressed: run runCompressed, delivering Messages messages into
	// Maildir on the compressing export (Config.ZExport).
	Compressed bool `json:"compressed"`
}

// Message is one message the workload expects to find on the server.
type Message struct {
	Dir    string `json:"dir"` // new or cur
	Name   string `json:"name"`
	Size   int    `json:"size"`
	SHA256 string `json:"sha256"`
}

// Result is printed after each run.
type Result struct {
	Run      string    `json:"run"`
	UID      int       `json:"uid"`
	Messages []Message `json:"messages"`
	BigName  string    `json:"big_name,omitempty"`
	BigSHA   string    `json:"big_sha256,omitempty"`
	BigSize  int       `json:"big_size,omitempty"`
	Seconds  float64   `json:"seconds"`
	// Restart runs: messages delivered before the restart was asked for,
	// and after the control file showed the new server.
	Before int `json:"before,omitempty"`
	After  int `json:"after,omitempty"`
	// Resent: bytes the client sent in WRITE calls beyond what the
	// applications wrote during the run (writes sent again).
	Resent int64 `json:"resent,omitempty"`
	// Full runs: deliveries refused (each removed its tmp/ file), and the
	// first refusal's error.
	Refused    int    `json:"refused,omitempty"`
	RefusedErr string `json:"refused_err,omitempty"`
	// Full runs: statfs of the mount once the writers stopped (FSSTAT):
	// KiB free, and free for users.
	FullFreeKiB  uint64 `json:"full_free_kib,omitempty"`
	FullAvailKiB uint64 `json:"full_avail_kib,omitempty"`
	// Posix runs: seconds each step took, the steps that failed and why,
	// and statfs of the mount at the end.
	Steps  map[string]float64 `json:"steps,omitempty"`
	Failed []string           `json:"failed,omitempty"`
	Statfs *Statfs            `json:"statfs,omitempty"`
	// Compressed runs: bytes the client read again, through the page
	// cache its writes filled, once the server had compressed them.
	Reread int64 `json:"reread,omitempty"`
}

const (
	mnt     = "/mnt"
	fullMnt = "/mnt2" // Config.FullExport
)

func main() {
	if w := os.Getenv("MAILNFS_WORKER"); w != "" {
		os.Exit(worker(w))
	}
	err := initMain()
	if err != nil {
		fmt.Printf("MAILNFS-DONE fail: %v\n", err)
		dmesgTail()
	} else {
		fmt.Println("MAILNFS-DONE ok")
	}
	unix.Sync()
	unix.Reboot(unix.LINUX_REBOOT_CMD_POWER_OFF)
}

func initMain() error {
	for _, m := range []struct{ src, dst, typ string }{
		{"proc", "/proc", "proc"}, {"sysfs", "/sys", "sysfs"}, {"devtmpfs", "/dev", "devtmpfs"}, {"tmpfs", "/tmp", "tmpfs"},
	} {
		if err := unix.Mount(m.src, m.dst, m.typ, 0, ""); err != nil {
			return fmt.Errorf("mount %s: %w", m.dst, err)
		}
	}
	var uts unix.Utsname
	unix.Uname(&uts)
	fmt.Printf("MAILNFS-GUEST kernel %s\n", unix.ByteSliceToString(uts.Release[:]))
	cfg, err := readConfig()
	if err != nil {
		return err
	}
	mods, _ := filepath.Glob("/modules/*.ko")
	order := moduleOrder()
	sort.SliceStable(mods, func(i, j int) bool { return order[filepath.Base(mods[i])] < order[filepath.Base(mods[j])] })
	for _, m := range mods {
		if err := loadModule(m); err != nil {
			return fmt.Errorf("load %s: %w", m, err)
		}
	}
	for _, args := range [][]string{
		{"ip", "link", "set", "lo", "up"},
		{"ip", "link", "set", "eth0", "up"},
		{"ip", "addr", "add", "10.0.2.15/24", "dev", "eth0"},
		{"ip", "route", "add", "default", "via", "10.0.2.2"},
	} {
		if out, err := exec.Command("/bin/busybox", args...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, out)
		}
	}
	opts := cfg.Options + ",addr=" + cfg.Server
	src := cfg.Server + ":" + cfg.Export
	t0 := time.Now()
	var merr error
	for i := 0; i < 20; i++ { // the server may still be starting
		if merr = unix.Mount(src, mnt, "nfs", 0, opts); merr == nil {
			break
		}
		time.Sleep(500 * time.Millisecond)
	}
	if merr != nil {
		return fmt.Errorf("mount -t nfs -o %s %s %s: %w", opts, src, mnt, merr)
	}
	fmt.Printf("MAILNFS-GUEST mounted %s with %s in %v\n", src, opts, time.Since(t0).Round(time.Millisecond))
	if cfg.FullExport != "" {
		if err := os.MkdirAll(fullMnt, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(cfg.Server+":"+cfg.FullExport, fullMnt, "nfs", 0, opts); err != nil {
			return fmt.Errorf("mount %s: %w", cfg.FullExport, err)
		}
	}
	if cfg.ZExport != "" {
		if err := os.MkdirAll(zMnt, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(cfg.Server+":"+cfg.ZExport, zMnt, "nfs", 0, opts); err != nil {
			return fmt.Errorf("mount %s: %w", cfg.ZExport, err)
		}
	}
	if cfg.SecondMount != "" {
		if err := os.MkdirAll(cfg.SecondMount, 0o755); err != nil {
			return err
		}
		if err := unix.Mount(src, cfg.SecondMount, "nfs", 0, opts+",nosharecache"); err != nil {
			return fmt.Errorf("mount %s again: %w", src, err)
		}
	}
	for i, r := range cfg.Runs {
		if r.Restart > 0 {
			// Start writeback early so that the stream of runRestart
			// has unstable writes on the wire most of the time.
			if err := os.WriteFile("/proc/sys/vm/dirty_background_bytes", []byte("262144\n"), 0o644); err != nil {
				return err
			}
		}
		cmd := exec.Command("/init")
		cmd.Env = []string{"MAILNFS_WORKER=" + strconv.Itoa(i)}
		cmd.Stdout, cmd.Stderr = os.Stdout, os.Stdout
		if r.UID != 0 {
			cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(r.UID), Gid: uint32(r.GID)}}
		}
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("run %s (uid %d): %w", r.Name, r.UID, err)
		}
	}
	if cfg.ZExport != "" {
		if err := unix.Unmount(zMnt, 0); err != nil {
			return fmt.Errorf("umount %s: %w", zMnt, err)
		}
	}
	if cfg.SecondMount != "" {
		if err := unix.Unmount(cfg.SecondMount, 0); err != nil {
			return fmt.Errorf("umount %s: %w", cfg.SecondMount, err)
		}
	}
	if cfg.FullExport != "" {
		if err := unix.Unmount(fullMnt, 0); err != nil {
			return fmt.Errorf("umount %s: %w", fullMnt, err)
		}
	}
	if err := unix.Unmount(mnt, 0); err != nil {
		return fmt.Errorf("umount: %w", err)
	}
	fmt.Println("MAILNFS-GUEST unmounted")
	return nil
}

func moduleOrder() map[string]int {
	b, _ := os.ReadFile("/modules/order")
	m := map[string]int{}
	for i, l := range strings.Fields(string(b)) {
		m[l] = i
	}
	return m
}

func loadModule(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	err = unix.FinitModule(int(f.Fd()), "", 0)
	if errors.Is(err, unix.EEXIST) {
		return nil
	}
	return err
}

func readConfig() (*Config, error) {
	b, err := os.ReadFile("/config.json")
	if err != nil {
		return nil, err
	}
	var c Config
	if err := json.Unmarshal(b, &c); err != nil {
		return nil, fmt.Errorf("config.json: %w", err)
	}
	return &c, nil
}

func dmesgTail() {
	out, _ := exec.Command("/bin/busybox", "dmesg").CombinedOutput()
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) > 40 {
		lines = lines[len(lines)-40:]
	}
	for _, l := range lines {
		fmt.Println("MAILNFS-DMESG", l)
	}
}

// worker runs one Run as the current (already switched) uid.
func worker(idx string) int {
	cfg, err := readConfig()
	if err != nil {
		fmt.Println("MAILNFS-WORKER error:", err)
		return 1
	}
	i, _ := strconv.Atoi(idx)
	r := cfg.Runs[i]
	run := runWorkload
	switch {
	case r.Restart > 0:
		run = func(r Run) (*Result, error) { return runRestart(r, filepath.Join(mnt, cfg.Control)) }
	case r.Full:
		run = runFull
	case r.Compressed:
		run = runCompressed
	case r.Posix:
		run = func(r Run) (*Result, error) { return runPosix(r, cfg) }
	}
	res, err := run(r)
	if err != nil {
		fmt.Printf("MAILNFS-WORKER %s error: %v\n", r.Name, err)
		return 1
	}
	b, _ := json.Marshal(res)
	fmt.Printf("MAILNFS-RESULT %s\n", b)
	return 0
}

func message(w, i int) []byte {
	rng := rand.New(rand.NewPCG(uint64(w), uint64(i)))
	return messageSized(w, i, 200+rng.IntN(16<<10))
}

// messageSized is message i of writer w, n bytes long or a line more.
func messageSized(w, i, n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "Return-Path: <writer%d@guest.example>\nFrom: writer%d@guest.example\nTo: tevie@example.com\nSubject: kernel client message %d-%d\n\n", w, w, w, i)
	rng := rand.New(rand.NewPCG(uint64(w), uint64(i)^0x5a5a))
	for b.Len() < n {
		fmt.Fprintf(&b, "line %d of message %d from writer %d: %x\n", b.Len(), i, w, rng.Uint64())
	}
	return b.Bytes()
}

func sum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// deliver writes message i of writer w into md as a front end's delivery
// agent does: exclusive create in tmp/, write, fsync, close, then into new/
// by rename (qmail, Dovecot) for even i and by link+unlink (Exim, Courier:
// never overwriting) for odd i.
func deliver(md string, w, i int) (Message, error) {
	return deliverBody(md, w, i, message(w, i))
}

// deliverBody delivers body as message i of writer w. A failure before
// the move removes the tmp/ file, as a delivery agent does.
func deliverBody(md string, w, i int, body []byte) (Message, error) {
	name := fmt.Sprintf("%d.M%dP%dQ%d.guest,S=%d", time.Now().Unix(), w, os.Getpid(), i, len(body))
	tmp := filepath.Join(md, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return Message{}, fmt.Errorf("create %s: %w", tmp, err)
	}
	what := "write"
	_, err = f.Write(body)
	if err == nil {
		what, err = "fsync", f.Sync()
	}
	if cerr := f.Close(); err == nil && cerr != nil {
		what, err = "close", cerr
	}
	if err != nil {
		if rerr := os.Remove(tmp); rerr != nil {
			err = errors.Join(err, fmt.Errorf("remove after failure: %w", rerr))
		}
		return Message{}, fmt.Errorf("%s %s: %w", what, tmp, err)
	}
	dst := filepath.Join(md, "new", name)
	if i%2 == 0 {
		err = os.Rename(tmp, dst)
	} else if err = os.Link(tmp, dst); err == nil {
		err = os.Remove(tmp)
	}
	if err != nil {
		return Message{}, fmt.Errorf("move %s into new/: %w", name, err)
	}
	return Message{Dir: "new", Name: name, Size: len(body), SHA256: sum(body)}, nil
}

// deliveries is what the writers of a run delivered, by name.
type deliveries struct {
	mu sync.Mutex
	m  map[string]Message
}

func (d *deliveries) add(m Message) {
	d.mu.Lock()
	d.m[m.Name] = m
	d.mu.Unlock()
}

func (d *deliveries) count() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.m)
}

// startWriters starts n writers delivering into md, writer w drawing its
// messages from seed base+w. Each delivers limit messages (limit < 0:
// until stop is closed) and stops early at its first error, which it sends
// to errs.
func startWriters(wg *sync.WaitGroup, md string, n, base, limit int, stop <-chan struct{}, box *deliveries, errs chan<- error) {
	for w := 0; w < n; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i := 0; limit < 0 || i < limit; i++ {
				select {
				case <-stop:
					return
				default:
				}
				m, err := deliver(md, base+w, i)
				if err != nil {
					errs <- err
					return
				}
				box.add(m)
			}
		}(w)
	}
}

func runWorkload(r Run) (*Result, error) {
	t0 := time.Now()
	md := filepath.Join(mnt, r.Maildir)
	box := &deliveries{m: map[string]Message{}}
	errs := make(chan error, r.Writers)
	var wg sync.WaitGroup
	startWriters(&wg, md, r.Writers, 100*r.UID, r.Messages, nil, box, errs)
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	delivered := box.m
	if err := checkNew(md, delivered); err != nil {
		return nil, err
	}
	// A POP3/IMAP server marks messages seen by renaming them into cur/,
	// then deletes some.
	names := make([]string, 0, len(delivered))
	for n := range delivered {
		names = append(names, n)
	}
	sort.Strings(names)
	for i, n := range names[:min(r.Flag, len(names))] {
		m := delivered[n]
		cur := n + ":2,S"
		if err := os.Rename(filepath.Join(md, "new", n), filepath.Join(md, "cur", cur)); err != nil {
			return nil, fmt.Errorf("flag %s: %w", n, err)
		}
		delete(delivered, n)
		if i < r.Delete {
			if err := os.Remove(filepath.Join(md, "cur", cur)); err != nil {
				return nil, fmt.Errorf("delete %s: %w", cur, err)
			}
			continue
		}
		m.Dir, m.Name = "cur", cur
		delivered[cur] = m
	}
	res := &Result{Run: r.Name, UID: os.Getuid()}
	for _, m := range delivered {
		res.Messages = append(res.Messages, m)
	}
	sort.Slice(res.Messages, func(i, j int) bool { return res.Messages[i].Name < res.Messages[j].Name })
	if r.BigMiB > 0 {
		name := filepath.Join(md, fmt.Sprintf("big-%d.bin", os.Getuid()))
		big := pattern(r.BigMiB<<20, uint64(r.UID))
		if err := os.WriteFile(name, big, 0o644); err != nil {
			return nil, fmt.Errorf("write big file: %w", err)
		}
		f, err := os.OpenFile(name, os.O_WRONLY, 0)
		if err == nil {
			err = f.Sync()
			f.Close()
		}
		if err != nil {
			return nil, fmt.Errorf("fsync big file: %w", err)
		}
		back, err := readDirect(name)
		if err != nil {
			return nil, err
		}
		if sum(back) != sum(big) {
			return nil, fmt.Errorf("big file read back differs (%d bytes)", len(back))
		}
		res.BigName, res.BigSHA, res.BigSize = filepath.Base(name), sum(big), len(big)
	}
	res.Seconds = time.Since(t0).Seconds()
	return res, nil
}

// runFull fills the second export's small file system as a busy front end
// would: two writers deliver messages of 256 KiB until a delivery fails.
// Each failure must be ENOSPC (the server's NFS3ERR_NOSPC, which the
// kernel reports at write, fsync or close) and the writer removes its
// tmp/ file; each writer stops after its third refusal. Then, as users
// reading their mail do, Delete messages are removed, and Messages more
// must be delivered without an error.
func runFull(r Run) (*Result, error) {
	t0 := time.Now()
	md := filepath.Join(fullMnt, r.Maildir)
	box := &deliveries{m: map[string]Message{}}
	res := &Result{Run: r.Name, UID: os.Getuid()}
	var mu sync.Mutex
	var wg sync.WaitGroup
	var bad error
	for w := 0; w < r.Writers; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			for i, refused := 0, 0; refused < 3 && i < 2000; i++ {
				m, err := deliverBody(md, 100*r.UID+w, i, messageSized(w, i, 256<<10))
				if err == nil {
					box.add(m)
					continue
				}
				refused++
				mu.Lock()
				res.Refused++
				if res.RefusedErr == "" {
					res.RefusedErr = err.Error()
				}
				if !errors.Is(err, syscall.ENOSPC) && bad == nil {
					bad = fmt.Errorf("a delivery failed with %w, want ENOSPC", err)
				}
				mu.Unlock()
			}
		}(w)
	}
	wg.Wait()
	if bad != nil {
		return nil, bad
	}
	if box.count() == 0 {
		return nil, fmt.Errorf("no delivery succeeded (first refusal: %s)", res.RefusedErr)
	}
	var st unix.Statfs_t
	if err := unix.Statfs(fullMnt, &st); err != nil {
		return nil, err
	}
	res.FullFreeKiB, res.FullAvailKiB = st.Bfree*uint64(st.Bsize)>>10, st.Bavail*uint64(st.Bsize)>>10
	if err := checkNew(md, box.m); err != nil {
		return nil, fmt.Errorf("when full: %w", err)
	}
	names := make([]string, 0, len(box.m))
	for n := range box.m {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names[:min(r.Delete, len(names))] {
		if err := os.Remove(filepath.Join(md, "new", n)); err != nil {
			return nil, fmt.Errorf("delete %s when full: %w", n, err)
		}
		delete(box.m, n)
	}
	for i := 0; i < r.Messages; i++ {
		m, err := deliverBody(md, 100*r.UID+99, i, messageSized(99, i, 64<<10))
		if err != nil {
			return nil, fmt.Errorf("delivery after deleting %d messages: %w", r.Delete, err)
		}
		box.add(m)
	}
	if err := checkNew(md, box.m); err != nil {
		return nil, fmt.Errorf("after deleting: %w", err)
	}
	for _, m := range box.m {
		res.Messages = append(res.Messages, m)
	}
	sort.Slice(res.Messages, func(i, j int) bool { return res.Messages[i].Name < res.Messages[j].Name })
	res.Seconds = time.Since(t0).Seconds()
	return res, nil
}

// runRestart delivers while the test restarts mailnfsd under the mount, as
// an operator upgrading a storage box does with its front ends mounted.
// Writers deliver without pause, and one more streams a large file in
// 64 KiB writes without fsync (the kernel sends those as UNSTABLE writes
// and commits them in batches). Once Messages have arrived and half the
// file is written, the worker prints MAILNFS-RESTART-SERVER; the test
// stops the server (SIGTERM), starts it again with the same state
// directory, and then changes the control file. The stream goes on across
// the restart but does not pass three quarters of the file before the
// worker has seen that change; then it finishes, fsyncs and reads the file
// back. Writes the first server answered but had not committed when it
// stopped meet the second server's new write verifier at COMMIT, and the
// kernel must send them again (counted from /proc/self/mountstats). A hard
// mount hides the restart from every system call: any error fails the run.
func runRestart(r Run, control string) (*Result, error) {
	t0 := time.Now()
	md := filepath.Join(mnt, r.Maildir)
	epoch0, err := readDirect(control)
	if err != nil {
		return nil, err
	}
	written0, err := writeBytes()
	if err != nil {
		return nil, err
	}
	var (
		box       = &deliveries{m: map[string]Message{}}
		stop      = make(chan struct{})
		restarted = make(chan struct{}) // closed when the control file changed
		errs      = make(chan error, r.Writers+1)
		wg        sync.WaitGroup
	)
	count := box.count
	startWriters(&wg, md, r.Writers, 100*r.UID+50, -1, stop, box, errs)
	held := filepath.Join(md, fmt.Sprintf("held-%d.bin", os.Getuid()))
	content := pattern(r.BigMiB<<20, uint64(r.UID)+1)
	const chunk = 64 << 10
	var streamed atomic.Int64 // bytes of content written so far
	streamDone := make(chan struct{})
	go func() {
		defer close(streamDone)
		err := func() error {
			f, err := os.OpenFile(held, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o644)
			if err != nil {
				return fmt.Errorf("create %s: %w", held, err)
			}
			defer f.Close()
			for off := 0; off < len(content); off += chunk {
				if off >= len(content)*3/4 {
					<-restarted
				}
				end := min(off+chunk, len(content))
				if _, err := f.Write(content[off:end]); err != nil {
					return fmt.Errorf("write %s at %d: %w", held, off, err)
				}
				streamed.Store(int64(end))
				time.Sleep(10 * time.Millisecond)
			}
			if err := f.Sync(); err != nil {
				return fmt.Errorf("fsync %s: %w", held, err)
			}
			return f.Close()
		}()
		if err != nil {
			errs <- err
		}
	}()
	// wait polls until cond holds, a writer fails or the time is up.
	wait := func(what string, cond func() bool) error {
		deadline := time.Now().Add(3 * time.Minute)
		for !cond() {
			select {
			case err := <-errs:
				return fmt.Errorf("while waiting for %s: %w", what, err)
			case <-time.After(50 * time.Millisecond):
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("%s: not within 3 minutes (%d delivered, %d bytes streamed)", what, count(), streamed.Load())
			}
		}
		return nil
	}
	var before, atEpoch int
	err = wait("the first deliveries and half the stream", func() bool {
		return count() >= r.Messages && streamed.Load() >= int64(len(content)/2)
	})
	before = count()
	epoch := epoch0
	for k := 0; k < r.Restart && err == nil; k++ {
		if k > 0 {
			err = wait("deliveries between restarts", func() bool { return count() >= atEpoch+r.Messages })
			if err != nil {
				break
			}
		}
		fmt.Println("MAILNFS-RESTART-SERVER")
		var pollErr error
		err = wait("the restarted server", func() bool {
			b, err := readDirect(control)
			if err != nil {
				pollErr = err
				return true
			}
			if bytes.Equal(b, epoch) {
				return false
			}
			epoch = b
			return true
		})
		if err == nil {
			err = pollErr
		}
		if err == nil && k == 0 {
			close(restarted)
		}
		atEpoch = count()
	}
	if err == nil {
		err = wait("deliveries after the restarts", func() bool { return count() >= atEpoch+r.Messages })
	}
	if err == nil {
		err = wait("the end of the stream", func() bool {
			select {
			case <-streamDone:
				return true
			default:
				return false
			}
		})
	}
	close(stop)
	wg.Wait()
	if err != nil {
		return nil, err // the stream may still wait for restarted: the guest powers off
	}
	close(errs)
	if err := <-errs; err != nil {
		return nil, err
	}
	back, err := readDirect(held)
	if err != nil {
		return nil, err
	}
	if sum(back) != sum(content) {
		return nil, fmt.Errorf("%s read back differs after the restart (%d bytes, want %d)", held, len(back), len(content))
	}
	if err := checkNew(md, box.m); err != nil {
		return nil, err
	}
	written1, err := writeBytes()
	if err != nil {
		return nil, err
	}
	res := &Result{Run: r.Name, UID: os.Getuid(), Before: before, After: count() - atEpoch,
		BigName: filepath.Base(held), BigSHA: sum(content), BigSize: len(content),
		Resent: (written1.server - written0.server) - (written1.app - written0.app)}
	for _, m := range box.m {
		res.Messages = append(res.Messages, m)
	}
	sort.Slice(res.Messages, func(i, j int) bool { return res.Messages[i].Name < res.Messages[j].Name })
	res.Seconds = time.Since(t0).Seconds()
	return res, nil
}

// written is what /proc/self/mountstats says of the NFS mount's writes:
// bytes the applications wrote, and bytes the client sent in WRITE calls.
// Files written once, front to back (as runRestart writes them), make the
// two equal unless the client sent something again.
type written struct{ app, server int64 }

func writeBytes() (written, error) {
	b, err := os.ReadFile("/proc/self/mountstats")
	if err != nil {
		return written{}, err
	}
	// bytes: normalread normalwrite directread directwrite serverread serverwrite readpages writepages
	for _, l := range strings.Split(string(b), "\n") {
		f := strings.Fields(l)
		if len(f) == 9 && f[0] == "bytes:" {
			app, err1 := strconv.ParseInt(f[2], 10, 64)
			direct, err2 := strconv.ParseInt(f[4], 10, 64)
			server, err3 := strconv.ParseInt(f[6], 10, 64)
			if err := errors.Join(err1, err2, err3); err != nil {
				return written{}, fmt.Errorf("mountstats %q: %w", l, err)
			}
			return written{app: app + direct, server: server}, nil
		}
	}
	return written{}, errors.New("mountstats: no bytes: line for the NFS mount")
}

// checkNew lists new/ and reads every delivered message back with
// O_DIRECT, which bypasses the client's page cache and so reads what the
// server holds: each must be there, intact, nothing else in new/, and tmp/
// must be empty.
func checkNew(md string, delivered map[string]Message) error {
	ents, err := os.ReadDir(filepath.Join(md, "new"))
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, e := range ents {
		seen[e.Name()] = true
	}
	for name, m := range delivered {
		if !seen[name] {
			return fmt.Errorf("readdir new/: %s missing (%d entries)", name, len(ents))
		}
		b, err := readDirect(filepath.Join(md, "new", name))
		if err != nil {
			return err
		}
		if sum(b) != m.SHA256 {
			return fmt.Errorf("read back %s: content differs (%d bytes, want %d)", name, len(b), m.Size)
		}
	}
	if len(ents) != len(delivered) {
		return fmt.Errorf("new/ has %d entries, delivered %d", len(ents), len(delivered))
	}
	tmpEnts, err := os.ReadDir(filepath.Join(md, "tmp"))
	if err != nil || len(tmpEnts) != 0 {
		return fmt.Errorf("tmp/ not empty after delivery: %d entries, %v", len(tmpEnts), err)
	}
	return nil
}

// pattern returns n pseudo-random bytes drawn from seed.
func pattern(n int, seed uint64) []byte {
	b := make([]byte, n)
	rng := rand.New(rand.NewPCG(7, seed))
	for i := 0; i+8 <= len(b); i += 8 {
		v := rng.Uint64()
		for k := 0; k < 8; k++ {
			b[i+k] = byte(v >> (8 * k))
		}
	}
	return b
}

func readDirect(path string) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_DIRECT, 0)
	if err != nil {
		return nil, fmt.Errorf("open O_DIRECT %s: %w", path, err)
	}
	defer f.Close()
	var out bytes.Buffer
	buf := make([]byte, 1<<20)
	for {
		n, err := f.Read(buf)
		out.Write(buf[:n])
		if n == 0 || err != nil {
			if err != nil && !errors.Is(err, io.EOF) {
				return nil, fmt.Errorf("read %s: %w", path, err)
			}
			return out.Bytes(), nil
		}
	}
}
