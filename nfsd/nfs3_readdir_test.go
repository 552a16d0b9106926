package nfsd

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// n3BigDir creates dir "big" with n files straight on disk (names of
// varied length, so every XDR padding case occurs) and returns its
// handle and the set of names.
func n3BigDir(t *testing.T, e *n3Env, n int) ([]byte, map[string]bool) {
	t.Helper()
	dir := filepath.Join(e.st.Dir, "big")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	names := make(map[string]bool, n)
	for i := range n {
		name := fmt.Sprintf("%d.M%dP%d.host%s", 1700000000+i, i, i%7, strings.Repeat("x", i%13))
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		f.Close()
		names[name] = true
	}
	return e.mustLookup(e.root, "big"), names
}

// n3ReaddirRaw runs READDIR and returns the reply, decoded, and its size.
func (e *n3Env) readdirRaw(args *nfs3.ReaddirArgs) (nfs3.ReaddirRes, int) {
	e.t.Helper()
	enc := xdr.NewEncoder(nil)
	args.Encode(enc)
	st, out := e.raw(nfs3.ProcReaddir, enc.Bytes())
	if st != StatusOK {
		e.t.Fatalf("READDIR: rpc status %+v", st)
	}
	var r nfs3.ReaddirRes
	d := xdr.NewDecoder(out)
	r.Decode(d)
	if err := d.Done(); err != nil {
		e.t.Fatalf("READDIR reply: %v", err)
	}
	return r, len(out)
}

func (e *n3Env) readdirplusRaw(args *nfs3.ReaddirplusArgs) (nfs3.ReaddirplusRes, int) {
	e.t.Helper()
	enc := xdr.NewEncoder(nil)
	args.Encode(enc)
	st, out := e.raw(nfs3.ProcReaddirplus, enc.Bytes())
	if st != StatusOK {
		e.t.Fatalf("READDIRPLUS: rpc status %+v", st)
	}
	var r nfs3.ReaddirplusRes
	d := xdr.NewDecoder(out)
	r.Decode(d)
	if err := d.Done(); err != nil {
		e.t.Fatalf("READDIRPLUS reply: %v", err)
	}
	return r, len(out)
}

// maxEntry is the largest entry3 in n3BigDir (names up to ~45 bytes).
var maxEntry = nfs3.EntrySize(64)

func TestNFS3ReaddirPaging(t *testing.T) {
	e := newN3Env(t)
	const n = 10000
	dir, names := n3BigDir(t, e, n)
	rng := rand.New(rand.NewPCG(1, 2))

	for _, fixed := range []uint32{0, 512, 4096, 65536, 1 << 30} {
		t.Run(fmt.Sprintf("count=%d", fixed), func(t *testing.T) {
			seen := make(map[string]int, n+2)
			var cookie uint64
			var verf [8]byte
			pages := 0
			for {
				count := fixed
				if count == 0 {
					count = 300 + rng.Uint32N(20000) // a different budget each page
				}
				r, size := e.readdirRaw(&nfs3.ReaddirArgs{Dir: dir, Cookie: cookie, Verf: verf, Count: count})
				e.wantStatus("READDIR", r.Status, nfs3.StatusOK)
				pages++
				if size > int(min(count, maxDirReply)) {
					t.Fatalf("page %d: reply %d bytes > count %d", pages, size, count)
				}
				if !r.EOF && size+maxEntry <= int(count) && size+maxEntry <= maxDirReply {
					t.Fatalf("page %d: reply %d bytes leaves room for another entry within %d", pages, size, count)
				}
				if r.DirAttr == nil {
					t.Fatalf("page %d: no directory attributes", pages)
				}
				for _, en := range r.Entries {
					seen[en.Name]++
				}
				if r.EOF {
					break
				}
				if len(r.Entries) == 0 {
					t.Fatalf("page %d: no entries and no eof", pages)
				}
				cookie, verf = r.Entries[len(r.Entries)-1].Cookie, r.Verf
				if pages > 2*n {
					t.Fatal("listing does not end")
				}
			}
			for name := range names {
				if seen[name] != 1 {
					t.Fatalf("%s seen %d times", name, seen[name])
				}
			}
			if len(seen) != n+2 || seen["."] != 1 || seen[".."] != 1 {
				t.Fatalf("listing has %d distinct names (want %d + . and ..)", len(seen), n)
			}
			t.Logf("%d pages", pages)
		})
	}
}

func TestNFS3ReaddirplusPaging(t *testing.T) {
	e := newN3Env(t)
	const n = 10000
	dir, names := n3BigDir(t, e, n)
	rng := rand.New(rand.NewPCG(3, 4))
	maxEntry := nfs3.EntryPlusSize(255, true, make([]byte, nfs3.FHSize))
	for _, tc := range []struct{ dircount, maxcount uint32 }{{0, 0}, {1024, 8192}, {8192, 65536}, {65536, 8192}, {512, 1 << 20}} {
		t.Run(fmt.Sprintf("dircount=%d,maxcount=%d", tc.dircount, tc.maxcount), func(t *testing.T) {
			seen := make(map[string]int, n+2)
			var cookie uint64
			var verf [8]byte
			pages := 0
			for {
				dc, mc := tc.dircount, tc.maxcount
				if mc == 0 {
					mc = 600 + rng.Uint32N(40000)
					dc = mc / 8 // what Linux sends
				}
				r, size := e.readdirplusRaw(&nfs3.ReaddirplusArgs{Dir: dir, Cookie: cookie, Verf: verf, DirCount: dc, MaxCount: mc})
				e.wantStatus("READDIRPLUS", r.Status, nfs3.StatusOK)
				pages++
				if size > int(mc) {
					t.Fatalf("page %d: reply %d bytes > maxcount %d", pages, size, mc)
				}
				dirUsed := 0
				for _, en := range r.Entries {
					dirUsed += nfs3.EntryPlusDirSize(len(en.Name))
					seen[en.Name]++
					if en.Attr == nil || en.Handle == nil {
						t.Fatalf("entry %q without attributes or handle", en.Name)
					}
					if en.Attr.FileID != en.FileID {
						t.Fatalf("entry %q: fileid %d, attributes say %d", en.Name, en.FileID, en.Attr.FileID)
					}
				}
				// dircount is ignored (as knfsd): a page that is not the
				// last is filled up to maxcount, whatever dircount says.
				if !r.EOF && size+maxEntry <= int(min(mc, nfs3.MaxIO)) {
					t.Fatalf("page %d: %d bytes (directory part %d, dircount %d) leave room for another entry under maxcount %d", pages, size, dirUsed, dc, mc)
				}
				if r.EOF {
					break
				}
				if len(r.Entries) == 0 {
					t.Fatalf("page %d: no entries and no eof", pages)
				}
				cookie, verf = r.Entries[len(r.Entries)-1].Cookie, r.Verf
				if pages > 2*n {
					t.Fatal("listing does not end")
				}
			}
			for name := range names {
				if seen[name] != 1 {
					t.Fatalf("%s seen %d times", name, seen[name])
				}
			}
			if len(seen) != n+2 {
				t.Fatalf("listing has %d distinct names", len(seen))
			}
			t.Logf("%d pages", pages)
		})
	}
	t.Run("HandlesWork", func(t *testing.T) {
		r, _ := e.readdirplusRaw(&nfs3.ReaddirplusArgs{Dir: dir, DirCount: 4096, MaxCount: 32768})
		for _, en := range r.Entries {
			g := e.getattr(en.Handle)
			if g.Status != nfs3.StatusOK || g.Attr.FileID != en.FileID {
				t.Fatalf("GETATTR of %q's handle: %v fileid %d want %d", en.Name, g.Status, g.Attr.FileID, en.FileID)
			}
		}
	})
}

func TestNFS3ReaddirEdges(t *testing.T) {
	e := newN3Env(t)
	md := e.mustLookup(e.root, "Maildir")
	newDir := e.mustLookup(md, "new")

	t.Run("EmptyDirOnePage", func(t *testing.T) {
		r, _ := e.readdirRaw(&nfs3.ReaddirArgs{Dir: newDir, Count: 4096})
		if r.Status != nfs3.StatusOK || !r.EOF || len(r.Entries) != 2 {
			t.Errorf("READDIR empty dir: %v eof %v entries %+v", r.Status, r.EOF, r.Entries)
		}
	})
	t.Run("TooSmall", func(t *testing.T) {
		r, _ := e.readdirRaw(&nfs3.ReaddirArgs{Dir: newDir, Count: 100})
		e.wantStatus("READDIR count 100", r.Status, nfs3.StatusTooSmall)
		if r.DirAttr == nil {
			t.Error("TOOSMALL without directory attributes")
		}
		rp, _ := e.readdirplusRaw(&nfs3.ReaddirplusArgs{Dir: newDir, DirCount: 1000, MaxCount: 200})
		e.wantStatus("READDIRPLUS maxcount 200", rp.Status, nfs3.StatusTooSmall)
	})
	t.Run("ExactlyOneEntry", func(t *testing.T) {
		count := uint32(nfs3.ReaddirFixedSize(true) + nfs3.EntrySize(1))
		// "." and ".." come in the file system's order (ext4 with hashed
		// directories may list ".." first).
		r, size := e.readdirRaw(&nfs3.ReaddirArgs{Dir: newDir, Count: count})
		if r.Status != nfs3.StatusOK || len(r.Entries) != 1 || (r.Entries[0].Name != "." && r.Entries[0].Name != "..") || size != int(count) {
			t.Fatalf("READDIR count %d: %v %+v, %d bytes", count, r.Status, r.Entries, size)
		}
		other := map[string]string{".": "..", "..": "."}[r.Entries[0].Name]
		// Resume after it with the cookie and verifier returned.
		r2, _ := e.readdirRaw(&nfs3.ReaddirArgs{Dir: newDir, Cookie: r.Entries[0].Cookie, Verf: r.Verf, Count: 4096})
		if r2.Status != nfs3.StatusOK || len(r2.Entries) != 1 || r2.Entries[0].Name != other || !r2.EOF {
			t.Errorf("READDIR resume: %v %+v eof %v, want only %q", r2.Status, r2.Entries, r2.EOF, other)
		}
	})
	t.Run("CancelledIsNotTooSmall", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		enc := xdr.NewEncoder(nil)
		(&nfs3.ReaddirArgs{Dir: newDir, Count: 4096}).Encode(enc)
		st, out := e.rawCtx(ctx, nfs3.ProcReaddir, enc.Bytes())
		var r nfs3.ReaddirRes
		r.Decode(xdr.NewDecoder(out))
		if st != StatusOK || r.Status != nfs3.StatusJukebox {
			t.Errorf("READDIR with cancelled context: %+v %v, want JUKEBOX", st, r.Status)
		}
	})
	t.Run("NotADirectory", func(t *testing.T) {
		fh := e.mustCreate(e.root, "file")
		r, _ := e.readdirRaw(&nfs3.ReaddirArgs{Dir: fh, Count: 4096})
		e.wantStatus("READDIR file", r.Status, nfs3.StatusNotDir)
		if r.DirAttr == nil {
			t.Error("NOTDIR without attributes")
		}
	})
	t.Run("ForeignVerifierAccepted", func(t *testing.T) {
		// The verifier is never checked: a listing never gets BAD_COOKIE
		// because the directory changed.
		r, _ := e.readdirRaw(&nfs3.ReaddirArgs{Dir: newDir, Verf: [8]byte{1, 2, 3}, Count: 4096})
		e.wantStatus("READDIR odd verifier", r.Status, nfs3.StatusOK)
	})
	t.Run("ChurnDuringListing", func(t *testing.T) {
		dir, names := n3BigDir(t, e, 2000)
		var cookie uint64
		seen := map[string]bool{}
		for i := 0; ; i++ {
			r, _ := e.readdirRaw(&nfs3.ReaddirArgs{Dir: dir, Cookie: cookie, Count: 2048})
			e.wantStatus("READDIR under churn", r.Status, nfs3.StatusOK)
			for _, en := range r.Entries {
				seen[en.Name] = true
			}
			if r.EOF {
				break
			}
			cookie = r.Entries[len(r.Entries)-1].Cookie
			// Deliveries and deletions between pages, as Maildir sees.
			os.WriteFile(filepath.Join(e.st.Dir, "big", fmt.Sprintf("new%d", i)), nil, 0o644)
			os.Remove(filepath.Join(e.st.Dir, "big", fmt.Sprintf("%d.M%dP%d.host%s", 1700000000+i*3, i*3, (i*3)%7, strings.Repeat("x", (i*3)%13))))
		}
		// Names never touched must all have been listed.
		missing := 0
		for name := range names {
			var ts, m, p int
			var host string
			fmt.Sscanf(name, "%d.M%dP%d.%s", &ts, &m, &p, &host)
			if m%3 != 0 && !seen[name] {
				missing++
			}
		}
		if missing > 0 {
			t.Errorf("%d untouched names missing from a listing under churn", missing)
		}
	})
}
