package bench

import (
	"cmp"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"

	"os"
	"path"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// RawOptions configures the raw client.
type RawOptions struct {
	// Unstable writes messages with UNSTABLE WRITEs followed by one COMMIT
	// (rewriting if the write verifier changed) instead of FILE_SYNC WRITEs.
	Unstable bool
	// DirCount and MaxCount are READDIRPLUS's budgets. Zero: 64 KiB and
	// 256 KiB (servers cap them at their own limits).
	DirCount, MaxCount uint32
}

// RawDialer returns a Dialer for the bench's own minimal NFSv3 client: one
// TCP connection, one call at a time, built directly on internal/rpc and
// internal/nfs3. It is the fallback driver (nfsbench -client raw) and a
// cross-check of package client. A delivery is GUARDED CREATE in tmp/, WRITEs
// of at most 64 KiB (FILE_SYNC, or UNSTABLE + COMMIT), RENAME into new/.
func RawDialer(opts RawOptions) Dialer {
	return func(ctx context.Context, url string) (Session, error) { return dialRaw(ctx, url, opts) }
}

// DialRaw is RawDialer(RawOptions{}).
func DialRaw(ctx context.Context, url string) (Session, error) {
	return dialRaw(ctx, url, RawOptions{})
}

func dialRaw(ctx context.Context, rawURL string, opts RawOptions) (Session, error) {
	u, err := parseNFSURL(rawURL)
	if err != nil {
		return nil, err
	}
	auth := rpc.AuthSysParms{Stamp: uint32(time.Now().Unix()), MachineName: "nfsbench", UID: u.uid, GID: u.gid}
	mc, err := dialRPC(ctx, net.JoinHostPort(u.host, strconv.Itoa(u.mountPort)), auth)
	if err != nil {
		return nil, err
	}
	var mres nfs3.MountRes3
	err = mc.call(ctx, nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcMnt),
		func(e *xdr.Encoder) { (&nfs3.DirPath{Path: u.path}).Encode(e) }, mres.Decode)
	mc.close()
	if err != nil {
		return nil, fmt.Errorf("MNT %s: %w", u.path, err)
	}
	if mres.Status != nfs3.MountOK {
		return nil, fmt.Errorf("MNT %s: %w", u.path, mres.Status)
	}
	c, err := dialRPC(ctx, net.JoinHostPort(u.host, strconv.Itoa(u.nfsPort)), auth)
	if err != nil {
		return nil, err
	}
	return &rawSession{c: c, root: mres.Handle, dirs: map[string]mailboxFH{}, opts: opts}, nil
}

type nfsURL struct {
	host               string
	path               string
	nfsPort, mountPort int
	uid, gid           uint32
}

// parseNFSURL reads a libnfs URL as client.ParseURL does (bare and
// bracketed IPv6 hosts too), nfs://host/path?nfsport=P&mountport=P&uid=U&gid=G;
// there is no portmapper query here: NFS defaults to 2049 and MOUNT to the
// NFS port.
func parseNFSURL(s string) (nfsURL, error) {
	t, err := client.ParseURL(s)
	if err != nil {
		return nfsURL{}, err
	}
	r := nfsURL{host: t.Host, path: t.Path, nfsPort: cmp.Or(t.NFSPort, 2049)}
	r.mountPort = cmp.Or(t.MountPort, r.nfsPort)
	if t.UID != nil {
		r.uid = *t.UID
	}
	if t.GID != nil {
		r.gid = *t.GID
	}
	return r, nil
}

// rpcConn is a synchronous RPC connection: one call at a time.
type rpcConn struct {
	mu   sync.Mutex
	nc   net.Conn
	rr   *rpc.RecordReader
	xid  uint32
	cred rpc.OpaqueAuth
	enc  xdr.Encoder
}

func dialRPC(ctx context.Context, addr string, auth rpc.AuthSysParms) (*rpcConn, error) {
	var d net.Dialer
	nc, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	var x [4]byte
	_, _ = rand.Read(x[:])
	return &rpcConn{nc: nc, rr: rpc.NewRecordReader(nc, 0), cred: auth.Credential(),
		xid: uint32(x[0])<<24 | uint32(x[1])<<16 | uint32(x[2])<<8 | uint32(x[3])}, nil
}

func (c *rpcConn) close() error { return c.nc.Close() }

// call sends one call and decodes its reply with dec; the reply must be
// consumed exactly.
func (c *rpcConn) call(ctx context.Context, prog, vers, proc uint32, args func(*xdr.Encoder), dec func(*xdr.Decoder)) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.xid++
	xid := c.xid
	c.enc.Reset()
	c.enc.Uint32(0) // record mark, filled below
	rpc.CallHeader{XID: xid, Prog: prog, Vers: vers, Proc: proc, Cred: c.cred}.Encode(&c.enc)
	args(&c.enc)
	buf := c.enc.Bytes()
	rpc.PutRecordMark(buf)
	if dl, ok := ctx.Deadline(); ok {
		_ = c.nc.SetDeadline(dl)
	} else {
		_ = c.nc.SetDeadline(time.Time{})
	}
	if _, err := c.nc.Write(buf); err != nil {
		return err
	}
	for {
		rec, err := c.rr.Next()
		if err != nil {
			return err
		}
		d := xdr.NewDecoder(rec)
		got, err := rpc.DecodeReply(d)
		if got != xid {
			continue // a late reply to an earlier call
		}
		if err != nil {
			return err
		}
		dec(d)
		return d.Done()
	}
}

type mailboxFH struct{ tmp, new []byte }

type rawSession struct {
	c    *rpcConn
	opts RawOptions
	root []byte
	mu   sync.Mutex
	dirs map[string]mailboxFH // mailbox -> handles of tmp/ and new/
}

var rawSeq atomic.Uint64

func (s *rawSession) nfs(ctx context.Context, proc nfs3.Proc, args func(*xdr.Encoder), dec func(*xdr.Decoder)) error {
	return s.c.call(ctx, nfs3.Program, nfs3.Version, uint32(proc), args, dec)
}

func (s *rawSession) lookup(ctx context.Context, dir []byte, name string) ([]byte, error) {
	var res nfs3.LookupRes
	a := nfs3.LookupArgs{Dir: dir, Name: name}
	if err := s.nfs(ctx, nfs3.ProcLookup, a.Encode, res.Decode); err != nil {
		return nil, err
	}
	if res.Status != nfs3.StatusOK {
		return nil, fmt.Errorf("LOOKUP %s: %w", name, res.Status)
	}
	return res.Object, nil
}

func (s *rawSession) walk(ctx context.Context, p string) ([]byte, error) {
	fh := s.root
	for _, part := range strings.Split(path.Clean(p), "/") {
		if part == "" || part == "." {
			continue
		}
		var err error
		if fh, err = s.lookup(ctx, fh, part); err != nil {
			return nil, fmt.Errorf("%s: %w", p, err)
		}
	}
	return fh, nil
}

func (s *rawSession) mailbox(ctx context.Context, mb string) (mailboxFH, error) {
	s.mu.Lock()
	m, ok := s.dirs[mb]
	s.mu.Unlock()
	if ok {
		return m, nil
	}
	dir, err := s.walk(ctx, mb)
	if err != nil {
		return m, err
	}
	if m.tmp, err = s.lookup(ctx, dir, "tmp"); err != nil {
		return m, err
	}
	if m.new, err = s.lookup(ctx, dir, "new"); err != nil {
		return m, err
	}
	s.mu.Lock()
	s.dirs[mb] = m
	s.mu.Unlock()
	return m, nil
}

var rawHost = func() string {
	var b [3]byte
	_, _ = rand.Read(b[:])
	return "nfsbench" + hex.EncodeToString(b[:])
}()

// Deliver implements Session.
func (s *rawSession) Deliver(ctx context.Context, mb string, body []byte) error {
	m, err := s.mailbox(ctx, mb)
	if err != nil {
		return err
	}
	now := time.Now()
	name := fmt.Sprintf("%d.M%dP%dQ%d.%s", now.Unix(), now.Nanosecond()/1000, os.Getpid(), rawSeq.Add(1), rawHost)
	mode := uint32(0o600)
	ca := nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: m.tmp, Name: name}, Mode: nfs3.Guarded,
		Attr: nfs3.SetAttr{Mode: &mode}}
	var cr nfs3.CreateRes
	if err := s.nfs(ctx, nfs3.ProcCreate, ca.Encode, cr.Decode); err != nil {
		return err
	}
	if cr.Status != nfs3.StatusOK {
		return fmt.Errorf("CREATE tmp/%s: %w", name, cr.Status)
	}
	fh := cr.Object
	if fh == nil {
		if fh, err = s.lookup(ctx, m.tmp, name); err != nil {
			return err
		}
	}
	if err := s.write(ctx, fh, name, body); err != nil {
		return err
	}
	ra := nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: m.tmp, Name: name},
		To: nfs3.DirOpArgs{Dir: m.new, Name: fmt.Sprintf("%s,S=%d", name, len(body))}}
	var rr nfs3.RenameRes
	if err := s.nfs(ctx, nfs3.ProcRename, ra.Encode, rr.Decode); err != nil {
		return err
	}
	if rr.Status != nfs3.StatusOK {
		return fmt.Errorf("RENAME tmp/%s: %w", name, rr.Status)
	}
	return nil
}

// write writes body to fh: FILE_SYNC WRITEs, or UNSTABLE WRITEs and a
// COMMIT, all over again (up to 3 times) if the server's write verifier
// changed in between (it restarted or lost written data).
func (s *rawSession) write(ctx context.Context, fh []byte, name string, body []byte) error {
	const chunk = 64 << 10
	stable := nfs3.FileSync
	if s.opts.Unstable {
		stable = nfs3.Unstable
	}
	for try := 0; try < 3; try++ {
		var verf [nfs3.VerfSize]byte
		changed := false
		for off := 0; off < len(body); off += chunk {
			data := body[off:min(off+chunk, len(body))]
			wa := nfs3.WriteArgs{File: fh, Offset: uint64(off), Count: uint32(len(data)), Stable: stable, Data: data}
			var wr nfs3.WriteRes
			if err := s.nfs(ctx, nfs3.ProcWrite, wa.Encode, wr.Decode); err != nil {
				return err
			}
			if wr.Status != nfs3.StatusOK {
				return fmt.Errorf("WRITE tmp/%s: %w", name, wr.Status)
			}
			if wr.Count != uint32(len(data)) || wr.Committed < stable {
				return fmt.Errorf("WRITE tmp/%s: short or less stable than asked (%d of %d, %v)", name, wr.Count, len(data), wr.Committed)
			}
			if off > 0 && wr.Verf != verf {
				changed = true
			}
			verf = wr.Verf
		}
		if !s.opts.Unstable {
			return nil
		}
		ca := nfs3.CommitArgs{File: fh}
		var cr nfs3.CommitRes
		if err := s.nfs(ctx, nfs3.ProcCommit, ca.Encode, cr.Decode); err != nil {
			return err
		}
		if cr.Status != nfs3.StatusOK {
			return fmt.Errorf("COMMIT tmp/%s: %w", name, cr.Status)
		}
		if !changed && cr.Verf == verf {
			return nil
		}
	}
	return fmt.Errorf("WRITE tmp/%s: write verifier kept changing", name)
}

// ListPlus implements Session.
func (s *rawSession) ListPlus(ctx context.Context, dir string) (int, error) {
	fh, err := s.walk(ctx, dir)
	if err != nil {
		return 0, err
	}
	n := 0
	a := nfs3.ReaddirplusArgs{Dir: fh, DirCount: s.opts.DirCount, MaxCount: s.opts.MaxCount}
	if a.DirCount == 0 {
		a.DirCount = 64 << 10
	}
	if a.MaxCount == 0 {
		a.MaxCount = 256 << 10
	}
	for calls := 0; ; calls++ {
		if calls > 10_000_000 {
			return n, errors.New("READDIRPLUS: no end in sight")
		}
		var r nfs3.ReaddirplusRes
		if err := s.nfs(ctx, nfs3.ProcReaddirplus, a.Encode, r.Decode); err != nil {
			return n, err
		}
		if r.Status != nfs3.StatusOK {
			return n, fmt.Errorf("READDIRPLUS %s after %d entries: %w", dir, n, r.Status)
		}
		for _, e := range r.Entries {
			if e.Name != "." && e.Name != ".." {
				n++
			}
			a.Cookie = e.Cookie
		}
		a.Verf = r.Verf
		if r.EOF {
			return n, nil
		}
		if len(r.Entries) == 0 {
			return n, fmt.Errorf("READDIRPLUS %s: empty page without EOF after %d entries", dir, n)
		}
	}
}

// Close implements Session.
func (s *rawSession) Close() error { return s.c.close() }
