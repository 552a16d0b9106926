package reliability

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"io"
	mrand "math/rand/v2"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// envFlood makes the test binary a connection flooder: "ADDR N".
const envFlood = "MAILNFS_RELIABILITY_FLOOD"

// capAt returns want capped at limit; the rlimit fields are uint64 on
// Linux and int64 on FreeBSD.
func capAt[T int64 | uint64](limit T, want int) T { return min(limit, T(want)) }

// runFlood opens N connections to ADDR, each sending the start of a record
// and nothing more, prints "ready" and holds them until stdin closes.
func runFlood(cfg string) int {
	var addr string
	var n int
	if _, err := fmt.Sscanf(cfg, "%s %d", &addr, &n); err != nil {
		fmt.Fprintln(os.Stderr, "flood:", err)
		return 2
	}
	var rl syscall.Rlimit
	if syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl) == nil && uint64(rl.Cur) < uint64(n+256) {
		rl.Cur = capAt(rl.Max, n+256)
		_ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl)
	}
	conns := make([]net.Conn, 0, n)
	d := net.Dialer{Timeout: 10 * time.Second}
	for i := range n {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			fmt.Fprintf(os.Stderr, "flood: connection %d: %v\n", i, err)
			return 1
		}
		_, _ = c.Write([]byte{0x80, 0, 0, 100})
		conns = append(conns, c)
	}
	fmt.Println("ready")
	_, _ = io.Copy(io.Discard, os.Stdin)
	for _, c := range conns {
		c.Close()
	}
	return 0
}

var (
	hostileConns   = flag.Int("hostile.conns", 2000, "hostile test: connections held open at once (long version: 10000)")
	hostileHandles = flag.Int("hostile.badhandles", 10000, "hostile test: GETATTRs with bad handles")
)

// memWatch samples the process's Go heap and resident set while a flood
// runs, and reports the peaks.
type memWatch struct {
	stop     chan struct{}
	done     chan struct{}
	mu       sync.Mutex
	peakHeap uint64 // runtime.MemStats.HeapInuse, bytes
	peakSys  uint64 // runtime.MemStats.Sys, bytes
}

func watchMem() *memWatch {
	w := &memWatch{stop: make(chan struct{}), done: make(chan struct{})}
	go func() {
		defer close(w.done)
		tk := time.NewTicker(20 * time.Millisecond)
		defer tk.Stop()
		for {
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			w.mu.Lock()
			w.peakHeap = max(w.peakHeap, ms.HeapInuse)
			w.peakSys = max(w.peakSys, ms.Sys)
			w.mu.Unlock()
			select {
			case <-w.stop:
				return
			case <-tk.C:
			}
		}
	}()
	return w
}

// end stops sampling and returns the peaks in MiB, with the process's
// VmHWM (peak RSS since start, server and test clients together).
func (w *memWatch) end() (heapMiB, sysMiB, hwmMiB float64) {
	close(w.stop)
	<-w.done
	hwm, _ := procStatus(os.Getpid(), "VmHWM")
	return float64(w.peakHeap) / (1 << 20), float64(w.peakSys) / (1 << 20), float64(hwm) / 1024
}

// setRlimit stores cur and lim in an rlimit's fields (uint64 on Linux,
// int64 on FreeBSD).
func setRlimit[T int64 | uint64](curField, maxField *T, cur, lim uint64) {
	*curField, *maxField = T(cur), T(lim)
}

func raiseNoFile(t *testing.T, want uint64) {
	t.Helper()
	var rl syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Fatal(err)
	}
	cur, lim := uint64(rl.Cur), uint64(rl.Max)
	if cur >= want {
		return
	}
	old := rl
	cur = min(max(want, cur), lim)
	if lim < want {
		lim, cur = want, want
	}
	setRlimit(&rl.Cur, &rl.Max, cur, lim)
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &rl); err != nil {
		t.Skipf("cannot raise RLIMIT_NOFILE to %d: %v", want, err)
	}
	t.Cleanup(func() { _ = syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// closedWithin reports whether the server closes c within d (a read
// returns EOF or a reset), draining anything it sends first.
func closedWithin(c net.Conn, d time.Duration) bool {
	_ = c.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, c)
	if err == nil {
		return true // EOF
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true // reset
}

// TestHostileClients attacks a real in-process server at the transport and
// at the NFS procedures; each attack must get a bounded refusal and leave
// the server answering a fresh client.
func TestHostileClients(t *testing.T) {
	const recordTimeout, idleTimeout = 400 * time.Millisecond, 800 * time.Millisecond
	s := startInproc(t, inprocOpts{configure: func(srv *nfsd.Server) {
		srv.RecordTimeout = recordTimeout
		srv.IdleTimeout = idleTimeout
		srv.MaxConns = max(4096, *hostileConns+64)
		srv.MaxConnsPerHost = srv.MaxConns // every attack comes from 127.0.0.1
	}})
	addr := s.Addr.String()
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	fresh := func(t *testing.T) {
		t.Helper()
		c, err := client.Dial(ctx, s.url(""), client.Options{})
		if err != nil {
			t.Fatalf("a fresh client cannot mount: %v", err)
		}
		defer c.Close()
		if _, err := c.Getattr(ctx, c.Root()); err != nil {
			t.Fatalf("a fresh client's GETATTR: %v", err)
		}
	}

	t.Run("slowloris partial record", func(t *testing.T) {
		var conns []net.Conn
		for range 20 {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			// A record mark promising 1000 bytes, then a trickle.
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], 0x80000000|1000)
			if _, err := c.Write(append(hdr[:], 0, 0, 0, 1)); err != nil {
				t.Fatal(err)
			}
			conns = append(conns, c)
		}
		go func() { // keep trickling a byte now and then
			for range 10 {
				time.Sleep(100 * time.Millisecond)
				for _, c := range conns {
					_, _ = c.Write([]byte{0})
				}
			}
		}()
		start := time.Now()
		for i, c := range conns {
			if !closedWithin(c, recordTimeout+5*time.Second) {
				t.Fatalf("slowloris connection %d still open %v after its record started (RecordTimeout %v)", i, time.Since(start), recordTimeout)
			}
		}
		t.Logf("20 slowloris connections closed after %v (RecordTimeout %v)", time.Since(start).Round(time.Millisecond), recordTimeout)
		fresh(t)
	})

	t.Run("idle connection", func(t *testing.T) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if !closedWithin(c, idleTimeout+5*time.Second) {
			t.Fatalf("idle connection not closed (IdleTimeout %v)", idleTimeout)
		}
	})

	t.Run("record claiming 2 GiB", func(t *testing.T) {
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		for _, mark := range []uint32{0x80000000 | 0x7fffffff, 0x7fffffff, 0x80000000 | (1 << 30)} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				t.Fatal(err)
			}
			var hdr [4]byte
			binary.BigEndian.PutUint32(hdr[:], mark)
			if _, err := c.Write(append(hdr[:], bytes.Repeat([]byte{0}, 1024)...)); err != nil {
				t.Fatal(err)
			}
			if !closedWithin(c, 5*time.Second) {
				t.Errorf("record mark %#x: connection not closed", mark)
			}
			c.Close()
		}
		var after runtime.MemStats
		runtime.ReadMemStats(&after)
		if grew := int64(after.TotalAlloc - before.TotalAlloc); grew > 64<<20 {
			t.Errorf("2 GiB record marks made the process allocate %d MiB", grew>>20)
		}
		fresh(t)
	})

	t.Run("many connections", func(t *testing.T) {
		// A server with the default (long) timeouts, so the flood is
		// really held open at once.
		n := *hostileConns
		s2 := startInproc(t, inprocOpts{configure: func(srv *nfsd.Server) {
			// The flood and the fresh client both come from 127.0.0.1.
			srv.MaxConns = max(nfsd.DefaultMaxConns, n+64)
			srv.MaxConnsPerHost = srv.MaxConns
		}})
		raiseNoFile(t, uint64(n+2048))
		w := watchMem()
		// The flood comes from a child process, so that neither side
		// needs more than n fds.
		self, err := os.Executable()
		if err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(self, "-test.run=^$")
		cmd.Env = append(os.Environ(), fmt.Sprintf("%s=%s %d", envFlood, s2.Addr, n))
		cmd.Stderr = os.Stderr
		stdin, err := cmd.StdinPipe()
		if err != nil {
			t.Fatal(err)
		}
		stdout, err := cmd.StdoutPipe()
		if err != nil {
			t.Fatal(err)
		}
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() {
			stdin.Close()
			_ = cmd.Wait()
		}()
		line, err := bufio.NewReader(stdout).ReadString('\n')
		if err != nil || strings.TrimSpace(line) != "ready" {
			t.Fatalf("flooder: %q %v", line, err)
		}
		deadline := time.Now().Add(30 * time.Second)
		for s2.Server.Stats().Conns < int64(n) && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		open := s2.Server.Stats().Conns
		if open < int64(n) {
			t.Errorf("server holds %d of %d connections", open, n)
		}
		fc, err := client.Dial(ctx, s2.url(""), client.Options{})
		if err != nil {
			t.Fatalf("a fresh client cannot mount during the flood: %v", err)
		}
		if _, err := fc.Getattr(ctx, fc.Root()); err != nil {
			t.Fatalf("a fresh client's GETATTR during the flood: %v", err)
		}
		fc.Close()
		heap, sys, hwm := w.end()
		fds, _ := openFDs(os.Getpid())
		t.Logf("%d connections from another process, each holding a partial record, open at once (server counts %d): a fresh client was served; server process: peak Go heap %.1f MiB, Go sys %.1f MiB, VmHWM %.1f MiB, %d fds", n, open, heap, sys, hwm, fds)
	})

	c, err := client.Dial(ctx, s.url(""), client.Options{RPC: client.RPCOptions{Conns: 2}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	root := c.Root()

	t.Run("bad handle flood", func(t *testing.T) {
		n := *hostileHandles
		w := watchMem()
		rng := mrand.New(mrand.NewPCG(1, 2))
		type job struct {
			fh     []byte
			forged bool
		}
		jobs := make(chan job, 64)
		var mu sync.Mutex
		counts := map[string]int{}
		var wg sync.WaitGroup
		for range 16 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for j := range jobs {
					_, err := c.Getattr(ctx, j.fh)
					var k string
					switch {
					case client.IsStatus(err, client.NFS3ErrBadHandle):
						k = "BADHANDLE"
					case client.IsStatus(err, client.NFS3ErrStale) && !j.forged:
						k = "STALE (unknown export id)"
					case err == nil:
						k = "OK!"
					default:
						k = "other: " + err.Error()
					}
					mu.Lock()
					counts[k]++
					mu.Unlock()
				}
			}()
		}
		start := time.Now()
		for i := range n {
			var fh []byte
			forged := i%2 == 0
			if forged { // our export, our format, a broken MAC or kernel handle
				fh = bytes.Clone(root)
				fh[5+rng.IntN(len(fh)-5)] ^= byte(1 + rng.IntN(255))
			} else { // garbage of any length up to 64 bytes
				fh = make([]byte, rng.IntN(65))
				for k := range fh {
					fh[k] = byte(rng.Uint32())
				}
			}
			jobs <- job{fh, forged}
		}
		close(jobs)
		wg.Wait()
		elapsed := time.Since(start)
		heap, sys, hwm := w.end()
		for k, v := range counts {
			if k != "BADHANDLE" && k != "STALE (unknown export id)" {
				t.Errorf("%d bad handles answered %s", v, k)
			}
		}
		t.Logf("%d bad handles in %v (%.0f/s): %v; peak Go heap %.1f MiB, Go sys %.1f MiB, process VmHWM %.1f MiB", n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), counts, heap, sys, hwm)
		if _, err := c.Getattr(ctx, root); err != nil {
			t.Fatalf("the good handle after the flood: %v", err)
		}
	})

	t.Run("READDIR with huge counts", func(t *testing.T) {
		dir := filepath.Join(s.Root, "big")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range 6000 {
			name := fmt.Sprintf("%04d-%s", i, strings.Repeat("n", 240))
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
		fh, _, err := c.Lookup(ctx, root, "big")
		if err != nil {
			t.Fatal(err)
		}
		nfsAddr := netip.MustParseAddrPort(addr)
		raw := nfsdtest.Dial(t, "tcp", nfsAddr)
		for _, proc := range []uint32{uint32(nfs3.ProcReaddir), uint32(nfs3.ProcReaddirplus)} {
			d, err := raw.Call(nfs3.Program, nfs3.Version, proc, nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
				e.Opaque(fh)
				e.Uint64(0)
				e.FixedOpaque(make([]byte, 8))
				e.Uint32(0xffffffff)
				if proc == uint32(nfs3.ProcReaddirplus) {
					e.Uint32(0xffffffff)
				}
			})
			if err != nil {
				t.Fatalf("proc %d: %v", proc, err)
			}
			size := d.Remaining()
			if st := d.Uint32(); st != 0 {
				t.Fatalf("proc %d: status %d", proc, st)
			}
			if size > nfs3.MaxIO+4096 {
				t.Errorf("proc %d with count 0xffffffff: %d-byte reply, want at most about %d", proc, size, nfs3.MaxIO)
			}
			t.Logf("proc %d with count 0xffffffff over 6000 250-byte names: %d-byte reply (cap %d)", proc, size, nfs3.MaxIO)
		}
	})

	t.Run("deep directory tree", func(t *testing.T) {
		const depth = 300
		fh := root
		for i := range depth {
			h, _, err := c.Mkdir(ctx, fh, fmt.Sprintf("d%03d", i), client.SetAttr{})
			if err != nil {
				t.Fatalf("MKDIR at depth %d: %v", i, err)
			}
			fh = h
		}
		// The handle of the deepest directory works, ".." climbs one step.
		if _, _, err := c.Create(ctx, fh, "leaf", client.Unchecked, client.SetAttr{}, [8]byte{}); err != nil {
			t.Fatalf("CREATE at depth %d: %v", depth, err)
		}
		up, _, err := c.Lookup(ctx, fh, "..")
		if err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Lookup(ctx, up, fmt.Sprintf("d%03d", depth-1)); err != nil {
			t.Fatalf("LOOKUP via '..' at depth %d: %v", depth, err)
		}
		// ".." of the export root is the root.
		rup, attr, err := c.Lookup(ctx, root, "..")
		if err != nil {
			t.Fatal(err)
		}
		ra, _ := c.Getattr(ctx, root)
		if attr != nil && ra != nil && attr.FileID != ra.FileID {
			t.Errorf("'..' of the export root is fileid %d, root is %d (handle %x)", attr.FileID, ra.FileID, rup)
		}
	})

	t.Run("hostile names", func(t *testing.T) {
		md, _, err := c.LookupPath(ctx, "/Maildir/tmp")
		if err != nil {
			t.Fatal(err)
		}
		for _, tc := range []struct {
			name string
			want []client.Status
		}{
			{"a\x00b", []client.Status{client.NFS3ErrInval, client.NFS3ErrAcces}},
			{"a/b", []client.Status{client.NFS3ErrInval, client.NFS3ErrAcces, client.NFS3ErrNoEnt}},
			{"../escape", []client.Status{client.NFS3ErrInval, client.NFS3ErrAcces, client.NFS3ErrNoEnt}},
			{"/etc/passwd", []client.Status{client.NFS3ErrInval, client.NFS3ErrAcces, client.NFS3ErrNoEnt}},
			{"..", []client.Status{client.NFS3ErrExist, client.NFS3ErrInval, client.NFS3ErrAcces}},
			{".", []client.Status{client.NFS3ErrExist, client.NFS3ErrInval, client.NFS3ErrAcces}},
			{"", []client.Status{client.NFS3ErrInval, client.NFS3ErrAcces, client.NFS3ErrNoEnt, client.NFS3ErrExist}},
			{strings.Repeat("x", 256), []client.Status{client.NFS3ErrNameTooLong}},
			{strings.Repeat("y", 1000), []client.Status{client.NFS3ErrNameTooLong}},
		} {
			check := func(op string, err error) {
				t.Helper()
				for _, st := range tc.want {
					if client.IsStatus(err, st) {
						return
					}
				}
				t.Errorf("%s %q: %v, want one of %v", op, truncate(tc.name), err, tc.want)
			}
			_, _, err := c.Create(ctx, md, tc.name, client.Guarded, client.SetAttr{}, [8]byte{})
			check("CREATE", err)
			_, _, err = c.Mkdir(ctx, md, tc.name, client.SetAttr{})
			check("MKDIR", err)
			err = c.Rename(ctx, md, tc.name, md, "x")
			if err == nil {
				t.Errorf("RENAME of %q succeeded", truncate(tc.name))
			}
			if _, _, err := c.Lookup(ctx, md, tc.name); err == nil && tc.name != "." && tc.name != ".." {
				t.Errorf("LOOKUP of %q succeeded", truncate(tc.name))
			}
		}
		es, _ := os.ReadDir(filepath.Join(s.Root, "Maildir", "tmp"))
		if len(es) != 0 {
			t.Errorf("hostile names created %d entries in tmp/", len(es))
		}
		if _, err := os.Stat(filepath.Join(s.Root, "Maildir", "escape")); err == nil {
			t.Errorf("a name with '/' escaped into the parent")
		}
	})
	fresh(t)
}

func truncate(s string) string {
	if len(s) > 20 {
		return s[:20] + "..."
	}
	return s
}
