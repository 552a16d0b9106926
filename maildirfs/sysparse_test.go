package maildirfs

import (
	"bytes"
	"encoding/binary"
	"strings"
	"testing"
)

// dirent is one record as a parser returns it.
type dirent struct {
	ino, next uint64
	name      string
}

// parseAll runs parse over buf as ReadDir does.
func parseAll(t *testing.T, parse func([]byte) (uint64, uint64, int, []byte, bool), buf []byte) ([]dirent, bool) {
	t.Helper()
	var out []dirent
	for off := 0; off < len(buf); {
		ino, next, reclen, name, ok := parse(buf[off:])
		if !ok {
			return out, false
		}
		off += reclen
		out = append(out, dirent{ino, next, string(name)})
	}
	return out, true
}

// freebsdRecord builds a FreeBSD struct dirent by hand: d_fileno,
// d_off, d_reclen, d_type, pad, d_namlen, pad, then the name, a NUL and
// padding to 8 bytes (sys/dirent.h, GENERIC_DIRSIZ).
func freebsdRecord(ino, off uint64, typ byte, name string) []byte {
	reclen := (24 + len(name) + 1 + 7) &^ 7
	b := make([]byte, reclen)
	binary.NativeEndian.PutUint64(b[0:], ino)
	binary.NativeEndian.PutUint64(b[8:], off)
	binary.NativeEndian.PutUint16(b[16:], uint16(reclen))
	b[18] = typ
	b[19] = 0xee // d_pad0: never read
	binary.NativeEndian.PutUint16(b[20:], uint16(len(name)))
	binary.NativeEndian.PutUint16(b[22:], 0xeeee) // d_pad1
	copy(b[24:], name)
	return b
}

// linuxRecord builds a struct linux_dirent64 by hand: d_ino, d_off,
// d_reclen, d_type, then the name, a NUL and padding to 8 bytes.
func linuxRecord(ino, off uint64, typ byte, name string) []byte {
	reclen := (19 + len(name) + 1 + 7) &^ 7
	b := make([]byte, reclen)
	binary.NativeEndian.PutUint64(b[0:], ino)
	binary.NativeEndian.PutUint64(b[8:], off)
	binary.NativeEndian.PutUint16(b[16:], uint16(reclen))
	b[18] = typ
	copy(b[19:], name)
	return b
}

var direntCases = []dirent{
	{2, 12, "."},
	{1, 24, ".."},
	{0, 40, "deleted"}, // d_fileno 0: the caller skips it
	{131, 60, "cur"},
	{7777777777, 1 << 40, "1700000000.M1P2Q3.host,S=4242:2,S"},
	{42, 1<<63 - 1, strings.Repeat("n", 255)},
	{43, 99, "x"},
}

func TestParseFreeBSDDirent(t *testing.T) {
	var buf []byte
	for _, e := range direntCases {
		buf = append(buf, freebsdRecord(e.ino, e.next, 8, e.name)...)
	}
	got, ok := parseAll(t, parseFreeBSDDirent, buf)
	if !ok || len(got) != len(direntCases) {
		t.Fatalf("parsed %d of %d records (ok %v)", len(got), len(direntCases), ok)
	}
	for i, e := range direntCases {
		if got[i] != e {
			t.Errorf("record %d: %+v, want %+v", i, got[i], e)
		}
	}
	// The Linux parser reads the same bytes wrongly (name at 19, the
	// FreeBSD type/pad/namlen bytes taken as the name): the layouts differ.
	if l, ok := parseAll(t, parseLinuxDirent, buf); ok && len(l) > 0 && l[0].name == "." {
		t.Errorf("the Linux parser read a FreeBSD record correctly: %+v", l[0])
	}
}

func TestParseFreeBSDDirentCorrupt(t *testing.T) {
	good := freebsdRecord(5, 6, 8, "name")
	cases := map[string][]byte{
		"short header":    good[:23],
		"reclen < header": func() []byte { b := bytes.Clone(good); binary.NativeEndian.PutUint16(b[16:], 16); return b }(),
		"reclen > buffer": func() []byte { b := bytes.Clone(good); binary.NativeEndian.PutUint16(b[16:], 64); return b }(),
		"namlen > reclen": func() []byte { b := bytes.Clone(good); binary.NativeEndian.PutUint16(b[20:], 20); return b }(),
	}
	for name, b := range cases {
		if _, _, _, _, ok := parseFreeBSDDirent(b); ok {
			t.Errorf("%s: parsed", name)
		}
	}
	// namlen is the authority, not a NUL: a name that fills the record up
	// to its padding is read whole.
	if _, _, reclen, n, ok := parseFreeBSDDirent(good); !ok || string(n) != "name" || reclen != 32 {
		t.Errorf("good record: %q %d %v", n, reclen, ok)
	}
}

func TestParseLinuxDirent(t *testing.T) {
	var buf []byte
	for _, e := range direntCases {
		buf = append(buf, linuxRecord(e.ino, e.next, 8, e.name)...)
	}
	got, ok := parseAll(t, parseLinuxDirent, buf)
	if !ok || len(got) != len(direntCases) {
		t.Fatalf("parsed %d of %d records (ok %v)", len(got), len(direntCases), ok)
	}
	for i, e := range direntCases {
		if got[i] != e {
			t.Errorf("record %d: %+v, want %+v", i, got[i], e)
		}
	}
	good := linuxRecord(5, 6, 8, "name")
	for name, b := range map[string][]byte{
		"short header":    good[:18],
		"reclen < header": func() []byte { b := bytes.Clone(good); binary.NativeEndian.PutUint16(b[16:], 18); return b }(),
		"reclen > buffer": func() []byte { b := bytes.Clone(good); binary.NativeEndian.PutUint16(b[16:], 64); return b }(),
	} {
		if _, _, _, _, ok := parseLinuxDirent(b); ok {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestFSStatOf(t *testing.T) {
	got := fsStatOf(4096, 1000, 300, 250, 500, 120)
	want := FSStat{TotalBytes: 4096000, FreeBytes: 1228800, AvailBytes: 1024000, TotalFiles: 500, FreeFiles: 120, AvailFiles: 120}
	if got != want {
		t.Errorf("fsStatOf = %+v, want %+v", got, want)
	}
	// UFS: f_bavail goes negative when root's reserve is in use.
	if got := fsStatOf(4096, 1000, 10, -40, 500, -1); got.AvailBytes != 0 || got.FreeFiles != 0 || got.FreeBytes != 40960 {
		t.Errorf("negative counts: %+v", got)
	}
}

func TestClampLinkMax(t *testing.T) {
	for _, c := range []struct {
		in   int64
		want uint32
	}{{65530, 65530}, {1<<31 - 1, 1<<31 - 1}, {1 << 40, 1<<31 - 1}, {1<<63 - 1, 1<<31 - 1}} {
		if got := clampLinkMax(c.in); got != c.want {
			t.Errorf("clampLinkMax(%d) = %d, want %d", c.in, got, c.want)
		}
	}
}

func TestFSTypeName(t *testing.T) {
	var b [16]byte
	copy(b[:], "zfs")
	if got := fsTypeName(b[:]); got != "zfs" {
		t.Errorf("fsTypeName = %q", got)
	}
	copy(b[:], "0123456789abcdef")
	if got := fsTypeName(b[:]); got != "0123456789abcdef" {
		t.Errorf("unterminated: %q", got)
	}
}

// FuzzParseDirent: whatever a getdents buffer holds, each parser either
// refuses a record or returns one that lies within the buffer, is at least
// a header long (so ReadDir's loop always advances) and names bytes inside
// the record; the Linux name stops at the first NUL, the FreeBSD one is
// exactly d_namlen bytes.
func FuzzParseDirent(f *testing.F) {
	var lin, bsd []byte
	for _, e := range direntCases {
		lin = append(lin, linuxRecord(e.ino, e.next, 8, e.name)...)
		bsd = append(bsd, freebsdRecord(e.ino, e.next, 8, e.name)...)
	}
	f.Add(lin)
	f.Add(bsd)
	f.Add(linuxRecord(5, 6, 8, "name")[:18])
	f.Add(freebsdRecord(5, 6, 8, "name")[:23])
	f.Fuzz(func(t *testing.T, buf []byte) {
		for _, p := range []struct {
			name string
			hdr  int
			fn   func([]byte) (uint64, uint64, int, []byte, bool)
		}{{"linux", linuxDirentHdr, parseLinuxDirent}, {"freebsd", freebsdDirentHdr, parseFreeBSDDirent}} {
			for off := 0; off < len(buf); {
				rec := buf[off:]
				_, _, reclen, name, ok := p.fn(rec)
				if !ok {
					break
				}
				if reclen < p.hdr || reclen > len(rec) {
					t.Fatalf("%s: reclen %d of %d bytes", p.name, reclen, len(rec))
				}
				if len(name) > reclen-p.hdr || (len(name) > 0 && &name[0] != &rec[p.hdr]) {
					t.Fatalf("%s: name %q outside record of %d bytes", p.name, name, reclen)
				}
				if p.name == "linux" && bytes.IndexByte(name, 0) >= 0 {
					t.Fatalf("linux: name %q holds a NUL", name)
				}
				if p.name == "freebsd" && len(name) != int(binary.NativeEndian.Uint16(rec[20:22])) {
					t.Fatalf("freebsd: name of %d bytes, d_namlen %d", len(name), binary.NativeEndian.Uint16(rec[20:22]))
				}
				off += reclen
			}
		}
	})
}
