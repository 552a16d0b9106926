package client

import (
	"encoding/binary"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// cutProxy is a record-aware TCP proxy between a client and a real server.
// Armed for a procedure, it forwards the next call of that procedure, then
// swallows its reply and cuts both connections: the server has acted, the
// client never hears. onCut runs (with new connections held off) before
// the proxy accepts again. An intercept (Intercept) sees every NFS call
// before it is forwarded and may hold it back; replies to the calls of a
// muted procedure (Mute) are swallowed without a cut.
type cutProxy struct {
	t       *testing.T
	ln      net.Listener
	backend string

	mu      sync.Mutex // held while onCut runs, so accepts wait
	armProc int        // -1: not armed
	dropXID map[uint32]bool
	seen    map[uint32]int // calls of the armed procedure by xid
	cuts    int
	onCut   func()
	// intercept, if set, runs (without mu) for every NFS call before it
	// is forwarded; true means it keeps the call (rec is its copy, dst
	// the server side, for forwarding it later with rpc.FrameRecord).
	intercept func(proc uint32, rec []byte, dst net.Conn) bool
	muteProc  int // -1: none
	mutedXID  map[uint32]bool
	conns     []net.Conn
	wg        sync.WaitGroup
	closed    bool
}

func startCutProxy(t *testing.T, backend string) *cutProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &cutProxy{t: t, ln: ln, backend: backend, armProc: -1, dropXID: map[uint32]bool{}, seen: map[uint32]int{}, muteProc: -1, mutedXID: map[uint32]bool{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(p.Close)
	return p
}

func (p *cutProxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

func (p *cutProxy) Arm(proc int, onCut func()) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.armProc, p.onCut = proc, onCut
}

// Intercept sets the function that sees every NFS call before it is
// forwarded (see cutProxy.intercept); nil removes it.
func (p *cutProxy) Intercept(f func(proc uint32, rec []byte, dst net.Conn) bool) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.intercept = f
}

// Mute swallows the replies to every later call of NFS procedure proc
// (-1: none): the server acts, the client never hears, the connection
// stays up.
func (p *cutProxy) Mute(proc int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.muteProc = proc
}

func (p *cutProxy) Stats() (cuts int, seen map[uint32]int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	m := map[uint32]int{}
	for k, v := range p.seen {
		m[k] = v
	}
	return p.cuts, m
}

func (p *cutProxy) Close() {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return
	}
	p.closed = true
	p.ln.Close()
	for _, c := range p.conns {
		c.Close()
	}
	p.mu.Unlock()
	p.wg.Wait()
}

func (p *cutProxy) accept() {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock() // waits for a running onCut
		if p.closed {
			p.mu.Unlock()
			cc.Close()
			return
		}
		sc, err := net.Dial("tcp", p.backend)
		if err != nil {
			p.mu.Unlock()
			cc.Close()
			continue
		}
		p.conns = append(p.conns, cc, sc)
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pump(cc, sc, true)
		go p.pump(sc, cc, false)
	}
}

// pump copies records from src to dst. Calls (toServer) are inspected for
// the armed procedure; replies for dropped xids trigger the cut.
func (p *cutProxy) pump(src, dst net.Conn, toServer bool) {
	defer p.wg.Done()
	defer src.Close()
	defer dst.Close()
	rr := rpc.NewRecordReader(src, 0)
	for {
		rec, err := rr.Next()
		if err != nil {
			return
		}
		if len(rec) < 4 {
			return
		}
		xid := binary.BigEndian.Uint32(rec)
		if toServer {
			h, err := rpc.DecodeCall(xdr.NewDecoder(rec))
			if err == nil {
				p.mu.Lock()
				if p.armProc >= 0 && int(h.Proc) == p.armProc && h.Prog == 100003 {
					p.dropXID[xid] = true
					p.armProc = -1
				}
				if p.dropXID[xid] {
					p.seen[xid]++
				}
				if h.Prog == 100003 && int(h.Proc) == p.muteProc {
					p.mutedXID[xid] = true
				}
				intercept := p.intercept
				p.mu.Unlock()
				if h.Prog == 100003 && intercept != nil && intercept(h.Proc, append([]byte(nil), rec...), dst) {
					continue
				}
			}
		} else {
			p.mu.Lock()
			if p.mutedXID[xid] {
				p.mu.Unlock()
				continue
			}
			drop := p.dropXID[xid] && p.seen[xid] == 1
			if drop {
				p.cuts++
				src.Close()
				dst.Close()
				if p.onCut != nil {
					p.onCut()
				}
				p.mu.Unlock()
				return
			}
			p.mu.Unlock()
		}
		if _, err := dst.Write(rpc.FrameRecord(rec)); err != nil {
			return
		}
	}
}

var _ io.Closer = (*net.TCPConn)(nil)

// stallProxy is a byte-level TCP proxy in front of a real server. After
// Stall(n) it forwards n more bytes from each client connection and then
// stops reading from it, as a server process that hangs: the client's
// writes fill the socket buffers and then block.
type stallProxy struct {
	ln      net.Listener
	budget  atomic.Int64 // bytes still forwarded; <0: no limit
	stopped chan struct{}
	mu      sync.Mutex
	conns   []net.Conn
	wg      sync.WaitGroup
}

func startStallProxy(t *testing.T, backend string) *stallProxy {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &stallProxy{ln: ln, stopped: make(chan struct{})}
	p.budget.Store(-1)
	p.wg.Add(1)
	go p.accept(backend)
	t.Cleanup(func() {
		close(p.stopped)
		ln.Close()
		p.mu.Lock()
		for _, c := range p.conns {
			c.Close()
		}
		p.mu.Unlock()
		p.wg.Wait()
	})
	return p
}

func (p *stallProxy) Port() int { return p.ln.Addr().(*net.TCPAddr).Port }

// Stall lets n more bytes through from the clients, then none.
func (p *stallProxy) Stall(n int64) { p.budget.Store(n) }

func (p *stallProxy) accept(backend string) {
	defer p.wg.Done()
	for {
		cc, err := p.ln.Accept()
		if err != nil {
			return
		}
		sc, err := net.Dial("tcp", backend)
		if err != nil {
			cc.Close()
			continue
		}
		p.mu.Lock()
		p.conns = append(p.conns, cc, sc)
		p.mu.Unlock()
		p.wg.Add(2)
		go func() {
			defer p.wg.Done()
			_, _ = io.Copy(cc, sc)
		}()
		go func() {
			defer p.wg.Done()
			defer sc.Close()
			buf := make([]byte, 4096)
			for {
				b := p.budget.Load()
				if b == 0 {
					<-p.stopped
					return
				}
				n := len(buf)
				if b > 0 && int64(n) > b {
					n = int(b)
				}
				m, err := cc.Read(buf[:n])
				if m > 0 {
					if b > 0 {
						p.budget.Add(-int64(m))
					}
					if _, werr := sc.Write(buf[:m]); werr != nil {
						return
					}
				}
				if err != nil {
					return
				}
			}
		}()
	}
}
