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

// BenchmarkGetattrUncachedDir resolves a directory handle with
// open_by_handle_at every time, which also walks ".." up to the export
// root (three levels: a Maildir's cur/ in a user's directory).
func BenchmarkGetattrUncachedDir(b *testing.B) {
	s := mdtest.NewOpts(b, maildirfs.Options{MaxOpenNodes: 1})
	var hs []maildirfs.Handle
	for _, u := range []string{"u1", "u2"} {
		d, _, _, err := s.Mkdir(s.Root(), root, u, maildirfs.SetAttr{})
		if err != nil {
			b.Fatal(err)
		}
		md, _, _, err := s.Mkdir(d, root, "Maildir", maildirfs.SetAttr{})
		if err != nil {
			b.Fatal(err)
		}
		cur, _, _, err := s.Mkdir(md, root, "cur", maildirfs.SetAttr{})
		if err != nil {
			b.Fatal(err)
		}
		hs = append(hs, cur)
	}
	i := 0
	for b.Loop() {
		i++
		if _, err := s.Getattr(hs[i%2]); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLookupDotDot looks up ".." of a Maildir's cur/, which walks up
// to the export root first.
func BenchmarkLookupDotDot(b *testing.B) {
	s := mdtest.New(b)
	cur := lookup(b, s, "Maildir", "cur")
	for b.Loop() {
		if _, _, _, err := s.Lookup(cur, root, ".."); err != nil {
			b.Fatal(err)
		}
	}
}
