package nfsd

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"reflect"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// n3Export is one export of n3Auth.
type n3Export struct {
	store    *mdtest.Store
	readOnly bool
	deny     bool              // every host refused (ErrAccess)
	wrap     func(Store) Store // fault injection around the real store
}

// n3Auth is a test Authorizer: exports are routed by the export ID in the
// handle; AUTH_SYS uid/gid pass through unsquashed (root stays root), and
// a call without AUTH_SYS runs as nobody.
type n3Auth struct {
	exports map[uint32]*n3Export
}

func (a *n3Auth) Authorize(req *Request, h []byte) (Access, error) {
	id, ok := maildirfs.ExportIDOf(h)
	if !ok {
		return Access{}, maildirfs.ErrBadHandle
	}
	ex := a.exports[id]
	switch {
	case ex == nil:
		return Access{}, maildirfs.ErrStale
	case ex.deny:
		return Access{}, ErrAccess
	}
	cred := maildirfs.Cred{UID: 65534, GID: 65534}
	if req.AuthSys != nil {
		cred = maildirfs.Cred{UID: req.AuthSys.UID, GID: req.AuthSys.GID, GIDs: req.AuthSys.GIDs}
	}
	var st Store = ex.store.FS
	if ex.wrap != nil {
		st = ex.wrap(st)
	}
	return Access{Store: st, Cred: cred, ReadOnly: ex.readOnly, Export: ex.store.Dir}, nil
}

// n3Env calls NFS3.Serve directly with encoded arguments.
type n3Env struct {
	t    testing.TB
	n    *NFS3
	auth *n3Auth
	st   *mdtest.Store // export 1
	root []byte
	cred *rpc.AuthSysParms
	// mayHaveRun marks the calls as retransmissions of calls an earlier
	// run began (Request.MayHaveRun).
	mayHaveRun bool
	// completed also marks them Request.Completed (this run's calls
	// whose replies left the duplicate request cache).
	completed bool
}

func newN3Env(t *testing.T) *n3Env { return newN3EnvTB(t) }

func newN3EnvTB(t testing.TB) *n3Env {
	t.Helper()
	st := mdtest.NewOpts(t, maildirfs.Options{ExportID: 1})
	auth := &n3Auth{exports: map[uint32]*n3Export{1: {store: st}}}
	return &n3Env{
		t: t, n: &NFS3{Auth: auth}, auth: auth, st: st, root: st.Root(),
		cred: &rpc.AuthSysParms{MachineName: "test", UID: 0, GID: 0},
	}
}

// addExport opens another export with the given ID and returns it.
func (e *n3Env) addExport(id uint32) *n3Export {
	ex := &n3Export{store: mdtest.NewOpts(e.t, maildirfs.Options{ExportID: id})}
	e.auth.exports[id] = ex
	return ex
}

type n3Encoder interface{ Encode(*xdr.Encoder) }
type n3Decoder interface{ Decode(*xdr.Decoder) }

// raw runs one call with args as the argument bytes.
func (e *n3Env) raw(proc nfs3.Proc, args []byte) (Status, []byte) {
	return e.rawCtx(context.Background(), proc, args)
}

func (e *n3Env) rawCtx(ctx context.Context, proc nfs3.Proc, args []byte) (Status, []byte) {
	req := &Request{
		XID: 1, Prog: nfs3.Program, Vers: nfs3.Version, Proc: uint32(proc),
		AuthSys: e.cred, Cred: rpc.OpaqueAuth{Flavor: 1},
		Addr: netip.MustParseAddrPort("127.0.0.1:700"), Net: "tcp",
		Local:      netip.MustParseAddrPort("127.0.0.1:2049"),
		Args:       xdr.NewDecoder(args),
		MayHaveRun: e.mayHaveRun || e.completed,
		Completed:  e.completed,
	}
	res := xdr.NewEncoder(nil)
	st := e.n.Serve(ctx, req, res)
	return st, res.Bytes()
}

// call runs proc and decodes the whole reply into res.
func (e *n3Env) call(proc nfs3.Proc, args n3Encoder, res n3Decoder) {
	e.t.Helper()
	enc := xdr.NewEncoder(nil)
	args.Encode(enc)
	st, out := e.raw(proc, enc.Bytes())
	if st != StatusOK {
		e.t.Fatalf("%v: rpc status %+v", proc, st)
	}
	d := xdr.NewDecoder(out)
	res.Decode(d)
	if err := d.Done(); err != nil {
		e.t.Fatalf("%v: decoding reply: %v (%x)", proc, err, out)
	}
}

func (e *n3Env) wantStatus(what string, got, want nfs3.Status) {
	e.t.Helper()
	if got != want {
		e.t.Fatalf("%s: status %v, want %v", what, got, want)
	}
}

func (e *n3Env) lookup(dir []byte, name string) nfs3.LookupRes {
	e.t.Helper()
	var r nfs3.LookupRes
	e.call(nfs3.ProcLookup, &nfs3.LookupArgs{Dir: dir, Name: name}, &r)
	return r
}

func (e *n3Env) mustLookup(dir []byte, name string) []byte {
	e.t.Helper()
	r := e.lookup(dir, name)
	e.wantStatus("LOOKUP "+name, r.Status, nfs3.StatusOK)
	return r.Object
}

func (e *n3Env) create(dir []byte, name string, mode nfs3.CreateMode, attr nfs3.SetAttr, verf [8]byte) nfs3.CreateRes {
	e.t.Helper()
	var r nfs3.CreateRes
	e.call(nfs3.ProcCreate, &nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: dir, Name: name}, Mode: mode, Attr: attr, Verf: verf}, &r)
	return r
}

func (e *n3Env) mustCreate(dir []byte, name string) []byte {
	e.t.Helper()
	r := e.create(dir, name, nfs3.Unchecked, nfs3.SetAttr{Mode: ptr[uint32](0o644)}, [8]byte{})
	e.wantStatus("CREATE "+name, r.Status, nfs3.StatusOK)
	if r.Object == nil || r.ObjAttr == nil {
		e.t.Fatalf("CREATE %s: no handle or attributes", name)
	}
	return r.Object
}

func (e *n3Env) write(fh []byte, off uint64, data []byte, stable nfs3.StableHow) nfs3.WriteRes {
	e.t.Helper()
	var r nfs3.WriteRes
	e.call(nfs3.ProcWrite, &nfs3.WriteArgs{File: fh, Offset: off, Count: uint32(len(data)), Stable: stable, Data: data}, &r)
	return r
}

func (e *n3Env) getattr(fh []byte) nfs3.GetattrRes {
	e.t.Helper()
	var r nfs3.GetattrRes
	e.call(nfs3.ProcGetattr, &nfs3.GetattrArgs{Object: fh}, &r)
	return r
}

func ptr[T any](v T) *T { return &v }

// wantWccAfter fails unless w carries post-op attributes (RFC 1813: wcc
// data on success and failure).
func (e *n3Env) wantWccAfter(what string, w nfs3.WccData) {
	e.t.Helper()
	if w.After == nil {
		e.t.Errorf("%s: wcc_data without post-op attributes", what)
	}
}

func TestNFS3Program(t *testing.T) {
	n := &NFS3{}
	if n.Prog() != 100003 {
		t.Errorf("Prog = %d", n.Prog())
	}
	if lo, hi := n.Versions(); lo != 3 || hi != 3 {
		t.Errorf("Versions = %d..%d", lo, hi)
	}
	nonIdem := map[nfs3.Proc]bool{nfs3.ProcSetattr: true, nfs3.ProcWrite: true, nfs3.ProcCreate: true,
		nfs3.ProcMkdir: true, nfs3.ProcSymlink: true, nfs3.ProcMknod: true, nfs3.ProcRemove: true,
		nfs3.ProcRmdir: true, nfs3.ProcRename: true, nfs3.ProcLink: true}
	for p := nfs3.ProcNull; p <= nfs3.ProcCommit+1; p++ {
		if got := n.NonIdempotent(3, uint32(p)); got != nonIdem[p] {
			t.Errorf("NonIdempotent(3, %v) = %v", p, got)
		}
		if n.NonIdempotent(2, uint32(p)) {
			t.Errorf("NonIdempotent(2, %v) = true", p)
		}
	}
}

func TestNFS3Garbage(t *testing.T) {
	e := newN3Env(t)
	enc := xdr.NewEncoder(nil)
	(&nfs3.GetattrArgs{Object: e.root}).Encode(enc)
	good := enc.Bytes()
	tests := []struct {
		name string
		proc nfs3.Proc
		args []byte
		want Status
	}{
		{"NullOK", nfs3.ProcNull, nil, StatusOK},
		{"NullTrailing", nfs3.ProcNull, []byte{0, 0, 0, 0}, StatusGarbage},
		{"GetattrOK", nfs3.ProcGetattr, good, StatusOK},
		{"GetattrTruncated", nfs3.ProcGetattr, good[:len(good)-4], StatusGarbage},
		{"GetattrTrailing", nfs3.ProcGetattr, append(append([]byte{}, good...), 0, 0, 0, 0), StatusGarbage},
		{"HandleTooLong", nfs3.ProcGetattr, append([]byte{0, 0, 0, 65}, make([]byte, 68)...), StatusGarbage},
		{"WriteCountMismatch", nfs3.ProcWrite, func() []byte {
			en := xdr.NewEncoder(nil)
			(&nfs3.WriteArgs{File: e.root, Count: 9, Data: []byte("abc")}).Encode(en)
			return en.Bytes()
		}(), StatusGarbage},
		{"ReadTrailing", nfs3.ProcRead, append(append([]byte{}, good...), make([]byte, 16)...), StatusGarbage},
		{"UnknownProc", 22, nil, StatusProcUnavail},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if st, _ := e.raw(tt.proc, tt.args); st != tt.want {
				t.Errorf("status %+v, want %+v", st, tt.want)
			}
		})
	}
}

func TestNFS3Handles(t *testing.T) {
	e := newN3Env(t)
	denied := e.addExport(3)
	denied.deny = true
	other := mdtest.NewOpts(t, maildirfs.Options{ExportID: 9}) // not exported
	garbage := bytes.Repeat([]byte{0x5a}, 40)
	forged := append([]byte{}, e.root...)
	forged[len(forged)-1] ^= 1
	tests := []struct {
		name string
		fh   []byte
		want nfs3.Status
	}{
		{"Root", e.root, nfs3.StatusOK},
		{"Empty", []byte{}, nfs3.StatusBadHandle},
		{"Garbage", garbage, nfs3.StatusBadHandle},
		{"ForgedMAC", forged, nfs3.StatusBadHandle},
		{"UnknownExport", other.Root(), nfs3.StatusStale},
		{"DeniedHost", denied.store.Root(), nfs3.StatusAcces},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e.wantStatus("GETATTR", e.getattr(tt.fh).Status, tt.want)
			// Every procedure checks its handle, not only GETATTR.
			var r nfs3.AccessRes
			e.call(nfs3.ProcAccess, &nfs3.AccessArgs{Object: tt.fh, Access: 1}, &r)
			e.wantStatus("ACCESS", r.Status, tt.want)
			var w nfs3.WriteRes
			e.call(nfs3.ProcWrite, &nfs3.WriteArgs{File: tt.fh, Count: 1, Data: []byte{1}}, &w)
			if tt.want != nfs3.StatusOK {
				e.wantStatus("WRITE", w.Status, tt.want)
			}
		})
	}
}

func TestNFS3Getattr(t *testing.T) {
	e := newN3Env(t)
	r := e.getattr(e.root)
	e.wantStatus("GETATTR", r.Status, nfs3.StatusOK)
	if r.Attr.Type != nfs3.TypeDir || r.Attr.FSID != e.st.FSID() || r.Attr.Mode != 0o755 {
		t.Errorf("root attributes %+v", r.Attr)
	}
	// A removed file's handle is STALE.
	fh := e.mustCreate(e.root, "gone")
	var rm nfs3.RemoveRes
	e.call(nfs3.ProcRemove, &nfs3.RemoveArgs{Dir: e.root, Name: "gone"}, &rm)
	e.wantStatus("REMOVE", rm.Status, nfs3.StatusOK)
	e.wantStatus("GETATTR removed", e.getattr(fh).Status, nfs3.StatusStale)
}

func TestNFS3Setattr(t *testing.T) {
	e := newN3Env(t)
	fh := e.mustCreate(e.root, "f")
	before := e.getattr(fh).Attr

	t.Run("ModeAndSize", func(t *testing.T) {
		e.write(fh, 0, []byte("0123456789"), nfs3.FileSync)
		var r nfs3.SetattrRes
		e.call(nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: fh, NewAttr: nfs3.SetAttr{Mode: ptr[uint32](0o100600), Size: ptr[uint64](3)}}, &r)
		e.wantStatus("SETATTR", r.Status, nfs3.StatusOK)
		if r.Wcc.Before == nil || r.Wcc.After == nil {
			t.Fatalf("wcc %+v", r.Wcc)
		}
		if r.Wcc.Before.Size != 10 || r.Wcc.After.Size != 3 || r.Wcc.After.Mode != 0o600 {
			t.Errorf("before %+v after size %d mode %o", r.Wcc.Before, r.Wcc.After.Size, r.Wcc.After.Mode)
		}
	})
	t.Run("ClientTime", func(t *testing.T) {
		var r nfs3.SetattrRes
		e.call(nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: fh, NewAttr: nfs3.SetAttr{Mtime: nfs3.SetToClientTime, MtimeVal: nfs3.Time{Seconds: 1234567890, Nseconds: 5}}}, &r)
		e.wantStatus("SETATTR", r.Status, nfs3.StatusOK)
		if got := r.Wcc.After.Mtime; got != (nfs3.Time{Seconds: 1234567890, Nseconds: 5}) {
			t.Errorf("mtime %+v", got)
		}
	})
	t.Run("GuardMismatch", func(t *testing.T) {
		var r nfs3.SetattrRes
		e.call(nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: fh, NewAttr: nfs3.SetAttr{Mode: ptr[uint32](0o644)},
			Guard: nfs3.Guard{Check: true, Ctime: before.Ctime}}, &r)
		e.wantStatus("SETATTR guarded", r.Status, nfs3.StatusNotSync)
		e.wantWccAfter("SETATTR guarded", r.Wcc)
	})
	t.Run("GuardMatch", func(t *testing.T) {
		cur := e.getattr(fh).Attr
		var r nfs3.SetattrRes
		e.call(nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: fh, NewAttr: nfs3.SetAttr{Mode: ptr[uint32](0o640)},
			Guard: nfs3.Guard{Check: true, Ctime: cur.Ctime}}, &r)
		e.wantStatus("SETATTR guarded", r.Status, nfs3.StatusOK)
	})
	t.Run("NotOwner", func(t *testing.T) {
		e.cred = &rpc.AuthSysParms{UID: 1000, GID: 1000}
		defer func() { e.cred = &rpc.AuthSysParms{} }()
		var r nfs3.SetattrRes
		e.call(nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: fh, NewAttr: nfs3.SetAttr{Mode: ptr[uint32](0o777)}}, &r)
		e.wantStatus("SETATTR by other user", r.Status, nfs3.StatusPerm)
		e.wantWccAfter("SETATTR by other user", r.Wcc)
	})
}

func TestNFS3Lookup(t *testing.T) {
	e := newN3Env(t)
	md := e.mustLookup(e.root, "Maildir")
	r := e.lookup(md, "new")
	e.wantStatus("LOOKUP new", r.Status, nfs3.StatusOK)
	if r.ObjAttr == nil || r.ObjAttr.Type != nfs3.TypeDir || r.DirAttr == nil {
		t.Errorf("LOOKUP attributes obj=%v dir=%v", r.ObjAttr, r.DirAttr)
	}
	if dot := e.mustLookup(md, "."); e.getattr(dot).Attr.FileID != e.getattr(md).Attr.FileID {
		t.Error(`LOOKUP "." is not the directory`)
	}
	if up := e.mustLookup(e.root, ".."); e.getattr(up).Attr.FileID != e.getattr(e.root).Attr.FileID {
		t.Error(`LOOKUP ".." at the root is not the root`)
	}
	for _, c := range []struct {
		name string
		want nfs3.Status
	}{
		{"missing", nfs3.StatusNoEnt},
		{string(bytes.Repeat([]byte{'n'}, 256)), nfs3.StatusNameTooLong},
		{"", nfs3.StatusNoEnt},
		{"a/b", nfs3.StatusInval},
	} {
		r := e.lookup(md, c.name)
		e.wantStatus(fmt.Sprintf("LOOKUP %.20q", c.name), r.Status, c.want)
		if r.DirAttr == nil {
			t.Errorf("LOOKUP %.20q failure without dir attributes", c.name)
		}
	}
	// 255 bytes is allowed: NOENT, not NAMETOOLONG.
	e.wantStatus("LOOKUP 255", e.lookup(md, string(bytes.Repeat([]byte{'n'}, 255))).Status, nfs3.StatusNoEnt)
	// LOOKUP in a file is NOTDIR.
	fh := e.mustCreate(e.root, "plain")
	e.wantStatus("LOOKUP in file", e.lookup(fh, "x").Status, nfs3.StatusNotDir)
}

func TestNFS3Access(t *testing.T) {
	e := newN3Env(t)
	fh := e.mustCreate(e.root, "f") // root-owned, 0644
	all := uint32(0x3f)
	access := func(fh []byte) nfs3.AccessRes {
		var r nfs3.AccessRes
		e.call(nfs3.ProcAccess, &nfs3.AccessArgs{Object: fh, Access: all}, &r)
		e.wantStatus("ACCESS", r.Status, nfs3.StatusOK)
		if r.ObjAttr == nil {
			t.Error("ACCESS without attributes")
		}
		return r
	}
	if got := access(fh).Access; got&(nfs3.AccessRead|nfs3.AccessModify|nfs3.AccessExtend) != nfs3.AccessRead|nfs3.AccessModify|nfs3.AccessExtend {
		t.Errorf("root on 0644 file: access %#x", got)
	}
	e.cred = &rpc.AuthSysParms{UID: 1000, GID: 1000}
	if got := access(fh).Access; got&nfs3.AccessRead == 0 || got&(nfs3.AccessModify|nfs3.AccessExtend) != 0 {
		t.Errorf("uid 1000 on root's 0644 file: access %#x", got)
	}
	e.cred = &rpc.AuthSysParms{}
	e.auth.exports[1].readOnly = true
	if got := access(fh).Access; got&(nfs3.AccessModify|nfs3.AccessExtend|nfs3.AccessDelete) != 0 || got&nfs3.AccessRead == 0 {
		t.Errorf("read-only export: access %#x", got)
	}
}

func TestNFS3ReadWriteCommit(t *testing.T) {
	e := newN3Env(t)
	fh := e.mustCreate(e.root, "data")
	verf := e.st.WriteVerifier()

	w := e.write(fh, 0, []byte("hello, world"), nfs3.Unstable)
	e.wantStatus("WRITE", w.Status, nfs3.StatusOK)
	if w.Count != 12 || w.Verf != verf || w.Wcc.After == nil || w.Wcc.After.Size != 12 {
		t.Errorf("WRITE unstable: %+v", w)
	}
	w = e.write(fh, 7, []byte("NFS!!"), nfs3.FileSync)
	if w.Status != nfs3.StatusOK || w.Committed != nfs3.FileSync || w.Verf != verf {
		t.Errorf("WRITE FILE_SYNC: %+v", w)
	}
	w = e.write(fh, 12, []byte("+"), nfs3.DataSync)
	if w.Status != nfs3.StatusOK || w.Committed < nfs3.DataSync {
		t.Errorf("WRITE DATA_SYNC committed %v", w.Committed)
	}

	var c nfs3.CommitRes
	e.call(nfs3.ProcCommit, &nfs3.CommitArgs{File: fh}, &c)
	if c.Status != nfs3.StatusOK || c.Verf != verf || c.Wcc.After == nil {
		t.Errorf("COMMIT: %+v", c)
	}

	read := func(off uint64, count uint32) nfs3.ReadRes {
		var r nfs3.ReadRes
		e.call(nfs3.ProcRead, &nfs3.ReadArgs{File: fh, Offset: off, Count: count}, &r)
		return r
	}
	r := read(0, 100)
	if r.Status != nfs3.StatusOK || string(r.Data) != "hello, NFS!!+" || !r.EOF || r.Count != 13 || r.Attr == nil {
		t.Errorf("READ all: %+v %q", r, r.Data)
	}
	r = read(2, 3)
	if string(r.Data) != "llo" || r.EOF {
		t.Errorf("READ middle: %q eof %v", r.Data, r.EOF)
	}
	r = read(100, 10)
	if r.Status != nfs3.StatusOK || len(r.Data) != 0 || !r.EOF {
		t.Errorf("READ past EOF: %+v", r)
	}

	t.Run("ReadCappedAtRtmax", func(t *testing.T) {
		big := e.mustCreate(e.root, "big")
		chunk := bytes.Repeat([]byte{'x'}, nfs3.MaxIO)
		e.write(big, 0, chunk, nfs3.Unstable)
		e.write(big, nfs3.MaxIO, chunk[:100], nfs3.Unstable)
		var r nfs3.ReadRes
		e.call(nfs3.ProcRead, &nfs3.ReadArgs{File: big, Count: 4 << 20}, &r)
		if r.Status != nfs3.StatusOK || len(r.Data) != nfs3.MaxIO || r.EOF {
			t.Errorf("READ 4 MiB: status %v len %d eof %v", r.Status, len(r.Data), r.EOF)
		}
	})
	t.Run("WriteCutAtWtmax", func(t *testing.T) {
		big := e.mustCreate(e.root, "big2")
		w := e.write(big, 0, make([]byte, nfs3.MaxIO+4096), nfs3.Unstable)
		if w.Status != nfs3.StatusOK || w.Count != nfs3.MaxIO {
			t.Errorf("WRITE over wtmax: status %v count %d", w.Status, w.Count)
		}
	})
	t.Run("ReadDirectory", func(t *testing.T) {
		var r nfs3.ReadRes
		e.call(nfs3.ProcRead, &nfs3.ReadArgs{File: e.root, Count: 10}, &r)
		e.wantStatus("READ dir", r.Status, nfs3.StatusIsDir)
	})
	t.Run("WriteDirectory", func(t *testing.T) {
		w := e.write(e.root, 0, []byte("x"), nfs3.FileSync)
		e.wantStatus("WRITE dir", w.Status, nfs3.StatusIsDir)
		e.wantWccAfter("WRITE dir", w.Wcc)
	})
	t.Run("ReadOnly", func(t *testing.T) {
		e.auth.exports[1].readOnly = true
		defer func() { e.auth.exports[1].readOnly = false }()
		w := e.write(fh, 0, []byte("x"), nfs3.FileSync)
		e.wantStatus("WRITE ro", w.Status, nfs3.StatusROFS)
		e.wantWccAfter("WRITE ro", w.Wcc)
		if r := read(0, 5); string(r.Data) != "hello" {
			t.Errorf("READ on read-only export: %q", r.Data)
		}
	})
}

func TestNFS3Create(t *testing.T) {
	e := newN3Env(t)
	md := e.mustLookup(e.root, "Maildir")
	tmp := e.mustLookup(md, "tmp")

	t.Run("Unchecked", func(t *testing.T) {
		r := e.create(tmp, "u", nfs3.Unchecked, nfs3.SetAttr{Mode: ptr[uint32](0o600)}, [8]byte{})
		e.wantStatus("CREATE", r.Status, nfs3.StatusOK)
		if r.ObjAttr == nil || r.ObjAttr.Mode != 0o600 || r.ObjAttr.Type != nfs3.TypeReg {
			t.Errorf("attributes %+v", r.ObjAttr)
		}
		if r.DirWcc.Before == nil || r.DirWcc.After == nil {
			t.Errorf("dir wcc %+v", r.DirWcc)
		}
		e.write(r.Object, 0, []byte("abc"), nfs3.FileSync)
		again := e.create(tmp, "u", nfs3.Unchecked, nfs3.SetAttr{Size: ptr[uint64](0)}, [8]byte{})
		e.wantStatus("CREATE existing", again.Status, nfs3.StatusOK)
		if !bytes.Equal(again.Object, r.Object) || again.ObjAttr.Size != 0 {
			t.Errorf("UNCHECKED on existing: same handle %v, size %d", bytes.Equal(again.Object, r.Object), again.ObjAttr.Size)
		}
		var rm nfs3.RemoveRes
		e.call(nfs3.ProcRemove, &nfs3.RemoveArgs{Dir: tmp, Name: "u"}, &rm)
	})
	t.Run("Guarded", func(t *testing.T) {
		r := e.create(tmp, "g", nfs3.Guarded, nfs3.SetAttr{}, [8]byte{})
		e.wantStatus("CREATE guarded", r.Status, nfs3.StatusOK)
		r = e.create(tmp, "g", nfs3.Guarded, nfs3.SetAttr{}, [8]byte{})
		e.wantStatus("CREATE guarded again", r.Status, nfs3.StatusExist)
		e.wantWccAfter("CREATE guarded again", r.DirWcc)
		var rm nfs3.RemoveRes
		e.call(nfs3.ProcRemove, &nfs3.RemoveArgs{Dir: tmp, Name: "g"}, &rm)
	})
	t.Run("Exclusive", func(t *testing.T) {
		v1 := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
		r := e.create(tmp, "x", nfs3.Exclusive, nfs3.SetAttr{}, v1)
		e.wantStatus("CREATE exclusive", r.Status, nfs3.StatusOK)
		retry := e.create(tmp, "x", nfs3.Exclusive, nfs3.SetAttr{}, v1)
		e.wantStatus("CREATE exclusive retransmission", retry.Status, nfs3.StatusOK)
		if !bytes.Equal(retry.Object, r.Object) {
			t.Error("retransmitted EXCLUSIVE create returned another handle")
		}
		other := e.create(tmp, "x", nfs3.Exclusive, nfs3.SetAttr{}, [8]byte{9})
		e.wantStatus("CREATE exclusive other verifier", other.Status, nfs3.StatusExist)
		var rm nfs3.RemoveRes
		e.call(nfs3.ProcRemove, &nfs3.RemoveArgs{Dir: tmp, Name: "x"}, &rm)
	})
	t.Run("NameTooLong", func(t *testing.T) {
		r := e.create(tmp, string(bytes.Repeat([]byte{'a'}, 256)), nfs3.Guarded, nfs3.SetAttr{}, [8]byte{})
		e.wantStatus("CREATE long", r.Status, nfs3.StatusNameTooLong)
		e.wantWccAfter("CREATE long", r.DirWcc)
	})
	t.Run("ReadOnly", func(t *testing.T) {
		e.auth.exports[1].readOnly = true
		defer func() { e.auth.exports[1].readOnly = false }()
		r := e.create(tmp, "ro", nfs3.Guarded, nfs3.SetAttr{}, [8]byte{})
		e.wantStatus("CREATE ro", r.Status, nfs3.StatusROFS)
		e.wantWccAfter("CREATE ro", r.DirWcc)
	})
	t.Run("NoPermission", func(t *testing.T) {
		e.cred = &rpc.AuthSysParms{UID: 1000, GID: 1000}
		defer func() { e.cred = &rpc.AuthSysParms{} }()
		r := e.create(tmp, "nope", nfs3.Guarded, nfs3.SetAttr{}, [8]byte{})
		e.wantStatus("CREATE as uid 1000 in root's 0755 dir", r.Status, nfs3.StatusAcces)
	})
}

func TestNFS3Namespace(t *testing.T) {
	e := newN3Env(t)

	var mk nfs3.MkdirRes
	e.call(nfs3.ProcMkdir, &nfs3.MkdirArgs{Where: nfs3.DirOpArgs{Dir: e.root, Name: "d"}, Attr: nfs3.SetAttr{Mode: ptr[uint32](0o700)}}, &mk)
	e.wantStatus("MKDIR", mk.Status, nfs3.StatusOK)
	if mk.ObjAttr == nil || mk.ObjAttr.Type != nfs3.TypeDir || mk.ObjAttr.Mode != 0o700 {
		t.Errorf("MKDIR attributes %+v", mk.ObjAttr)
	}
	e.call(nfs3.ProcMkdir, &nfs3.MkdirArgs{Where: nfs3.DirOpArgs{Dir: e.root, Name: "d"}}, &mk)
	e.wantStatus("MKDIR existing", mk.Status, nfs3.StatusExist)
	d := e.mustLookup(e.root, "d")

	var sl nfs3.SymlinkRes
	e.call(nfs3.ProcSymlink, &nfs3.SymlinkArgs{Where: nfs3.DirOpArgs{Dir: d, Name: "l"}, Target: "../somewhere"}, &sl)
	e.wantStatus("SYMLINK", sl.Status, nfs3.StatusOK)
	var rl nfs3.ReadlinkRes
	e.call(nfs3.ProcReadlink, &nfs3.ReadlinkArgs{Object: sl.Object}, &rl)
	if rl.Status != nfs3.StatusOK || rl.Target != "../somewhere" || rl.Attr == nil || rl.Attr.Type != nfs3.TypeLnk {
		t.Errorf("READLINK %+v", rl)
	}
	e.call(nfs3.ProcReadlink, &nfs3.ReadlinkArgs{Object: d}, &rl)
	e.wantStatus("READLINK dir", rl.Status, nfs3.StatusInval)

	var mn nfs3.MknodRes
	e.call(nfs3.ProcMknod, &nfs3.MknodArgs{Where: nfs3.DirOpArgs{Dir: d, Name: "fifo"}, Type: nfs3.TypeFifo, Attr: nfs3.SetAttr{Mode: ptr[uint32](0o600)}}, &mn)
	e.wantStatus("MKNOD fifo", mn.Status, nfs3.StatusOK)
	if mn.ObjAttr == nil || mn.ObjAttr.Type != nfs3.TypeFifo {
		t.Errorf("MKNOD attributes %+v", mn.ObjAttr)
	}
	for _, typ := range []nfs3.FileType{nfs3.TypeReg, nfs3.TypeDir, nfs3.TypeLnk, 99} {
		e.call(nfs3.ProcMknod, &nfs3.MknodArgs{Where: nfs3.DirOpArgs{Dir: d, Name: "bad"}, Type: typ}, &mn)
		e.wantStatus(fmt.Sprintf("MKNOD %v", typ), mn.Status, nfs3.StatusBadType)
		e.wantWccAfter("MKNOD bad type", mn.DirWcc)
	}

	var rm nfs3.RmdirRes
	e.call(nfs3.ProcRmdir, &nfs3.RmdirArgs{Dir: e.root, Name: "d"}, &rm)
	e.wantStatus("RMDIR non-empty", rm.Status, nfs3.StatusNotEmpty)
	e.wantWccAfter("RMDIR non-empty", rm.Wcc)
	var rem nfs3.RemoveRes
	e.call(nfs3.ProcRemove, &nfs3.RemoveArgs{Dir: e.root, Name: "d"}, &rem)
	if rem.Status == nfs3.StatusOK {
		t.Error("REMOVE of a directory succeeded")
	}
	for _, name := range []string{"l", "fifo"} {
		e.call(nfs3.ProcRemove, &nfs3.RemoveArgs{Dir: d, Name: name}, &rem)
		e.wantStatus("REMOVE "+name, rem.Status, nfs3.StatusOK)
		if rem.Wcc.Before == nil || rem.Wcc.After == nil {
			t.Errorf("REMOVE wcc %+v", rem.Wcc)
		}
	}
	e.call(nfs3.ProcRemove, &nfs3.RemoveArgs{Dir: d, Name: "l"}, &rem)
	e.wantStatus("REMOVE again", rem.Status, nfs3.StatusNoEnt)
	e.call(nfs3.ProcRmdir, &nfs3.RmdirArgs{Dir: e.root, Name: "d"}, &rm)
	e.wantStatus("RMDIR", rm.Status, nfs3.StatusOK)
	e.wantStatus("GETATTR removed dir", e.getattr(d).Status, nfs3.StatusStale)
}

func TestNFS3Rename(t *testing.T) {
	e := newN3Env(t)
	md := e.mustLookup(e.root, "Maildir")
	tmp, newDir, cur := e.mustLookup(md, "tmp"), e.mustLookup(md, "new"), e.mustLookup(md, "cur")
	const name = "1700000000.M1P1.testhost"

	t.Run("TmpToNewKeepsHandle", func(t *testing.T) {
		fh := e.mustCreate(tmp, name)
		e.write(fh, 0, []byte("Subject: hi\n\nbody\n"), nfs3.FileSync)
		id := e.getattr(fh).Attr.FileID
		var r nfs3.RenameRes
		e.call(nfs3.ProcRename, &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: tmp, Name: name}, To: nfs3.DirOpArgs{Dir: newDir, Name: name}}, &r)
		e.wantStatus("RENAME", r.Status, nfs3.StatusOK)
		if r.FromWcc.Before == nil || r.FromWcc.After == nil || r.ToWcc.Before == nil || r.ToWcc.After == nil {
			t.Errorf("RENAME wcc from %+v to %+v", r.FromWcc, r.ToWcc)
		}
		g := e.getattr(fh)
		if g.Status != nfs3.StatusOK || g.Attr.FileID != id || g.Attr.Size != 18 {
			t.Errorf("old handle after rename: %v %+v", g.Status, g.Attr)
		}
		e.wantStatus("LOOKUP in tmp", e.lookup(tmp, name).Status, nfs3.StatusNoEnt)
		if got := e.mustLookup(newDir, name); !bytes.Equal(got, fh) {
			t.Error("LOOKUP in new returned another handle")
		}
		// new -> cur with flags: the handle still works.
		e.call(nfs3.ProcRename, &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: newDir, Name: name}, To: nfs3.DirOpArgs{Dir: cur, Name: name + ":2,S"}}, &r)
		e.wantStatus("RENAME new->cur", r.Status, nfs3.StatusOK)
		var rd nfs3.ReadRes
		e.call(nfs3.ProcRead, &nfs3.ReadArgs{File: fh, Count: 100}, &rd)
		if rd.Status != nfs3.StatusOK || string(rd.Data) != "Subject: hi\n\nbody\n" {
			t.Errorf("READ after renames: %v %q", rd.Status, rd.Data)
		}
		// A replayed rename (lost reply) finds no source.
		e.call(nfs3.ProcRename, &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: newDir, Name: name}, To: nfs3.DirOpArgs{Dir: cur, Name: name + ":2,S"}}, &r)
		e.wantStatus("RENAME replay", r.Status, nfs3.StatusNoEnt)
		e.wantWccAfter("RENAME replay from", r.FromWcc)
		e.wantWccAfter("RENAME replay to", r.ToWcc)
	})
	t.Run("CrossExport", func(t *testing.T) {
		other := e.addExport(2)
		fh := e.mustCreate(e.root, "x")
		_ = fh
		var r nfs3.RenameRes
		e.call(nfs3.ProcRename, &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: e.root, Name: "x"}, To: nfs3.DirOpArgs{Dir: other.store.Root(), Name: "x"}}, &r)
		e.wantStatus("RENAME across exports", r.Status, nfs3.StatusXDev)
		e.wantWccAfter("RENAME xdev from", r.FromWcc)
		e.wantWccAfter("RENAME xdev to", r.ToWcc)
		var l nfs3.LinkRes
		e.call(nfs3.ProcLink, &nfs3.LinkArgs{File: fh, Link: nfs3.DirOpArgs{Dir: other.store.Root(), Name: "x"}}, &l)
		e.wantStatus("LINK across exports", l.Status, nfs3.StatusXDev)
		if l.FileAttr == nil {
			t.Error("LINK xdev without file attributes")
		}
	})
	t.Run("LongName", func(t *testing.T) {
		var r nfs3.RenameRes
		e.call(nfs3.ProcRename, &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: e.root, Name: "x"}, To: nfs3.DirOpArgs{Dir: e.root, Name: string(bytes.Repeat([]byte{'y'}, 300))}}, &r)
		e.wantStatus("RENAME to long name", r.Status, nfs3.StatusNameTooLong)
	})
	t.Run("ReadOnly", func(t *testing.T) {
		e.auth.exports[1].readOnly = true
		defer func() { e.auth.exports[1].readOnly = false }()
		var r nfs3.RenameRes
		e.call(nfs3.ProcRename, &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: e.root, Name: "x"}, To: nfs3.DirOpArgs{Dir: e.root, Name: "y"}}, &r)
		e.wantStatus("RENAME ro", r.Status, nfs3.StatusROFS)
	})
}

func TestNFS3Link(t *testing.T) {
	e := newN3Env(t)
	fh := e.mustCreate(e.root, "orig")
	var r nfs3.LinkRes
	e.call(nfs3.ProcLink, &nfs3.LinkArgs{File: fh, Link: nfs3.DirOpArgs{Dir: e.root, Name: "hard"}}, &r)
	e.wantStatus("LINK", r.Status, nfs3.StatusOK)
	if r.FileAttr == nil || r.FileAttr.Nlink != 2 || r.DirWcc.After == nil {
		t.Errorf("LINK result %+v", r)
	}
	if got := e.mustLookup(e.root, "hard"); !bytes.Equal(got, fh) {
		t.Error("hard link has another handle")
	}
	e.call(nfs3.ProcLink, &nfs3.LinkArgs{File: fh, Link: nfs3.DirOpArgs{Dir: e.root, Name: "hard"}}, &r)
	e.wantStatus("LINK existing", r.Status, nfs3.StatusExist)
	if r.FileAttr == nil {
		t.Error("LINK failure without file attributes")
	}
	e.wantWccAfter("LINK existing", r.DirWcc)
}

func TestNFS3FsInfoStatPathconf(t *testing.T) {
	e := newN3Env(t)
	var fi nfs3.FsinfoRes
	e.call(nfs3.ProcFsinfo, &nfs3.FsinfoArgs{Object: e.root}, &fi)
	fi.Attr = nil
	want := nfs3.FsinfoRes{Rtmax: 1 << 20, Rtpref: 1 << 20, Rtmult: 4096, Wtmax: 1 << 20, Wtpref: 1 << 20, Wtmult: 4096,
		Dtpref: 64 << 10, MaxFileSize: e.st.MaxFileSize(), TimeDelta: nfs3.Time{Seconds: 0, Nseconds: 1}, Properties: 0x1b}
	if !reflect.DeepEqual(fi, want) {
		t.Errorf("FSINFO\n got  %+v\n want %+v", fi, want)
	}
	if fi.MaxFileSize < 1<<40 {
		t.Errorf("FSINFO maxfilesize %d, below 1 TiB", fi.MaxFileSize)
	}

	var pc nfs3.PathconfRes
	e.call(nfs3.ProcPathconf, &nfs3.PathconfArgs{Object: e.root}, &pc)
	if pc.Status != nfs3.StatusOK || pc.Attr == nil || pc.Linkmax == 0 || pc.NameMax != 255 ||
		!pc.NoTrunc || !pc.ChownRestricted || pc.CaseInsensitive || !pc.CasePreserving {
		t.Errorf("PATHCONF %+v", pc)
	}

	var fs nfs3.FsstatRes
	e.call(nfs3.ProcFsstat, &nfs3.FsstatArgs{Object: e.root}, &fs)
	if fs.Status != nfs3.StatusOK || fs.Attr == nil || fs.TBytes == 0 || fs.FBytes > fs.TBytes || fs.ABytes > fs.FBytes {
		t.Errorf("FSSTAT %+v", fs)
	}

	e.wantStatus("FSINFO bad handle", func() nfs3.Status {
		var r nfs3.FsinfoRes
		e.call(nfs3.ProcFsinfo, &nfs3.FsinfoArgs{Object: []byte{1, 2, 3}}, &r)
		return r.Status
	}(), nfs3.StatusBadHandle)
}

// TestNFS3Durability checks with the store's counters that the sync a
// reply promises happened before the reply (reference §4.12).
func TestNFS3Durability(t *testing.T) {
	e := newN3Env(t)
	md := e.mustLookup(e.root, "Maildir")
	tmp, newDir := e.mustLookup(md, "tmp"), e.mustLookup(md, "new")
	const name = "1700000001.M2P2.testhost"

	// Where one sync commits a whole operation (journalled file systems,
	// maildirfs.CommitModel), CREATE syncs the new file and RENAME its
	// target directory; elsewhere CREATE syncs the directory too and
	// RENAME both directories.
	oneSync := e.st.CommitModel().OneSync
	s0 := e.st.Stats()
	fh := e.mustCreate(tmp, name)
	s1 := e.st.Stats()
	if oneSync && s1.FileSyncs <= s0.FileSyncs {
		t.Errorf("CREATE replied without syncing the new file: %+v -> %+v", s0, s1)
	}
	if !oneSync && (s1.DirSyncCalls <= s0.DirSyncCalls || s1.DirSyncs <= s0.DirSyncs) {
		t.Errorf("CREATE replied without a directory sync: %+v -> %+v", s0, s1)
	}
	e.write(fh, 0, []byte("unstable"), nfs3.Unstable)
	s2 := e.st.Stats()
	if s2.FileSyncCalls != s1.FileSyncCalls {
		t.Errorf("UNSTABLE WRITE synced: %d -> %d", s1.FileSyncCalls, s2.FileSyncCalls)
	}
	var c nfs3.CommitRes
	e.call(nfs3.ProcCommit, &nfs3.CommitArgs{File: fh}, &c)
	s3 := e.st.Stats()
	if c.Status != nfs3.StatusOK || s3.FileSyncCalls <= s2.FileSyncCalls || s3.FileSyncs <= s2.FileSyncs {
		t.Errorf("COMMIT replied without a file sync: %+v -> %+v", s2, s3)
	}
	w := e.write(fh, 0, []byte("file-sync"), nfs3.FileSync)
	s4 := e.st.Stats()
	if w.Status != nfs3.StatusOK || s4.FileSyncCalls <= s3.FileSyncCalls || s4.FileSyncs <= s3.FileSyncs {
		t.Errorf("FILE_SYNC WRITE replied without a file sync: %+v -> %+v", s3, s4)
	}
	var r nfs3.RenameRes
	e.call(nfs3.ProcRename, &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: tmp, Name: name}, To: nfs3.DirOpArgs{Dir: newDir, Name: name}}, &r)
	s5 := e.st.Stats()
	wantDirs := uint64(2)
	if oneSync {
		wantDirs = 1
	}
	if r.Status != nfs3.StatusOK || s5.DirSyncCalls < s4.DirSyncCalls+wantDirs || s5.DirSyncs <= s4.DirSyncs {
		t.Errorf("RENAME replied without syncing its %d directories: %+v -> %+v", wantDirs, s4, s5)
	}
	var rm nfs3.RemoveRes
	e.call(nfs3.ProcRemove, &nfs3.RemoveArgs{Dir: newDir, Name: name}, &rm)
	if s6 := e.st.Stats(); rm.Status != nfs3.StatusOK || s6.DirSyncCalls <= s5.DirSyncCalls {
		t.Errorf("REMOVE replied without a directory sync: %+v -> %+v", s5, s6)
	}
}

func TestNFS3Stats(t *testing.T) {
	e := newN3Env(t)
	e.mustLookup(e.root, "Maildir")
	e.lookup(e.root, "nope")
	e.lookup(e.root, "nope")
	e.getattr([]byte{1})
	var r nfs3.ReadRes
	e.call(nfs3.ProcRead, &nfs3.ReadArgs{File: e.root, Count: 1}, &r)
	e.raw(nfs3.ProcGetattr, []byte{1}) // GARBAGE_ARGS: not a reply with results
	want := map[string]map[string]uint64{
		"LOOKUP":  {"NFS3_OK": 1, "NFS3ERR_NOENT": 2},
		"GETATTR": {"NFS3ERR_BADHANDLE": 1},
		"READ":    {"NFS3ERR_ISDIR": 1},
	}
	if got := e.n.Stats().Replies; !reflect.DeepEqual(got, want) {
		t.Errorf("Stats\n got  %v\n want %v", got, want)
	}
}

// n3LyingStore breaks promises the NFS layer must not pass on.
type n3LyingStore struct {
	Store
}

// Write claims UNSTABLE whatever was asked.
func (s n3LyingStore) Write(h maildirfs.Handle, c maildirfs.Cred, off uint64, data []byte, _ maildirfs.StableHow) (int, maildirfs.StableHow, [8]byte, maildirfs.Wcc, error) {
	return s.Store.Write(h, c, off, data, maildirfs.Unstable)
}

// Getattr fails with an error that has no NFS status.
func (s n3LyingStore) Getattr(h maildirfs.Handle) (maildirfs.Attr, error) {
	return maildirfs.Attr{}, errors.New("boom: unmapped store failure")
}

func TestNFS3StoreFaults(t *testing.T) {
	e := newN3Env(t)
	fh := e.mustCreate(e.root, "f")
	var logBuf bytes.Buffer
	e.n.Logger = slog.New(slog.NewTextHandler(&logBuf, nil))
	e.auth.exports[1].wrap = func(s Store) Store { return n3LyingStore{s} }

	t.Run("CommittedLessThanAsked", func(t *testing.T) {
		w := e.write(fh, 0, []byte("x"), nfs3.FileSync)
		e.wantStatus("FILE_SYNC WRITE on a store that did not sync", w.Status, nfs3.StatusServerFault)
		if u := e.write(fh, 0, []byte("x"), nfs3.Unstable); u.Status != nfs3.StatusOK {
			t.Errorf("UNSTABLE WRITE: %v", u.Status)
		}
	})
	t.Run("UnmappedErrorLoggedOnce", func(t *testing.T) {
		logBuf.Reset()
		e.wantStatus("GETATTR", e.getattr(fh).Status, nfs3.StatusServerFault)
		if n := strings.Count(logBuf.String(), "boom"); n != 1 {
			t.Errorf("unmapped error logged %d times:\n%s", n, logBuf.String())
		}
	})
}

// TestNFS3Restart: handles survive a server restart, and the write
// verifier changes so clients resend uncommitted data (RFC 1813 §3.3.7).
func TestNFS3Restart(t *testing.T) {
	e := newN3Env(t)
	md := e.mustLookup(e.root, "Maildir")
	cur := e.mustLookup(md, "cur")
	fh := e.mustCreate(cur, "1700000000.M9P9.host:2,S")
	w := e.write(fh, 0, []byte("unstable data"), nfs3.Unstable)
	e.wantStatus("WRITE", w.Status, nfs3.StatusOK)

	e.st.Reopen(t)

	g := e.getattr(fh)
	if g.Status != nfs3.StatusOK || g.Attr.Size != 13 {
		t.Fatalf("GETATTR of a pre-restart handle: %v size %d", g.Status, g.Attr.Size)
	}
	if got := e.mustLookup(md, "cur"); !bytes.Equal(got, cur) {
		t.Error("LOOKUP after restart returned another handle")
	}
	var c nfs3.CommitRes
	e.call(nfs3.ProcCommit, &nfs3.CommitArgs{File: fh}, &c)
	e.wantStatus("COMMIT after restart", c.Status, nfs3.StatusOK)
	if c.Verf == w.Verf {
		t.Error("write verifier unchanged across a restart: clients would not resend lost UNSTABLE data")
	}
}
