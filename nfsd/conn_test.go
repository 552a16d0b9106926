package nfsd

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// FuzzServerConn writes arbitrary bytes to a real connection of a running
// Server, half-closes it and reads until the server closes its side. The
// server must neither panic nor hang, every reply must be a well-formed RPC
// reply, and the server must still answer a fresh connection afterwards.
func FuzzServerConn(f *testing.F) {
	sys := rpc.AuthSysParms{MachineName: "fuzz", UID: 1, GID: 1, GIDs: []uint32{1}}.Credential()
	frame := func(msgs ...[]byte) []byte {
		var b []byte
		for _, m := range msgs {
			b = append(b, rpc.FrameRecord(m)...)
		}
		return b
	}
	f.Add(frame(testCall(1, procNull, nil)))
	f.Add(frame(testCall(1, procEcho, opaqueArg([]byte("hi"))), testCall(2, procPanic, nil), testCall(3, procDrop, nil)))
	f.Add(frame(callMsg(1, testProgNum, 1, procWhoami, sys, nil), testCall(2, procCount, opaqueArg(nil)), testCall(2, procCount, opaqueArg(nil))))
	f.Add(frame(callMsg(1, testProgNum, 7, 0, rpc.OpaqueAuth{}, nil), callMsg(2, 1, 1, 0, rpc.OpaqueAuth{}, nil), testCall(3, 200, nil)))
	f.Add(frame(testCall(1, procSleep, u32Arg(5)), testCall(2, procWait, nil), testCall(3, procBlock, nil), testCall(4, procBig, u32Arg(100))))
	f.Add(append(wordsBytes(4), testCall(1, procNull, nil)[:4]...))
	f.Add(wordsBytes(1<<31 | 1<<30))
	f.Add(wordsBytes(0, 0, 1<<31))
	f.Add(frame(wordsBytes(1, 1, 0, 0, 0, 0)))
	f.Add([]byte{})

	p := newTestProg()
	p.noBlock = true
	// A small cache, so that fuzzed calls also meet evicted keys.
	s := &Server{MaxRecord: 64 << 10, RecordTimeout: 5 * time.Second, MaxInFlightPerConn: 4, Workers: 4, DRCSize: 2}
	s.Register(p)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		f.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.Serve(ln) }()
	f.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			f.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			f.Errorf("Serve: %v", err)
		}
	})
	addr := ln.Addr().String()
	alive := dial(f, addr)
	var xid uint32

	f.Fuzz(func(t *testing.T, data []byte) {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			// Reset rather than close: thousands of iterations would
			// otherwise use up the loopback ports in TIME_WAIT.
			c.(*net.TCPConn).SetLinger(0)
			c.Close()
		}()
		wrote := make(chan struct{})
		go func() {
			defer close(wrote)
			c.SetWriteDeadline(time.Now().Add(10 * time.Second))
			c.Write(data) // fails if the server closes first; that is fine
			c.(*net.TCPConn).CloseWrite()
		}()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		rr := rpc.NewRecordReader(c, 4<<20)
		for {
			rec, err := rr.Next()
			if err != nil {
				if isTimeout(err) {
					t.Fatalf("server did not close the connection: %v", err)
				}
				break
			}
			var d xdr.Decoder
			d.Reset(rec)
			if _, err := rpc.DecodeReply(&d); err != nil {
				var re *rpc.ReplyError
				if !errors.As(err, &re) {
					t.Fatalf("malformed reply %x: %v", rec, err)
				}
			}
		}
		<-wrote

		// The server lives on.
		xid++
		alive.t = t
		successBody(t, alive.call(testCall(xid, procNull, nil)), xid)
	})
}

// TestServeHalfClose checks that a client that sends its calls and
// half-closes still gets every reply before the server closes.
func TestServeHalfClose(t *testing.T) {
	s := newServer(newTestProg())
	tc := dial(t, startTCP(t, s))
	var all []byte
	for i := range uint32(20) {
		all = append(all, rpc.FrameRecord(testCall(i, procSleep, u32Arg(i%4)))...)
	}
	tc.write(all)
	tc.c.(*net.TCPConn).CloseWrite()
	got := map[uint32]bool{}
	for range 20 {
		got[replyXID(t, tc.recv())] = true
	}
	if len(got) != 20 {
		t.Fatalf("replies for %d calls", len(got))
	}
	tc.c.SetReadDeadline(time.Now().Add(10 * time.Second))
	if n, err := tc.c.Read(make([]byte, 1)); n != 0 || !errors.Is(err, io.EOF) {
		t.Fatalf("after replies: %d bytes, %v; want EOF", n, err)
	}
}

// TestServeWriteBatching sends many calls in one write so that replies are
// ready together and leave in batched writes; each must still be one
// intact record.
func TestServeWriteBatching(t *testing.T) {
	s := newServer(newTestProg())
	tc := dial(t, startTCP(t, s))
	var all []byte
	const n = 500
	for i := range uint32(n) {
		all = append(all, rpc.FrameRecord(testCall(i, procEcho, opaqueArg(bytes.Repeat([]byte{byte(i)}, int(i%37)))))...)
	}
	tc.write(all)
	for range n {
		rec := tc.recv()
		xid := replyXID(t, rec)
		want := opaqueArg(bytes.Repeat([]byte{byte(xid)}, int(xid%37)))
		if body := successBody(t, rec, xid); !bytes.Equal(body, want) {
			t.Fatalf("xid %d: body %x", xid, body)
		}
	}
}
