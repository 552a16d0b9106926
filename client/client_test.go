package client

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

func startServer(t testing.TB, opts ...nfsdtest.Option) *nfsdtest.TestServer {
	t.Helper()
	return nfsdtest.StartServer(t, opts...)
}

func dialServer(t testing.TB, s *nfsdtest.TestServer, sub string, opts Options) *Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, s.URL(sub), opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestDialThroughPortmapper(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	ctx := context.Background()
	var trace PortmapTrace
	port, err := GetPort(ctx, s.PortmapAddr.String(), nfs3.Program, nfs3.Version, &trace)
	if err != nil {
		t.Fatalf("GetPort: %v (trace %v)", err, trace)
	}
	if port != int(s.NFSAddr.Port()) {
		t.Errorf("GetPort NFS = %d, want %d", port, s.NFSAddr.Port())
	}
	// Over UDP, as FreeBSD clients ask.
	res, err := CallUDP(ctx, s.PortmapAddr.String(), 100000, 2, 3, AuthNone(), func(e *xdr.Encoder) {
		e.Uint32(nfs3.MountProgram)
		e.Uint32(3)
		e.Uint32(6)
		e.Uint32(0)
	})
	if err != nil || len(res) != 4 || int(res[2])<<8|int(res[3]) != int(s.MountAddr.Port()) {
		t.Errorf("GETPORT over UDP: %v %x", err, res)
	}
	if _, err := GetPort(ctx, s.PortmapAddr.String(), 400000, 1, nil); !errors.Is(err, ErrNotRegistered) {
		t.Errorf("GetPort of an unknown program: %v", err)
	}

	u := fmt.Sprintf("nfs://%s%s?version=3&uid=0&gid=0", s.PortmapAddr, s.Export)
	c, err := Dial(ctx, u, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if err := c.Null(ctx); err != nil {
		t.Fatal(err)
	}
	xs, err := Exports(ctx, s.MountAddr.String(), AuthNone())
	if err != nil || len(xs) == 0 || xs[0].Dir != s.Export {
		t.Errorf("Exports = %v, %v", xs, err)
	}
}

func TestDialSubdirectoryOfExport(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, nfsdtest.WithSetup(func(t testing.TB, root string) {
		if err := os.MkdirAll(filepath.Join(root, "12/34-tevie/Maildir"), 0o755); err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(root, "12/34-tevie/Maildir/hello"), []byte("hi"), 0o644)
	}))
	c := dialServer(t, s, "12/34-tevie/Maildir", Options{})
	b, err := c.ReadFile(context.Background(), "hello")
	if err != nil || string(b) != "hi" {
		t.Errorf("ReadFile in subdirectory root: %q %v", b, err)
	}
}

// TestEveryCall runs each NFSv3 procedure against a real mailnfsd.
func TestEveryCall(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t)
	c := dialServer(t, s, "", Options{})
	ctx := context.Background()
	root := c.Root()
	mode := func(m uint32) SetAttr { return SetAttr{Mode: &m} }

	t.Run("GetattrRoot", func(t *testing.T) {
		a, err := c.Getattr(ctx, root)
		if err != nil || a.Type != nfs3.TypeDir {
			t.Fatalf("Getattr root: %+v %v", a, err)
		}
	})
	dir, dattr, err := c.Mkdir(ctx, root, "d", mode(0o755))
	if err != nil {
		t.Fatalf("Mkdir: %v", err)
	}
	if dattr != nil && dattr.Type != nfs3.TypeDir {
		t.Errorf("Mkdir attr type %v", dattr.Type)
	}
	if _, _, err := c.Mkdir(ctx, root, "d", mode(0o755)); !errors.Is(err, fs.ErrExist) {
		t.Errorf("second Mkdir: %v, want EXIST", err)
	}

	t.Run("CreateModes", func(t *testing.T) {
		f1, _, err := c.Create(ctx, dir, "unchecked", Unchecked, mode(0o644), [8]byte{})
		if err != nil {
			t.Fatal(err)
		}
		f1b, _, err := c.Create(ctx, dir, "unchecked", Unchecked, mode(0o644), [8]byte{})
		if err != nil || !bytes.Equal(f1, f1b) {
			t.Errorf("UNCHECKED on existing: %v, same handle %v", err, bytes.Equal(f1, f1b))
		}
		if _, _, err := c.Create(ctx, dir, "guarded", Guarded, mode(0o644), [8]byte{}); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.Create(ctx, dir, "guarded", Guarded, mode(0o644), [8]byte{}); !IsStatus(err, NFS3ErrExist) {
			t.Errorf("GUARDED on existing: %v", err)
		}
		v := [8]byte{1, 2, 3, 4, 5, 6, 7, 8}
		e1, _, err := c.Create(ctx, dir, "excl", Exclusive, SetAttr{}, v)
		if err != nil {
			t.Fatal(err)
		}
		// A retransmission with the same verifier succeeds with the same
		// file; another verifier is EXIST.
		e2, _, err := c.Create(ctx, dir, "excl", Exclusive, SetAttr{}, v)
		if err != nil || !bytes.Equal(e1, e2) {
			t.Errorf("EXCLUSIVE retry with same verifier: %v", err)
		}
		if _, _, err := c.Create(ctx, dir, "excl", Exclusive, SetAttr{}, [8]byte{9}); !IsStatus(err, NFS3ErrExist) {
			t.Errorf("EXCLUSIVE with another verifier: %v", err)
		}
	})

	f, _, err := c.Create(ctx, dir, "f", Guarded, mode(0o600), [8]byte{})
	if err != nil {
		t.Fatal(err)
	}
	t.Run("WriteReadCommit", func(t *testing.T) {
		r, err := c.Write(ctx, f, 0, []byte("hello, world"), Unstable)
		if err != nil || r.Count != 12 {
			t.Fatalf("Write: %+v %v", r, err)
		}
		v, err := c.Commit(ctx, f, 0, 0)
		if err != nil || v != r.Verf {
			t.Errorf("Commit: verf %x vs %x, %v", v, r.Verf, err)
		}
		data, eof, err := c.Read(ctx, f, 7, 100)
		if err != nil || string(data) != "world" || !eof {
			t.Errorf("Read: %q eof=%v %v", data, eof, err)
		}
		big := bytes.Repeat([]byte("0123456789abcdef"), (3*c.MaxWrite()+100)/16)
		if err := c.WriteAll(ctx, f, big); err != nil {
			t.Fatal(err)
		}
		got, err := c.ReadAll(ctx, f)
		if err != nil || !bytes.Equal(got, big) {
			t.Errorf("ReadAll after WriteAll of %d bytes: %d bytes, %v", len(big), len(got), err)
		}
	})
	t.Run("Setattr", func(t *testing.T) {
		size := uint64(5)
		m := uint32(0o640)
		a, err := c.Getattr(ctx, f)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Setattr(ctx, f, SetAttr{Size: &size, Mode: &m, Mtime: nfs3.SetToClientTime, MtimeVal: Time{Seconds: 1000000000}}, &a.Ctime); err != nil {
			t.Fatal(err)
		}
		b, _ := c.Getattr(ctx, f)
		if b.Size != 5 || b.Mode&0o7777 != 0o640 || b.Mtime.Seconds != 1000000000 {
			t.Errorf("after Setattr: %+v", b)
		}
		if _, err := c.Setattr(ctx, f, SetAttr{Size: &size}, &Time{Seconds: 1}); !IsStatus(err, NFS3ErrNotSync) {
			t.Errorf("guarded Setattr with a stale ctime: %v", err)
		}
	})
	t.Run("LookupAccess", func(t *testing.T) {
		fh, a, err := c.Lookup(ctx, dir, "f")
		if err != nil || !bytes.Equal(fh, f) || a == nil {
			t.Errorf("Lookup: %v", err)
		}
		if _, _, err := c.Lookup(ctx, dir, "missing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("Lookup missing: %v", err)
		}
		got, err := c.Access(ctx, f, nfs3.AccessRead|nfs3.AccessModify)
		if err != nil || got != nfs3.AccessRead|nfs3.AccessModify {
			t.Errorf("Access as root: %#x %v", got, err)
		}
		fh2, _, err := c.LookupPath(ctx, "d/f")
		if err != nil || !bytes.Equal(fh2, f) {
			t.Errorf("LookupPath: %v", err)
		}
	})
	t.Run("SymlinkReadlink", func(t *testing.T) {
		l, _, err := c.Symlink(ctx, dir, "l", "f", SetAttr{})
		if err != nil {
			t.Fatal(err)
		}
		target, err := c.Readlink(ctx, l)
		if err != nil || target != "f" {
			t.Errorf("Readlink: %q %v", target, err)
		}
	})
	t.Run("Mknod", func(t *testing.T) {
		_, _, err := c.Mknod(ctx, dir, "fifo", nfs3.TypeFifo, mode(0o600), SpecData{})
		var ce *Error
		if err != nil && !errors.As(err, &ce) {
			t.Errorf("Mknod: %v", err)
		}
	})
	t.Run("LinkRenameRemove", func(t *testing.T) {
		if err := c.Link(ctx, f, dir, "f2"); err != nil {
			t.Fatal(err)
		}
		if err := c.Link(ctx, f, dir, "f2"); !IsStatus(err, NFS3ErrExist) {
			t.Errorf("second Link: %v", err)
		}
		if err := c.Rename(ctx, dir, "f2", root, "moved"); err != nil {
			t.Fatal(err)
		}
		fh, _, err := c.Lookup(ctx, root, "moved")
		if err != nil || !bytes.Equal(fh, f) {
			t.Errorf("after Rename: %v", err)
		}
		if err := c.Remove(ctx, root, "moved"); err != nil {
			t.Fatal(err)
		}
		if err := c.Remove(ctx, root, "moved"); !IsStatus(err, NFS3ErrNoEnt) {
			t.Errorf("second Remove: %v", err)
		}
		if _, _, err := c.Mkdir(ctx, root, "empty", mode(0o755)); err != nil {
			t.Fatal(err)
		}
		if err := c.Rmdir(ctx, root, "empty"); err != nil {
			t.Fatal(err)
		}
		if err := c.Rmdir(ctx, root, "d"); !IsStatus(err, NFS3ErrNotEmpty) && !IsStatus(err, NFS3ErrExist) {
			t.Errorf("Rmdir of a non-empty dir: %v", err)
		}
	})
	t.Run("ReadDirPaging", func(t *testing.T) {
		ld, _, err := c.Mkdir(ctx, root, "many", mode(0o755))
		if err != nil {
			t.Fatal(err)
		}
		var want []string
		for i := range 300 {
			n := fmt.Sprintf("1700000000.M%dP1Q%d.host,S=100", i, i)
			want = append(want, n)
			if _, _, err := c.Create(ctx, ld, n, Guarded, mode(0o600), [8]byte{}); err != nil {
				t.Fatal(err)
			}
		}
		// Small pages, so the helpers must follow cookies.
		defer func(old uint32) { c.dtpref = old }(c.dtpref)
		c.dtpref = 2048
		pages := checkListing(t, ctx, c, ld, want)
		// Small explicit pages.
		p, err := c.ReadDir(ctx, ld, 0, [8]byte{}, 1024)
		if err != nil || len(p.Entries) == 0 || p.EOF {
			t.Errorf("one small page: %d entries eof=%v %v", len(p.Entries), p.EOF, err)
		}
		if pages < 2 {
			t.Errorf("READDIR listing took %d pages; paging not exercised", pages)
		}
	})
	t.Run("FSStatFSInfoPathconf", func(t *testing.T) {
		st, err := c.FSStat(ctx, root)
		if err != nil || st.TBytes == 0 {
			t.Errorf("FSStat: %+v %v", st, err)
		}
		fi, err := c.FSInfo(ctx, root)
		if err != nil || fi.Wtmax == 0 || fi.Rtmax == 0 {
			t.Errorf("FSInfo: %+v %v", fi, err)
		}
		pc, err := c.Pathconf(ctx, root)
		if err != nil || pc.NameMax == 0 {
			t.Errorf("Pathconf: %+v %v", pc, err)
		}
	})
	t.Run("WriteFileReadFile", func(t *testing.T) {
		if err := c.WriteFile(ctx, "d/wf", []byte("payload"), 0o600); err != nil {
			t.Fatal(err)
		}
		b, err := c.ReadFile(ctx, "d/wf")
		if err != nil || string(b) != "payload" {
			t.Errorf("ReadFile: %q %v", b, err)
		}
		onDisk, err := os.ReadFile(filepath.Join(s.Root, "d/wf"))
		if err != nil || string(onDisk) != "payload" {
			t.Errorf("on disk: %q %v", onDisk, err)
		}
	})
	t.Run("StaleHandle", func(t *testing.T) {
		bad := append([]byte(nil), f...)
		bad[len(bad)-1] ^= 0xff
		_, err := c.Getattr(ctx, bad)
		var ce *Error
		if !errors.As(err, &ce) || (ce.Status != NFS3ErrBadHandle && ce.Status != NFS3ErrStale) {
			t.Errorf("Getattr of a forged handle: %v", err)
		}
	})
}

// checkListing lists dir with ReadDirAll and ReadDirPlusAll and checks that
// both return exactly the names in want (in any order) and that every
// READDIRPLUS entry carries attributes and a handle. It returns the number
// of READDIR pages, so callers can check that paging was exercised.
func checkListing(t *testing.T, ctx context.Context, c *Client, dir []byte, want []string) (pages int) {
	t.Helper()
	var got, gotPlus []string
	if err := c.ReadDirAll(ctx, dir, func(es []DirEntry) bool {
		pages++
		for _, e := range es {
			got = append(got, e.Name)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if err := c.ReadDirPlusAll(ctx, dir, func(es []DirEntryPlus) bool {
		for _, e := range es {
			if e.Attr == nil || e.Handle == nil {
				t.Errorf("READDIRPLUS entry %s without attributes or handle", e.Name)
			}
			gotPlus = append(gotPlus, e.Name)
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	sort.Strings(want)
	sort.Strings(got)
	sort.Strings(gotPlus)
	if strings.Join(got, "\n") != strings.Join(want, "\n") || strings.Join(gotPlus, "\n") != strings.Join(want, "\n") {
		t.Errorf("listing: %d names via READDIR, %d via READDIRPLUS, want %d", len(got), len(gotPlus), len(want))
	}
	return pages
}

// A client whose RPCOptions.MaxRecord is below the server's rtmax reads
// in pieces that fit: a READ of rtmax drew a reply the reader refused,
// and the call, resent on each new connection, drew it again until its
// deadline.
func TestDialKeepsReadsWithinMaxRecord(t *testing.T) {
	checkGoroutines(t)
	s := startServer(t, maildirSetup("box"))
	want := make([]byte, 300000)
	for i := range want {
		want[i] = byte(i % 251)
	}
	if err := os.WriteFile(filepath.Join(s.Root, "box", "new", "1.x,S=300000"), want, 0o600); err != nil {
		t.Fatal(err)
	}
	c := dialServer(t, s, "", Options{RPC: RPCOptions{MaxRecord: 128 << 10}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	fh, _, err := c.LookupPath(ctx, "box/new/1.x,S=300000")
	if err != nil {
		t.Fatal(err)
	}
	got, err := c.ReadAll(ctx, fh)
	if err != nil || !bytes.Equal(got, want) {
		t.Fatalf("ReadAll with MaxRecord 128 KiB: %d bytes, %v; want the 300000-byte file", len(got), err)
	}
	if c.MaxRead() > 128<<10 {
		t.Errorf("MaxRead = %d, above MaxRecord", c.MaxRead())
	}
}
