package maildirfs_test

import (
	"testing"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

func BenchmarkGetattr(b *testing.B) {
	s := mdtest.New(b)
	h := create(b, s, s.Root(), root, "f", []byte("x"))
	for b.Loop() {
		if _, err := s.Getattr(h); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkGetattrUncached resolves the handle with open_by_handle_at
// every time (a restart or an evicted node).
func BenchmarkGetattrUncached(b *testing.B) {
	s := mdtest.NewOpts(b, maildirfs.Options{MaxOpenNodes: 1})
	h1 := create(b, s, s.Root(), root, "f", []byte("x"))
	h2 := create(b, s, s.Root(), root, "g", []byte("x"))
	i := 0
	for b.Loop() {
		h := h1
		if i++; i%2 == 0 {
			h = h2
		}
		if _, err := s.Getattr(h); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkLookup(b *testing.B) {
	s := mdtest.New(b)
	create(b, s, s.Root(), root, "f", []byte("x"))
	r := s.Root()
	for b.Loop() {
		if _, _, _, err := s.Lookup(r, root, "f"); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkWriteUnstable4k(b *testing.B) {
	s := mdtest.New(b)
	h := create(b, s, s.Root(), root, "f", nil)
	data := make([]byte, 4096)
	b.SetBytes(4096)
	var off uint64
	for b.Loop() {
		if _, _, _, _, err := s.Write(h, root, off%(64<<20), data, maildirfs.Unstable); err != nil {
			b.Fatal(err)
		}
		off += 4096
	}
}
