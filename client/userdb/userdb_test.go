package userdb

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"os"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/debug"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"
)

const sample = `# mail users
tevie	uid=2001|gid=2001|home=/mail1/12/34-tevie|server=storage1:/usr/mail1|customer=C00042

golde		uid=2002|gid=2001|home=/usr/mail1/56/78-golde|server=storage1:/usr/mail1|mail=/usr/mail1/56/78-golde/Mail
lazar	uid=2003|gid=2003|home=/m2/lazar|server=[::1]:/srv/m2|quota=10000000S
`

func TestParseSample(t *testing.T) {
	es, err := Parse(strings.NewReader(sample), "userdb")
	if err != nil {
		t.Fatal(err)
	}
	if len(es) != 3 || es[0].Name != "golde" || es[2].Name != "tevie" {
		t.Fatalf("entries %+v", es)
	}
	tv := es[2]
	if tv.UID != 2001 || tv.GID != 2001 || tv.Home != "/mail1/12/34-tevie" || tv.Server != "storage1:/usr/mail1" || tv.Fields["customer"] != "C00042" {
		t.Errorf("tevie = %+v", tv)
	}
}

func TestParseErrorsNameTheLine(t *testing.T) {
	for _, tc := range []struct{ text, want string }{
		{"a uid=1", "f:1: want NAME<TAB>"},
		{"# c\na\tuid=1|gid=1|home=/h", "f:2: user \"a\" has no server="},
		{"a\tuid=x|gid=1|home=/h|server=s:/e", "f:1: uid=\"x\""},
		{"a\tuid=1|uid=2", "f:1: field \"uid\" given twice"},
		{"a\tuid=1|gid=1|home=rel|server=s:/e", "f:1: home=\"rel\" must be an absolute path"},
		{"a\tuid=1|gid=1|home=/h|server=s:/e\n\na\tuid=1|gid=1|home=/h|server=s:/e", "f:3: user \"a\" already defined on line 1"},
		{"a\tuid=1|gid=1|home=/h|server=nocolon", "f:1: server=\"nocolon\""},
		{"a\tuid=1|junk", "f:1: field \"junk\" is not name=value"},
		{"a\tuid=99999999999|gid=1|home=/h|server=s:/e", "f:1: uid="},
		{"\ufefftevie\tuid=1|gid=1|home=/h/a|server=s:/e", "f:1: user name \"\\ufefftevie\" holds whitespace"},
		{"te\xffvie\tuid=1|gid=1|home=/h/a|server=s:/e", "f:1: user name \"te\\xffvie\" is not UTF-8"},
		{"te\u00a0vie\tuid=1|gid=1|home=/h/a|server=s:/e", "f:1: user name"},
		{"tëvie\tuid=1|gid=1|home=/h/a|server=s:/e\n\x01\tuid=1", "f:2: user name"},
		{"# ok\na\tuid=1|gid=1|home=/h/a|server=s:/e|note=" + strings.Repeat("x", 2<<20), "f:2: line longer than 1 MiB"},
		{"Tevie\tuid=1|gid=1|home=/h/T|server=s:/e\ntevie\tuid=2|gid=2|home=/h/t|server=s:/e", "f:2: user \"tevie\" already defined on line 1 (names ignore ASCII case)"},
		{"a\tuid=4294967295|gid=1|home=/h/a|server=s:/e", "f:1: uid=\"4294967295\" is not a number below 2^32-1"},
		{"a\tuid=1|gid=4294967295|home=/h/a|server=s:/e", "f:1: gid=\"4294967295\""},
		{"a\tuid=1|gid=1|home=/mail1/../mail2/a|server=s:/usr/mail1", "f:1: home=\"/mail1/../mail2/a\": no \"..\""},
		{"a\tuid=1|gid=1|home=/mail1/12/../../../etc|server=s:/usr/mail1", "f:1: home="},
		{"a\tuid=1|gid=1|home=/mail1/a|mail=/mail1/a/../../b/Maildir|server=s:/usr/mail1", "f:1: mail="},
		{"a\tuid=1|gid=1|home=/mail1/a|server=s:/usr/mail1/..", "f:1: server=\"s:/usr/mail1/..\": no \"..\""},
		{"a\tuid=1|gid=1|home=/usr/mail1|mail=/usr/mail1|server=s:/usr/mail1", "f:1: user \"a\": the Maildir /usr/mail1 is the export root"},
		{"a\tuid=1|gid=1|home=/h|mail=/Maildir|server=s:/e", "f:1: user \"a\": the Maildir /Maildir is not below a mount point of s:/e"},
	} {
		_, err := Parse(strings.NewReader(tc.text), "f")
		var se *SyntaxError
		if !errors.As(err, &se) || !strings.HasPrefix(err.Error(), tc.want) {
			t.Errorf("Parse(%q) = %v, want prefix %q", tc.text, err, tc.want)
		}
	}
}

func TestCompileOpenLookup(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "userdb"), filepath.Join(dir, "userdb.dat")
	os.WriteFile(src, []byte(sample), 0o600)
	n, err := Compile(src, dst)
	if err != nil || n != 3 {
		t.Fatalf("Compile = %d, %v", n, err)
	}
	// The compiled file must be read without the text.
	os.Remove(src)
	db, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	e, err := db.Lookup("tevie")
	if err != nil || e.UID != 2001 || e.Fields["customer"] != "C00042" {
		t.Errorf("Lookup tevie = %+v, %v", e, err)
	}
	if _, err := db.Lookup("nobody"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup nobody: %v", err)
	}
	// Exim lower-cases local parts: a lookup ignores ASCII case.
	for _, name := range []string{"TEVIE", "Tevie"} {
		if e, err := db.Lookup(name); err != nil || e.Name != "tevie" {
			t.Errorf("Lookup %s = %+v, %v", name, e, err)
		}
	}
	if db.Len() != 3 {
		t.Errorf("Len = %d", db.Len())
	}
}

// readAll opens b and reads every user, as a lookup of each would.
func readAll(b []byte) ([]Entry, error) {
	db, err := Decode(b)
	if err != nil {
		return nil, err
	}
	return db.Entries()
}

func TestCorruptDatabaseRejected(t *testing.T) {
	es, _ := Parse(strings.NewReader(sample), "s")
	var buf bytes.Buffer
	if err := Encode(&buf, es); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	if got, err := readAll(good); err != nil || len(got) != len(es) {
		t.Fatal(got, err)
	}
	for i := 0; i < len(good); i++ {
		if _, err := Decode(good[:i]); !errors.Is(err, ErrCorrupt) {
			t.Fatalf("truncated to %d bytes: %v", i, err)
		}
	}
	// Every bit of the file is checked before it is used: a flip
	// anywhere fails Decode or the read of the record holding it.
	for i := 0; i < len(good); i++ {
		for bit := range 8 {
			b := bytes.Clone(good)
			b[i] ^= 1 << bit
			if _, err := readAll(b); !errors.Is(err, ErrCorrupt) {
				t.Fatalf("flip of bit %d at %d accepted: %v", bit, i, err)
			}
		}
	}
	if _, err := Decode([]byte(strings.Repeat("tevie\tuid=1\n", 10))); !errors.Is(err, ErrCorrupt) || !strings.Contains(err.Error(), "magic") {
		t.Errorf("text file as database: %v", err)
	}
}

// TestLookupDoesNotLoadDatabase opens a database of 200,000 users and
// looks users up: Open and Lookup read only what they need, so the memory
// they allocate does not grow with the database. (Version 1 decoded every
// entry at Open: a million users took 10 s and 680 MB per mailnfs
// deliver.)
func TestLookupDoesNotLoadDatabase(t *testing.T) {
	const n = 200000
	es := make([]Entry, n)
	for i := range es {
		name := fmt.Sprintf("user%07d", i)
		es[i] = Entry{Name: name, UID: uint32(2000 + i), GID: 2001, Home: "/mail1/" + HashedHome(name), Server: "storage1:/usr/mail1",
			Fields: map[string]string{"customer": fmt.Sprintf("C%08d", i), "quota": "10000000S,1000C"}}
	}
	dst := filepath.Join(t.TempDir(), "userdb.dat")
	f, err := os.Create(dst)
	if err != nil {
		t.Fatal(err)
	}
	if err := Encode(f, es); err != nil {
		t.Fatal(err)
	}
	f.Close()
	es = nil
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	db, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, i := range []int{0, 1, 99999, 123456, n - 1} {
		e, err := db.Lookup(fmt.Sprintf("user%07d", i))
		if err != nil || e.UID != uint32(2000+i) || e.Fields["customer"] != fmt.Sprintf("C%08d", i) {
			t.Fatalf("Lookup %d = %+v, %v", i, e, err)
		}
	}
	if _, err := db.Lookup("user"); !errors.Is(err, ErrNotFound) {
		t.Errorf("Lookup user: %v", err)
	}
	runtime.ReadMemStats(&after)
	if got := after.TotalAlloc - before.TotalAlloc; got > 1<<20 {
		t.Errorf("Open and 6 lookups in %d users allocated %d bytes", n, got)
	}
	if db.Len() != n {
		t.Errorf("Len = %d", db.Len())
	}
}

// TestReplacedWhileOpen compiles a new database over one a reader has
// open: the reader keeps reading the old one whole, the next Open sees
// the new one.
func TestReplacedWhileOpen(t *testing.T) {
	dir := t.TempDir()
	src, dst := filepath.Join(dir, "userdb"), filepath.Join(dir, "userdb.dat")
	os.WriteFile(src, []byte(sample), 0o600)
	if _, err := Compile(src, dst); err != nil {
		t.Fatal(err)
	}
	old, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer old.Close()
	os.WriteFile(src, []byte("zelda\tuid=7|gid=7|home=/m/z|server=s:/m\n"), 0o600)
	if _, err := Compile(src, dst); err != nil {
		t.Fatal(err)
	}
	if e, err := old.Lookup("tevie"); err != nil || e.UID != 2001 {
		t.Errorf("old database after the rename: %+v, %v", e, err)
	}
	if es, err := old.Entries(); err != nil || len(es) != 3 {
		t.Errorf("old database Entries: %d, %v", len(es), err)
	}
	cur, err := Open(dst)
	if err != nil {
		t.Fatal(err)
	}
	defer cur.Close()
	if _, err := cur.Lookup("zelda"); err != nil || cur.Len() != 1 {
		t.Errorf("new database: %v, %d users", err, cur.Len())
	}
}

// TestReadsVersion1 opens a database compiled by an earlier mailnfs.
func TestReadsVersion1(t *testing.T) {
	es, _ := Parse(strings.NewReader(sample), "s")
	payload, err := msgpack.Marshal(es)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(payload)
	b := append([]byte("MNFSUDB\x01"), binary.BigEndian.AppendUint64(nil, uint64(len(payload)))...)
	b = append(append(b, payload...), sum[:]...)
	file := filepath.Join(t.TempDir(), "userdb.dat")
	os.WriteFile(file, b, 0o644)
	db, err := Open(file)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if e, err := db.Lookup("golde"); err != nil || e.Mail != "/usr/mail1/56/78-golde/Mail" || db.Len() != 3 {
		t.Errorf("Lookup golde = %+v, %v (%d users)", e, err, db.Len())
	}
	b[len(b)-1] ^= 1
	if _, err := Decode(b); !errors.Is(err, ErrCorrupt) {
		t.Errorf("damaged version 1: %v", err)
	}

	// Version 1 compared names exactly: "Golde" beside "golde" was two
	// users. Such a file still opens (it failed every lookup: "given
	// twice"), with the lower-case one, which Exim's lower-cased local
	// part found.
	twin := es[0]
	for _, e := range es {
		if e.Name == "golde" {
			twin = e
		}
	}
	twin.Name, twin.Mail = "Golde", "/usr/mail1/other/Mail"
	es = append([]Entry{twin}, es...) // "Golde" sorts first
	if payload, err = msgpack.Marshal(es); err != nil {
		t.Fatal(err)
	}
	sum = sha256.Sum256(payload)
	b = append([]byte("MNFSUDB\x01"), binary.BigEndian.AppendUint64(nil, uint64(len(payload)))...)
	b = append(append(b, payload...), sum[:]...)
	db, err = Decode(b)
	if err != nil {
		t.Fatalf("version 1 with names differing in case: %v", err)
	}
	for _, name := range []string{"golde", "Golde", "GOLDE"} {
		if e, err := db.Lookup(name); err != nil || e.Mail != "/usr/mail1/56/78-golde/Mail" {
			t.Errorf("Lookup %s = %+v, %v; want the lower-case user's", name, e, err)
		}
	}
	if db.Len() != 3 {
		t.Errorf("%d users, want 3", db.Len())
	}
}

func TestRoute(t *testing.T) {
	es, _ := Parse(strings.NewReader(sample), "s")
	want := map[string]Route{
		"tevie": {Host: "storage1", Export: "/usr/mail1", Maildir: "12/34-tevie/Maildir", UID: 2001, GID: 2001},
		"golde": {Host: "storage1", Export: "/usr/mail1", Maildir: "56/78-golde/Mail", UID: 2002, GID: 2001},
		"lazar": {Host: "::1", Export: "/srv/m2", Maildir: "lazar/Maildir", UID: 2003, GID: 2003},
	}
	for _, e := range es {
		r, err := e.Route()
		if err != nil || r != want[e.Name] {
			t.Errorf("Route(%s) = %+v, %v; want %+v", e.Name, r, err, want[e.Name])
		}
	}
	r, _ := es[1].Route()
	if got := r.URL(); got != "nfs://[::1]/srv/m2?version=3&uid=2003&gid=2003" {
		t.Errorf("URL = %q", got)
	}
}

func TestHashedHome(t *testing.T) {
	re := regexp.MustCompile(`^[0-9]{2}/[0-9]{2}-tevie$`)
	h := HashedHome("tevie")
	if !re.MatchString(h) || HashedHome("TEVIE")[:5] != h[:5] {
		t.Errorf("HashedHome = %q", h)
	}
	// Spread: 1000 users land in many directories.
	dirs := map[string]bool{}
	for i := range 1000 {
		dirs[HashedHome("user" + string(rune('a'+i%26)) + strings.Repeat("x", i/26))[:2]] = true
	}
	if len(dirs) < 60 {
		t.Errorf("1000 users in only %d top-level dirs", len(dirs))
	}
}

func FuzzParse(f *testing.F) {
	f.Add(sample)
	f.Add("a\tuid=1|gid=1|home=/h|server=s:/e")
	f.Add("a\t\t|=|")
	f.Fuzz(func(t *testing.T, text string) {
		es, err := Parse(strings.NewReader(text), "fuzz")
		if err != nil {
			var se *SyntaxError
			if !errors.As(err, &se) && !strings.Contains(err.Error(), "fuzz:") {
				t.Fatalf("error without file:line: %v", err)
			}
			return
		}
		var buf bytes.Buffer
		if err := Encode(&buf, es); err != nil {
			t.Fatal(err)
		}
		db, err := Decode(buf.Bytes())
		if err != nil || db.Len() != len(es) {
			t.Fatalf("round trip: %v", err)
		}
		for _, e := range es {
			if _, err := db.Lookup(e.Name); err != nil {
				t.Fatal(err)
			}
			_, _ = e.Route()
		}
	})
}

func FuzzDecode(f *testing.F) {
	es, _ := Parse(strings.NewReader(sample), "s")
	var buf bytes.Buffer
	Encode(&buf, es)
	f.Add(buf.Bytes())
	f.Add([]byte(Magic))
	f.Fuzz(func(t *testing.T, b []byte) {
		for _, b := range [][]byte{b, fixSums(b)} {
			db, err := Decode(b)
			var es []Entry
			if err == nil {
				es, err = db.Entries()
			}
			if err != nil {
				if !errors.Is(err, ErrCorrupt) {
					t.Fatalf("error not ErrCorrupt: %v", err)
				}
				continue
			}
			for _, e := range es {
				if _, err := db.Lookup(e.Name); err != nil {
					t.Fatal(err)
				}
			}
		}
	})
}

// fixSums returns a copy of a version 2 database with the header's and
// each record's checksum put right, which a mutation almost always
// breaks: without it the fuzzer seldom gets past the header.
func fixSums(b []byte) []byte {
	if len(b) < headerSize+8 || string(b[:len(Magic)]) != Magic {
		return b
	}
	b = bytes.Clone(b)
	binary.BigEndian.PutUint32(b[36:], crc32.Checksum(b[:36], castagnoli))
	n := int64(binary.BigEndian.Uint32(b[8:]))
	records := headerSize + 8*(n+1)
	if records > int64(len(b)) {
		return b
	}
	for i := range n {
		ix := b[headerSize+8*i:]
		start, end := int64(binary.BigEndian.Uint32(ix)), int64(binary.BigEndian.Uint32(ix[8:]))
		if start < end && records+end <= int64(len(b)) {
			binary.BigEndian.PutUint32(ix[4:], crc32.Checksum(b[records+start:records+end], castagnoli))
		}
	}
	return b
}

// TestCompileMemory compiles 100,000 users and samples the heap: Compile
// holds each user only as its encoded record, so the heap stays within 4
// times the source's size (2.3 times here; it held every Entry, with its
// map, and then all the records as well: 6.8 times, and 1.09 GB of RSS
// for a million users, 0.45 GB now). The same source compiles to the
// same bytes (map fields in key order).
func TestCompileMemory(t *testing.T) {
	dir := t.TempDir()
	src := filepath.Join(dir, "userdb")
	var text bytes.Buffer
	for i := range 100000 {
		name := fmt.Sprintf("user%07d", i)
		fmt.Fprintf(&text, "%s\tuid=%d|gid=2001|home=/mail1/%s|server=storage1:/usr/mail1|customer=C%08d|quota=10000000S,1000C\n", name, 2000+i, HashedHome(name), i)
	}
	size := uint64(text.Len())
	if err := os.WriteFile(src, text.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	text = bytes.Buffer{}
	defer debug.SetGCPercent(debug.SetGCPercent(10)) // the heap close to what is live
	runtime.GC()
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var m runtime.MemStats
		for {
			runtime.ReadMemStats(&m)
			if m.HeapAlloc > peak.Load() {
				peak.Store(m.HeapAlloc)
			}
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
			}
		}
	}()
	n, err := Compile(src, filepath.Join(dir, "a.dat"))
	close(stop)
	<-sampled
	if err != nil || n != 100000 {
		t.Fatalf("Compile = %d, %v", n, err)
	}
	if got := peak.Load(); got > 4*size {
		t.Errorf("compiling %d bytes of source took %d bytes of heap", size, got)
	}
	if _, err := Compile(src, filepath.Join(dir, "b.dat")); err != nil {
		t.Fatal(err)
	}
	a, _ := os.ReadFile(filepath.Join(dir, "a.dat"))
	b, _ := os.ReadFile(filepath.Join(dir, "b.dat"))
	if !bytes.Equal(a, b) {
		t.Error("two compiles of one source differ")
	}
}

// version1 frames payload as a version 1 database.
func version1(payload []byte) []byte {
	sum := sha256.Sum256(payload)
	b := append([]byte("MNFSUDB\x01"), binary.BigEndian.AppendUint64(nil, uint64(len(payload)))...)
	return append(append(b, payload...), sum[:]...)
}

// TestDecodeClaimedLengths: msgpack announces each array's and map's
// length before its elements, and the decoder allocated what was
// announced (a slice of 2^32-1 entries: the process died out of memory on
// a 49-byte version 1 file; a map of 2^32-1 fields in a record: 84 MB per
// lookup). A claim the bytes cannot hold is now ErrCorrupt.
func TestDecodeClaimedLengths(t *testing.T) {
	for name, payload := range map[string][]byte{
		"array32":      {0xdd, 0xff, 0xff, 0xff, 0xff},
		"array16":      {0xdc, 0xff, 0xff, 0x80},
		"fields map32": {0x91, 0x81, 0xa1, 'f', 0xdf, 0xff, 0xff, 0xff, 0xff},
	} {
		if _, err := Decode(version1(payload)); !errors.Is(err, ErrCorrupt) {
			t.Errorf("version 1 %s: %v, want ErrCorrupt", name, err)
		}
	}
	for name, body := range map[string][]byte{
		"fields map32": {0x81, 0xa1, 'f', 0xdf, 0xff, 0xff, 0xff, 0xff},
		"fields map16": {0x81, 0xa1, 'f', 0xde, 0xff, 0xff, 0xa1, 'a', 0xa1, 'b'},
		"name array":   {0x81, 0xa1, 'n', 0xdd, 0x7f, 0xff, 0xff, 0xff},
	} {
		var before, after runtime.MemStats
		runtime.ReadMemStats(&before)
		_, err := decodeRecord(0, []byte("x"), body)
		runtime.ReadMemStats(&after)
		if !errors.Is(err, ErrCorrupt) {
			t.Errorf("record %s: %v, want ErrCorrupt", name, err)
		}
		if n := after.TotalAlloc - before.TotalAlloc; n > 64<<10 {
			t.Errorf("record %s: %d bytes allocated", name, n)
		}
	}
}

// FuzzDecodeRecord fuzzes the msgpack decoding of a record body and of a
// version 1 payload, which FuzzDecode seldom reaches: both sit behind a
// checksum (CRC-32C, SHA-256) that random mutation breaks. A body either
// decodes to an Entry or fails with ErrCorrupt.
func FuzzDecodeRecord(f *testing.F) {
	es, _ := Parse(strings.NewReader(sample), "s")
	for _, e := range es {
		b, _ := msgpack.Marshal(&e)
		f.Add(b)
	}
	all, _ := msgpack.Marshal(es)
	f.Add(all)
	f.Add([]byte{0xdd, 0xff, 0xff, 0xff, 0xff})
	f.Add([]byte{0x81, 0xa1, 'f', 0xdf, 0xff, 0xff, 0xff, 0xff})
	f.Fuzz(func(t *testing.T, body []byte) {
		var e Entry // for the key, the name as folded
		if checkLengths(body) == nil {
			_ = msgpack.Unmarshal(body, &e)
		}
		if _, err := decodeRecord(0, []byte(foldASCII(e.Name)), body); err != nil && !errors.Is(err, ErrCorrupt) {
			t.Fatalf("record: %v", err)
		}
		if _, err := Decode(version1(body)); err != nil && !errors.Is(err, ErrCorrupt) {
			// A version 1 file is re-encoded; its entries may fail
			// the checks Encode makes.
			var se *SyntaxError
			if !errors.As(err, &se) && !strings.HasPrefix(err.Error(), "userdb: ") {
				t.Fatalf("version 1: %v", err)
			}
		}
	})
}
