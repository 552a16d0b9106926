package nfsd_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailnfs/mailnfs/internal/loopfstest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// legacyHashCollisions are pairs of names with the same ext4 "legacy"
// directory hash (dx_hack_hash; no minor hash), so the same d_off.
var legacyHashCollisions = [][2]string{
	{"m001085", "m001385"},
	{"m016193", "m016793"},
	{"m017104", "m017504"},
}

// TestNFS3ReaddirHashCollision: on ext4 the cookies are directory hashes,
// and two names with the same hash have the same cookie, so a listing
// resumed at the cookie of the first of them starts at that first one
// again. A reply must not end between them: every page size lists every
// name exactly once, or answers NFS3ERR_TOOSMALL when it cannot hold the
// pair, never the first of a pair again (a client asking one entry a page
// would loop).
func TestNFS3ReaddirHashCollision(t *testing.T) {
	conf := filepath.Join(t.TempDir(), "mke2fs.conf")
	base, err := os.ReadFile("/etc/mke2fs.conf")
	if err != nil {
		t.Skipf("needs /etc/mke2fs.conf: %v", err)
	}
	if err := os.WriteFile(conf, append([]byte("[options]\n\n"), append(base, "\n[defaults]\n\thash_alg = legacy\n"...)...), 0o644); err != nil {
		t.Fatal(err)
	}
	t.Setenv("MKE2FS_CONFIG", conf)
	fs := loopfstest.Ext4(t, 32<<20, false)
	export := filepath.Join(fs, "export")
	dir := filepath.Join(export, "d")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{".": true, "..": true}
	for _, p := range legacyHashCollisions {
		names[p[0]], names[p[1]] = true, true
	}
	for i := range 40 {
		names[fmt.Sprintf("f%06d", i)] = true
	}
	for name := range names {
		if name != "." && name != ".." {
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}

	s := nfsdtest.StartServer(t, nfsdtest.WithExports(func(string) string { return nfsdtest.DefaultExports(export) }))
	r, _ := mnt(t, nfsdtest.Dial(t, "tcp", s.MountAddr), nfs3.MountV3, export)
	if r.Status != nfs3.MountOK {
		t.Fatalf("MNT: %v", r.Status)
	}
	e := &edgeClient{t: t, c: nfsdtest.Dial(t, "tcp", s.NFSAddr), root: r.Handle}
	h := e.lookup(e.root, "d")

	// The pairs must share a cookie here, or the test shows nothing.
	cookies := map[string]uint64{}
	var all nfs3.ReaddirRes
	e.call(nfsdtest.AuthSys(0, 0), nfs3.ProcReaddir, &nfs3.ReaddirArgs{Dir: h, Count: 64 << 10}, &all)
	if all.Status != nfs3.StatusOK || !all.EOF || len(all.Entries) != len(names) {
		t.Fatalf("whole listing: %v eof %v, %d entries", all.Status, all.EOF, len(all.Entries))
	}
	prev := map[string]uint64{}
	var last uint64
	for _, en := range all.Entries {
		prev[en.Name], last = last, en.Cookie
		cookies[en.Name] = en.Cookie
	}
	for _, p := range legacyHashCollisions {
		if prev[p[0]] != prev[p[1]] && cookies[p[0]] != cookies[p[1]] && prev[p[0]] != cookies[p[1]] && prev[p[1]] != cookies[p[0]] {
			t.Fatalf("%s and %s do not share a cookie (not the legacy hash?)", p[0], p[1])
		}
	}

	entry := nfs3.EntrySize(7) // every name but . and .. has 7 bytes
	for per := 1; per <= 6; per++ {
		for _, plus := range []bool{false, true} {
			t.Run(fmt.Sprintf("per=%d/plus=%v", per, plus), func(t *testing.T) {
				seen := map[string]int{}
				var cookie uint64
				for pages := 0; ; pages++ {
					if pages > 2*len(names) {
						t.Fatalf("listing does not end: %v", seen)
					}
					var (
						st      nfs3.Status
						eof     bool
						entries []string
						next    uint64
					)
					if plus {
						var rr nfs3.ReaddirplusRes
						max := nfs3.ReaddirFixedSize(true) + per*nfs3.EntryPlusSize(7, true, make([]byte, len(h)))
						e.call(nfsdtest.AuthSys(0, 0), nfs3.ProcReaddirplus, &nfs3.ReaddirplusArgs{Dir: h, Cookie: cookie, DirCount: uint32(max), MaxCount: uint32(max)}, &rr)
						st, eof = rr.Status, rr.EOF
						for _, en := range rr.Entries {
							entries, next = append(entries, en.Name), en.Cookie
						}
					} else {
						var rr nfs3.ReaddirRes
						count := nfs3.ReaddirFixedSize(true) + per*entry
						e.call(nfsdtest.AuthSys(0, 0), nfs3.ProcReaddir, &nfs3.ReaddirArgs{Dir: h, Cookie: cookie, Count: uint32(count)}, &rr)
						st, eof = rr.Status, rr.EOF
						for _, en := range rr.Entries {
							entries, next = append(entries, en.Name), en.Cookie
						}
					}
					if st == nfs3.StatusTooSmall && per == 1 {
						return // a pair does not fit one entry's room
					}
					if st != nfs3.StatusOK {
						t.Fatalf("page %d: %v", pages, st)
					}
					for _, n := range entries {
						seen[n]++
					}
					if eof {
						break
					}
					cookie = next
				}
				for n := range names {
					if seen[n] != 1 {
						t.Errorf("%s listed %d times", n, seen[n])
					}
				}
			})
		}
	}
}
