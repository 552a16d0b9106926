// Package userdb reads the mail user table that routes a user to a storage
// box, an export, a Maildir and the AUTH_SYS ids to use there.
//
// # Text format
//
// The source is a Courier-style userdb file (reference.md §7.5), one user
// per line:
//
//	tevie<TAB>uid=2001|gid=2001|home=/mail1/12/34-tevie|server=storage1:/usr/mail1|customer=C00042
//
// Lines starting with '#' and blank lines are ignored. The name and the
// fields are separated by one or more tabs; fields by '|'. uid, gid, home
// and server are required; mail (the Maildir, default home + "/Maildir")
// and any other field (customer, quota, ...) are optional and kept. A field
// may appear once. Names are unique without regard to ASCII case (as
// lookups are: Exim lower-cases a local part), at most 255 bytes of
// UTF-8, without whitespace, '|', control or format characters (a byte
// order mark). uid and gid are below 2^32-1 ((uid_t)-1); home, mail and
// the export are absolute paths without ".." components; and the user's
// Maildir must route (see Routing). Errors name the file and line.
//
// # Compiled format
//
// Compile writes userdb.dat (format version 2, all integers big-endian):
//
//	"MNFSUDB\x02" | count (uint32) | source size (int64) |
//	source mtime (int64, Unix ns) | source path (first 8 bytes of the
//	SHA-256 of its absolute path) | CRC-32C of the 36 bytes before it
//	index: count+1 x (offset uint32 | CRC-32C uint32)
//	records: one per user, sorted by name in lower case (ASCII): that
//	         name's length (a byte), the name, and the Entry in msgpack
//	         (github.com/vmihailenco/msgpack/v5)
//
// Index entry i gives where record i starts in the records area and its
// checksum; entry count gives the records area's length (its checksum
// field is zero). Open reads the header and the last index entry only and
// checks that the file is exactly as long as they say, so a truncated
// file is refused with ErrCorrupt at once; Lookup is a binary search that
// reads and checks about log2(count) index entries and records, and
// refuses a record whose checksum does not match with ErrCorrupt. So a
// lookup in a database of a million users is some 40 small reads and no
// memory to speak of, a damaged database is never misread, and a lookup
// does not touch the text. A version 1 file (one SHA-256-checked msgpack
// array, read whole) is still read; compile again to get version 2.
//
// # Distribution
//
// Ship the text file to every front end (rsync) and compile it there
// (mailnfs userdb compile); Compile writes a temporary file and renames it
// over the old one, so readers never see a half-written database, and an
// open DB keeps reading the file it opened. The header's source fields let
// DB.SourceChanged tell that the text was replaced after the compile.
//
// # Routing
//
// server=HOST:/EXPORT names the storage box and its export. The Maildir is
// found inside that export: mail (or home + "/Maildir") is made relative to
// the export by removing the export path if it is a prefix, otherwise the
// first path component (the front end's mount point: storage1:/usr/mail1
// mounted on /mail1). So home=/mail1/12/34-tevie with server
// storage1:/usr/mail1 routes to nfs://storage1/usr/mail1, Maildir
// 12/34-tevie/Maildir, AUTH_SYS uid 2001 gid 2001.
package userdb

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// Magic starts every compiled database; its last byte is the format
// version.
const Magic = "MNFSUDB\x02"

// magicV1 starts a version 1 database, still read by Open and Decode.
const magicV1 = "MNFSUDB\x01"

// headerSize is the length of a version 2 header: magic, count, the
// source's size, mtime and path hash, CRC.
const headerSize = 40

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// MaxFileSize bounds a compiled database (and a text source) that Open or
// Parse will read.
const MaxFileSize = 1 << 30

// ErrCorrupt means a compiled database is truncated, damaged or not a
// database at all.
var ErrCorrupt = errors.New("userdb: corrupt or truncated database")

// ErrNotFound means the user is not in the database.
var ErrNotFound = errors.New("userdb: no such user")

// Entry is one user.
type Entry struct {
	Name   string            `msgpack:"n"`
	UID    uint32            `msgpack:"u"`
	GID    uint32            `msgpack:"g"`
	Home   string            `msgpack:"h"`
	Server string            `msgpack:"s"` // HOST:/EXPORT
	Mail   string            `msgpack:"m"` // Maildir path; "" = Home + "/Maildir"
	Fields map[string]string `msgpack:"f"` // every other field, e.g. customer
}

// SyntaxError is a parse error at a line of a source file.
type SyntaxError struct {
	File string
	Line int
	Msg  string
}

// Error returns "file:line: message".
func (e *SyntaxError) Error() string { return fmt.Sprintf("%s:%d: %s", e.File, e.Line, e.Msg) }

// Parse reads a userdb text source. file names it in errors.
func Parse(r io.Reader, file string) ([]Entry, error) {
	var out []Entry
	if err := parse(r, file, nil, func(e *Entry) error { out = append(out, *e); return nil }); err != nil {
		return nil, err
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

// parse calls fn with each user of a userdb text source, in file order,
// once checks accept it.
func parse(r io.Reader, file string, checks []func(*Entry) error, fn func(*Entry) error) error {
	seen := map[string]int{}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		text := strings.TrimRight(sc.Text(), "\r")
		if strings.TrimSpace(text) == "" || strings.HasPrefix(strings.TrimLeft(text, " \t"), "#") {
			continue
		}
		fail := func(format string, a ...any) error {
			return &SyntaxError{File: file, Line: line, Msg: fmt.Sprintf(format, a...)}
		}
		name, rest, ok := strings.Cut(text, "\t")
		if !ok {
			return fail("want NAME<TAB>field=value|..., found no tab")
		}
		rest = strings.TrimLeft(rest, "\t")
		if err := checkName(name); err != nil {
			return fail("%v", err)
		}
		if prev, dup := seen[foldASCII(name)]; dup {
			return fail("user %q already defined on line %d (names ignore ASCII case)", name, prev)
		}
		name = strings.Clone(name) // not the whole line, kept in seen
		seen[foldASCII(name)] = line
		e := Entry{Name: name}
		have := map[string]bool{}
		for _, f := range strings.Split(rest, "|") {
			k, v, ok := strings.Cut(f, "=")
			if !ok || k == "" {
				return fail("field %q is not name=value", f)
			}
			if have[k] {
				return fail("field %q given twice", k)
			}
			have[k] = true
			switch k {
			case "uid", "gid":
				n, err := strconv.ParseUint(v, 10, 32)
				if err != nil || n == 1<<32-1 {
					// 2^32-1 is (uid_t)-1: no one (chown reads it
					// as "unchanged"), and a server maps it to nobody.
					return fail("%s=%q is not a number below 2^32-1", k, v)
				}
				if k == "uid" {
					e.UID = uint32(n)
				} else {
					e.GID = uint32(n)
				}
			case "home", "mail":
				if !strings.HasPrefix(v, "/") || strings.Contains(v, "\x00") {
					return fail("%s=%q must be an absolute path", k, v)
				}
				if hasDotDot(v) {
					return fail("%s=%q: no \"..\" allowed (it would leave the mount point the route assumes)", k, v)
				}
				if k == "home" {
					e.Home = path.Clean(v)
				} else {
					e.Mail = path.Clean(v)
				}
			case "server":
				if _, _, err := SplitServer(v); err != nil {
					return fail("%v", err)
				}
				e.Server = v
			default:
				if e.Fields == nil {
					e.Fields = map[string]string{}
				}
				e.Fields[k] = v
			}
		}
		for _, req := range []string{"uid", "gid", "home", "server"} {
			if !have[req] {
				return fail("user %q has no %s=", name, req)
			}
		}
		if _, err := e.route(); err != nil {
			return fail("user %q: %v", name, err)
		}
		for _, check := range checks {
			if err := check(&e); err != nil {
				return fail("user %q: %v", name, err)
			}
		}
		if err := fn(&e); err != nil {
			return err
		}
	}
	if err := sc.Err(); errors.Is(err, bufio.ErrTooLong) {
		return &SyntaxError{File: file, Line: line + 1, Msg: "line longer than 1 MiB"}
	} else if err != nil {
		return fmt.Errorf("userdb: %s:%d: %w", file, line+1, err)
	}
	return nil
}

// dropCaseTwins keeps one entry of each group whose names differ only in
// ASCII case, which version 1 allowed (names were compared exactly) and
// version 2 does not: the one named in lower case, which an MTA that
// lower-cases local parts (Exim's default) found, else the first. So an
// old database still opens, and delivers as it did, instead of failing
// every lookup.
func dropCaseTwins(es []Entry) []Entry {
	keep := make(map[string]int, len(es)) // folded name -> index in out
	out := es[:0:0]
	for _, e := range es {
		k := foldASCII(e.Name)
		i, twin := keep[k]
		switch {
		case !twin:
			keep[k] = len(out)
			out = append(out, e)
		case e.Name == k:
			out[i] = e
		}
	}
	return out
}

// foldASCII returns s with ASCII letters in lower case: how user names
// compare (Exim compares local parts so, and lower-cases them by default).
func foldASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}

// hasDotDot reports whether the slash-separated path p has a ".."
// component.
func hasDotDot(p string) bool {
	for _, c := range strings.Split(p, "/") {
		if c == ".." {
			return true
		}
	}
	return false
}

func checkName(n string) error {
	if n == "" || len(n) > 255 {
		return fmt.Errorf("user name must be 1 to 255 bytes")
	}
	if !utf8.ValidString(n) {
		return fmt.Errorf("user name %q is not UTF-8", n)
	}
	for _, c := range n {
		// unicode.IsPrint is false for every space but ' ', for control
		// and format characters: a byte order mark (U+FEFF) at the start
		// of a file saved as "UTF-8 with BOM" would otherwise become part
		// of the first user's name, and that user unknown (exit 67).
		if c == ' ' || c == '|' || !unicode.IsPrint(c) {
			return fmt.Errorf("user name %q holds whitespace, '|', a control or format character (a byte order mark?)", n)
		}
	}
	return nil
}

// SplitServer splits "HOST:/EXPORT" (IPv6: "[::1]:/EXPORT").
func SplitServer(s string) (host, export string, err error) {
	i := strings.Index(s, ":/")
	if i <= 0 {
		return "", "", fmt.Errorf("server=%q: want HOST:/EXPORT", s)
	}
	if hasDotDot(s[i+1:]) {
		return "", "", fmt.Errorf("server=%q: no \"..\" allowed in the export", s)
	}
	host, export = s[:i], path.Clean(s[i+1:])
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" || strings.ContainsAny(host, " \t/") {
		return "", "", fmt.Errorf("server=%q: bad host", s)
	}
	return host, export, nil
}

// Encode writes entries as a compiled database (version 2). Names must
// be unique.
func Encode(w io.Writer, entries []Entry) error {
	var b builder
	for i := range entries {
		if err := b.add(&entries[i]); err != nil {
			return err
		}
	}
	return b.write(w)
}

// builder makes a compiled database of entries added in any order,
// holding each only as its encoded record (so that compiling a million
// users takes a fraction of the memory their Entry values would).
type builder struct {
	buf  bytes.Buffer
	enc  *msgpack.Encoder
	recs []builtRecord
	// srcSize, srcMtime (Unix nanoseconds) and srcPath (pathHash)
	// describe the source file; all zero for Encode.
	srcSize, srcMtime int64
	srcPath           uint64
}

// builtRecord is where an added entry's record is in builder.buf.
type builtRecord struct {
	name       string
	start, end int
}

func (b *builder) add(e *Entry) error {
	if b.enc == nil {
		b.enc = msgpack.NewEncoder(&b.buf)
		b.enc.SetSortMapKeys(true) // the same source, the same file
	}
	if e.Name == "" || len(e.Name) > 255 {
		return fmt.Errorf("userdb: encode: user name %q: want 1 to 255 bytes", e.Name)
	}
	start := b.buf.Len()
	// The name first, so that a lookup compares it without decoding;
	// in lower case, as lookups ignore ASCII case.
	key := foldASCII(e.Name)
	b.buf.WriteByte(byte(len(key)))
	b.buf.WriteString(key)
	if err := b.enc.Encode(e); err != nil {
		return fmt.Errorf("userdb: encode: %w", err)
	}
	if headerSize+8*(len(b.recs)+2)+b.buf.Len() > MaxFileSize {
		return fmt.Errorf("userdb: encode: database larger than %d bytes", MaxFileSize)
	}
	b.recs = append(b.recs, builtRecord{name: key, start: start, end: b.buf.Len()})
	return nil
}

// write writes the database: header, index and records in name order.
func (b *builder) write(w io.Writer) error {
	sort.Slice(b.recs, func(i, j int) bool { return b.recs[i].name < b.recs[j].name })
	buf := b.buf.Bytes()
	index := make([]byte, 8*(len(b.recs)+1))
	off := 0
	for i, r := range b.recs {
		if i > 0 && b.recs[i-1].name == r.name {
			return fmt.Errorf("userdb: encode: user %q given twice (names ignore ASCII case)", r.name)
		}
		binary.BigEndian.PutUint32(index[8*i:], uint32(off))
		binary.BigEndian.PutUint32(index[8*i+4:], crc32.Checksum(buf[r.start:r.end], castagnoli))
		off += r.end - r.start
	}
	binary.BigEndian.PutUint32(index[8*len(b.recs):], uint32(off))
	var hdr [headerSize]byte
	copy(hdr[:], Magic)
	binary.BigEndian.PutUint32(hdr[8:], uint32(len(b.recs)))
	binary.BigEndian.PutUint64(hdr[12:], uint64(b.srcSize))
	binary.BigEndian.PutUint64(hdr[20:], uint64(b.srcMtime))
	binary.BigEndian.PutUint64(hdr[28:], b.srcPath)
	binary.BigEndian.PutUint32(hdr[36:], crc32.Checksum(hdr[:36], castagnoli))
	for _, p := range [][]byte{hdr[:], index} {
		if _, err := w.Write(p); err != nil {
			return err
		}
	}
	for _, r := range b.recs {
		if _, err := w.Write(buf[r.start:r.end]); err != nil {
			return err
		}
	}
	return nil
}

// Compile parses the text file src and writes the database to dst
// atomically (temporary file in dst's directory, fsync, rename). It
// returns the number of users. Each of checks may refuse a user (a field
// this package does not know, such as quota=); its error becomes a
// SyntaxError at the user's line.
func Compile(src, dst string, checks ...func(*Entry) error) (int, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	fi, err := f.Stat()
	if err != nil {
		f.Close()
		return 0, err
	}
	// Taken before the text is read: a source changed while it is read
	// differs from the one recorded.
	b := builder{srcSize: fi.Size(), srcMtime: fi.ModTime().UnixNano(), srcPath: pathHash(src)}
	// The records take about as much room as the text: grow once.
	b.buf.Grow(int(min(fi.Size()+fi.Size()/8, MaxFileSize)))
	err = parse(io.LimitReader(f, MaxFileSize), src, checks, b.add)
	f.Close()
	if err != nil {
		return 0, err
	}
	tmp, err := os.CreateTemp(filepath.Dir(dst), ".userdb.dat.*")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	bw := bufio.NewWriter(tmp)
	err = b.write(bw)
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		err = tmp.Chmod(0o644)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return 0, fmt.Errorf("userdb: write %s: %w", dst, err)
	}
	if err := os.Rename(tmp.Name(), dst); err != nil {
		return 0, err
	}
	return len(b.recs), nil
}

// DB is an open compiled database. Lookups read it as they go; it is
// safe for concurrent use.
type DB struct {
	r       io.ReaderAt
	closer  io.Closer // the file, for Open; nil for Decode
	n       int       // number of users
	records int64     // where the records area starts
	recLen  int64     // and its length
	// srcSize, srcMtime and srcPath describe the source Compile read
	// (zero: not known).
	srcSize, srcMtime int64
	srcPath           uint64
}

// SourceChanged reports whether the database was compiled from the file
// src (the same path, symbolic links resolved) and src is no longer that
// file: another size or modification time (an edit; a copy into place,
// even one that keeps the master's mtime as rsync -a does, since the
// master's mtime changed with its edit). It is false for a database
// compiled from another file, one that does not say (Encode, version 1),
// and when src cannot be examined.
func (db *DB) SourceChanged(src string) bool {
	if db.srcPath == 0 || pathHash(src) != db.srcPath {
		return false
	}
	fi, err := os.Stat(src)
	return err == nil && (fi.Size() != db.srcSize || fi.ModTime().UnixNano() != db.srcMtime)
}

// pathHash identifies the file named p: the first 8 bytes of the SHA-256
// of its absolute path, symbolic links resolved; 0 if there is none.
func pathHash(p string) uint64 {
	abs, err := filepath.Abs(p)
	if err == nil {
		abs, err = filepath.EvalSymlinks(abs)
	}
	if err != nil {
		return 0
	}
	sum := sha256.Sum256([]byte(abs))
	return binary.BigEndian.Uint64(sum[:])
}

// Decode reads a compiled database held in memory, checking its framing
// (see Open).
func Decode(b []byte) (*DB, error) {
	return newDB(bytes.NewReader(b), int64(len(b)))
}

// Open opens a compiled database file. It checks the header and that the
// file is exactly as long as the header and index say (so a truncated
// file is refused with ErrCorrupt); each lookup checks the records it
// reads. The DB keeps the file open (a database renamed over it later is
// not seen): Close it when done.
func Open(file string) (*DB, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	fi, err := f.Stat()
	if err == nil && fi.Size() > MaxFileSize {
		err = fmt.Errorf("larger than %d bytes", MaxFileSize)
	}
	var db *DB
	if err == nil {
		db, err = newDB(f, fi.Size())
	}
	if err != nil {
		f.Close()
		return nil, fmt.Errorf("userdb: %s: %w", file, err)
	}
	if db.r == io.ReaderAt(f) {
		db.closer = f
	} else { // a version 1 file, read whole
		f.Close()
	}
	return db, nil
}

// Close closes the database's file.
func (db *DB) Close() error {
	if db.closer == nil {
		return nil
	}
	return db.closer.Close()
}

// newDB checks the header of the database in r, size bytes long.
func newDB(r io.ReaderAt, size int64) (*DB, error) {
	var hdr [headerSize]byte
	if size < headerSize+8 {
		return nil, fmt.Errorf("%w: %d bytes", ErrCorrupt, size)
	}
	if _, err := r.ReadAt(hdr[:], 0); err != nil {
		return nil, err
	}
	if string(hdr[:len(magicV1)]) == magicV1 {
		return decodeV1(r, size)
	}
	if string(hdr[:len(Magic)]) != Magic {
		if string(hdr[:len(Magic)-1]) == Magic[:len(Magic)-1] {
			return nil, fmt.Errorf("%w: unsupported format version %d", ErrCorrupt, hdr[len(Magic)-1])
		}
		return nil, fmt.Errorf("%w: bad magic (is this a userdb.dat?)", ErrCorrupt)
	}
	if crc32.Checksum(hdr[:36], castagnoli) != binary.BigEndian.Uint32(hdr[36:]) {
		return nil, fmt.Errorf("%w: header checksum mismatch", ErrCorrupt)
	}
	n := int64(binary.BigEndian.Uint32(hdr[8:]))
	db := &DB{r: r, n: int(n), records: headerSize + 8*(n+1),
		srcSize: int64(binary.BigEndian.Uint64(hdr[12:])), srcMtime: int64(binary.BigEndian.Uint64(hdr[20:])),
		srcPath: binary.BigEndian.Uint64(hdr[28:])}
	if db.records > size {
		return nil, fmt.Errorf("%w: %d bytes, too short for %d users", ErrCorrupt, size, n)
	}
	var last [8]byte // the records area's length, and a zero checksum
	if _, err := r.ReadAt(last[:], db.records-8); err != nil {
		return nil, err
	}
	if binary.BigEndian.Uint32(last[4:]) != 0 {
		return nil, fmt.Errorf("%w: last index entry damaged", ErrCorrupt)
	}
	db.recLen = int64(binary.BigEndian.Uint32(last[:]))
	if want := db.records + db.recLen; want != size {
		return nil, fmt.Errorf("%w: %d bytes, want %d", ErrCorrupt, size, want)
	}
	return db, nil
}

// record reads and checks entry i.
func (db *DB) record(i int) (Entry, error) {
	name, body, err := db.raw(i)
	if err != nil {
		return Entry{}, err
	}
	return decodeRecord(i, name, body)
}

// raw reads and checks record i: the user's name, and the msgpack Entry.
func (db *DB) raw(i int) (name, body []byte, err error) {
	var ix [12]byte
	if _, err := db.r.ReadAt(ix[:], headerSize+8*int64(i)); err != nil {
		return nil, nil, fmt.Errorf("%w: index entry %d: %v", ErrCorrupt, i, err)
	}
	start, sum, end := binary.BigEndian.Uint32(ix[:]), binary.BigEndian.Uint32(ix[4:]), binary.BigEndian.Uint32(ix[8:])
	if start >= end || int64(end) > db.recLen {
		return nil, nil, fmt.Errorf("%w: index entry %d: record at %d to %d", ErrCorrupt, i, start, end)
	}
	rec := make([]byte, end-start)
	if _, err := db.r.ReadAt(rec, db.records+int64(start)); err != nil {
		return nil, nil, fmt.Errorf("%w: record %d: %v", ErrCorrupt, i, err)
	}
	if crc32.Checksum(rec, castagnoli) != sum {
		return nil, nil, fmt.Errorf("%w: record %d: checksum mismatch", ErrCorrupt, i)
	}
	if n := int(rec[0]); n == 0 || 1+n > len(rec) {
		return nil, nil, fmt.Errorf("%w: record %d: bad name length", ErrCorrupt, i)
	}
	return rec[1 : 1+rec[0]], rec[1+rec[0]:], nil
}

// decodeRecord decodes record i's Entry, whose name must fold to key.
func decodeRecord(i int, key, body []byte) (Entry, error) {
	if err := checkLengths(body); err != nil {
		return Entry{}, fmt.Errorf("%w: record %d: %v", ErrCorrupt, i, err)
	}
	var e Entry
	if err := msgpack.Unmarshal(body, &e); err != nil {
		return Entry{}, fmt.Errorf("%w: record %d: %v", ErrCorrupt, i, err)
	}
	if foldASCII(e.Name) != string(key) {
		return Entry{}, fmt.Errorf("%w: record %d: names %q and %q", ErrCorrupt, i, key, e.Name)
	}
	return e, nil
}

// checkLengths checks that every array and map in the msgpack value b
// announces no more elements than the bytes after its header can hold (one
// byte an element at least), so that decoding never allocates what a
// damaged or forged file merely claims: msgpack makes a map or slice of
// the announced size before it reads an element (84 MB for an 8-byte map
// header; a slice header of 2^32-1 elements exhausts memory). Strings and
// binaries are left to msgpack, which grows them as bytes arrive. A value
// nested deeper than a database needs is refused too.
func checkLengths(b []byte) error {
	r := bytes.NewReader(b)
	d := msgpack.NewDecoder(r)
	var walk func(depth int) error
	walk = func(depth int) error {
		if depth > 8 {
			return errors.New("msgpack nested too deep")
		}
		c, err := d.PeekCode()
		if err != nil {
			return err
		}
		var n, per int
		switch {
		case msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32:
			n, err = d.DecodeMapLen()
			per = 2
		case msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32:
			n, err = d.DecodeArrayLen()
			per = 1
		default:
			return d.Skip()
		}
		if err != nil {
			return err
		}
		if int64(n)*int64(per) > int64(r.Len()) {
			return fmt.Errorf("msgpack length %d, %d bytes left", n, r.Len())
		}
		for range n * per {
			if err := walk(depth + 1); err != nil {
				return err
			}
		}
		return nil
	}
	return walk(0)
}

// decodeV1 reads a version 1 database ("MNFSUDB\x01", payload length,
// msgpack array of entries, SHA-256) whole and returns it re-encoded in
// memory as version 2.
func decodeV1(r io.ReaderAt, size int64) (*DB, error) {
	b := make([]byte, size)
	if _, err := r.ReadAt(b, 0); err != nil {
		return nil, err
	}
	if len(b) < len(magicV1)+8+sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	n := binary.BigEndian.Uint64(b[len(magicV1):])
	rest := b[len(magicV1)+8:]
	if n != uint64(len(rest)-sha256.Size) {
		return nil, fmt.Errorf("%w: payload of %d bytes announced, %d present", ErrCorrupt, n, len(rest)-sha256.Size)
	}
	payload, sum := rest[:n], rest[n:]
	if got := sha256.Sum256(payload); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	if err := checkLengths(payload); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	// Entry by entry, so that the array's length costs nothing until
	// its entries are there (msgpack would make a slice of that many).
	d := msgpack.NewDecoder(bytes.NewReader(payload))
	count, err := d.DecodeArrayLen()
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	var es []Entry
	for i := range count {
		var e Entry
		if err := d.Decode(&e); err != nil {
			return nil, fmt.Errorf("%w: entry %d: %v", ErrCorrupt, i, err)
		}
		if i > 0 && es[i-1].Name >= e.Name {
			return nil, fmt.Errorf("%w: entries not sorted", ErrCorrupt)
		}
		es = append(es, e)
	}
	es = dropCaseTwins(es)
	var buf bytes.Buffer
	if err := Encode(&buf, es); err != nil {
		return nil, err
	}
	return Decode(buf.Bytes())
}

// Len returns the number of users.
func (db *DB) Len() int { return db.n }

// Entries reads every user, in name order, checking each record and the
// order.
func (db *DB) Entries() ([]Entry, error) {
	es := make([]Entry, 0, db.n)
	for i := range db.n {
		e, err := db.record(i)
		if err != nil {
			return nil, err
		}
		if i > 0 && foldASCII(es[i-1].Name) >= foldASCII(e.Name) {
			return nil, fmt.Errorf("%w: record %d: entries not sorted", ErrCorrupt, i)
		}
		es = append(es, e)
	}
	return es, nil
}

// Lookup finds a user by name, ignoring ASCII case as Exim does with
// local parts: ErrNotFound if there is none, ErrCorrupt if a record it
// reads is damaged.
func (db *DB) Lookup(name string) (Entry, error) {
	key := foldASCII(name)
	lo, hi := 0, db.n
	for lo < hi {
		mid := int(uint(lo+hi) >> 1)
		got, body, err := db.raw(mid)
		if err != nil {
			return Entry{}, err
		}
		switch c := strings.Compare(string(got), key); {
		case c == 0:
			return decodeRecord(mid, got, body)
		case c < 0:
			lo = mid + 1
		default:
			hi = mid
		}
	}
	return Entry{}, fmt.Errorf("%w: %q", ErrNotFound, name)
}

// Route is where a user's mail lives and as whom to write it.
type Route struct {
	Host    string // storage box
	Export  string // export path on it
	Maildir string // Maildir path relative to the export
	UID     uint32
	GID     uint32
}

// URL returns the nfs:// URL of the export (portmapper on port 111) with
// the user's uid and gid.
func (r Route) URL() string {
	h := r.Host
	if strings.Contains(h, ":") {
		h = "[" + h + "]"
	}
	// The export path escaped, so that '#', '?', '%' or a space in it
	// stay in the path.
	u := url.URL{Scheme: "nfs", Host: h, Path: r.Export, RawQuery: fmt.Sprintf("version=3&uid=%d&gid=%d", r.UID, r.GID)}
	return u.String()
}

// Route works out where e's Maildir is (see the package comment).
func (e Entry) Route() (Route, error) {
	r, err := e.route()
	if err != nil {
		return Route{}, fmt.Errorf("userdb: user %s: %w", e.Name, err)
	}
	return r, nil
}

func (e Entry) route() (Route, error) {
	host, export, err := SplitServer(e.Server)
	if err != nil {
		return Route{}, err
	}
	md := e.Mail
	if md == "" {
		md = path.Join(e.Home, "Maildir")
	}
	var rel string
	switch {
	case export != "/" && (md == export || strings.HasPrefix(md, export+"/")):
		rel = strings.TrimPrefix(strings.TrimPrefix(md, export), "/")
	case export == "/":
		rel = strings.TrimPrefix(md, "/")
	default:
		_, after, ok := strings.Cut(strings.TrimPrefix(md, "/"), "/")
		if !ok {
			return Route{}, fmt.Errorf("the Maildir %s is not below a mount point of %s", md, e.Server)
		}
		rel = after
	}
	if rel == "" {
		return Route{}, fmt.Errorf("the Maildir %s is the export root", md)
	}
	return Route{Host: host, Export: export, Maildir: rel, UID: e.UID, GID: e.GID}, nil
}

// HashedHome returns the two-level hashed home directory for a new user,
// relative to the mail root: "NN/MM-user", where NNMM are the four decimal
// digits of (the first two bytes of SHA-256(lower-case user name), as a
// big-endian uint16) mod 10000. It spreads users over 100 x 100
// directories so none grows large, and any tool can recompute it.
func HashedHome(user string) string {
	sum := sha256.Sum256([]byte(strings.ToLower(user)))
	v := int(binary.BigEndian.Uint16(sum[:2])) % 10000
	return fmt.Sprintf("%02d/%02d-%s", v/100, v%100, user)
}
