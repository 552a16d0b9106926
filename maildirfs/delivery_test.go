package maildirfs_test

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// deliver runs the §7.6 delivery through the store as client.Deliver
// sends it: GUARDED create in tmp/ carrying mode 0600, FILE_SYNC write,
// rename into new/.
func deliver(s *mdtest.Store, tmp, nw maildirfs.Handle, c maildirfs.Cred, uniq string, body []byte) error {
	mode := uint32(0o600)
	h, _, _, err := s.Create(tmp, c, uniq, maildirfs.Guarded, maildirfs.SetAttr{Mode: &mode}, [8]byte{})
	if err != nil {
		return fmt.Errorf("create: %w", err)
	}
	n, committed, _, _, err := s.Write(h, c, 0, body, maildirfs.FileSync)
	if err != nil || n != len(body) || committed != maildirfs.FileSync {
		return fmt.Errorf("write: %d %v", n, err)
	}
	final := fmt.Sprintf("%s,S=%d", uniq, len(body))
	if _, _, err := s.Rename(tmp, uniq, nw, final, c); err != nil {
		return fmt.Errorf("rename: %w", err)
	}
	return nil
}

// TestConcurrentDeliveries: 16 deliverers into one new/; every message
// arrives exactly once, tmp/ ends empty (Check at cleanup), and directory
// syncs happened for every operation (coalesced or not).
func TestConcurrentDeliveries(t *testing.T) {
	s := mdtest.New(t)
	tmp, nw := lookup(t, s, "Maildir", "tmp"), lookup(t, s, "Maildir", "new")
	const workers, per = 16, 25
	before := s.Stats()
	var wg sync.WaitGroup
	errs := make(chan error, workers*per)
	for w := range workers {
		wg.Go(func() {
			for i := range per {
				var r [8]byte
				rand.Read(r[:])
				uniq := fmt.Sprintf("1700000000.M%dP%dR%xQ%d.host", i, w, binary.BigEndian.Uint64(r[:]), i)
				if err := deliver(s, tmp, nw, root, uniq, []byte(fmt.Sprintf("message %d/%d\n", w, i))); err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	ents, err := os.ReadDir(filepath.Join(s.Dir, "Maildir/new"))
	if err != nil || len(ents) != workers*per {
		t.Fatalf("new/ has %d entries (%v), want %d", len(ents), err, workers*per)
	}
	st := s.Stats()
	dirCalls := st.DirSyncCalls - before.DirSyncCalls
	dirSyncs := st.DirSyncs - before.DirSyncs
	// Per delivery: create (tmp) + rename (new, tmp) = 3 dir sync calls;
	// where one sync commits an operation, the create syncs the new file
	// and the rename new/ only: 1.
	perDelivery := uint64(3)
	if s.CommitModel().OneSync {
		perDelivery = 1
	}
	if dirCalls != perDelivery*workers*per {
		t.Fatalf("dir sync calls = %d, want %d", dirCalls, perDelivery*workers*per)
	}
	if dirSyncs == 0 || dirSyncs > dirCalls {
		t.Fatalf("dir syncs = %d for %d calls", dirSyncs, dirCalls)
	}
	t.Logf("%d dir sync calls served by %d fsyncs; %d file sync calls by %d fsyncs",
		dirCalls, dirSyncs, st.FileSyncCalls-before.FileSyncCalls, st.FileSyncs-before.FileSyncs)
}

// BenchmarkDeliver32 measures 32 concurrent deliverers into one new/, with
// and without a group commit window.
func BenchmarkDeliver32(b *testing.B) {
	for _, window := range []time.Duration{0, 500 * time.Microsecond, 2 * time.Millisecond} {
		b.Run(fmt.Sprintf("window=%v", window), func(b *testing.B) {
			s := mdtest.NewOpts(b, maildirfs.Options{SyncWindow: window})
			tmp, nw := lookup(b, s, "Maildir", "tmp"), lookup(b, s, "Maildir", "new")
			body := make([]byte, 4096)
			var seq atomic.Int64
			b.SetParallelism(16) // 2 cores x 16 = 32 goroutines
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					if err := deliver(s, tmp, nw, root, fmt.Sprintf("1700000000.M%dP1.bench", i), body); err != nil {
						b.Error(err)
						return
					}
				}
			})
			st := s.Stats()
			b.ReportMetric(float64(st.SyncCalls)/float64(max(st.SyncBatches, 1)), "calls/fsync")
		})
	}
}

// TestDeliveryFaults fails each storage step of a delivery in turn. The
// deliverer reports the error and removes its tmp/ file, as a client
// would; afterwards the message is either fully in new/ or absent, tmp/
// is empty (Check at cleanup), and every failed sync rotated the verifier.
func TestDeliveryFaults(t *testing.T) {
	s := mdtest.New(t)
	tmp, nw := lookup(t, s, "Maildir", "tmp"), lookup(t, s, "Maildir", "new")
	type fault struct {
		op maildirfs.FaultOp
		n  int
	}
	var faults []fault
	// The syncs of a delivery: create (file and tmp/), write, rename (new/
	// and tmp/); where one sync commits an operation, one each.
	syncs := 5
	if s.CommitModel().OneSync {
		syncs = 3
	}
	for n := 1; n <= syncs; n++ {
		faults = append(faults, fault{maildirfs.FaultFsync, n})
	}
	faults = append(faults, fault{maildirfs.FaultCreate, 1}, fault{maildirfs.FaultWrite, 1}, fault{maildirfs.FaultRename, 1})
	for i, fl := range faults {
		uniq := fmt.Sprintf("1700000000.M%dP1.faults", i)
		body := []byte(fmt.Sprintf("body of message %d\n", i))
		v0 := s.WriteVerifier()
		s.Faults.FailNth(fl.op, fl.n, nil)
		err := deliver(s, tmp, nw, root, uniq, body)
		s.Faults.Clear()
		if err == nil {
			t.Fatalf("%s #%d: delivery succeeded despite the fault", fl.op, fl.n)
		}
		if fl.op == maildirfs.FaultFsync && s.WriteVerifier() == v0 {
			t.Errorf("%s #%d: verifier not rotated", fl.op, fl.n)
		}
		if _, err := s.Remove(tmp, root, uniq); err != nil && !errors.Is(err, syscall.ENOENT) {
			t.Fatalf("cleanup: %v", err)
		}
		final := filepath.Join(s.Dir, "Maildir/new", fmt.Sprintf("%s,S=%d", uniq, len(body)))
		got, err := os.ReadFile(final)
		switch {
		case err == nil && !bytes.Equal(got, body):
			t.Errorf("%s #%d: partial message in new/: %q", fl.op, fl.n, got)
		case err != nil && !errors.Is(err, os.ErrNotExist):
			t.Fatal(err)
		}
		t.Logf("%s #%d: message in new/ after the failure: %v", fl.op, fl.n, err == nil)
	}
}
