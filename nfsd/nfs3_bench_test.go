package nfsd

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// benchServe runs proc with fixed args b.N times through NFS3.Serve.
func benchServe(b *testing.B, e *n3Env, proc nfs3.Proc, args n3Encoder) {
	en := xdr.NewEncoder(nil)
	args.Encode(en)
	raw := en.Bytes()
	req := &Request{Prog: nfs3.Program, Vers: nfs3.Version, Proc: uint32(proc), AuthSys: &rpc.AuthSysParms{},
		Addr: netip.MustParseAddrPort("127.0.0.1:700"), Net: "tcp"}
	res := xdr.NewEncoder(make([]byte, 0, 2<<20))
	dec := xdr.NewDecoder(nil)
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		dec.Reset(raw)
		req.Args = dec
		res.Reset()
		if st := e.n.Serve(context.Background(), req, res); st != StatusOK {
			b.Fatalf("%v: %+v", proc, st)
		}
	}
}

func BenchmarkNFS3Getattr(b *testing.B) {
	e := newN3EnvTB(b)
	benchServe(b, e, nfs3.ProcGetattr, &nfs3.GetattrArgs{Object: e.root})
}

func BenchmarkNFS3Lookup(b *testing.B) {
	e := newN3EnvTB(b)
	benchServe(b, e, nfs3.ProcLookup, &nfs3.LookupArgs{Dir: e.root, Name: "Maildir"})
}

func BenchmarkNFS3Read64K(b *testing.B) {
	e := newN3EnvTB(b)
	fh := e.mustCreate(e.root, "f")
	e.write(fh, 0, make([]byte, 64<<10), nfs3.Unstable)
	b.SetBytes(64 << 10)
	benchServe(b, e, nfs3.ProcRead, &nfs3.ReadArgs{File: fh, Count: 64 << 10})
}

func BenchmarkNFS3WriteUnstable64K(b *testing.B) {
	e := newN3EnvTB(b)
	fh := e.mustCreate(e.root, "f")
	b.SetBytes(64 << 10)
	benchServe(b, e, nfs3.ProcWrite, &nfs3.WriteArgs{File: fh, Count: 64 << 10, Data: make([]byte, 64<<10)})
}

// BenchmarkNFS3Readdirplus lists one 32 KiB page of a 1000-entry Maildir
// directory.
func BenchmarkNFS3Readdirplus(b *testing.B) {
	e := newN3EnvTB(b)
	dir := filepath.Join(e.st.Dir, "Maildir", "cur")
	for i := range 1000 {
		if err := os.WriteFile(filepath.Join(dir, fmt.Sprintf("1700000000.M%dP1.host:2,S", i)), nil, 0o600); err != nil {
			b.Fatal(err)
		}
	}
	cur := e.mustLookup(e.mustLookup(e.root, "Maildir"), "cur")
	benchServe(b, e, nfs3.ProcReaddirplus, &nfs3.ReaddirplusArgs{Dir: cur, DirCount: 4096, MaxCount: 32768})
}
