package client

import (
	"encoding/binary"
	"log/slog"
	"net"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// replyDecoders are the result decoders the client runs, by NFS procedure.
var replyDecoders = map[nfs3.Proc]func() decoder{
	nfs3.ProcGetattr:     func() decoder { return new(nfs3.GetattrRes) },
	nfs3.ProcSetattr:     func() decoder { return new(nfs3.SetattrRes) },
	nfs3.ProcLookup:      func() decoder { return new(nfs3.LookupRes) },
	nfs3.ProcAccess:      func() decoder { return new(nfs3.AccessRes) },
	nfs3.ProcReadlink:    func() decoder { return new(nfs3.ReadlinkRes) },
	nfs3.ProcRead:        func() decoder { return new(nfs3.ReadRes) },
	nfs3.ProcWrite:       func() decoder { return new(nfs3.WriteRes) },
	nfs3.ProcCreate:      func() decoder { return new(nfs3.CreateRes) },
	nfs3.ProcRemove:      func() decoder { return new(nfs3.RemoveRes) },
	nfs3.ProcRename:      func() decoder { return new(nfs3.RenameRes) },
	nfs3.ProcLink:        func() decoder { return new(nfs3.LinkRes) },
	nfs3.ProcReaddir:     func() decoder { return new(nfs3.ReaddirRes) },
	nfs3.ProcReaddirplus: func() decoder { return new(nfs3.ReaddirplusRes) },
	nfs3.ProcFsstat:      func() decoder { return new(nfs3.FsstatRes) },
	nfs3.ProcFsinfo:      func() decoder { return new(nfs3.FsinfoRes) },
	nfs3.ProcPathconf:    func() decoder { return new(nfs3.PathconfRes) },
	nfs3.ProcCommit:      func() decoder { return new(nfs3.CommitRes) },
}

func replySeed(xid uint32, stat rpc.AcceptStat, body func(e *xdr.Encoder)) []byte {
	e := xdr.NewEncoder(nil)
	rpc.EncodeAccepted(e, xid, stat)
	if body != nil {
		body(e)
	}
	return e.Bytes()
}

// FuzzReplyDecoding feeds arbitrary reply records through the decoding the
// client does after a call returns: the reply header, then every NFS
// result type, the MOUNT results and the portmapper answers. Nothing may
// panic, and a decode must either fail or consume the input exactly as
// Done reports.
func FuzzReplyDecoding(f *testing.F) {
	f.Add(replySeed(1, rpc.Success, func(e *xdr.Encoder) {
		(&nfs3.GetattrRes{Attr: nfs3.Fattr{Type: nfs3.TypeReg, Size: 9}}).Encode(e)
	}))
	f.Add(replySeed(2, rpc.Success, func(e *xdr.Encoder) {
		(&nfs3.ReaddirplusRes{Entries: []nfs3.EntryPlus{{FileID: 3, Name: "a", Cookie: 4, Handle: []byte{1, 2}}}, EOF: true}).Encode(e)
	}))
	f.Add(replySeed(3, rpc.Success, func(e *xdr.Encoder) {
		(&nfs3.WriteRes{Count: 5, Committed: nfs3.FileSync}).Encode(e)
	}))
	f.Add(replySeed(4, rpc.ProgMismatch, func(e *xdr.Encoder) { e.Uint32(3); e.Uint32(3) }))
	var e xdr.Encoder
	rpc.EncodeAuthError(&e, 5, rpc.AuthTooWeak)
	f.Add(e.Bytes())
	f.Add(replySeed(6, rpc.Success, func(e *xdr.Encoder) {
		(&nfs3.MountRes3{Handle: []byte{9, 9}, AuthFlavors: []uint32{1}}).Encode(e)
	}))
	f.Fuzz(func(t *testing.T, rec []byte) {
		d := xdr.NewDecoder(rec)
		if _, err := rpc.DecodeReply(d); err != nil {
			return
		}
		res := d.Rest()
		for _, mk := range replyDecoders {
			dd := xdr.NewDecoder(res)
			mk().Decode(dd)
			_ = dd.Done()
		}
		for _, r := range []decoder{new(nfs3.MountRes3), new(nfs3.Exports)} {
			dd := xdr.NewDecoder(res)
			r.Decode(dd)
			_ = dd.Done()
		}
		dd := xdr.NewDecoder(res)
		_ = dd.Uint32() // GETPORT
		_ = dd.Done()
		dd = xdr.NewDecoder(res)
		_ = dd.String(255) // GETADDR
		_ = dd.Done()
	})
}

// FuzzReplyStream feeds an arbitrary byte stream to a connection's reader
// goroutine, with a call pending for xid 1: the reader must not panic, must
// end on the stream's end, and a completed call must have its reply.
func FuzzReplyStream(f *testing.F) {
	one := replySeed(1, rpc.Success, func(e *xdr.Encoder) { e.Uint32(0) })
	f.Add(rpc.FrameRecord(one))
	f.Add(append(rpc.FrameRecord(replySeed(7, rpc.Success, nil)), rpc.FrameRecord(one)...))
	frag := make([]byte, 4)
	binary.BigEndian.PutUint32(frag, 3)
	f.Add(append(append(frag, one[:3]...), rpc.FrameRecord(one[3:])...))
	f.Add([]byte{0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, stream []byte) {
		c := &RPCClient{opts: RPCOptions{MaxRecord: 1 << 16, Logger: slog.New(slog.DiscardHandler)}, stop: make(chan struct{})}
		rc := &rpcConn{c: c, pending: map[uint32]*pendingCall{}}
		pc := &pendingCall{xid: 1, done: make(chan struct{})}
		rc.pending[1] = pc
		a, b := net.Pipe()
		go func() {
			a.Write(stream)
			a.Close()
		}()
		_ = rc.readLoop(b)
		b.Close()
		select {
		case <-pc.done:
			if pc.reply == nil || binary.BigEndian.Uint32(pc.reply) != 1 {
				t.Fatalf("call completed with reply %x", pc.reply)
			}
		default:
		}
	})
}
