package maildirfs_test

import (
	"errors"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// heldSync is a store whose next sync, once armed, is held until fail
// tells it how to end (Linux reports a writeback error to one fsync only:
// the sync after it succeeds).
type heldSync struct {
	*mdtest.Store
	mu    sync.Mutex
	armed bool
	in    chan struct{} // closed when the held sync has begun
	fail  chan error
}

func newHeldSync(t *testing.T) *heldSync {
	h := &heldSync{in: make(chan struct{}), fail: make(chan error)}
	h.Store = mdtest.NewOpts(t, maildirfs.Options{Inject: func(op maildirfs.FaultOp) error {
		if op != maildirfs.FaultFsync {
			return nil
		}
		h.mu.Lock()
		armed := h.armed
		h.armed = false
		h.mu.Unlock()
		if !armed {
			return nil
		}
		close(h.in)
		return <-h.fail
	}})
	return h
}

func (h *heldSync) arm() {
	h.mu.Lock()
	h.armed = true
	h.mu.Unlock()
}

// TestSyncFailureNotAcknowledged: COMMIT B's fsync fails while COMMIT
// A (or a FILE_SYNC WRITE A) waits for the next sync of the same file,
// which succeeds. A must not tell the client that data written before it
// is safe: COMMIT answers a verifier other than the one the UNSTABLE
// WRITEs carried (so the client sends them again), and a FILE_SYNC WRITE
// fails.
func TestSyncFailureNotAcknowledged(t *testing.T) {
	for _, tc := range []string{"Commit", "FileSyncWrite"} {
		t.Run(tc, func(t *testing.T) {
			s := newHeldSync(t)
			tmp := lookup(t, s.Store, "Maildir", "tmp")
			h, _, _, err := s.Create(tmp, root, "m", maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{})
			if err != nil {
				t.Fatal(err)
			}
			_, _, wverf, _, err := s.Write(h, root, 0, []byte("hello"), maildirfs.Unstable)
			if err != nil {
				t.Fatal(err)
			}
			s.arm()
			errB := make(chan error, 1)
			go func() { _, _, err := s.Commit(h, root, 0, 0); errB <- err }()
			<-s.in // B is in its fsync
			calls := s.Stats().FileSyncCalls
			type result struct {
				verf [8]byte
				err  error
			}
			resA := make(chan result, 1)
			go func() {
				if tc == "Commit" {
					v, _, err := s.Commit(h, root, 0, 0)
					resA <- result{v, err}
					return
				}
				_, _, v, _, err := s.Write(h, root, 5, []byte(" world"), maildirfs.FileSync)
				resA <- result{v, err}
			}()
			// A has written and asked for a sync (it waits for the next).
			for s.Stats().FileSyncCalls == calls {
				time.Sleep(time.Millisecond)
			}
			s.fail <- syscall.EIO
			if err := <-errB; !errors.Is(err, syscall.EIO) {
				t.Fatalf("B: %v, want EIO", err)
			}
			a := <-resA
			switch {
			case tc == "Commit" && a.err == nil && a.verf == wverf:
				t.Fatalf("COMMIT succeeded with the verifier of the UNSTABLE write (%x) after a failed sync of the file", wverf)
			case tc == "FileSyncWrite" && a.err == nil:
				t.Fatalf("FILE_SYNC WRITE succeeded after a failed sync of the file while it waited")
			}
			if _, err := s.Remove(tmp, root, "m"); err != nil {
				t.Fatal(err)
			}
		})
	}
}
