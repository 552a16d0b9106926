package maildirfs_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"testing"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// listPages lists dir page entries at a time, calling between(i) after
// each page; it returns the names in order of appearance.
func listPages(t testing.TB, s *mdtest.Store, dir maildirfs.Handle, page int, plus bool, between func(i int)) []string {
	t.Helper()
	var names []string
	var cookie uint64
	for i := 0; ; i++ {
		k := 0
		eof, post, err := s.ReadDir(dir, root, cookie, plus, func(e *maildirfs.DirEntry) bool {
			if k == page {
				return false
			}
			k++
			names = append(names, e.Name)
			cookie = e.Cookie
			if plus && (e.Attr == nil || e.Handle == nil) {
				t.Errorf("plus entry %q without attr/handle", e.Name)
			}
			return true
		})
		if err != nil || post == nil {
			t.Fatalf("readdir page %d: %v", i, err)
		}
		if eof {
			return names
		}
		if k == 0 {
			t.Fatal("no progress without eof")
		}
		if between != nil {
			between(i)
		}
	}
}

func populate(t testing.TB, dir string, n int) []string {
	t.Helper()
	var names []string
	for i := range n {
		name := fmt.Sprintf("%d.M%dP1.host,S=10", 1700000000+i, i)
		if err := os.WriteFile(filepath.Join(dir, name), []byte("0123456789"), 0o600); err != nil {
			t.Fatal(err)
		}
		names = append(names, name)
	}
	return names
}

func TestReadDir(t *testing.T) {
	s := mdtest.New(t)
	cur := filepath.Join(s.Dir, "Maildir/cur")
	want := populate(t, cur, 500)
	// Files in cur/ need info for Check: rename them.
	for i, n := range want {
		os.Rename(filepath.Join(cur, n), filepath.Join(cur, n+":2,S"))
		want[i] = n + ":2,S"
	}
	curH := lookup(t, s, "Maildir", "cur")
	wantAll := append([]string{".", ".."}, want...)
	sort.Strings(wantAll)

	for _, plus := range []bool{false, true} {
		for _, page := range []int{1, 7, 100, 10000} {
			got := listPages(t, s, curH, page, plus, nil)
			sort.Strings(got)
			if fmt.Sprint(got) != fmt.Sprint(wantAll) {
				t.Fatalf("plus=%v page=%d: got %d names, want %d", plus, page, len(got), len(wantAll))
			}
		}
	}
	t.Run("DotsAndPlus", func(t *testing.T) {
		rootAttr := getattr(t, s, s.Root())
		seen := map[string]*maildirfs.DirEntry{}
		_, _, err := s.ReadDir(s.Root(), root, 0, true, func(e *maildirfs.DirEntry) bool {
			seen[e.Name] = e
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if e := seen[".."]; e == nil || e.FileID != rootAttr.FileID || !bytes.Equal(e.Handle, s.Root()) {
			t.Fatalf("root ..: %+v", e)
		}
		if e := seen["."]; e == nil || !bytes.Equal(e.Handle, s.Root()) {
			t.Fatalf("root .: %+v", e)
		}
		md := seen["Maildir"]
		if md == nil || md.Attr.Type != maildirfs.TypeDir || !bytes.Equal(md.Handle, lookup(t, s, "Maildir")) || md.FileID != md.Attr.FileID {
			t.Fatalf("Maildir entry %+v", md)
		}
		var mdDotDot *maildirfs.DirEntry
		s.ReadDir(md.Handle, root, 0, true, func(e *maildirfs.DirEntry) bool {
			if e.Name == ".." {
				mdDotDot = e
			}
			return true
		})
		if mdDotDot == nil || !bytes.Equal(mdDotDot.Handle, s.Root()) || mdDotDot.FileID != rootAttr.FileID {
			t.Fatalf("Maildir/..: %+v", mdDotDot)
		}
	})
	t.Run("CookieSurvivesRestart", func(t *testing.T) {
		var first []string
		var cookie uint64
		s.ReadDir(curH, root, 0, false, func(e *maildirfs.DirEntry) bool {
			if len(first) == 50 {
				return false
			}
			first = append(first, e.Name)
			cookie = e.Cookie
			return true
		})
		s.Reopen(t)
		rest := []string{}
		eof, _, err := s.ReadDir(curH, root, cookie, false, func(e *maildirfs.DirEntry) bool {
			rest = append(rest, e.Name)
			return true
		})
		if err != nil || !eof || len(first)+len(rest) != len(wantAll) {
			t.Fatalf("after restart: %d + %d, want %d (%v)", len(first), len(rest), len(wantAll), err)
		}
	})
	t.Run("VanishedEntriesSkipped", func(t *testing.T) {
		dir := filepath.Join(s.Dir, "vanish")
		os.Mkdir(dir, 0o755)
		names := populate(t, dir, 20)
		h := lookup(t, s, "vanish")
		var got []string
		_, _, err := s.ReadDir(h, root, 0, true, func(e *maildirfs.DirEntry) bool {
			if len(got) == 0 {
				// getdents has already returned every name; remove them
				// before their stat.
				for _, n := range names {
					os.Remove(filepath.Join(dir, n))
				}
			}
			got = append(got, e.Name)
			return true
		})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) == 0 {
			t.Fatal("nothing listed")
		}
		for _, n := range got[1:] {
			if n != "." && n != ".." {
				t.Fatalf("vanished entry %q listed: %v", n, got)
			}
		}
	})
}

// TestReadDirChangesMidListing: entries untouched during a paged listing
// are seen exactly once; no error or bad cookie however the directory
// changes between pages.
func TestReadDirChangesMidListing(t *testing.T) {
	s := mdtest.New(t)
	dir := filepath.Join(s.Dir, "Maildir/new")
	names := populate(t, dir, 1000)
	stable := map[string]bool{}
	for i, n := range names {
		if i%3 == 0 {
			stable[n] = true
		}
	}
	h := lookup(t, s, "Maildir", "new")
	nextNew := 0
	got := listPages(t, s, h, 40, false, func(i int) {
		// Remove, add and rename non-stable entries.
		for j := i * 7; j < len(names) && j < i*7+7; j++ {
			if !stable[names[j]] {
				os.Remove(filepath.Join(dir, names[j]))
			}
		}
		for range 5 {
			os.WriteFile(filepath.Join(dir, fmt.Sprintf("new%d", nextNew)), nil, 0o600)
			nextNew++
		}
		if j := len(names) - 1 - i*3; j >= 0 && !stable[names[j]] {
			os.Rename(filepath.Join(dir, names[j]), filepath.Join(dir, names[j]+"x"))
		}
	})
	count := map[string]int{}
	for _, n := range got {
		count[n]++
	}
	for n := range stable {
		if count[n] != 1 {
			t.Errorf("stable entry %s seen %d times", n, count[n])
		}
	}
}

// BenchmarkReadDir100k measures one full paged listing (128 entries per
// call, as an NFS READDIR reply) of a 100k-entry directory: each call
// resumes at the filesystem cookie, so the total is O(entries).
func BenchmarkReadDir100k(b *testing.B) {
	s := mdtest.New(b)
	dir := filepath.Join(s.Dir, "big")
	if err := os.Mkdir(dir, 0o755); err != nil {
		b.Fatal(err)
	}
	for i := range 100000 {
		f, err := os.Create(filepath.Join(dir, fmt.Sprintf("%d.M%dP%dR%x.host,S=1000", 1700000000+i, i, i%97, i*7919)))
		if err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
	h := lookup(b, s, "big")
	for _, plus := range []bool{false, true} {
		b.Run(fmt.Sprintf("plus=%v", plus), func(b *testing.B) {
			for b.Loop() {
				var cookie uint64
				n := 0
				for {
					k := 0
					eof, _, err := s.ReadDir(h, root, cookie, plus, func(e *maildirfs.DirEntry) bool {
						if k == 128 {
							return false
						}
						k++
						cookie = e.Cookie
						return true
					})
					if err != nil {
						b.Fatal(err)
					}
					n += k
					if eof {
						break
					}
				}
				if n != 100002 {
					b.Fatalf("listed %d", n)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/100002, "ns/entry")
		})
	}
}
