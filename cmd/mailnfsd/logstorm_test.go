package main

import (
	"context"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// stormServer starts a mailnfsd at the default log level serving one
// export to 127.0.0.0/8 (FreeBSD line, no -alldirs) and returns it, the
// export and the NFS (and MOUNT) port.
func stormServer(t *testing.T) (*proc, string, int) {
	t.Helper()
	p, export, port, _ := stormServerArgs(t)
	return p, export, port
}

// stormServerArgs is stormServer; it also returns the command line, for
// a restart.
func stormServerArgs(t *testing.T) (*proc, string, int, []string) {
	t.Helper()
	nfsdtest.RequireRoot(t)
	dir := t.TempDir()
	export := filepath.Join(dir, "export")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	exports := filepath.Join(dir, "exports")
	writeFile(t, exports, export+" -maproot=0:0 -network 127.0.0.0/8\n")
	ports := freePorts(t, 2)
	args := []string{"-exports", exports, "-state-dir", filepath.Join(dir, "state"),
		"-listen", "127.0.0.1", "-nfs-port", strconv.Itoa(ports[0]), "-portmap-port", strconv.Itoa(ports[1])}
	p := startBinary(t, args...)
	p.waitListening(t, ports...)
	return p, export, ports[0], args
}

// stopAndCount stops p and returns how often each of msgs is in its log.
func (p *proc) stopAndCount(t *testing.T, msgs ...string) []int {
	t.Helper()
	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d\n%s", code, p.stderr.String())
	}
	log := p.stderr.String()
	n := make([]int, len(msgs))
	for i, m := range msgs {
		n[i] = strings.Count(log, m)
	}
	return n
}

// TestBadRecordStormLogRateLimited opens connection after connection to a
// real mailnfsd from one address, each sending an oversized record or a
// record that is not an RPC call. The closings are logged once a minute
// per address, not once per connection: a broken or hostile client must
// not flood the journal.
func TestBadRecordStormLogRateLimited(t *testing.T) {
	p, _, port := stormServer(t)
	const storm = 40
	send := func(b []byte) {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		c.Write(b)
		// Wait for the server to close its side.
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		var buf [64]byte
		for {
			if _, err := c.Read(buf[:]); err != nil {
				break
			}
		}
	}
	for range storm {
		send([]byte{0xff, 0xff, 0xff, 0xff})                     // a 2 GiB record
		send(rpc.FrameRecord([]byte{0, 0, 0, 1, 0, 0, 0, 1, 0})) // a REPLY, not a call
	}
	n := p.stopAndCount(t, "record too large", "undecodable call")
	if n[0] != 1 {
		t.Errorf("record too large: logged %d times for %d connections from one address, want once", n[0], storm)
	}
	if n[1] > 1 {
		t.Errorf("undecodable call: logged %d times for %d connections from one address, want at most once", n[1], storm)
	}
}

// TestRefusedMountStormLogRateLimited sends MNT after MNT that mailnfsd
// must refuse, each for a new path: not exported, a subdirectory of an
// export without -alldirs, a relative path. Each reason is logged once a
// minute per address, not once per call; a granted MNT is still logged.
func TestRefusedMountStormLogRateLimited(t *testing.T) {
	p, export, port := stormServer(t)
	mc := nfsdtest.Dial(t, "tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
	mnt := func(path string) nfs3.MountStat {
		d, err := mc.Call(nfs3.MountProgram, 3, uint32(nfs3.MountProcMnt), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
			(&nfs3.DirPath{Path: path}).Encode(e)
		})
		if err != nil {
			t.Fatal(err)
		}
		var r nfs3.MountRes3
		r.Decode(d)
		return r.Status
	}
	const storm = 40
	for i := range storm {
		if st := mnt("/not/exported/" + strconv.Itoa(i)); st != nfs3.MountAcces {
			t.Fatalf("MNT of a path not exported: %v", st)
		}
		if st := mnt(export + "/sub" + strconv.Itoa(i)); st != nfs3.MountAcces {
			t.Fatalf("MNT of a subdirectory without -alldirs: %v", st)
		}
		if st := mnt("relative" + strconv.Itoa(i)); st == nfs3.MountOK {
			t.Fatalf("MNT of a relative path: %v", st)
		}
	}
	if st := mnt(export); st != nfs3.MountOK {
		t.Fatalf("MNT %s: %v", export, st)
	}
	msgs := []string{
		"refused: path is not exported",
		"refused: subdirectory of an export without -alldirs",
		`msg="mount: refused" `,
		"mount: granted",
	}
	for i, n := range p.stopAndCount(t, msgs...) {
		if n != 1 {
			t.Errorf("%q logged %d times, want once (%d refusals of each kind from one address)", msgs[i], n, storm)
		}
	}
}

// TestRetransmissionStormLogRateLimited replays calls that had an effect,
// with their XIDs and arguments, to a real mailnfsd: after their replies
// left the duplicate request cache, and after a restart. A front end
// resends a few such calls (its calls in flight), each worth a line; a
// client replaying old XIDs in a loop must not get a line per call.
func TestRetransmissionStormLogRateLimited(t *testing.T) {
	p, export, port, args := stormServerArgs(t)
	const files = 100
	for i := range files {
		writeFile(t, filepath.Join(export, "f"+strconv.Itoa(i)), "x")
	}
	addr := netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	root := mountAsRoot(t, addr, export)
	// remove sends REMOVE name with xid on c and returns the status.
	var c net.Conn
	var rr *rpc.RecordReader
	dial := func() {
		var err error
		if c, err = net.Dial("tcp", addr.String()); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		rr = rpc.NewRecordReader(c, 0)
	}
	remove := func(xid uint32, name string) nfs3.Status {
		return removeOn(t, c, rr, root, xid, name)
	}
	dial()
	for i := range files {
		if st := remove(1000+uint32(i), "f"+strconv.Itoa(i)); st != nfs3.StatusOK {
			t.Fatalf("REMOVE f%d: %v", i, st)
		}
	}
	// Calls enough to push those replies out of the cache (4,096).
	for i := range 4200 {
		remove(100000+uint32(i), "none"+strconv.Itoa(i))
	}
	replay := func(when string) {
		for i := range files {
			if st := remove(1000+uint32(i), "f"+strconv.Itoa(i)); st != nfs3.StatusOK {
				t.Fatalf("REMOVE f%d replayed %s: %v, want it answered as done", i, when, st)
			}
		}
	}
	replay("after eviction")
	n := p.stopAndCount(t, "reply had left the duplicate request cache", "answered as done")
	if n[0] != 32 || n[1] != 32 {
		t.Errorf("%d replayed evicted calls: logged %d as evicted and %d as answered as done, want 32 each (then once a minute)", files, n[0], n[1])
	}

	p = startBinary(t, args...)
	p.waitListening(t, port)
	dial()
	replay("after a restart")
	n = p.stopAndCount(t, "begun before the restart", "answered as done")
	if n[0] != 32 || n[1] != 32 {
		t.Errorf("%d calls replayed after a restart: logged %d as begun before it and %d as answered as done, want 32 each (then once a minute)", files, n[0], n[1])
	}
}

// TestManyAddressStormLogBounded sends refused MNTs over UDP from 5,000
// loopback source addresses, two rounds, as a flood of spoofed
// datagrams would come: more addresses in a minute than the per-address
// limit remembers. The log must stay bounded (at most one line per
// remembered address and minute), not get a line per datagram.
func TestManyAddressStormLogBounded(t *testing.T) {
	p, export, port := stormServer(t)
	const addrs, rounds = 5000, 2
	dst := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port}
	conns := make([]*net.UDPConn, addrs)
	for i := range conns {
		a := netip.AddrFrom4([4]byte{127, 10 + byte(i>>16), byte(i >> 8), byte(i)})
		c, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(a, 0)))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		conns[i] = c
	}
	cred := nfsdtest.AuthSys(0, 0)
	for r := range rounds {
		for i, c := range conns {
			// The export admits 127.0.0.0/8, so ask for a path not
			// exported: refused for every address.
			var e xdr.Encoder
			rpc.CallHeader{XID: uint32(r*addrs + i + 1), Prog: nfs3.MountProgram, Vers: 3, Proc: uint32(nfs3.MountProcMnt), Cred: cred, Verf: nfsdtest.AuthNone}.Encode(&e)
			(&nfs3.DirPath{Path: export + ".not"}).Encode(&e)
			if _, err := c.WriteTo(e.Bytes(), dst); err != nil {
				t.Fatal(err)
			}
			if i%50 == 0 {
				time.Sleep(2 * time.Millisecond) // let the server keep up
			}
		}
	}
	// The server has answered the last round when a TCP call gets through.
	mc := nfsdtest.Dial(t, "tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
	mc.Null(t, nfs3.MountProgram, 3)
	time.Sleep(200 * time.Millisecond)
	n := p.stopAndCount(t, "refused: path is not exported")[0]
	if n > 4096 {
		t.Errorf("%d refused MNTs from %d addresses logged %d lines, want at most 4096 (one per remembered address and minute)", addrs*rounds, addrs, n)
	}
	t.Logf("%d lines", n)
}

// TestMountPerDeliveryLogRateLimited delivers message after message the
// way mailnfs deliver does (a mount, a delivery, an unmount each), then
// sends UMNTs of made-up paths, which need no rights, to a real mailnfsd
// at the default level. A front end's mounts and unmounts are logged once
// a minute per address and export, not twice per message.
func TestMountPerDeliveryLogRateLimited(t *testing.T) {
	p, export, _, args := stormServerArgs(t)
	pmPort := args[len(args)-1]
	for _, d := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(export, "Maildir", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	const messages = 20
	for range messages {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		c, err := client.Dial(ctx, "nfs://127.0.0.1:"+pmPort+export+"?uid=0&gid=0", client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Deliver(ctx, "Maildir", strings.NewReader("Subject: x\n\nx\n")); err != nil {
			t.Fatal(err)
		}
		c.Close()
		cancel()
	}
	port, _ := strconv.Atoi(args[len(args)-3])
	mc := nfsdtest.Dial(t, "tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
	for i := range messages {
		if _, err := mc.Call(nfs3.MountProgram, 3, uint32(nfs3.MountProcUmnt), nfsdtest.AuthNone, func(e *xdr.Encoder) {
			(&nfs3.DirPath{Path: "/made/up/" + strconv.Itoa(i)}).Encode(e)
		}); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := os.ReadDir(filepath.Join(export, "Maildir/new")); err != nil || len(n) != messages {
		t.Fatalf("new/ holds %d messages (%v), want %d", len(n), err, messages)
	}
	msgs := []string{"mount: granted", `msg="mount: unmounted"`}
	for i, n := range p.stopAndCount(t, msgs...) {
		if n != 1 {
			t.Errorf("%s logged %d times for %d mounts, unmounts and %d UMNTs of made-up paths from one address, want once", msgs[i], n, messages, messages)
		}
	}
}

// TestCorruptFileReadLogRateLimited corrupts two messages stored
// compressed by a real mailnfsd (-compress=zstd), one in its data and one
// in its header, and reads each twenty times, as an IMAP server retrying a
// FETCH would. Each READ fails with NFS3ERR_IO; the error about each file
// is logged once a minute, not once per READ.
func TestCorruptFileReadLogRateLimited(t *testing.T) {
	nfsdtest.RequireRoot(t)
	dir := t.TempDir()
	export := filepath.Join(dir, "export")
	for _, d := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(export, "Maildir", d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exports := filepath.Join(dir, "exports")
	writeFile(t, exports, export+" -compress=zstd -maproot=0:0 -network 127.0.0.0/8\n")
	ports := freePorts(t, 2)
	p := startBinary(t, "-exports", exports, "-state-dir", filepath.Join(dir, "state"),
		"-listen", "127.0.0.1", "-nfs-port", strconv.Itoa(ports[0]), "-portmap-port", strconv.Itoa(ports[1]))
	p.waitListening(t, ports...)
	url := "nfs://127.0.0.1:" + strconv.Itoa(ports[1]) + export + "?uid=0&gid=0"

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, url, client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	msg := "Subject: x\n\n" + strings.Repeat("a line of mail that compresses well\n", 500)
	// garble delivers a message, waits until the background compression
	// has shrunk it and overwrites 8 bytes at where(size), keeping the
	// size.
	garble := func(where func(size int64) int64) string {
		name, err := c.Deliver(ctx, "Maildir", strings.NewReader(msg))
		if err != nil {
			t.Fatal(err)
		}
		file := filepath.Join(export, "Maildir/new", name)
		for deadline := time.Now().Add(30 * time.Second); ; {
			st, err := os.Stat(file)
			if err != nil {
				t.Fatal(err)
			}
			if st.Size() < int64(len(msg))/2 {
				f, err := os.OpenFile(file, os.O_WRONLY, 0)
				if err != nil {
					t.Fatal(err)
				}
				if _, err := f.WriteAt([]byte("XXXXXXXX"), where(st.Size())); err != nil {
					t.Fatal(err)
				}
				f.Close()
				return name
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s not compressed after 30 s (%d bytes)", name, st.Size())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	data := garble(func(size int64) int64 { return size / 2 })
	header := garble(func(int64) int64 { return 0 })
	const reads = 20
	for _, name := range []string{data, header} {
		for range reads {
			// A new client each time: nothing cached on the client side.
			c, err := client.Dial(ctx, url, client.Options{})
			if err != nil {
				t.Fatal(err)
			}
			r, err := c.Open(ctx, "Maildir", name)
			if err == nil {
				_, err = io.ReadAll(r)
				r.Close()
			}
			c.Close()
			if err == nil {
				t.Fatal("a corrupt compressed message read back without an error")
			}
		}
	}
	msgs := []string{"unreadable compressed frame", "unreadable compressed file"}
	for i, n := range p.stopAndCount(t, msgs...) {
		if n != 1 {
			t.Errorf("%d reads of a corrupt compressed message: %q logged %d times, want once", reads, msgs[i], n)
		}
	}
}

// TestStoreErrorStormLogRateLimited runs a real mailnfsd with few file
// descriptors (prlimit) and CREATEs files over one connection until every
// CREATE fails (EMFILE: NFS3ERR_SERVERFAULT), as a box that has run out
// of descriptors would answer every call. The store errors are logged up
// to ten a minute per procedure and status, not once per call.
func TestStoreErrorStormLogRateLimited(t *testing.T) {
	nfsdtest.RequireRoot(t)
	prlimit, err := exec.LookPath("prlimit")
	if err != nil {
		t.Skip("no prlimit (util-linux)")
	}
	dir := t.TempDir()
	export := filepath.Join(dir, "export")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	exports := filepath.Join(dir, "exports")
	writeFile(t, exports, export+" 127.0.0.1(rw,no_root_squash)\n")
	ports := freePorts(t, 2)
	p := &proc{cmd: exec.Command(prlimit, "--nofile=40", nfsdtest.Binary(t), "-exports", exports, "-state-dir", filepath.Join(dir, "state"),
		"-listen", "127.0.0.1", "-nfs-port", strconv.Itoa(ports[0]), "-portmap-port", strconv.Itoa(ports[1])), done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.cmd.Process.Kill()
		<-p.done
	})
	p.waitListening(t, ports...)

	c := nfsdtest.Dial(t, "tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(ports[0])))
	cred := nfsdtest.AuthSys(0, 0)
	fh := mountOn(t, c, export)
	faults := 0
	for i := range 200 {
		d, err := c.Call(nfs3.Program, nfs3.Version, uint32(nfs3.ProcCreate), cred, func(e *xdr.Encoder) {
			(&nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: fh, Name: "f" + strconv.Itoa(i)}, Mode: nfs3.Unchecked}).Encode(e)
		})
		if err != nil {
			t.Fatal(err)
		}
		if nfs3.Status(d.Uint32()) == nfs3.StatusServerFault {
			faults++
		}
	}
	if faults <= 10 {
		// A store that sheds cached descriptors and retries may keep up:
		// then there is no storm to log.
		t.Skipf("only %d of 200 CREATEs failed with SERVERFAULT under 40 file descriptors: no storm", faults)
	}
	if n := p.stopAndCount(t, `msg="nfs3: store error" `)[0]; n > 10 {
		t.Errorf("%d CREATEs failing with SERVERFAULT logged %d store errors, want at most 10", faults, n)
	}
	// Each line names the export whose store failed: with exports on
	// several disks, the operator must know which one to look at.
	for _, l := range strings.Split(p.stderr.String(), "\n") {
		if strings.Contains(l, `msg="nfs3: store error" `) && !strings.Contains(l, " export="+export+" ") {
			t.Errorf("store error line without export=%s:\n%s", export, l)
		}
	}
}

// mountAsRoot mounts export at addr with MOUNT v3 as uid 0, on a
// connection of its own, and returns the root handle.
func mountAsRoot(t *testing.T, addr netip.AddrPort, export string) []byte {
	t.Helper()
	return mountOn(t, nfsdtest.Dial(t, "tcp", addr), export)
}

// mountOn mounts export with MOUNT v3 as uid 0 on c and returns the root
// handle; the test fails unless MNT is answered OK.
func mountOn(t *testing.T, c *nfsdtest.Caller, export string) []byte {
	t.Helper()
	d, err := c.Call(nfs3.MountProgram, 3, uint32(nfs3.MountProcMnt), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
		(&nfs3.DirPath{Path: export}).Encode(e)
	})
	if err != nil {
		t.Fatal(err)
	}
	var mnt nfs3.MountRes3
	mnt.Decode(d)
	if mnt.Status != nfs3.MountOK {
		t.Fatalf("MNT: %v", mnt.Status)
	}
	return mnt.Handle
}

// getattrStatus sends GETATTR of fh to addr as uid 0, on a connection of
// its own, and returns the reply's status.
func getattrStatus(t *testing.T, addr netip.AddrPort, fh []byte) nfs3.Status {
	t.Helper()
	d, err := nfsdtest.Dial(t, "tcp", addr).Call(nfs3.Program, nfs3.Version, uint32(nfs3.ProcGetattr), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
		e.Opaque(fh)
	})
	if err != nil {
		t.Fatal(err)
	}
	return nfs3.Status(d.Uint32())
}
