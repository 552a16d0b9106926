package interop

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"net"
	"strconv"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// rawConn is a deliberately simple RPC client for the tests: one TCP
// connection, one call at a time, AUTH_SYS. It uses only the shared wire
// codecs, so the tests do not depend on the client package. Every call's XID
// is recorded so strace output can be matched to calls.
type rawConn struct {
	c    net.Conn
	rr   *rpc.RecordReader
	w    *bufio.Writer
	cred rpc.OpaqueAuth
	xid  uint32
	enc  xdr.Encoder
}

// dialRaw connects from inside ns to port on host (default 127.0.0.1).
func dialRaw(ctx context.Context, ns *netnstest.NS, port int, uid, gid uint32, host ...string) (*rawConn, error) {
	h := "127.0.0.1"
	if len(host) > 0 {
		h = host[0]
	}
	c, err := ns.Dial(ctx, "tcp", net.JoinHostPort(h, strconv.Itoa(port)))
	if err != nil {
		return nil, err
	}
	var b [4]byte
	_, _ = rand.Read(b[:])
	return &rawConn{
		c:    c,
		rr:   rpc.NewRecordReader(c, rpc.MaxRecord),
		w:    bufio.NewWriterSize(c, 64<<10),
		cred: rpc.AuthSysParms{MachineName: "interop", UID: uid, GID: gid, GIDs: []uint32{gid}}.Credential(),
		// Start XIDs at a random point so they stand out in strace dumps.
		xid: binary.BigEndian.Uint32(b[:]) | 0x80000000,
	}, nil
}

func (r *rawConn) Close() error { return r.c.Close() }

// mountRaw mounts s's export as testUID over MOUNT and returns the root
// handle and a raw NFS connection, which t.Cleanup closes.
func mountRaw(ctx context.Context, t *testing.T, s *server) ([]byte, *rawConn) {
	t.Helper()
	mc, err := dialRaw(ctx, s.ns, mountPort, testUID, testGID)
	if err != nil {
		t.Fatal(err)
	}
	root, err := mc.mnt(s.root)
	mc.Close()
	if err != nil {
		t.Fatalf("MNT: %v", err)
	}
	c, err := dialRaw(ctx, s.ns, nfsPort, testUID, testGID)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return root, c
}

// nextXID returns the XID the next call will use.
func (r *rawConn) nextXID() uint32 { return r.xid + 1 }

// call sends one call and returns a decoder positioned at the results.
func (r *rawConn) call(prog, vers, proc uint32, args func(e *xdr.Encoder)) (*xdr.Decoder, error) {
	r.xid++
	xid := r.xid
	r.enc.Reset()
	r.enc.Uint32(0) // record mark, filled in below
	rpc.CallHeader{XID: xid, Prog: prog, Vers: vers, Proc: proc, Cred: r.cred}.Encode(&r.enc)
	if args != nil {
		args(&r.enc)
	}
	buf := r.enc.Bytes()
	rpc.PutRecordMark(buf)
	_ = r.c.SetDeadline(time.Now().Add(60 * time.Second))
	if _, err := r.w.Write(buf); err != nil {
		return nil, err
	}
	if err := r.w.Flush(); err != nil {
		return nil, err
	}
	for {
		rec, err := r.rr.Next()
		if err != nil {
			return nil, fmt.Errorf("reading reply to xid %#x: %w", xid, err)
		}
		// Copy: the record reader reuses its buffer.
		d := xdr.NewDecoder(append([]byte(nil), rec...))
		got, err := rpc.DecodeReply(d)
		if got != xid {
			continue // a stale reply; cannot happen with one call at a time
		}
		if err != nil {
			return nil, err
		}
		return d, nil
	}
}

// decodeRes decodes results into v and checks that nothing trails.
func decodeRes(d *xdr.Decoder, v interface{ Decode(*xdr.Decoder) }) error {
	v.Decode(d)
	return d.Done()
}

// mnt mounts path with MOUNT v3 and returns the root handle.
func (r *rawConn) mnt(path string) ([]byte, error) {
	d, err := r.call(nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcMnt), func(e *xdr.Encoder) {
		(&nfs3.DirPath{Path: path}).Encode(e)
	})
	if err != nil {
		return nil, err
	}
	var res nfs3.MountRes3
	if err := decodeRes(d, &res); err != nil {
		return nil, err
	}
	if res.Status != nfs3.MountOK {
		return nil, res.Status
	}
	return res.Handle, nil
}

func (r *rawConn) nfs(proc nfs3.Proc, args interface{ Encode(*xdr.Encoder) }, res interface{ Decode(*xdr.Decoder) }) error {
	d, err := r.call(nfs3.Program, nfs3.Version, uint32(proc), args.Encode)
	if err != nil {
		return fmt.Errorf("%v: %w", proc, err)
	}
	if err := decodeRes(d, res); err != nil {
		return fmt.Errorf("%v: decoding result: %w", proc, err)
	}
	return nil
}

// lookup returns the handle of name in dir.
func (r *rawConn) lookup(dir []byte, name string) ([]byte, error) {
	var res nfs3.LookupRes
	if err := r.nfs(nfs3.ProcLookup, &nfs3.LookupArgs{Dir: dir, Name: name}, &res); err != nil {
		return nil, err
	}
	if res.Status != nfs3.StatusOK {
		return nil, fmt.Errorf("LOOKUP %s: %w", name, res.Status)
	}
	return res.Object, nil
}

// lookupPath walks rel ("a/b/c") from dir.
func (r *rawConn) lookupPath(dir []byte, names ...string) ([]byte, error) {
	h := dir
	for _, n := range names {
		var err error
		if h, err = r.lookup(h, n); err != nil {
			return nil, err
		}
	}
	return h, nil
}

// create makes name in dir (GUARDED, mode 0600) and returns its handle.
func (r *rawConn) create(dir []byte, name string) ([]byte, error) {
	mode := uint32(0o600)
	var res nfs3.CreateRes
	args := &nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: dir, Name: name}, Mode: nfs3.Guarded, Attr: nfs3.SetAttr{Mode: &mode}}
	if err := r.nfs(nfs3.ProcCreate, args, &res); err != nil {
		return nil, err
	}
	if res.Status != nfs3.StatusOK {
		return nil, fmt.Errorf("CREATE %s: %w", name, res.Status)
	}
	if res.Object != nil {
		return res.Object, nil
	}
	return r.lookup(dir, name) // RFC 1813 allows a CREATE reply without a handle
}

// write writes data at off with the given stability; it loops over short writes.
func (r *rawConn) write(fh []byte, off uint64, data []byte, stable nfs3.StableHow) (nfs3.StableHow, error) {
	committed := nfs3.FileSync
	for len(data) > 0 {
		n := min(len(data), 64<<10)
		var res nfs3.WriteRes
		args := &nfs3.WriteArgs{File: fh, Offset: off, Count: uint32(n), Stable: stable, Data: data[:n]}
		if err := r.nfs(nfs3.ProcWrite, args, &res); err != nil {
			return 0, err
		}
		if res.Status != nfs3.StatusOK {
			return 0, fmt.Errorf("WRITE: %w", res.Status)
		}
		if res.Count == 0 || int(res.Count) > n {
			return 0, fmt.Errorf("WRITE: server wrote %d of %d bytes", res.Count, n)
		}
		if res.Committed < stable {
			return 0, fmt.Errorf("WRITE: asked for %v, server committed only %v", stable, res.Committed)
		}
		committed = min(committed, res.Committed)
		data = data[res.Count:]
		off += uint64(res.Count)
	}
	return committed, nil
}

// commit sends COMMIT for the whole file.
func (r *rawConn) commit(fh []byte) error {
	var res nfs3.CommitRes
	if err := r.nfs(nfs3.ProcCommit, &nfs3.CommitArgs{File: fh}, &res); err != nil {
		return err
	}
	if res.Status != nfs3.StatusOK {
		return fmt.Errorf("COMMIT: %w", res.Status)
	}
	return nil
}

// rename moves fromDir/from to toDir/to.
func (r *rawConn) rename(fromDir []byte, from string, toDir []byte, to string) error {
	var res nfs3.RenameRes
	args := &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: fromDir, Name: from}, To: nfs3.DirOpArgs{Dir: toDir, Name: to}}
	if err := r.nfs(nfs3.ProcRename, args, &res); err != nil {
		return err
	}
	if res.Status != nfs3.StatusOK {
		return fmt.Errorf("RENAME %s -> %s: %w", from, to, res.Status)
	}
	return nil
}

// getattr returns the attributes of fh, or the NFS status as the error.
func (r *rawConn) getattr(fh []byte) (nfs3.Fattr, error) {
	var res nfs3.GetattrRes
	if err := r.nfs(nfs3.ProcGetattr, &nfs3.GetattrArgs{Object: fh}, &res); err != nil {
		return nfs3.Fattr{}, err
	}
	if res.Status != nfs3.StatusOK {
		return nfs3.Fattr{}, res.Status
	}
	return res.Attr, nil
}

// readAll reads fh from offset 0 to EOF.
func (r *rawConn) readAll(fh []byte) ([]byte, error) {
	var out []byte
	for {
		var res nfs3.ReadRes
		if err := r.nfs(nfs3.ProcRead, &nfs3.ReadArgs{File: fh, Offset: uint64(len(out)), Count: 64 << 10}, &res); err != nil {
			return nil, err
		}
		if res.Status != nfs3.StatusOK {
			return nil, fmt.Errorf("READ: %w", res.Status)
		}
		out = append(out, res.Data...)
		if res.EOF || len(res.Data) == 0 {
			return out, nil
		}
	}
}
