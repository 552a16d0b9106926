package maildirfs_test

import (
	"fmt"
	"sync"
	"testing"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// TestWriteWccAlone: a WRITE's wcc_data before attributes, when sent, are
// the file as it was just before this WRITE and no other change, so a
// client that finds them equal to its cache may take the after attributes
// as its own write's doing (RFC 1813 §2.6). Two writers extend one file
// a byte at a time in turn; a reply whose size went from before to more
// than its own write made hides the other writer's change, and so does a
// COMMIT's whose size changed.
func TestWriteWccAlone(t *testing.T) {
	s := mdtest.New(t)
	h := create(t, s, s.Root(), root, "f", nil)
	const per = 2000
	var (
		wg  sync.WaitGroup
		mu  sync.Mutex
		bad []string
	)
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range per {
				off := uint64(2*i + w)
				_, _, _, wcc, err := s.Write(h, root, off, []byte{'x'}, maildirfs.Unstable)
				if err != nil {
					t.Error(err)
					return
				}
				if wcc.Before == nil || wcc.After == nil {
					continue
				}
				if want := max(wcc.Before.Size, off+1); wcc.After.Size != want {
					mu.Lock()
					bad = append(bad, fmt.Sprintf("write at %d: before size %d, after %d (want %d)", off, wcc.Before.Size, wcc.After.Size, want))
					mu.Unlock()
				}
			}
		}()
	}
	done := make(chan struct{})
	commits := make(chan error, 1)
	go func() {
		// A COMMIT changes nothing: its before and after attributes,
		// when both are sent, are the same.
		for {
			select {
			case <-done:
				commits <- nil
				return
			default:
			}
			_, wcc, err := s.Commit(h, root, 0, 0)
			if err == nil && wcc.Before != nil && wcc.After != nil && wcc.Before.Size != wcc.After.Size {
				err = fmt.Errorf("COMMIT's wcc: before size %d, after %d", wcc.Before.Size, wcc.After.Size)
			}
			if err != nil {
				<-done
				commits <- err
				return
			}
		}
	}()
	wg.Wait()
	close(done)
	if err := <-commits; err != nil {
		t.Error(err)
	}
	if len(bad) > 0 {
		t.Fatalf("%d of %d WRITE replies had before attributes that hide another change, e.g. %s", len(bad), 2*per, bad[0])
	}

	// Alone, every WRITE, SETATTR and COMMIT sends them, exact.
	size := uint64(2 * per)
	for i := range 10 {
		_, _, _, wcc, err := s.Write(h, root, size, []byte("yy"), maildirfs.Unstable)
		if err != nil || wcc.Before == nil || wcc.Before.Size != size || wcc.After == nil || wcc.After.Size != size+2 {
			t.Fatalf("write %d alone: %v, wcc %+v %+v", i, err, wcc.Before, wcc.After)
		}
		size += 2
		wcc, err = s.SetAttr(h, root, maildirfs.SetAttr{Size: u64(size + 1)}, nil)
		if err != nil || wcc.Before == nil || wcc.Before.Size != size || wcc.After == nil || wcc.After.Size != size+1 {
			t.Fatalf("setattr %d alone: %v, wcc %+v %+v", i, err, wcc.Before, wcc.After)
		}
		size++
		_, wcc, err = s.Commit(h, root, 0, 0)
		if err != nil || wcc.Before == nil || wcc.Before.Size != size || wcc.After == nil || wcc.After.Size != size {
			t.Fatalf("commit %d alone: %v, wcc %+v %+v", i, err, wcc.Before, wcc.After)
		}
	}
}

// TestWriteWccUncheckedTruncate: an UNCHECKED CREATE of an existing file
// with size 0 truncates it, a change of the file as a SETATTR is: a
// WRITE's before attributes must not hide it.
func TestWriteWccUncheckedTruncate(t *testing.T) {
	s := mdtest.New(t)
	h := create(t, s, s.Root(), root, "f", nil)
	done := make(chan struct{})
	truncs := make(chan error, 1)
	go func() {
		for {
			select {
			case <-done:
				truncs <- nil
				return
			default:
			}
			if _, _, _, err := s.Create(s.Root(), root, "f", maildirfs.Unchecked, maildirfs.SetAttr{Size: u64(0)}, [8]byte{}); err != nil {
				<-done
				truncs <- err
				return
			}
		}
	}()
	bad, kept := 0, 0
	var example string
	for range 3000 {
		_, _, _, wcc, err := s.Write(h, root, 5, []byte{'x'}, maildirfs.Unstable)
		if err != nil {
			t.Fatal(err)
		}
		if wcc.Before == nil || wcc.After == nil {
			continue
		}
		kept++
		if want := max(wcc.Before.Size, 6); wcc.After.Size != want {
			bad++
			example = fmt.Sprintf("before size %d, after %d (want %d)", wcc.Before.Size, wcc.After.Size, want)
		}
	}
	close(done)
	if err := <-truncs; err != nil {
		t.Fatal(err)
	}
	if bad > 0 {
		t.Fatalf("%d of %d WRITE replies with before attributes hid a truncation, e.g. %s", bad, kept, example)
	}
}
