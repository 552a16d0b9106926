package nfsd

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/logtest"
	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// startUDP serves s on a loopback UDP socket and returns a connected client
// socket.
func startUDP(t *testing.T, s *Server) *net.UDPConn {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.ServeUDP(pc) }()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := s.Shutdown(ctx); err != nil {
			t.Errorf("Shutdown: %v", err)
		}
		if err := <-served; !errors.Is(err, ErrServerClosed) {
			t.Errorf("ServeUDP returned %v", err)
		}
	})
	c, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func udpCall(t *testing.T, c *net.UDPConn, msg []byte) []byte {
	t.Helper()
	if _, err := c.Write(msg); err != nil {
		t.Fatal(err)
	}
	return udpRecv(t, c, 10*time.Second)
}

func udpRecv(t *testing.T, c *net.UDPConn, wait time.Duration) []byte {
	t.Helper()
	c.SetReadDeadline(time.Now().Add(wait))
	buf := make([]byte, 70000)
	n, err := c.Read(buf)
	if err != nil {
		t.Fatalf("udp read: %v", err)
	}
	return buf[:n]
}

func TestServeUDP(t *testing.T) {
	p := newTestProg()
	s := newServer(p)
	c := startUDP(t, s)

	got := udpCall(t, c, testCall(1, procEcho, opaqueArg([]byte("datagram"))))
	if want := append(wordsBytes(1, 1, 0, 0, 0, 0), opaqueArg([]byte("datagram"))...); !bytes.Equal(got, want) {
		t.Fatalf("echo %v, want %v", words(got), words(want))
	}
	body := successBody(t, udpCall(t, c, testCall(2, procWhoami, nil)), 2)
	if !bytes.Equal(body[4:], opaqueArg([]byte("udp"))) {
		t.Errorf("Request.Net: %x", body)
	}
	body = successBody(t, udpCall(t, c, testCall(22, procAddr, nil)), 22)
	if want := append(opaqueArg([]byte(c.LocalAddr().String())), opaqueArg([]byte(c.RemoteAddr().String()))...); !bytes.Equal(body, want) {
		t.Errorf("addresses %q, want %q", body, want)
	}
	if got, want := udpCall(t, c, callMsg(3, testProgNum, 9, 0, rpc.OpaqueAuth{}, nil)),
		wordsBytes(3, 1, 0, 0, 0, uint32(rpc.ProgMismatch), 1, 2); !bytes.Equal(got, want) {
		t.Errorf("prog mismatch %v", words(got))
	}

	// Garbage, a dropped call and an oversized reply get no answer; the
	// next call's reply is the next datagram.
	for _, msg := range [][]byte{
		{1, 2, 3},
		wordsBytes(4, rpc.Reply, 0, 0, 0, 0),
		testCall(5, procDrop, nil),
		testCall(6, procBig, u32Arg(70000)),
	} {
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
	}
	if xid := replyXID(t, udpCall(t, c, testCall(7, procNull, nil))); xid != 7 {
		t.Fatalf("got reply for xid %d, want 7", xid)
	}
	// The largest reply that fits in a datagram is sent.
	const bigN = (maxUDPReply - 28) &^ 3 // 65476: the reply is 65504 bytes
	big := udpCall(t, c, testCall(8, procBig, u32Arg(bigN)))
	if len(big) != 28+bigN {
		t.Errorf("big reply %d bytes", len(big))
	}

	// Panics are answered and the socket serves on.
	if got, want := udpCall(t, c, testCall(9, procPanic, nil)), wordsBytes(9, 1, 0, 0, 0, uint32(rpc.SystemErr)); !bytes.Equal(got, want) {
		t.Errorf("panic %v", words(got))
	}

	// Retransmission is answered from the cache.
	call := testCall(10, procCount, opaqueArg([]byte("x")))
	a := udpCall(t, c, call)
	b := udpCall(t, c, call)
	if !bytes.Equal(a, b) || p.counts.Load() != 1 {
		t.Errorf("retransmit: %v vs %v, runs %d", words(a), words(b), p.counts.Load())
	}
	// UDP calls run concurrently: the oversized reply may be dropped late.
	waitFor(t, "the counters to settle", func() bool {
		st := s.Stats()
		return st.BadCalls == 2 && st.UDPReplyTooLong == 1 && st.DRCHits == 1 && st.Panics == 1 && st.Drops == 1
	})
}

func TestServeUDPAndTCPShareCache(t *testing.T) {
	p := newTestProg()
	s := newServer(p)
	addr := startTCP(t, s)
	c := startUDP(t, s)
	call := testCall(21, procCount, opaqueArg([]byte("y")))
	a := udpCall(t, c, call)
	b := dial(t, addr).call(call)
	if !bytes.Equal(a, b) || p.counts.Load() != 1 {
		t.Errorf("udp then tcp: %v vs %v, runs %d", words(a), words(b), p.counts.Load())
	}
}

func TestShutdownDrainsUDPCall(t *testing.T) {
	p := newTestProg()
	s := newServer(p)
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan error, 1)
	go func() { served <- s.ServeUDP(pc) }()
	c, err := net.DialUDP("udp", nil, pc.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(testCall(1, procWait, nil)); err != nil {
		t.Fatal(err)
	}
	<-p.started
	shut := make(chan error, 1)
	go func() { shut <- s.Shutdown(context.Background()) }()
	select {
	case err := <-served:
		t.Fatalf("ServeUDP returned %v with a call in flight", err)
	case <-time.After(50 * time.Millisecond):
	}
	close(p.release)
	if xid := replyXID(t, udpRecv(t, c, 10*time.Second)); xid != 1 {
		t.Fatalf("drained reply xid %d", xid)
	}
	if err := <-shut; err != nil {
		t.Fatal(err)
	}
	if err := <-served; !errors.Is(err, ErrServerClosed) {
		t.Fatalf("ServeUDP: %v", err)
	}
}

// TestServeUDPWildcardRepliesFromDestination serves UDP on a wildcard
// socket inside a private network namespace and calls it at 127.0.0.2: the
// reply must come from 127.0.0.2 (a connected client socket drops any
// other), and Request.Local must name it. The same holds for a dual-stack
// IPv6 socket and for ::1. Log lines name the client as TCP's do: an IPv4
// client of a dual-stack socket without the ::ffff: prefix.
func TestServeUDPWildcardRepliesFromDestination(t *testing.T) {
	netnstest.RequireRoot(t)
	ns := netnstest.New(t, "udpwild")
	for _, tc := range []struct{ network, listen, dial string }{
		{"udp4", "0.0.0.0:0", "127.0.0.2"},
		{"udp", "[::]:0", "127.0.0.2"},
		{"udp6", "[::]:0", "::1"},
	} {
		t.Run(tc.network+"-"+tc.dial, func(t *testing.T) {
			pc, err := ns.ListenPacket(tc.network, tc.listen)
			if err != nil {
				t.Skipf("listen %s %s: %v", tc.network, tc.listen, err)
			}
			var logs logtest.Buffer
			s := &Server{Logger: slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
			s.Register(newTestProg())
			served := make(chan error, 1)
			go func() { served <- s.ServeUDP(pc) }()
			defer func() {
				s.Shutdown(context.Background())
				<-served
			}()
			port := pc.LocalAddr().(*net.UDPAddr).Port
			target := net.JoinHostPort(tc.dial, strconv.Itoa(port))
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			nc, err := ns.Dial(ctx, "udp", target)
			if err != nil {
				t.Fatal(err)
			}
			c := nc.(*net.UDPConn)
			defer c.Close()
			body := successBody(t, udpCall(t, c, testCall(5, procAddr, nil)), 5)
			d := xdr.NewDecoder(body)
			remote, local := d.String(100), d.String(100)
			if remote != c.LocalAddr().String() || local != target {
				t.Errorf("server saw %s -> %s; want %s -> %s", remote, local, c.LocalAddr(), target)
			}
			if want := "remote=" + c.LocalAddr().String() + " "; !strings.Contains(logs.String(), want) || strings.Contains(logs.String(), "::ffff:") {
				t.Errorf("log does not name the client as %q:\n%s", want, logs.String())
			}
		})
	}
}

// TestUDPIOSizesFitDatagram checks the sizes FSINFO advertises over UDP:
// a READ reply of udpIOMax bytes with attributes fits one reply datagram,
// a WRITE call of udpIOMax bytes with the largest credential, verifier and
// handle fits one datagram and the server's read buffer, and the room for
// READDIR results is what is left of a datagram after the reply header.
func TestUDPIOSizesFitDatagram(t *testing.T) {
	var e xdr.Encoder
	rpc.EncodeAccepted(&e, 1, rpc.Success)
	if hdr := e.Len(); udpMaxResults != maxUDPReply-hdr {
		t.Errorf("udpMaxResults = %d, want %d - %d", udpMaxResults, maxUDPReply, hdr)
	}
	(&nfs3.ReadRes{Status: nfs3.StatusOK, Attr: &nfs3.Fattr{}, Count: udpIOMax, Data: make([]byte, udpIOMax)}).Encode(&e)
	if e.Len() > maxUDPReply {
		t.Errorf("READ reply of %d bytes is %d bytes, more than a datagram (%d)", udpIOMax, e.Len(), maxUDPReply)
	}

	var c xdr.Encoder
	big := rpc.OpaqueAuth{Flavor: rpc.AuthSys, Body: make([]byte, rpc.MaxAuthBody)}
	rpc.CallHeader{XID: 1, Prog: nfs3.Program, Vers: nfs3.Version, Proc: uint32(nfs3.ProcWrite), Cred: big, Verf: big}.Encode(&c)
	(&nfs3.WriteArgs{File: make([]byte, nfs3.FHSize), Count: udpIOMax, Data: make([]byte, udpIOMax)}).Encode(&c)
	if c.Len() > min(maxUDPReply, maxDatagram) {
		t.Errorf("WRITE call of %d bytes is %d bytes, more than a datagram", udpIOMax, c.Len())
	}
	if udpIOMax%4096 != 0 || udpIOPref > udpIOMax {
		t.Errorf("udpIOMax %d is not a multiple of rtmult, or udpIOPref %d above it", udpIOMax, udpIOPref)
	}
}
