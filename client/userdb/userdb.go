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
// may appear once. Names are unique, at most 255 bytes, without whitespace,
// '|' or control characters. Errors name the file and line.
//
// # Compiled format
//
// Compile writes userdb.dat:
//
//	"MNFSUDB\x01" | payload length (uint64, big-endian) | payload | SHA-256(payload)
//
// where the payload is a msgpack (github.com/vmihailenco/msgpack/v5) array
// of entries sorted by name. Open checks magic, length and checksum before
// decoding anything, so a truncated or corrupted file is refused with
// ErrCorrupt rather than misread. Lookup does not touch the text.
//
// # Distribution
//
// Ship the text file to every front end (rsync) and compile it there
// (mailnfs userdb compile); Compile writes a temporary file and renames it
// over the old one, so readers never see a half-written database.
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
	"io"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	"github.com/vmihailenco/msgpack/v5"
)

// Magic starts every compiled database; its last byte is the format
// version.
const Magic = "MNFSUDB\x01"

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
			return nil, fail("want NAME<TAB>field=value|..., found no tab")
		}
		rest = strings.TrimLeft(rest, "\t")
		if err := checkName(name); err != nil {
			return nil, fail("%v", err)
		}
		if prev, dup := seen[name]; dup {
			return nil, fail("user %q already defined on line %d", name, prev)
		}
		seen[name] = line
		e := Entry{Name: name}
		have := map[string]bool{}
		for _, f := range strings.Split(rest, "|") {
			k, v, ok := strings.Cut(f, "=")
			if !ok || k == "" {
				return nil, fail("field %q is not name=value", f)
			}
			if have[k] {
				return nil, fail("field %q given twice", k)
			}
			have[k] = true
			switch k {
			case "uid", "gid":
				n, err := strconv.ParseUint(v, 10, 32)
				if err != nil {
					return nil, fail("%s=%q is not a number below 2^32", k, v)
				}
				if k == "uid" {
					e.UID = uint32(n)
				} else {
					e.GID = uint32(n)
				}
			case "home", "mail":
				if !strings.HasPrefix(v, "/") || strings.Contains(v, "\x00") {
					return nil, fail("%s=%q must be an absolute path", k, v)
				}
				if k == "home" {
					e.Home = path.Clean(v)
				} else {
					e.Mail = path.Clean(v)
				}
			case "server":
				if _, _, err := SplitServer(v); err != nil {
					return nil, fail("%v", err)
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
				return nil, fail("user %q has no %s=", name, req)
			}
		}
		out = append(out, e)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("userdb: %s:%d: %w", file, line+1, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func checkName(n string) error {
	if n == "" || len(n) > 255 {
		return fmt.Errorf("user name must be 1 to 255 bytes")
	}
	for _, c := range []byte(n) {
		if c <= ' ' || c == '|' || c == 0x7f {
			return fmt.Errorf("user name %q holds whitespace, '|' or a control character", n)
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
	host, export = s[:i], path.Clean(s[i+1:])
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if host == "" || strings.ContainsAny(host, " \t/") {
		return "", "", fmt.Errorf("server=%q: bad host", s)
	}
	return host, export, nil
}

// Encode writes entries as a compiled database.
func Encode(w io.Writer, entries []Entry) error {
	es := append([]Entry(nil), entries...)
	sort.Slice(es, func(i, j int) bool { return es[i].Name < es[j].Name })
	payload, err := msgpack.Marshal(es)
	if err != nil {
		return fmt.Errorf("userdb: encode: %w", err)
	}
	sum := sha256.Sum256(payload)
	var hdr [16]byte
	copy(hdr[:], Magic)
	binary.BigEndian.PutUint64(hdr[8:], uint64(len(payload)))
	for _, b := range [][]byte{hdr[:], payload, sum[:]} {
		if _, err := w.Write(b); err != nil {
			return err
		}
	}
	return nil
}

// Compile parses the text file src and writes the database to dst
// atomically (temporary file in dst's directory, fsync, rename). It
// returns the number of users.
func Compile(src, dst string) (int, error) {
	f, err := os.Open(src)
	if err != nil {
		return 0, err
	}
	entries, err := Parse(io.LimitReader(f, MaxFileSize), src)
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
	err = Encode(bw, entries)
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
	return len(entries), nil
}

// DB is a compiled database loaded in memory.
type DB struct {
	entries []Entry // sorted by name
}

// Decode reads a compiled database, checking its framing and checksum.
func Decode(b []byte) (*DB, error) {
	if len(b) < len(Magic)+8+sha256.Size {
		return nil, fmt.Errorf("%w: %d bytes", ErrCorrupt, len(b))
	}
	if string(b[:len(Magic)]) != Magic {
		if string(b[:len(Magic)-1]) == Magic[:len(Magic)-1] {
			return nil, fmt.Errorf("%w: unsupported format version %d", ErrCorrupt, b[len(Magic)-1])
		}
		return nil, fmt.Errorf("%w: bad magic (is this a userdb.dat?)", ErrCorrupt)
	}
	n := binary.BigEndian.Uint64(b[len(Magic):])
	rest := b[len(Magic)+8:]
	if n != uint64(len(rest)-sha256.Size) {
		return nil, fmt.Errorf("%w: payload of %d bytes announced, %d present", ErrCorrupt, n, len(rest)-sha256.Size)
	}
	payload, sum := rest[:n], rest[n:]
	if got := sha256.Sum256(payload); !bytes.Equal(got[:], sum) {
		return nil, fmt.Errorf("%w: checksum mismatch", ErrCorrupt)
	}
	var es []Entry
	if err := msgpack.Unmarshal(payload, &es); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrCorrupt, err)
	}
	for i := 1; i < len(es); i++ {
		if es[i-1].Name >= es[i].Name {
			return nil, fmt.Errorf("%w: entries not sorted", ErrCorrupt)
		}
	}
	return &DB{entries: es}, nil
}

// Open reads a compiled database file.
func Open(file string) (*DB, error) {
	f, err := os.Open(file)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, MaxFileSize+1))
	if err != nil {
		return nil, err
	}
	if len(b) > MaxFileSize {
		return nil, fmt.Errorf("userdb: %s: larger than %d bytes", file, MaxFileSize)
	}
	db, err := Decode(b)
	if err != nil {
		return nil, fmt.Errorf("userdb: %s: %w", file, err)
	}
	return db, nil
}

// Len returns the number of users.
func (db *DB) Len() int { return len(db.entries) }

// Entries returns the users in name order. The slice must not be modified.
func (db *DB) Entries() []Entry { return db.entries }

// Lookup finds a user by exact name.
func (db *DB) Lookup(name string) (Entry, error) {
	i := sort.Search(len(db.entries), func(i int) bool { return db.entries[i].Name >= name })
	if i < len(db.entries) && db.entries[i].Name == name {
		return db.entries[i], nil
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
	host, export, err := SplitServer(e.Server)
	if err != nil {
		return Route{}, fmt.Errorf("userdb: user %s: %w", e.Name, err)
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
			return Route{}, fmt.Errorf("userdb: user %s: Maildir %s is not below a mount point of %s", e.Name, md, e.Server)
		}
		rel = after
	}
	if rel == "" {
		return Route{}, fmt.Errorf("userdb: user %s: Maildir %s is the export root", e.Name, md)
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
