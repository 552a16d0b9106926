package maildirfs_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// zstore opens a temporary export with compression on.
func zstore(t testing.TB) *mdtest.Store {
	t.Helper()
	return mdtest.NewOpts(t, maildirfs.Options{Compress: "zstd"})
}

// mixedData returns n bytes: text-like runs mixed with random runs.
func mixedData(r *rand.Rand, n int) []byte {
	b := make([]byte, n)
	for i := 0; i < n; {
		run := min(n-i, 1+r.IntN(4096))
		if r.IntN(4) == 0 {
			for j := range run {
				b[i+j] = byte(r.Uint32())
			}
		} else {
			w := []byte("lorem ipsum dolor sit amet mailbox delivery ")
			for j := range run {
				b[i+j] = w[(i+j)%len(w)]
			}
		}
		i += run
	}
	return b
}

// waitCompressed waits until the background worker compressed want files.
//
// It gives up only after two minutes without progress: a dictionary
// training is one long step, which under -race on a loaded 2-core
// machine took over 30 s (TestCompressRetrains failed so 3 times in 5).
func waitCompressed(t testing.TB, s *mdtest.Store, want uint64) {
	t.Helper()
	last, since := s.Stats().Compressed, time.Now()
	for n := last; n < want; n = s.Stats().Compressed {
		if n != last {
			last, since = n, time.Now()
		}
		if time.Since(since) > 2*time.Minute {
			t.Fatalf("compressed %d files, want %d, none more for 2 minutes (stats %+v)", n, want, s.Stats())
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// readChunks reads h through the FS in chunks of chunk bytes.
func readChunks(t testing.TB, s *mdtest.Store, h maildirfs.Handle, chunk int) []byte {
	t.Helper()
	var out []byte
	buf := make([]byte, chunk)
	for {
		k, eof, _, err := s.Read(h, root, uint64(len(out)), buf)
		if err != nil {
			t.Fatalf("read at %d: %v", len(out), err)
		}
		out = append(out, buf[:k]...)
		if eof {
			return out
		}
		if k == 0 {
			t.Fatalf("read at %d: 0 bytes without eof", len(out))
		}
	}
}

// stored returns the on-disk size of path and whether it carries the marker.
func stored(t testing.TB, path string) (int64, bool) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	_, xerr := unix.Getxattr(path, maildirfs.ZXattr, make([]byte, 64))
	return fi.Size(), xerr == nil
}

// TestCompressRoundTrip delivers files of 0 B..10 MiB (tmp/ -> new/), waits
// for the background compressor and reads them back through the FS at
// random offsets and lengths; sizes, mtimes and READDIRPLUS sizes are the
// originals.
func TestCompressRoundTrip(t *testing.T) {
	defer maildirfs.SetZMin(0, 0)()
	s := zstore(t)
	tmp, nw := lookup(t, s, "Maildir", "tmp"), lookup(t, s, "Maildir", "new")
	r := rand.New(rand.NewPCG(1, 2))
	sizes := []int{0, 1, 31, 32, 100, 4095, 4096, 65535, 65536, 65537, 200_001, 1 << 20, 10 << 20}
	type msg struct {
		name  string
		h     maildirfs.Handle
		data  []byte
		mtime time.Time
	}
	var msgs []msg
	for i, n := range sizes {
		data := mixedData(r, n)
		name := fmt.Sprintf("m%d", i)
		h := create(t, s, tmp, root, name, data)
		mtime := time.Unix(1700000000+int64(i), 123456789)
		if _, err := s.SetAttr(h, root, maildirfs.SetAttr{Mtime: maildirfs.ClientTime, MtimeVal: mtime}, nil); err != nil {
			t.Fatal(err)
		}
		if _, _, err := s.Rename(tmp, name, nw, name+":2,", root); err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, msg{name + ":2,", h, data, mtime})
	}
	waitCompressed(t, s, uint64(len(sizes)))
	plus := map[string]uint64{}
	if _, _, err := s.ReadDir(nw, root, 0, true, func(e *maildirfs.DirEntry) bool {
		if e.Attr != nil {
			plus[e.Name] = e.Attr.Size
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	for _, m := range msgs {
		phys, marked := stored(t, filepath.Join(s.Dir, "Maildir", "new", m.name))
		if !marked {
			t.Errorf("%s: not compressed", m.name)
		}
		a := getattr(t, s, m.h)
		if a.Size != uint64(len(m.data)) || plus[m.name] != a.Size {
			t.Errorf("%s: size %d, readdirplus %d, want %d (stored %d)", m.name, a.Size, plus[m.name], len(m.data), phys)
		}
		if !a.Mtime.Equal(m.mtime) {
			t.Errorf("%s: mtime %v, want %v", m.name, a.Mtime, m.mtime)
		}
		_, la, _, err := s.Lookup(nw, root, m.name)
		if err != nil || la.Size != a.Size {
			t.Errorf("%s: lookup size %d %v", m.name, la.Size, err)
		}
		if got := readChunks(t, s, m.h, 32<<10); !bytes.Equal(got, m.data) {
			t.Fatalf("%s: full read differs (%d bytes, want %d)", m.name, len(got), len(m.data))
		}
		for range 50 {
			off := r.IntN(len(m.data) + 10)
			buf := make([]byte, r.IntN(200<<10)+1)
			k, eof, pa, err := s.Read(m.h, root, uint64(off), buf)
			if err != nil {
				t.Fatalf("%s: read %d+%d: %v", m.name, off, len(buf), err)
			}
			want := m.data[min(off, len(m.data)):min(off+len(buf), len(m.data))]
			if !bytes.Equal(buf[:k], want) || eof != (off+k >= len(m.data)) || pa.Size != uint64(len(m.data)) {
				t.Fatalf("%s: read %d+%d: got %d bytes eof %v, want %d", m.name, off, len(buf), k, eof, len(want))
			}
		}
	}
	st := s.Stats()
	t.Logf("compressed %d files: %d -> %d bytes", st.Compressed, st.CompressPlainBytes, st.CompressStoredBytes)
	// A restart (fresh caches, compression off) still serves the originals.
	s.Opts.Compress = ""
	s.Reopen(t)
	for _, m := range msgs[len(msgs)-3:] {
		if got := readChunks(t, s, m.h, 64<<10); !bytes.Equal(got, m.data) {
			t.Fatalf("%s after reopen: differs", m.name)
		}
	}
}

// TestCompressOnlyDelivered: files written in other directories, and files
// moved into new/ from anywhere but tmp/, stay plain; incompressible files
// stay plain.
func TestCompressOnlyDelivered(t *testing.T) {
	s := zstore(t)
	md := lookup(t, s, "Maildir")
	tmp, nw, cur := lookup(t, s, "Maildir", "tmp"), lookup(t, s, "Maildir", "new"), lookup(t, s, "Maildir", "cur")
	text := bytes.Repeat([]byte("Subject: hello\n\nsome text\n"), 400)
	create(t, s, md, root, "dovecot-uidlist", text)
	create(t, s, cur, root, "direct", text)
	if _, _, err := s.Rename(cur, "direct", nw, "direct", root); err != nil {
		t.Fatal(err)
	}
	random := make([]byte, 20000)
	for i := range random {
		random[i] = byte(rand.Uint32())
	}
	create(t, s, tmp, root, "rnd", random)
	if _, _, err := s.Rename(tmp, "rnd", nw, "rnd", root); err != nil {
		t.Fatal(err)
	}
	create(t, s, tmp, root, "txt", text)
	if _, _, err := s.Rename(tmp, "txt", cur, "txt:2,S", root); err != nil {
		t.Fatal(err)
	}
	waitCompressed(t, s, 1)
	time.Sleep(50 * time.Millisecond) // the worker has seen "rnd" too (queued before "txt")
	for _, p := range []string{"dovecot-uidlist", "new/direct", "new/rnd"} {
		if _, marked := stored(t, filepath.Join(s.Dir, "Maildir", p)); marked {
			t.Errorf("%s compressed", p)
		}
	}
	if phys, marked := stored(t, filepath.Join(s.Dir, "Maildir", "cur", "txt:2,S")); !marked || phys*5 > int64(len(text)) {
		t.Errorf("cur/txt: marked %v, %d bytes for %d", marked, phys, len(text))
	}
}

// TestCompressHandleFromTmp: the handle a client got from CREATE in tmp/
// reads the exact original bytes after the rename and the compression,
// and after a restart.
func TestCompressHandleFromTmp(t *testing.T) {
	s := zstore(t)
	tmp, nw, cur := lookup(t, s, "Maildir", "tmp"), lookup(t, s, "Maildir", "new"), lookup(t, s, "Maildir", "cur")
	msg := mdtest.Corpus(1, mdtest.CorpusOptions{Seed: 7})[0]
	h := create(t, s, tmp, root, "1.M1.host", msg)
	before := getattr(t, s, h)
	if _, _, err := s.Rename(tmp, "1.M1.host", nw, "1.M1.host", root); err != nil {
		t.Fatal(err)
	}
	waitCompressed(t, s, 1)
	if _, _, err := s.Rename(nw, "1.M1.host", cur, "1.M1.host:2,S", root); err != nil {
		t.Fatal(err)
	}
	phys, marked := stored(t, filepath.Join(s.Dir, "Maildir", "cur", "1.M1.host:2,S"))
	if !marked || phys >= int64(len(msg)) {
		t.Fatalf("not compressed: %d bytes for %d", phys, len(msg))
	}
	after := getattr(t, s, h)
	if after.Size != before.Size || !after.Mtime.Equal(before.Mtime) || after.FileID != before.FileID {
		t.Errorf("attributes changed: before %+v after %+v", before, after)
	}
	if got := readChunks(t, s, h, 4096); !bytes.Equal(got, msg) {
		t.Fatal("read through the tmp/ handle differs")
	}
	s.Reopen(t)
	if got := readChunks(t, s, h, 1<<20); !bytes.Equal(got, msg) {
		t.Fatal("read after restart differs")
	}
}

// TestCompressThenWrite: WRITE and SETATTR(size) on a compressed file
// expand it first; the result is what a plain file would hold.
func TestCompressThenWrite(t *testing.T) {
	s := zstore(t)
	tmp, nw := lookup(t, s, "Maildir", "tmp"), lookup(t, s, "Maildir", "new")
	msgs := mdtest.Corpus(2, mdtest.CorpusOptions{Seed: 3})
	var hs []maildirfs.Handle
	for i, m := range msgs {
		name := fmt.Sprint("m", i)
		hs = append(hs, create(t, s, tmp, root, name, m))
		if _, _, err := s.Rename(tmp, name, nw, name, root); err != nil {
			t.Fatal(err)
		}
	}
	waitCompressed(t, s, 2)
	want := append([]byte(nil), msgs[0]...)
	patch := []byte("PATCHED")
	copy(want[100:], patch)
	want = append(want, patch...)
	if _, _, _, _, err := s.Write(hs[0], root, 100, patch, maildirfs.FileSync); err != nil {
		t.Fatal(err)
	}
	if _, _, _, _, err := s.Write(hs[0], root, uint64(len(msgs[0])), patch, maildirfs.Unstable); err != nil {
		t.Fatal(err)
	}
	if got := readChunks(t, s, hs[0], 8192); !bytes.Equal(got, want) {
		t.Fatal("content after WRITE differs")
	}
	if _, marked := stored(t, filepath.Join(s.Dir, "Maildir", "new", "m0")); marked {
		t.Error("written file still marked compressed")
	}
	size := uint64(1000)
	if _, err := s.SetAttr(hs[1], root, maildirfs.SetAttr{Size: &size}, nil); err != nil {
		t.Fatal(err)
	}
	if got := readChunks(t, s, hs[1], 8192); !bytes.Equal(got, msgs[1][:1000]) {
		t.Fatal("content after truncate differs")
	}
	if a := getattr(t, s, hs[1]); a.Size != 1000 {
		t.Fatalf("size %d after truncate", a.Size)
	}
	if st := s.Stats(); st.Expanded != 2 {
		t.Errorf("expanded %d, want 2", st.Expanded)
	}
}

// TestCompressMagicIsNotEnough: a plain file that starts with the magic, or
// that carries a marker naming another size, is served as it is.
func TestCompressMagicIsNotEnough(t *testing.T) {
	s := zstore(t)
	cur := lookup(t, s, "Maildir", "cur")
	data := append([]byte("MNFSZ\x00\x00\x01"), bytes.Repeat([]byte{0xff}, 100)...)
	h := create(t, s, cur, root, "evil:2,", data)
	p := filepath.Join(s.Dir, "Maildir", "cur", "evil:2,")
	if got := readChunks(t, s, h, 4096); !bytes.Equal(got, data) {
		t.Fatal("magic-prefixed plain file altered")
	}
	v := append([]byte("Z1"), make([]byte, 16)...)
	v[9], v[17] = 5, 200 // usize 5, csize 200 != 108
	if err := unix.Setxattr(p, maildirfs.ZXattr, v, 0); err != nil {
		t.Fatal(err)
	}
	s.Reopen(t)
	if a := getattr(t, s, h); a.Size != uint64(len(data)) {
		t.Fatalf("size %d", a.Size)
	}
	if got := readChunks(t, s, h, 4096); !bytes.Equal(got, data) {
		t.Fatal("plain file with a mismatching marker altered")
	}
}

// TestCompressForeignMarker: a compressed file whose marker this version
// cannot read (a newer mailnfsd's format, met after a downgrade; here a
// "Z3" marker longer than "Z2" and a "Z9" one of Z2's length) answers EIO
// on READ and WRITE and fails Expand, instead of serving its compressed
// bytes as the message (what a build from before "Z2" did with this
// version's files: NFS3_OK and the zstd frames).
func TestCompressForeignMarker(t *testing.T) {
	mdtest.RequireRoot(t)
	defer maildirfs.SetZMin(0, 0)()
	for _, marker := range []string{"Z3", "Z9"} {
		t.Run(marker, func(t *testing.T) {
			s := zstore(t)
			// Made in cur/ (as TestExpandCrash does): a RENAME into it
			// would queue the file for the worker, which could compress
			// it before CompressNow.
			cur := lookup(t, s, "Maildir", "cur")
			data := bytes.Repeat([]byte("lorem ipsum dolor sit amet mailbox delivery\n"), 200)
			h := create(t, s, cur, root, "m:2,", data)
			if n, err := s.CompressNow([]maildirfs.Handle{h}); err != nil || n != 1 {
				t.Fatalf("compress: %d %v", n, err)
			}
			p := filepath.Join(s.Dir, "Maildir", "cur", "m:2,")
			v := make([]byte, 26)
			if _, err := unix.Getxattr(p, maildirfs.ZXattr, v); err != nil {
				t.Fatal(err)
			}
			v[0], v[1] = marker[0], marker[1]
			if marker == "Z3" {
				v = append(v, make([]byte, 8)...)
			}
			if err := unix.Setxattr(p, maildirfs.ZXattr, v, 0); err != nil {
				t.Fatal(err)
			}
			s.Reopen(t)
			buf := make([]byte, len(data))
			if k, _, _, err := s.Read(h, root, 0, buf); !errors.Is(err, unix.EIO) {
				t.Errorf("READ: %d bytes %q..., err %v; want EIO", k, buf[:min(k, 16)], err)
			}
			if _, _, _, _, err := s.Write(h, root, 0, []byte("x"), maildirfs.FileSync); !errors.Is(err, unix.EIO) {
				t.Errorf("WRITE: %v; want EIO", err)
			}
			s.SkipCheck = true
			if err := s.FS.Close(); err != nil {
				t.Fatal(err)
			}
			s.FS = nil
			if _, err := maildirfs.Expand(s.Dir, s.Opts); !errors.Is(err, unix.EIO) {
				t.Errorf("Expand: %v; want EIO", err)
			}
		})
	}
}

// TestCompressForeignJournal: a journal record this version cannot read
// (a newer mailnfsd's, left by its crash and met after a downgrade) stops
// Open with an error naming it, and the journal is kept for that version;
// it was taken for a torn tail and the journal emptied, so the rewrites it
// named could never be finished. A magic torn by a crash is still a torn
// tail.
func TestCompressForeignJournal(t *testing.T) {
	mdtest.RequireRoot(t)
	s := zstore(t)
	wj, err := filepath.Glob(filepath.Join(s.StateDir, maildirfs.ZJournalDir, "*", "worker.j"))
	if err != nil || len(wj) != 1 {
		t.Fatalf("worker journal: %v %v", wj, err)
	}
	if err := s.FS.Close(); err != nil {
		t.Fatal(err)
	}
	s.FS = nil
	foreign := append([]byte("MNFSZJ03C"), make([]byte, 120)...)
	if err := os.WriteFile(wj[0], foreign, 0o600); err != nil {
		t.Fatal(err)
	}
	if fsys, err := maildirfs.Open(s.Dir, s.Opts); err == nil || !strings.Contains(err.Error(), "MNFSZJ03") {
		if fsys != nil {
			fsys.Close()
		}
		t.Fatalf("Open: %v; want an error naming MNFSZJ03", err)
	}
	if b, err := os.ReadFile(wj[0]); err != nil || !bytes.Equal(b, foreign) {
		t.Fatalf("journal after the refused Open: %d bytes, %v", len(b), err)
	}
	torn := append([]byte("MNFSZJ0"), make([]byte, 121)...)
	if err := os.WriteFile(wj[0], torn, 0o600); err != nil {
		t.Fatal(err)
	}
	fsys, err := maildirfs.Open(s.Dir, s.Opts)
	if err != nil {
		t.Fatalf("Open with a torn magic: %v", err)
	}
	s.FS = fsys
}

// crashSteps are the steps of a compression group, in order; the group
// touches no inode before "marked" (the first "xattr" comes before the
// first marker).
var crashSteps = []string{"journaled", "xattr", "marked", "write", "truncate", "times", "fsync", "applied"}

// TestCompressCrash stops a compression group at each step as if the
// server died (no cleanup), reopens the store, and checks that every message
// reads intact with its size and mtime, and that the group was finished
// if it had touched the files (their markers carry the ids the journal's
// records name), else left alone.
func TestCompressCrash(t *testing.T) {
	defer maildirfs.SetZCrashHook(nil)
	for _, step := range crashSteps {
		t.Run(step, func(t *testing.T) {
			s := zstore(t)
			cur := lookup(t, s, "Maildir", "cur")
			msgs := mdtest.Corpus(5, mdtest.CorpusOptions{Seed: 11, AttachmentRate: 0.4, MaxAttachment: 150 << 10})
			var hs []maildirfs.Handle
			var attrs []maildirfs.Attr
			for i, m := range msgs {
				h := create(t, s, cur, root, fmt.Sprint("m", i, ":2,"), m) // not via tmp: the worker stays idle
				hs = append(hs, h)
				attrs = append(attrs, getattr(t, s, h))
			}
			maildirfs.SetZCrashHook(func(st string) error {
				if st == step {
					return maildirfs.ErrZCrash
				}
				return nil
			})
			_, err := s.CompressNow(hs)
			maildirfs.SetZCrashHook(nil)
			if !errors.Is(err, maildirfs.ErrZCrash) {
				t.Fatalf("CompressNow: %v, want the simulated crash", err)
			}
			s.Reopen(t)
			for i, h := range hs {
				a := getattr(t, s, h)
				if a.Size != attrs[i].Size || !a.Mtime.Equal(attrs[i].Mtime) {
					t.Errorf("m%d: size %d mtime %v, want %d %v", i, a.Size, a.Mtime, attrs[i].Size, attrs[i].Mtime)
				}
				if got := readChunks(t, s, h, 32<<10); !bytes.Equal(got, msgs[i]) {
					t.Fatalf("m%d differs after recovery", i)
				}
				// The journal was durable before the first inode was
				// touched, and the markers before any content, so
				// recovery finished every rewrite that had begun.
				size, marked := stored(t, filepath.Join(s.Dir, "Maildir", "cur", fmt.Sprint("m", i, ":2,")))
				switch begun := step != "journaled" && step != "xattr"; {
				case begun && !marked:
					t.Errorf("m%d: rewrite not finished by recovery", i)
				case !begun && (marked || size != int64(len(msgs[i]))):
					t.Errorf("m%d: touched (size %d, marked %v) by a group stopped before its first marker", i, size, marked)
				}
			}
			// The group was either finished by recovery or never started:
			// compressing again works and changes nothing visible.
			if _, err := s.CompressNow(hs); err != nil {
				t.Fatal(err)
			}
			for i, h := range hs {
				if got := readChunks(t, s, h, 32<<10); !bytes.Equal(got, msgs[i]) {
					t.Fatalf("m%d differs after recompression", i)
				}
			}
		})
	}
}

// TestExpandCrash stops the expansion before a WRITE at each step; after
// a restart the file holds its original content (the WRITE never happened)
// and a new WRITE works.
func TestExpandCrash(t *testing.T) {
	defer maildirfs.SetZCrashHook(nil)
	for _, step := range []string{"expand-journaled", "expand-mark", "truncate", "write", "times", "fsync", "xattr", "expand-applied"} {
		t.Run(step, func(t *testing.T) {
			s := zstore(t)
			cur := lookup(t, s, "Maildir", "cur")
			msg := mdtest.Corpus(1, mdtest.CorpusOptions{Seed: 5})[0]
			h := create(t, s, cur, root, "m:2,", msg)
			if k, err := s.CompressNow([]maildirfs.Handle{h}); k != 1 || err != nil {
				t.Fatalf("compress: %d %v", k, err)
			}
			maildirfs.SetZCrashHook(func(st string) error {
				if st == step {
					return maildirfs.ErrZCrash
				}
				return nil
			})
			_, _, _, _, err := s.Write(h, root, 0, []byte("X"), maildirfs.FileSync)
			maildirfs.SetZCrashHook(nil)
			if !errors.Is(err, maildirfs.ErrZCrash) {
				t.Fatalf("write: %v, want the simulated crash", err)
			}
			s.Reopen(t)
			if got := readChunks(t, s, h, 32<<10); !bytes.Equal(got, msg) {
				t.Fatal("content differs after recovery")
			}
			if _, _, _, _, err := s.Write(h, root, 0, []byte("X"), maildirfs.FileSync); err != nil {
				t.Fatal(err)
			}
			want := append([]byte("X"), msg[1:]...)
			if got := readChunks(t, s, h, 32<<10); !bytes.Equal(got, want) {
				t.Fatal("content differs after write")
			}
		})
	}
}

// writeTree writes msgs as files under root/Maildir/cur with distinct
// mtimes and returns their paths.
func writeTree(t testing.TB, root string, msgs [][]byte) []string {
	t.Helper()
	var paths []string
	for i, m := range msgs {
		p := filepath.Join(root, "Maildir", "cur", fmt.Sprintf("%d.M%d.host:2,S", 1700000000+i, i))
		if err := os.WriteFile(p, m, 0o600); err != nil {
			t.Fatal(err)
		}
		mt := time.Unix(1700000000+int64(i)*60, 0)
		if err := os.Chtimes(p, mt, mt); err != nil {
			t.Fatal(err)
		}
		paths = append(paths, p)
	}
	return paths
}

// checkTree checks that every path holds msgs[i] and its original mtime
// on disk (plain, after Expand).
func checkTree(t testing.TB, paths []string, msgs [][]byte) {
	t.Helper()
	for i, p := range paths {
		b, err := os.ReadFile(p)
		if err != nil || !bytes.Equal(b, msgs[i]) {
			t.Fatalf("%s differs after expand (%v)", p, err)
		}
		fi, _ := os.Stat(p)
		if !fi.ModTime().Equal(time.Unix(1700000000+int64(i)*60, 0)) {
			t.Errorf("%s: mtime %v", p, fi.ModTime())
		}
	}
}

// mkMaildirTree makes the directory root with one Maildir (tmp/, new/,
// cur/) in it.
func mkMaildirTree(tb testing.TB, root string) {
	tb.Helper()
	for _, d := range []string{"", "Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"} {
		if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
			tb.Fatal(err)
		}
	}
}

// offlineTree makes, under a fresh temporary directory, an export holding
// a Maildir with msgs in cur/ (writeTree) and, beside it, the state
// directory that opts names: what the offline tools (Compact, Expand) and
// a server opened afterwards work on. The export is filepath.Dir(exp)/
// "export" and the state ".../state", as TestCompactKilled's child expects.
func offlineTree(tb testing.TB, msgs [][]byte) (exp string, paths []string, opts maildirfs.Options) {
	tb.Helper()
	dir := tb.TempDir()
	exp = filepath.Join(dir, "export")
	mkMaildirTree(tb, exp)
	return exp, writeTree(tb, exp, msgs), maildirfs.Options{StateDir: filepath.Join(dir, "state")}
}

// TestCompactExpand runs the offline tools both ways, twice each.
func TestCompactExpand(t *testing.T) {
	mdtest.RequireRoot(t)
	msgs := mdtest.Corpus(60, mdtest.CorpusOptions{Seed: 9})
	exp, paths, opts := offlineTree(t, msgs)
	rep, err := maildirfs.Compact(exp, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("compact: %+v (%.2fx)", rep, float64(rep.PlainBytes)/float64(rep.StoredBytes))
	if rep.Changed != len(msgs) || rep.Files != len(msgs) || rep.StoredBytes*3 > rep.PlainBytes*2 {
		t.Errorf("compact report %+v", rep)
	}
	if rep2, err := maildirfs.Compact(exp, opts); err != nil || rep2.Changed != 0 || rep2.StoredBytes != rep.StoredBytes {
		t.Errorf("second compact: %+v %v", rep2, err)
	}
	for i, p := range paths {
		fi, _ := os.Stat(p)
		if !fi.ModTime().Equal(time.Unix(1700000000+int64(i)*60, 0)) {
			t.Errorf("%s: mtime changed to %v", p, fi.ModTime())
		}
	}
	// The server (compression off) serves the compacted tree.
	fsys, err := maildirfs.Open(exp, opts)
	if err != nil {
		t.Fatal(err)
	}
	h, err := fsys.LookupPath(root, "Maildir/cur")
	if err != nil {
		t.Fatal(err)
	}
	mh, a, _, err := fsys.Lookup(h, root, filepath.Base(paths[3]))
	if err != nil || a.Size != uint64(len(msgs[3])) {
		t.Fatalf("lookup: %v size %d", err, a.Size)
	}
	buf := make([]byte, len(msgs[3])+10)
	k, eof, _, err := fsys.Read(mh, root, 0, buf)
	if err != nil || !eof || !bytes.Equal(buf[:k], msgs[3]) {
		t.Fatalf("read: %d %v %v", k, eof, err)
	}
	fsys.Close()
	rep, err = maildirfs.Expand(exp, opts)
	if err != nil || rep.Changed != len(msgs) || rep.PlainBytes != rep.StoredBytes {
		t.Fatalf("expand: %+v %v", rep, err)
	}
	checkTree(t, paths, msgs)
	if _, err := unix.Getxattr(exp, maildirfs.ZXattr, make([]byte, 16)); err != errNoXattr {
		t.Errorf("root marker after expand: %v", err)
	}
	if rep, err := maildirfs.Expand(exp, opts); err != nil || rep.Changed != 0 {
		t.Errorf("second expand: %+v %v", rep, err)
	}
	mdtest.Check(t, exp)
}

// TestCompactDeepTree: the offline tools walk a tree deeper than
// PATH_MAX (an NFS client can make one) like the store serves it, from
// directory fds: a message at the bottom is compressed and expanded, and
// the rest of the tree is not left undone for it.
func TestCompactDeepTree(t *testing.T) {
	mdtest.RequireRoot(t)
	msgs := mdtest.Corpus(5, mdtest.CorpusOptions{Seed: 4})
	exp, paths, opts := offlineTree(t, msgs)
	fd, err := unix.Open(exp, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	name := strings.Repeat("d", 250)
	for range 20 { // 20 * 251 bytes: over PATH_MAX (4096)
		if err := unix.Mkdirat(fd, name, 0o755); err != nil {
			t.Fatal(err)
		}
		next, err := unix.Openat(fd, name, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		unix.Close(fd)
		fd = next
	}
	defer func() { unix.Close(fd) }()
	if err := unix.Mkdirat(fd, "new", 0o755); err != nil {
		t.Fatal(err)
	}
	deep := msgs[0]
	mfd, err := unix.Openat(fd, "new/deep", unix.O_CREAT|unix.O_WRONLY|unix.O_CLOEXEC, 0o600)
	if err != nil {
		t.Fatal(err)
	}
	unix.Write(mfd, deep)
	unix.Close(mfd)
	marked := func() bool {
		mfd, err := unix.Openat(fd, "new/deep", unix.O_RDONLY|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(mfd)
		_, err = unix.Fgetxattr(mfd, maildirfs.ZXattr, make([]byte, 64))
		return err == nil
	}

	rep, err := maildirfs.Compact(exp, opts)
	if err != nil || rep.Changed != len(msgs)+1 || rep.Files != len(msgs)+1 {
		t.Fatalf("compact: %+v %v, want %d files changed", rep, err, len(msgs)+1)
	}
	if !marked() {
		t.Error("the deep message was not compressed")
	}
	rep, err = maildirfs.Expand(exp, opts)
	if err != nil || rep.Changed != len(msgs)+1 || rep.PlainBytes != rep.StoredBytes {
		t.Fatalf("expand: %+v %v", rep, err)
	}
	if marked() {
		t.Error("the deep message is still compressed")
	}
	b := make([]byte, len(deep)+1)
	mfd, err = unix.Openat(fd, "new/deep", unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	k, _ := unix.Read(mfd, b)
	unix.Close(mfd)
	if !bytes.Equal(b[:max(k, 0)], deep) {
		t.Error("the deep message differs after expand")
	}
	checkTree(t, paths, msgs)
}

// TestCompactCrash stops Compact, then Expand, at each step; running the
// tool again finishes the job and every message survives byte for byte.
func TestCompactCrash(t *testing.T) {
	mdtest.RequireRoot(t)
	defer maildirfs.SetZCrashHook(nil)
	steps := append(append([]string{}, crashSteps...), "expand-journaled", "expand-mark", "expand-applied")
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			msgs := mdtest.Corpus(20, mdtest.CorpusOptions{Seed: 13, AttachmentRate: 0.3, MaxAttachment: 100 << 10})
			exp, paths, opts := offlineTree(t, msgs)
			var hits int
			maildirfs.SetZCrashHook(func(st string) error {
				if st == step {
					hits++
					if hits == 1 {
						return maildirfs.ErrZCrash
					}
				}
				return nil
			})
			_, cerr := maildirfs.Compact(exp, opts)
			_, eerr := maildirfs.Expand(exp, opts)
			maildirfs.SetZCrashHook(nil)
			if hits == 0 || (cerr == nil && eerr == nil) {
				t.Fatalf("step %s: hits %d, compact %v, expand %v", step, hits, cerr, eerr)
			}
			if _, err := maildirfs.Compact(exp, opts); err != nil {
				t.Fatal(err)
			}
			rep, err := maildirfs.Expand(exp, opts)
			if err != nil || rep.PlainBytes != rep.StoredBytes {
				t.Fatalf("expand: %+v %v", rep, err)
			}
			checkTree(t, paths, msgs)
		})
	}
}

func newRand() *rand.Rand { return rand.New(rand.NewPCG(42, 43)) }

// TestCompressFaults fails the rewrite's write, then its sync, with EIO
// (not a crash: the server goes on). No file answers wrong bytes (an
// affected one is finished from its journal record before it is read, or
// answers EIO), and after a restart every message reads intact.
func TestCompressFaults(t *testing.T) {
	for _, op := range []maildirfs.FaultOp{maildirfs.FaultWrite, maildirfs.FaultFsync} {
		t.Run(string(op), func(t *testing.T) {
			s := zstore(t)
			cur := lookup(t, s, "Maildir", "cur")
			msgs := mdtest.Corpus(4, mdtest.CorpusOptions{Seed: 21, HTMLRate: 1})
			var hs []maildirfs.Handle
			for i, m := range msgs {
				hs = append(hs, create(t, s, cur, root, fmt.Sprint("m", i, ":2,"), m))
			}
			nth := 2 // the write of the second file; the group's syncfs (after the journal's fdatasync)
			s.Faults.FailNth(op, nth, syscall.EIO)
			k, err := s.CompressNow(hs)
			s.Faults.Clear()
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("compress: %d %v, want EIO", k, err)
			}
			for i, h := range hs {
				buf := make([]byte, len(msgs[i])+1)
				n, _, _, err := s.Read(h, root, 0, buf)
				if err == nil && !bytes.Equal(buf[:n], msgs[i]) {
					t.Fatalf("m%d: wrong bytes served after a failed rewrite", i)
				}
				if err != nil && !errors.Is(err, syscall.EIO) {
					t.Fatalf("m%d: %v", i, err)
				}
			}
			s.Reopen(t)
			for i, h := range hs {
				if got := readChunks(t, s, h, 16<<10); !bytes.Equal(got, msgs[i]) {
					t.Fatalf("m%d differs after restart", i)
				}
			}
		})
	}
}

// TestCompactKilled runs Compact in a child process and SIGKILLs it at
// increasing delays; after each kill, Compact runs again (recovering the
// journal) and every message must read back intact through an FS.
func TestCompactKilled(t *testing.T) {
	if dir := os.Getenv("MAILNFS_ZKILL_CHILD"); dir != "" {
		// Train after the first group, so most kills fall in or after
		// a training.
		defer maildirfs.SetZTrain(50, 64<<20, 1<<30, 0, 0.01)()
		_, err := maildirfs.Compact(filepath.Join(dir, "export"), maildirfs.Options{StateDir: filepath.Join(dir, "state")})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	mdtest.RequireRoot(t)
	if testing.Short() {
		t.Skip("spawns processes")
	}
	msgs := mdtest.Corpus(300, mdtest.CorpusOptions{Seed: 17, HTMLRate: 0.7, AttachmentRate: 0.1, MaxAttachment: 200 << 10})
	defer maildirfs.ForgetZDicts()
	trained := 0
	for round, delay := range []time.Duration{5 * time.Millisecond, 20 * time.Millisecond, 50 * time.Millisecond, 100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 600 * time.Millisecond, 800 * time.Millisecond} {
		exp, paths, opts := offlineTree(t, msgs)
		cmd := exec.Command(os.Args[0], "-test.run=^TestCompactKilled$", "-test.count=1")
		cmd.Env = append(os.Environ(), "MAILNFS_ZKILL_CHILD="+filepath.Dir(exp))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		time.Sleep(delay)
		cmd.Process.Kill()
		cmd.Wait()
		maildirfs.ForgetZDicts() // this process knows only what Open loads
		if d, _ := filepath.Glob(filepath.Join(exp, maildirfs.ZDictDir, "*.zdict")); len(d) > 0 {
			trained++
		}
		// Serve the tree as it is now (journal redone by Open).
		fsys, err := maildirfs.Open(exp, opts)
		if err != nil {
			t.Fatalf("round %d: open after kill: %v", round, err)
		}
		h, err := fsys.LookupPath(root, "Maildir/cur")
		if err != nil {
			t.Fatal(err)
		}
		for i, p := range paths {
			mh, a, _, err := fsys.Lookup(h, root, filepath.Base(p))
			if err != nil || a.Size != uint64(len(msgs[i])) || !a.Mtime.Equal(time.Unix(1700000000+int64(i)*60, 0)) {
				t.Fatalf("round %d: %s: %v size %d mtime %v", round, p, err, a.Size, a.Mtime)
			}
			buf := make([]byte, len(msgs[i])+1)
			n, _, _, err := fsys.Read(mh, root, 0, buf)
			if err != nil || !bytes.Equal(buf[:n], msgs[i]) {
				raw, _ := os.ReadFile(p)
				ids, _ := maildirfs.FrameDictIDs(raw)
				e, _ := filepath.Glob(filepath.Join(exp, maildirfs.ZDictDir, "*"))
				st, _ := filepath.Glob(filepath.Join(opts.StateDir, maildirfs.ZJournalDir, "*", "dicts", "*"))
				t.Fatalf("round %d (killed after %v): %s differs (%v); frame dicts %x; export %v state %v; stats %+v", round, delay, p, err, ids, e, st, fsys.Stats())
			}
		}
		fsys.Close()
		if _, err := maildirfs.Compact(exp, opts); err != nil {
			t.Fatal(err)
		}
		if _, err := maildirfs.Expand(exp, opts); err != nil {
			t.Fatal(err)
		}
		checkTree(t, paths, msgs)
	}
	t.Logf("%d of the kills came after a dictionary was trained", trained)
}

// TestCompressConcurrentReads: readers fetch every message over and over
// while deliveries happen and the worker compresses them; every READ,
// GETATTR and READDIRPLUS sees the original bytes and sizes.
func TestCompressConcurrentReads(t *testing.T) {
	s := zstore(t)
	tmp, nw := lookup(t, s, "Maildir", "tmp"), lookup(t, s, "Maildir", "new")
	msgs := mdtest.Corpus(60, mdtest.CorpusOptions{Seed: 23, HTMLRate: 0.7, AttachmentRate: 0.1, MaxAttachment: 150 << 10})
	hs := make([]maildirfs.Handle, len(msgs))
	for i, m := range msgs {
		hs[i] = create(t, s, tmp, root, fmt.Sprint("m", i), m)
	}
	stop := make(chan struct{})
	errs := make(chan error, 8)
	for w := range 4 {
		go func() {
			r := rand.New(rand.NewPCG(uint64(w), 1))
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				i := r.IntN(len(msgs))
				off := r.IntN(len(msgs[i]))
				buf := make([]byte, 1+r.IntN(70000))
				k, _, a, err := s.Read(hs[i], root, uint64(off), buf)
				if err != nil || a.Size != uint64(len(msgs[i])) || !bytes.Equal(buf[:k], msgs[i][off:min(len(msgs[i]), off+len(buf))]) {
					errs <- fmt.Errorf("m%d at %d: %d bytes, size %d, %v", i, off, k, a.Size, err)
					return
				}
				if w == 0 {
					s.ReadDir(nw, root, 0, true, func(e *maildirfs.DirEntry) bool {
						var j int
						if _, err := fmt.Sscanf(e.Name, "m%d", &j); err == nil && e.Attr != nil && e.Attr.Size != uint64(len(msgs[j])) {
							select {
							case errs <- fmt.Errorf("readdirplus %s: size %d, want %d", e.Name, e.Attr.Size, len(msgs[j])):
							default:
							}
						}
						return true
					})
				}
			}
		}()
	}
	for i := range msgs {
		if _, _, err := s.Rename(tmp, fmt.Sprint("m", i), nw, fmt.Sprint("m", i), root); err != nil {
			t.Fatal(err)
		}
	}
	waitCompressed(t, s, uint64(len(msgs)))
	close(stop)
	for range 4 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

// TestCompressBacklogSweep fills a one-slot queue faster than the worker
// drains it: the messages it turns away are compressed later by a sweep
// of their directory, also those a reader moved to cur/ before the sweep.
func TestCompressBacklogSweep(t *testing.T) {
	defer maildirfs.SetZQueueLen(1)()
	s := zstore(t)
	tmp, nw := lookup(t, s, "Maildir", "tmp"), lookup(t, s, "Maildir", "new")
	cur := lookup(t, s, "Maildir", "cur")
	msgs := mdtest.Corpus(400, mdtest.CorpusOptions{Seed: 31})
	var names []string
	var hs []maildirfs.Handle
	moved := map[string]bool{}
	for i := 0; i < len(msgs) && (i < 40 || s.Stats().CompressDropped == 0); i++ {
		name := fmt.Sprintf("1700000000.M%dP1.sweep", i)
		hs = append(hs, create(t, s, tmp, root, name, msgs[i]))
		if _, _, err := s.Rename(tmp, name, nw, name, root); err != nil {
			t.Fatal(err)
		}
		if i%3 == 0 { // a reader takes every third one to cur/ at once
			if _, _, err := s.Rename(nw, name, cur, name+":2,S", root); err != nil {
				t.Fatal(err)
			}
			moved[name] = true
		}
		names = append(names, name)
	}
	if s.Stats().CompressDropped == 0 {
		t.Fatalf("the one-slot queue turned nothing away in %d deliveries: the sweep was not exercised", len(names))
	}
	deadline := time.Now().Add(60 * time.Second)
	for st := s.Stats(); st.CompressPending > 0 || st.CompressBacklog > 0; st = s.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("compressor did not catch up: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	st := s.Stats()
	if st.Compressed != uint64(len(names)) {
		t.Errorf("compressed %d of %d messages (%d turned away by the queue)", st.Compressed, len(names), st.CompressDropped)
	}
	for i, name := range names {
		p := filepath.Join(s.Dir, "Maildir/new", name)
		if moved[name] {
			p = filepath.Join(s.Dir, "Maildir/cur", name+":2,S")
		}
		if _, z := stored(t, p); !z {
			t.Errorf("%s stayed plain", p)
		}
		if got := readChunks(t, s, hs[i], 65536); !bytes.Equal(got, msgs[i]) {
			t.Errorf("%s reads back %d bytes, not the %d delivered", p, len(got), len(msgs[i]))
		}
	}
	t.Logf("%d messages, %d turned away by the queue and swept, %d compressed", len(names), st.CompressDropped, st.Compressed)
}

// TestCompressSweepStaysInExport: an export whose root is itself a
// directory named new gets swept like any new/, but its sibling cur/,
// outside the export, is never touched.
func TestCompressSweepStaysInExport(t *testing.T) {
	mdtest.RequireRoot(t)
	defer maildirfs.SetZQueueLen(1)()
	dir := t.TempDir()
	exp := filepath.Join(dir, "new")
	for _, d := range []string{filepath.Join(exp, "tmp"), filepath.Join(dir, "cur")} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	outside := filepath.Join(dir, "cur", "outside")
	secret := bytes.Repeat([]byte("a message outside the export\n"), 100)
	if err := os.WriteFile(outside, secret, 0o600); err != nil {
		t.Fatal(err)
	}
	fs, err := maildirfs.Open(exp, maildirfs.Options{StateDir: filepath.Join(dir, "state"), Compress: "zstd"})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	tmp, _, _, err := fs.Lookup(fs.Root(), root, "tmp")
	if err != nil {
		t.Fatal(err)
	}
	msgs := mdtest.Corpus(400, mdtest.CorpusOptions{Seed: 37})
	n := 0
	for ; n < len(msgs) && (n < 20 || fs.Stats().CompressDropped == 0); n++ {
		name := fmt.Sprintf("m%d", n)
		h, _, _, err := fs.Create(tmp, root, name, maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{})
		if err != nil {
			t.Fatal(err)
		}
		if _, _, _, _, err := fs.Write(h, root, 0, msgs[n], maildirfs.FileSync); err != nil {
			t.Fatal(err)
		}
		if _, _, err := fs.Rename(tmp, name, fs.Root(), name, root); err != nil {
			t.Fatal(err)
		}
	}
	if fs.Stats().CompressDropped == 0 {
		t.Fatalf("the one-slot queue turned nothing away in %d deliveries", n)
	}
	deadline := time.Now().Add(60 * time.Second)
	for st := fs.Stats(); st.CompressPending > 0 || st.CompressBacklog > 0; st = fs.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("compressor did not catch up: %+v", st)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if got := fs.Stats().Compressed; got != uint64(n) {
		t.Errorf("compressed %d of the %d messages in the export", got, n)
	}
	if size, z := stored(t, outside); z || size != int64(len(secret)) {
		t.Errorf("the file outside the export was rewritten: size %d, marked %v", size, z)
	}
	if got, err := os.ReadFile(outside); err != nil || !bytes.Equal(got, secret) {
		t.Errorf("the file outside the export changed: %v", err)
	}
}

// TestCompactRefusesServedTree: Compact and Expand fail on a tree a store
// has open, and a store does not open a tree they are converting. Compact
// run beside a server rewrote files outside the server's locks (a
// FILE_SYNC WRITE through the server between Compact's read of the file
// and its rewrite was lost: the rewrite put back what it had read), and
// its Open retired the server's worker journal.
func TestCompactRefusesServedTree(t *testing.T) {
	defer maildirfs.SetZCrashHook(nil)
	s := zstore(t)
	cur := lookup(t, s, "Maildir", "cur")
	msg := mdtest.Corpus(1, mdtest.CorpusOptions{Seed: 3})[0]
	h := create(t, s, cur, root, "m:2,", msg)
	opts := maildirfs.Options{StateDir: s.StateDir}
	if _, err := maildirfs.Compact(s.Dir, opts); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("compact of a served tree: %v, want EBUSY", err)
	}
	if _, err := maildirfs.Expand(s.Dir, opts); !errors.Is(err, syscall.EBUSY) {
		t.Errorf("expand of a served tree: %v, want EBUSY", err)
	}
	if p := filepath.Join(s.Dir, "Maildir", "cur", "m:2,"); func() bool { _, z := stored(t, p); return z }() {
		t.Errorf("%s compressed by a refused compact", p)
	}
	if got := readChunks(t, s, h, 1<<20); !bytes.Equal(got, msg) {
		t.Fatal("content changed")
	}
	// A second store of the tree is fine; once both are closed, the
	// tools run, and a store does not open while one does.
	s2, err := maildirfs.Open(s.Dir, s.Opts)
	if err != nil {
		t.Fatalf("second store: %v", err)
	}
	s2.Close()
	s.Close()
	s.FS = nil
	entered := false
	maildirfs.SetZCrashHook(func(step string) error {
		if step == "journaled" && !entered {
			entered = true
			if _, err := maildirfs.Open(s.Dir, s.Opts); !errors.Is(err, syscall.EBUSY) {
				t.Errorf("store opened during compact: %v, want EBUSY", err)
			}
		}
		return nil
	})
	if rep, err := maildirfs.Compact(s.Dir, opts); err != nil || rep.Changed != 1 {
		t.Fatalf("compact: %+v %v", rep, err)
	}
	maildirfs.SetZCrashHook(nil)
	if !entered {
		t.Error("compact compressed nothing")
	}
}

// TestCompressPauseResume: a paused store's worker compresses nothing
// (the messages delivered meanwhile stay queued) until it is resumed; a
// server pauses a store a reload retired, which may share its tree with
// the store that replaced it.
func TestCompressPauseResume(t *testing.T) {
	defer maildirfs.SetZMin(0, 0)()
	s := zstore(t)
	tmp, nw := lookup(t, s, "Maildir", "tmp"), lookup(t, s, "Maildir", "new")
	deliver := func(name string) {
		create(t, s, tmp, root, name, bytes.Repeat([]byte("lorem ipsum dolor sit amet "), 100))
		if _, _, err := s.Rename(tmp, name, nw, name, root); err != nil {
			t.Fatal(err)
		}
	}
	deliver("before")
	waitCompressed(t, s, 1)

	s.PauseCompression()
	s.PauseCompression() // twice is fine
	for i := range 5 {
		deliver(fmt.Sprint("paused", i))
	}
	// An idle worker compresses a message within milliseconds (the first
	// one above); paused, none in two seconds.
	time.Sleep(2 * time.Second)
	if st := s.Stats(); st.Compressed != 1 || st.CompressPending != 5 {
		t.Fatalf("paused: compressed %d, pending %d; want 1 and 5", st.Compressed, st.CompressPending)
	}
	s.ResumeCompression()
	s.ResumeCompression()
	waitCompressed(t, s, 6)
}

// TestExpandRefusesOversizeClaims: a marker or header that claims more
// than the store ever compresses (zMaxFile; a planted or damaged marker,
// as a local user on the box can set user.* xattrs) fails the WRITE that
// would expand the file with EIO before the claim costs memory. A marker
// naming a sparse 1 TiB file had the expansion allocate 1 TiB (the
// process died out of memory); a header claiming 256 MiB of zero frames
// under a marker of 4 KiB had every frame decoded before the sizes were
// compared.
func TestExpandRefusesOversizeClaims(t *testing.T) {
	for _, tc := range []struct {
		name         string
		data         []byte
		size         int64 // the file's length (sparse beyond data)
		usize, csize int64 // the marker's
	}{
		{"SparseTebibyte", nil, 1<<40 - 4096, 1<<40 - 4096, 1<<40 - 4096},
		{"HeaderClaimsMore", maildirfs.ZZeros(64), 0, 4096, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := zstore(t)
			cur := lookup(t, s, "Maildir", "cur")
			h := create(t, s, cur, root, "m:2,", []byte("plain"))
			p := filepath.Join(s.Dir, "Maildir", "cur", "m:2,")
			if err := os.WriteFile(p, tc.data, 0o600); err != nil {
				t.Fatal(err)
			}
			size := max(tc.size, int64(len(tc.data)))
			if err := os.Truncate(p, size); err != nil {
				t.Skipf("no sparse file of %d bytes here: %v", size, err)
			}
			v := append([]byte("Z1"), make([]byte, 16)...)
			binary.BigEndian.PutUint64(v[2:], uint64(tc.usize))
			binary.BigEndian.PutUint64(v[10:], uint64(size))
			if err := unix.Setxattr(p, maildirfs.ZXattr, v, 0); err != nil {
				t.Fatal(err)
			}
			s.Reopen(t)
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			_, _, _, _, err := s.Write(h, root, 0, []byte("x"), maildirfs.FileSync)
			runtime.ReadMemStats(&after)
			if !errors.Is(err, unix.EIO) {
				t.Errorf("WRITE: %v; want EIO", err)
			}
			if n := after.TotalAlloc - before.TotalAlloc; n > 64<<20 {
				t.Errorf("WRITE allocated %d MiB", n>>20)
			}
			s.SkipCheck = true
		})
	}
}
