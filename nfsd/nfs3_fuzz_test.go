package nfsd

import (
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// n3ResFor returns an empty result of procedure p, for decoding a reply.
func n3ResFor(p nfs3.Proc) n3Decoder {
	switch p {
	case nfs3.ProcGetattr:
		return new(nfs3.GetattrRes)
	case nfs3.ProcSetattr, nfs3.ProcRemove, nfs3.ProcRmdir:
		return new(nfs3.WccRes)
	case nfs3.ProcLookup:
		return new(nfs3.LookupRes)
	case nfs3.ProcAccess:
		return new(nfs3.AccessRes)
	case nfs3.ProcReadlink:
		return new(nfs3.ReadlinkRes)
	case nfs3.ProcRead:
		return new(nfs3.ReadRes)
	case nfs3.ProcWrite:
		return new(nfs3.WriteRes)
	case nfs3.ProcCreate, nfs3.ProcMkdir, nfs3.ProcSymlink, nfs3.ProcMknod:
		return new(nfs3.CreateRes)
	case nfs3.ProcRename:
		return new(nfs3.RenameRes)
	case nfs3.ProcLink:
		return new(nfs3.LinkRes)
	case nfs3.ProcReaddir:
		return new(nfs3.ReaddirRes)
	case nfs3.ProcReaddirplus:
		return new(nfs3.ReaddirplusRes)
	case nfs3.ProcFsstat:
		return new(nfs3.FsstatRes)
	case nfs3.ProcFsinfo:
		return new(nfs3.FsinfoRes)
	case nfs3.ProcPathconf:
		return new(nfs3.PathconfRes)
	case nfs3.ProcCommit:
		return new(nfs3.CommitRes)
	}
	return nil
}

// FuzzNFS3Serve feeds arbitrary arguments to every procedure of a real
// store: no panic, the RPC status is SUCCESS, GARBAGE_ARGS or
// PROC_UNAVAIL as appropriate, and a SUCCESS reply decodes exactly as the
// procedure's result type.
func FuzzNFS3Serve(f *testing.F) {
	e := newN3EnvTB(f)
	md := e.mustLookup(e.root, "Maildir")
	file := e.mustCreate(e.root, "seed")
	enc := func(a n3Encoder) []byte {
		en := xdr.NewEncoder(nil)
		a.Encode(en)
		return en.Bytes()
	}
	seeds := map[nfs3.Proc][]byte{
		nfs3.ProcNull:        nil,
		nfs3.ProcGetattr:     enc(&nfs3.GetattrArgs{Object: file}),
		nfs3.ProcSetattr:     enc(&nfs3.SetattrArgs{Object: file, NewAttr: nfs3.SetAttr{Size: ptr[uint64](3)}}),
		nfs3.ProcLookup:      enc(&nfs3.LookupArgs{Dir: md, Name: "new"}),
		nfs3.ProcAccess:      enc(&nfs3.AccessArgs{Object: md, Access: 0x3f}),
		nfs3.ProcReadlink:    enc(&nfs3.ReadlinkArgs{Object: file}),
		nfs3.ProcRead:        enc(&nfs3.ReadArgs{File: file, Count: 100}),
		nfs3.ProcWrite:       enc(&nfs3.WriteArgs{File: file, Count: 3, Stable: nfs3.FileSync, Data: []byte("abc")}),
		nfs3.ProcCreate:      enc(&nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: md, Name: "c"}, Mode: nfs3.Guarded}),
		nfs3.ProcMkdir:       enc(&nfs3.MkdirArgs{Where: nfs3.DirOpArgs{Dir: e.root, Name: "d"}}),
		nfs3.ProcSymlink:     enc(&nfs3.SymlinkArgs{Where: nfs3.DirOpArgs{Dir: e.root, Name: "s"}, Target: "seed"}),
		nfs3.ProcMknod:       enc(&nfs3.MknodArgs{Where: nfs3.DirOpArgs{Dir: e.root, Name: "p"}, Type: nfs3.TypeFifo}),
		nfs3.ProcRemove:      enc(&nfs3.RemoveArgs{Dir: md, Name: "c"}),
		nfs3.ProcRmdir:       enc(&nfs3.RmdirArgs{Dir: e.root, Name: "d"}),
		nfs3.ProcRename:      enc(&nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: e.root, Name: "seed"}, To: nfs3.DirOpArgs{Dir: md, Name: "seed"}}),
		nfs3.ProcLink:        enc(&nfs3.LinkArgs{File: file, Link: nfs3.DirOpArgs{Dir: e.root, Name: "l"}}),
		nfs3.ProcReaddir:     enc(&nfs3.ReaddirArgs{Dir: e.root, Count: 1024}),
		nfs3.ProcReaddirplus: enc(&nfs3.ReaddirplusArgs{Dir: e.root, DirCount: 512, MaxCount: 4096}),
		nfs3.ProcFsstat:      enc(&nfs3.FsstatArgs{Object: e.root}),
		nfs3.ProcFsinfo:      enc(&nfs3.FsinfoArgs{Object: e.root}),
		nfs3.ProcPathconf:    enc(&nfs3.PathconfArgs{Object: e.root}),
		nfs3.ProcCommit:      enc(&nfs3.CommitArgs{File: file}),
	}
	for p, b := range seeds {
		f.Add(uint8(p), b)
	}
	f.Add(uint8(30), []byte{1, 2, 3})
	f.Fuzz(func(t *testing.T, p uint8, args []byte) {
		proc := nfs3.Proc(p % 24)
		if proc == nfs3.ProcMknod {
			// Do not let the fuzzer create device nodes on the host.
			var a nfs3.MknodArgs
			a.Decode(xdr.NewDecoder(args))
			if a.Type == nfs3.TypeChr || a.Type == nfs3.TypeBlk {
				return
			}
		}
		st, out := e.raw(proc, args)
		res := n3ResFor(proc)
		switch {
		case proc > nfs3.ProcCommit:
			if st != StatusProcUnavail {
				t.Fatalf("proc %d: %+v", proc, st)
			}
			return
		case st == StatusGarbage:
			return
		case st != StatusOK:
			t.Fatalf("%v: rpc status %+v", proc, st)
		case res == nil: // NULL
			if len(out) != 0 {
				t.Fatalf("NULL replied %x", out)
			}
			return
		}
		d := xdr.NewDecoder(out)
		res.Decode(d)
		if err := d.Done(); err != nil {
			t.Fatalf("%v: reply does not decode: %v (%x)", proc, err, out)
		}
	})
}
