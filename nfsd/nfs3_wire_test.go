package nfsd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// n3Client is a minimal synchronous NFSv3 client over one TCP connection
// (the real client lives in package client; nfsd tests must not import it).
type n3Client struct {
	t    testing.TB
	conn net.Conn
	rr   *rpc.RecordReader
	xid  uint32
	cred rpc.OpaqueAuth
}

func n3Dial(t testing.TB, addr string, uid, gid uint32) *n3Client {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	parms := rpc.AuthSysParms{MachineName: "wiretest", UID: uid, GID: gid}
	return &n3Client{t: t, conn: c, rr: rpc.NewRecordReader(c, 0), xid: 1000, cred: parms.Credential()}
}

// send writes one call with the given xid and raw argument bytes.
func (c *n3Client) send(xid uint32, proc nfs3.Proc, args []byte) error {
	e := xdr.NewEncoder(nil)
	rpc.CallHeader{XID: xid, Prog: nfs3.Program, Vers: nfs3.Version, Proc: uint32(proc), Cred: c.cred}.Encode(e)
	_, err := c.conn.Write(rpc.FrameRecord(append(e.Bytes(), args...)))
	return err
}

// recv reads one reply and decodes its results into res.
func (c *n3Client) recv(wantXID uint32, res n3Decoder) error {
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	rec, err := c.rr.Next()
	if err != nil {
		return err
	}
	d := xdr.NewDecoder(rec)
	xid, err := rpc.DecodeReply(d)
	if err != nil {
		return err
	}
	if xid != wantXID {
		return fmt.Errorf("reply xid %d, want %d", xid, wantXID)
	}
	res.Decode(d)
	return d.Done()
}

func (c *n3Client) callXID(xid uint32, proc nfs3.Proc, args n3Encoder, res n3Decoder) error {
	e := xdr.NewEncoder(nil)
	args.Encode(e)
	if err := c.send(xid, proc, e.Bytes()); err != nil {
		return err
	}
	return c.recv(xid, res)
}

func (c *n3Client) call(proc nfs3.Proc, args n3Encoder, res n3Decoder) {
	c.t.Helper()
	c.xid++
	if err := c.callXID(c.xid, proc, args, res); err != nil {
		c.t.Fatalf("%v: %v", proc, err)
	}
}

// ok fails the test unless st is NFS3_OK.
func (c *n3Client) ok(what string, st nfs3.Status) {
	c.t.Helper()
	if st != nfs3.StatusOK {
		c.t.Fatalf("%s: %v", what, st)
	}
}

func (c *n3Client) lookup(dir []byte, name string) []byte {
	c.t.Helper()
	var r nfs3.LookupRes
	c.call(nfs3.ProcLookup, &nfs3.LookupArgs{Dir: dir, Name: name}, &r)
	c.ok("LOOKUP "+name, r.Status)
	return r.Object
}

// deliver stores one message the way a Maildir delivery agent does over
// NFS: EXCLUSIVE CREATE in tmp, SETATTR, FILE_SYNC WRITE, RENAME into new.
func (c *n3Client) deliver(tmp, newDir []byte, name string, body []byte) []byte {
	c.t.Helper()
	var cr nfs3.CreateRes
	c.call(nfs3.ProcCreate, &nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: tmp, Name: name}, Mode: nfs3.Exclusive, Verf: [8]byte{byte(c.xid), 7}}, &cr)
	c.ok("CREATE "+name, cr.Status)
	var sa nfs3.SetattrRes
	c.call(nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: cr.Object, NewAttr: nfs3.SetAttr{Mode: ptr[uint32](0o600), Atime: nfs3.SetToServerTime, Mtime: nfs3.SetToServerTime}}, &sa)
	c.ok("SETATTR "+name, sa.Status)
	var w nfs3.WriteRes
	c.call(nfs3.ProcWrite, &nfs3.WriteArgs{File: cr.Object, Count: uint32(len(body)), Stable: nfs3.FileSync, Data: body}, &w)
	c.ok("WRITE "+name, w.Status)
	if w.Committed != nfs3.FileSync || int(w.Count) != len(body) {
		c.t.Fatalf("WRITE %s: committed %v count %d", name, w.Committed, w.Count)
	}
	var rn nfs3.RenameRes
	c.call(nfs3.ProcRename, &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: tmp, Name: name}, To: nfs3.DirOpArgs{Dir: newDir, Name: name}}, &rn)
	c.ok("RENAME "+name, rn.Status)
	return cr.Object
}

// n3StartServer serves NFS3 over a real nfsd.Server on 127.0.0.1 and
// returns its address.
func n3StartServer(t *testing.T, n *NFS3) string {
	t.Helper()
	addr, _ := n3Serve(t, &Server{}, n)
	return addr
}

// n3Serve serves NFS3 over s on 127.0.0.1 and returns its address and a
// stop function (also run at cleanup; running it twice is harmless).
func n3Serve(t *testing.T, s *Server, n *NFS3) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s.Register(n)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ln) }()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if err := s.Shutdown(ctx); err != nil {
				t.Errorf("Shutdown: %v", err)
			}
			if err := <-done; !errors.Is(err, ErrServerClosed) {
				t.Errorf("Serve: %v", err)
			}
		})
	}
	t.Cleanup(stop)
	return ln.Addr().String(), stop
}

func TestNFS3OverTCP(t *testing.T) {
	st := mdtest.NewOpts(t, maildirfs.Options{ExportID: 1})
	auth := &n3Auth{exports: map[uint32]*n3Export{1: {store: st}}}
	addr := n3StartServer(t, &NFS3{Auth: auth})
	root := st.Root()

	c := n3Dial(t, addr, 0, 0)
	md := c.lookup(root, "Maildir")
	tmp, newDir := c.lookup(md, "tmp"), c.lookup(md, "new")

	t.Run("Delivery", func(t *testing.T) {
		c.t = t
		body := []byte("From: a@example.org\r\nSubject: wire\r\n\r\nhello\r\n")
		fh := c.deliver(tmp, newDir, "1700000000.M1P1.wire", body)
		var rd nfs3.ReadRes
		c.call(nfs3.ProcRead, &nfs3.ReadArgs{File: fh, Count: 4096}, &rd)
		if rd.Status != nfs3.StatusOK || !bytes.Equal(rd.Data, body) || !rd.EOF {
			t.Fatalf("READ back: %v %q eof %v", rd.Status, rd.Data, rd.EOF)
		}
		var rp nfs3.ReaddirplusRes
		c.call(nfs3.ProcReaddirplus, &nfs3.ReaddirplusArgs{Dir: newDir, DirCount: 8192, MaxCount: 65536}, &rp)
		c.ok("READDIRPLUS new", rp.Status)
		found := false
		for _, en := range rp.Entries {
			if en.Name == "1700000000.M1P1.wire" {
				found = bytes.Equal(en.Handle, fh) && en.Attr != nil && en.Attr.Size == uint64(len(body)) && en.Attr.Mode == 0o600
			}
		}
		if !found || !rp.EOF {
			t.Fatalf("delivered message not listed correctly in new/: %+v", rp.Entries)
		}
	})

	t.Run("GarbageArgs", func(t *testing.T) {
		c.t = t
		c.xid++
		if err := c.send(c.xid, nfs3.ProcGetattr, []byte{0, 0, 0, 200}); err != nil {
			t.Fatal(err)
		}
		var re *rpc.ReplyError
		if err := c.recv(c.xid, &nfs3.GetattrRes{}); !errors.As(err, &re) || re.Accept != rpc.GarbageArgs {
			t.Fatalf("undecodable GETATTR: %v, want GARBAGE_ARGS", err)
		}
		// The connection carries on.
		var g nfs3.GetattrRes
		c.call(nfs3.ProcGetattr, &nfs3.GetattrArgs{Object: root}, &g)
		c.ok("GETATTR after garbage", g.Status)
	})

	t.Run("RetransmittedRenameIsReplayed", func(t *testing.T) {
		c.t = t
		var cr nfs3.CreateRes
		c.call(nfs3.ProcCreate, &nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: tmp, Name: "1700000001.M2P2.wire"}, Mode: nfs3.Guarded}, &cr)
		c.ok("CREATE", cr.Status)
		args := &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: tmp, Name: "1700000001.M2P2.wire"}, To: nfs3.DirOpArgs{Dir: newDir, Name: "1700000001.M2P2.wire"}}
		c.xid++
		var r1, r2 nfs3.RenameRes
		if err := c.callXID(c.xid, nfs3.ProcRename, args, &r1); err != nil {
			t.Fatal(err)
		}
		if err := c.callXID(c.xid, nfs3.ProcRename, args, &r2); err != nil {
			t.Fatal(err)
		}
		// Without the DRC the retransmission would execute and say NOENT.
		if r1.Status != nfs3.StatusOK || r2.Status != nfs3.StatusOK {
			t.Fatalf("RENAME %v, retransmission %v; want OK twice (replayed)", r1.Status, r2.Status)
		}
	})

	t.Run("EveryProcedure", func(t *testing.T) {
		c.t = t
		var cr nfs3.CreateRes
		c.call(nfs3.ProcCreate, &nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: root, Name: "every"}, Mode: nfs3.Unchecked}, &cr)
		c.ok("CREATE", cr.Status)
		f := cr.Object
		steps := []struct {
			proc nfs3.Proc
			args n3Encoder
			res  n3Decoder
			want nfs3.Status
		}{
			{nfs3.ProcGetattr, &nfs3.GetattrArgs{Object: f}, &nfs3.GetattrRes{}, nfs3.StatusOK},
			{nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: f, NewAttr: nfs3.SetAttr{Mode: ptr[uint32](0o640)}}, &nfs3.SetattrRes{}, nfs3.StatusOK},
			{nfs3.ProcLookup, &nfs3.LookupArgs{Dir: root, Name: "every"}, &nfs3.LookupRes{}, nfs3.StatusOK},
			{nfs3.ProcAccess, &nfs3.AccessArgs{Object: f, Access: 0x3f}, &nfs3.AccessRes{}, nfs3.StatusOK},
			{nfs3.ProcWrite, &nfs3.WriteArgs{File: f, Count: 4, Stable: nfs3.Unstable, Data: []byte("data")}, &nfs3.WriteRes{}, nfs3.StatusOK},
			{nfs3.ProcCommit, &nfs3.CommitArgs{File: f}, &nfs3.CommitRes{}, nfs3.StatusOK},
			{nfs3.ProcRead, &nfs3.ReadArgs{File: f, Count: 4}, &nfs3.ReadRes{}, nfs3.StatusOK},
			{nfs3.ProcMkdir, &nfs3.MkdirArgs{Where: nfs3.DirOpArgs{Dir: root, Name: "everydir"}}, &nfs3.MkdirRes{}, nfs3.StatusOK},
			{nfs3.ProcSymlink, &nfs3.SymlinkArgs{Where: nfs3.DirOpArgs{Dir: root, Name: "everylink"}, Target: "every"}, &nfs3.SymlinkRes{}, nfs3.StatusOK},
			{nfs3.ProcMknod, &nfs3.MknodArgs{Where: nfs3.DirOpArgs{Dir: root, Name: "everyfifo"}, Type: nfs3.TypeFifo}, &nfs3.MknodRes{}, nfs3.StatusOK},
			{nfs3.ProcLink, &nfs3.LinkArgs{File: f, Link: nfs3.DirOpArgs{Dir: root, Name: "everyhard"}}, &nfs3.LinkRes{}, nfs3.StatusOK},
			{nfs3.ProcRename, &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: root, Name: "everyhard"}, To: nfs3.DirOpArgs{Dir: root, Name: "everyhard2"}}, &nfs3.RenameRes{}, nfs3.StatusOK},
			{nfs3.ProcReaddir, &nfs3.ReaddirArgs{Dir: root, Count: 8192}, &nfs3.ReaddirRes{}, nfs3.StatusOK},
			{nfs3.ProcReaddirplus, &nfs3.ReaddirplusArgs{Dir: root, DirCount: 8192, MaxCount: 32768}, &nfs3.ReaddirplusRes{}, nfs3.StatusOK},
			{nfs3.ProcRemove, &nfs3.RemoveArgs{Dir: root, Name: "everyhard2"}, &nfs3.RemoveRes{}, nfs3.StatusOK},
			{nfs3.ProcRmdir, &nfs3.RmdirArgs{Dir: root, Name: "everydir"}, &nfs3.RmdirRes{}, nfs3.StatusOK},
			{nfs3.ProcFsstat, &nfs3.FsstatArgs{Object: root}, &nfs3.FsstatRes{}, nfs3.StatusOK},
			{nfs3.ProcFsinfo, &nfs3.FsinfoArgs{Object: root}, &nfs3.FsinfoRes{}, nfs3.StatusOK},
			{nfs3.ProcPathconf, &nfs3.PathconfArgs{Object: root}, &nfs3.PathconfRes{}, nfs3.StatusOK},
			{nfs3.ProcReadlink, &nfs3.ReadlinkArgs{Object: f}, &nfs3.ReadlinkRes{}, nfs3.StatusInval},
			{nfs3.ProcRmdir, &nfs3.RmdirArgs{Dir: root, Name: "every"}, &nfs3.RmdirRes{}, nfs3.StatusNotDir},
		}
		for _, s := range steps {
			c.call(s.proc, s.args, s.res)
			if got := s.res.(nfs3.Result).Stat(); got != s.want {
				t.Errorf("%v over TCP: %v, want %v", s.proc, got, s.want)
			}
		}
		c.xid++
		if err := c.send(c.xid, nfs3.ProcNull, nil); err != nil {
			t.Fatal(err)
		}
		if err := c.recv(c.xid, n3Void{}); err != nil {
			t.Errorf("NULL over TCP: %v", err)
		}
	})

	t.Run("ConcurrentDeliveries", func(t *testing.T) {
		const conns, each = 6, 40
		var wg sync.WaitGroup
		errs := make(chan string, conns)
		for i := range conns {
			wg.Add(1)
			go func() {
				defer wg.Done()
				ct := &n3SubT{TB: t, errs: errs}
				cc := n3Dial(ct, addr, 0, 0)
				defer func() {
					if r := recover(); r != nil && r != errN3Abort {
						panic(r)
					}
				}()
				for j := range each {
					cc.deliver(tmp, newDir, fmt.Sprintf("1700001000.M%dP%d.c%d", j, i, i), []byte(fmt.Sprintf("msg %d/%d\n", i, j)))
				}
			}()
		}
		wg.Wait()
		close(errs)
		for e := range errs {
			t.Error(e)
		}
		// Every message listed exactly once in new/, in small pages.
		c.t = t
		seen := map[string]int{}
		var cookie uint64
		for {
			var r nfs3.ReaddirRes
			c.call(nfs3.ProcReaddir, &nfs3.ReaddirArgs{Dir: newDir, Cookie: cookie, Count: 1024}, &r)
			c.ok("READDIR", r.Status)
			for _, en := range r.Entries {
				seen[en.Name]++
			}
			if r.EOF {
				break
			}
			cookie = r.Entries[len(r.Entries)-1].Cookie
		}
		for i := range conns {
			for j := range each {
				if name := fmt.Sprintf("1700001000.M%dP%d.c%d", j, i, i); seen[name] != 1 {
					t.Errorf("%s listed %d times", name, seen[name])
				}
			}
		}
	})
}

// n3SubT lets client helpers run on other goroutines: Fatalf records the
// message and unwinds that goroutine instead of calling t.FailNow there.
type n3SubT struct {
	testing.TB
	errs chan<- string
}

var errN3Abort = errors.New("n3: goroutine aborted")

func (s *n3SubT) Fatalf(format string, args ...any) {
	s.errs <- fmt.Sprintf(format, args...)
	panic(errN3Abort)
}

func (s *n3SubT) Fatal(args ...any) {
	s.errs <- fmt.Sprint(args...)
	panic(errN3Abort)
}

// n3Void decodes an empty result.
type n3Void struct{}

func (n3Void) Decode(*xdr.Decoder) {}

// TestNFS3OverUDP runs calls as datagrams (no record marking), as UDP
// mounts and libnfs's UDP mode do.
func TestNFS3OverUDP(t *testing.T) {
	st := mdtest.NewOpts(t, maildirfs.Options{ExportID: 1})
	auth := &n3Auth{exports: map[uint32]*n3Export{1: {store: st}}}
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{}
	s.Register(&NFS3{Auth: auth})
	done := make(chan error, 1)
	go func() { done <- s.ServeUDP(pc) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-done; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServeUDP: %v", err)
		}
	})
	conn, err := net.Dial("udp", pc.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parms := rpc.AuthSysParms{MachineName: "udptest"}
	xid := uint32(5000)
	call := func(proc nfs3.Proc, args n3Encoder, res n3Decoder) {
		t.Helper()
		xid++
		e := xdr.NewEncoder(nil)
		rpc.CallHeader{XID: xid, Prog: nfs3.Program, Vers: nfs3.Version, Proc: uint32(proc), Cred: parms.Credential()}.Encode(e)
		args.Encode(e)
		if _, err := conn.Write(e.Bytes()); err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, 65536)
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("%v over UDP: %v", proc, err)
		}
		d := xdr.NewDecoder(buf[:n])
		if got, err := rpc.DecodeReply(d); err != nil || got != xid {
			t.Fatalf("%v over UDP: xid %d err %v", proc, got, err)
		}
		res.Decode(d)
		if err := d.Done(); err != nil {
			t.Fatalf("%v over UDP: reply: %v", proc, err)
		}
	}
	var g nfs3.GetattrRes
	call(nfs3.ProcGetattr, &nfs3.GetattrArgs{Object: st.Root()}, &g)
	if g.Status != nfs3.StatusOK || g.Attr.Type != nfs3.TypeDir {
		t.Errorf("GETATTR over UDP: %v %+v", g.Status, g.Attr)
	}
	var l nfs3.LookupRes
	call(nfs3.ProcLookup, &nfs3.LookupArgs{Dir: st.Root(), Name: "Maildir"}, &l)
	if l.Status != nfs3.StatusOK {
		t.Fatalf("LOOKUP over UDP: %v", l.Status)
	}
	var r nfs3.ReaddirplusRes
	call(nfs3.ProcReaddirplus, &nfs3.ReaddirplusArgs{Dir: l.Object, DirCount: 1024, MaxCount: 8192}, &r)
	if r.Status != nfs3.StatusOK || !r.EOF || len(r.Entries) != 5 { // ., .., tmp, new, cur
		t.Errorf("READDIRPLUS over UDP: %v eof %v %d entries", r.Status, r.EOF, len(r.Entries))
	}
}
