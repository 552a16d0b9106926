package reliability

import (
	"bytes"
	"context"
	"crypto/rand"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/nfsd"
)

// rotatingStore fails one fsync of another file just before the next
// COMMIT it serves while armed, so that COMMIT succeeds but answers a write
// verifier different from the one its UNSTABLE WRITEs got: what a client
// sees when the server lost unstable data (a failed write-back) between
// its WRITEs and its COMMIT.
type rotatingStore struct {
	nfsd.Store
	s                  *inprocServer
	victim             maildirfs.Handle
	armed              atomic.Int32
	commits, rotations atomic.Int32
}

func (r *rotatingStore) Commit(h maildirfs.Handle, c maildirfs.Cred, off uint64, count uint32) ([8]byte, maildirfs.Wcc, error) {
	r.commits.Add(1)
	if r.armed.Add(-1) >= 0 {
		r.s.Faults.FailNth(maildirfs.FaultFsync, 1, syscall.EIO)
		if _, _, err := r.Store.Commit(r.victim, maildirfs.Cred{}, 0, 0); err == nil {
			panic("reliability: injected fsync failure did not fail the victim's COMMIT")
		}
		r.rotations.Add(1)
	}
	return r.Store.Commit(h, c, off, count)
}

// TestWriteBackErrorPath injects fsync failures into a running server:
// COMMIT reports NFS3ERR_IO and the write verifier changes; a client whose
// UNSTABLE data may have been lost (verifier changed at COMMIT) writes it
// again; a delivery whose sync fails is reported as a temporary failure
// and leaves nothing behind. Nothing is lost silently.
func TestWriteBackErrorPath(t *testing.T) {
	var rs *rotatingStore
	s := startInproc(t, inprocOpts{
		setup: func(t testing.TB, root string) {
			if err := os.WriteFile(filepath.Join(root, "victim"), []byte("v"), 0o644); err != nil {
				t.Fatal(err)
			}
		},
		wrap: func(st nfsd.Store) nfsd.Store {
			rs = &rotatingStore{Store: st}
			return rs
		},
	})
	rs.s = s
	var err error
	if rs.victim, _, _, err = rs.Store.Lookup(rs.Store.Root(), maildirfs.Cred{}, "victim"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	c, err := client.Dial(ctx, s.url(""), client.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	tmp, _, err := c.LookupPath(ctx, "/Maildir/tmp")
	if err != nil {
		t.Fatal(err)
	}

	t.Run("COMMIT reports NFS3ERR_IO and the verifier changes", func(t *testing.T) {
		fh, _, err := c.Create(ctx, tmp, "commit-eio", client.Unchecked, client.SetAttr{}, [8]byte{})
		if err != nil {
			t.Fatal(err)
		}
		data := []byte("unstable data that never reached the disk\n")
		w1, err := c.Write(ctx, fh, 0, data, client.Unstable)
		if err != nil {
			t.Fatal(err)
		}
		s.Faults.FailNth(maildirfs.FaultFsync, 1, syscall.EIO)
		_, err = c.Commit(ctx, fh, 0, 0)
		if !client.IsStatus(err, client.NFS3ErrIO) {
			t.Fatalf("COMMIT with a failing fsync: %v, want NFS3ERR_IO", err)
		}
		if !client.Temporary(err) {
			t.Errorf("Temporary(%v) = false; an MTA must defer, not bounce", err)
		}
		w2, err := c.Write(ctx, fh, 0, data, client.Unstable)
		if err != nil {
			t.Fatal(err)
		}
		if w2.Verf == w1.Verf {
			t.Fatalf("write verifier %x unchanged after a failed fsync", w1.Verf)
		}
		cv, err := c.Commit(ctx, fh, 0, 0)
		if err != nil {
			t.Fatalf("COMMIT after the fault cleared: %v", err)
		}
		if cv != w2.Verf {
			t.Errorf("COMMIT verifier %x, the rewrite got %x", cv, w2.Verf)
		}
		if err := c.Remove(ctx, tmp, "commit-eio"); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("client resends when the verifier changed", func(t *testing.T) {
		// Larger than one WRITE: UNSTABLE WRITEs and a COMMIT.
		msg := make([]byte, c.MaxWrite()+300<<10)
		_, _ = rand.Read(msg)
		copy(msg, "Subject: resend\r\n\r\n")
		writesBefore := s.NFS.Stats().Replies["WRITE"]["NFS3_OK"]
		rs.armed.Store(1)
		name, err := c.Deliver(ctx, "Maildir", bytes.NewReader(msg))
		if err != nil {
			t.Fatalf("Deliver: %v", err)
		}
		if rs.rotations.Load() != 1 {
			t.Fatalf("%d verifier rotations before COMMIT, want 1", rs.rotations.Load())
		}
		writes := s.NFS.Stats().Replies["WRITE"]["NFS3_OK"] - writesBefore
		perPass := uint64((len(msg) + c.MaxWrite() - 1) / c.MaxWrite())
		if writes < 2*perPass {
			t.Errorf("%d WRITEs for a %d-byte message after a verifier change; want at least %d (every byte written twice)", writes, len(msg), 2*perPass)
		}
		got, err := os.ReadFile(filepath.Join(s.Root, "Maildir", "new", name))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, msg) {
			t.Fatalf("new/%s differs from the message sent", name)
		}
		t.Logf("verifier changed at COMMIT: the client wrote the %d bytes again (%d WRITEs) and the message is whole", len(msg), writes)
	})

	t.Run("a delivery whose sync fails is a temporary error and leaves nothing", func(t *testing.T) {
		for _, size := range []int{4 << 10, c.MaxWrite() + 1} { // FILE_SYNC WRITE; UNSTABLE + COMMIT
			newBefore, _ := os.ReadDir(filepath.Join(s.Root, "Maildir", "new"))
			// Fail every file sync: the data can never be made durable.
			s.Faults.FailAll(maildirfs.FaultFsync, syscall.EIO)
			msg := bytes.Repeat([]byte("x"), size)
			name, err := c.Deliver(ctx, "Maildir", bytes.NewReader(msg))
			s.Faults.Clear()
			if err == nil {
				t.Fatalf("size %d: Deliver succeeded (new/%s) while every fsync failed", size, name)
			}
			if !client.Temporary(err) {
				t.Errorf("size %d: Temporary(%v) = false", size, err)
			}
			es, _ := os.ReadDir(filepath.Join(s.Root, "Maildir", "tmp"))
			newAfter, _ := os.ReadDir(filepath.Join(s.Root, "Maildir", "new"))
			// Nothing may have reached new/.
			if len(newAfter) != len(newBefore) {
				t.Errorf("size %d: a failed delivery reached new/", size)
			}
			if len(es) != 0 {
				// CREATE itself failed its sync after making the file,
				// so the client had no handle to clean up with.
				t.Logf("size %d: %d tmp/ files left after the failed delivery", size, len(es))
			}
		}
		removed, err := c.CleanTmp(ctx, "Maildir", time.Nanosecond, time.Now().Add(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		if es, _ := os.ReadDir(filepath.Join(s.Root, "Maildir", "tmp")); len(es) != 0 {
			t.Errorf("CleanTmp removed %v but %d files remain in tmp/", removed, len(es))
		}
	})
}
