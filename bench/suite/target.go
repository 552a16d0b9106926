package suite

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/nfsd"
)

// Msg is one message of a Maildir listing.
type Msg struct {
	Dir  string // "new" or "cur"
	Name string // file name in Dir
	Key  string // unique part, stable across flag changes
	Size int64  // from ",S=" or the file's size
}

// Target is what a workload drives: a Maildir store plus the plain file
// operations PostMark needs. Paths and mailboxes are slash-separated and
// relative to the target's root. Implementations are safe for concurrent
// use.
type Target interface {
	// Name is the target as given on the command line.
	Name() string
	// MakeMaildir creates mailbox with tmp/, new/ and cur/ (and parents).
	MakeMaildir(ctx context.Context, mailbox string) error
	// Deliver stores body durably in mailbox's new/ and returns its key.
	Deliver(ctx context.Context, mailbox string, body []byte) (string, error)
	// List returns the messages of new/ and cur/.
	List(ctx context.Context, mailbox string) ([]Msg, error)
	// Read returns the bytes of message m.
	Read(ctx context.Context, mailbox string, m Msg) ([]byte, error)
	// Flag renames the message with key to cur/<key>:2,<flags>.
	Flag(ctx context.Context, mailbox, key, flags string) error
	// Delete removes the message with key.
	Delete(ctx context.Context, mailbox, key string) error
	// TmpFiles lists what is left in mailbox's tmp/.
	TmpFiles(ctx context.Context, mailbox string) ([]string, error)
	// Mkdir creates directory p and missing parents.
	Mkdir(ctx context.Context, p string) error
	// Create creates (or truncates) file p with data; sync makes it durable
	// before returning where the target can choose.
	Create(ctx context.Context, p string, data []byte, sync bool) error
	// Append appends data to file p.
	Append(ctx context.Context, p string, data []byte, sync bool) error
	// ReadFile returns the contents of file p.
	ReadFile(ctx context.Context, p string) ([]byte, error)
	// Remove removes file p.
	Remove(ctx context.Context, p string) error
	// ReadDir counts the entries of directory p, with attributes
	// (READDIRPLUS over NFS, readdir + lstat locally).
	ReadDir(ctx context.Context, p string) (int, error)
	// RemoveAll removes p and everything below it.
	RemoveAll(ctx context.Context, p string) error
	// Close releases the target (stops a self server).
	Close() error
}

// localRooted is a target that also has the export on the local disk:
// bigdir populates it directly and verification reads it there.
type localRooted interface {
	LocalRoot() string
}

// Open opens a target spec: "self", "dir:/path" or "nfs://...".
func Open(ctx context.Context, spec string, log *slog.Logger) (Target, error) {
	switch {
	case spec == "self":
		return StartSelf(ctx, "", log)
	case strings.HasPrefix(spec, "self:"):
		return StartSelf(ctx, strings.TrimPrefix(spec, "self:"), log)
	case strings.HasPrefix(spec, "dir:"):
		p := strings.TrimPrefix(spec, "dir:")
		if p == "" {
			return nil, fmt.Errorf("suite: target %q: empty path", spec)
		}
		return OpenDir(p)
	case strings.HasPrefix(spec, "nfs://"):
		return DialNFS(ctx, spec, spec, log)
	}
	return nil, fmt.Errorf("suite: target %q: want self, dir:/path or nfs://host/export", spec)
}

// ---------------------------------------------------------------- dir:

// DirTarget is a local Maildir driven with system calls.
type DirTarget struct {
	name string
	root string
	n    atomic.Uint64
	host string
}

// OpenDir opens a local directory target (created if missing).
func OpenDir(root string) (*DirTarget, error) {
	if err := os.MkdirAll(root, 0o755); err != nil {
		return nil, err
	}
	h, _ := os.Hostname()
	return &DirTarget{name: "dir:" + root, root: root, host: h}, nil
}

func (t *DirTarget) p(rel string) string {
	return filepath.Join(t.root, filepath.FromSlash(path.Clean("/"+rel)))
}

// Name implements Target.
func (t *DirTarget) Name() string { return t.name }

// LocalRoot is the directory itself.
func (t *DirTarget) LocalRoot() string { return t.root }

// MakeMaildir implements Target.
func (t *DirTarget) MakeMaildir(_ context.Context, mailbox string) error {
	for _, d := range []string{"tmp", "new", "cur"} {
		if err := os.MkdirAll(filepath.Join(t.p(mailbox), d), 0o700); err != nil {
			return err
		}
	}
	return nil
}

func syncDir(p string) error {
	d, err := os.Open(p)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// Deliver writes tmp/<name>, fsyncs it, renames it into new/ and fsyncs new/.
func (t *DirTarget) Deliver(_ context.Context, mailbox string, body []byte) (string, error) {
	mb := t.p(mailbox)
	key := client.UniqueName(time.Now(), os.Getpid(), t.n.Add(1), t.host)
	name := fmt.Sprintf("%s,S=%d", key, len(body))
	tmp := filepath.Join(mb, "tmp", name)
	f, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return "", err
	}
	_, err = f.Write(body)
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, filepath.Join(mb, "new", name))
	}
	if err != nil {
		_ = os.Remove(tmp)
		return "", err
	}
	if err := syncDir(filepath.Join(mb, "new")); err != nil {
		return "", err
	}
	return key, nil
}

// List implements Target.
func (t *DirTarget) List(_ context.Context, mailbox string) ([]Msg, error) {
	var out []Msg
	for _, d := range []string{"new", "cur"} {
		es, err := os.ReadDir(filepath.Join(t.p(mailbox), d))
		if err != nil {
			return nil, err
		}
		for _, e := range es {
			mn, err := client.ParseMessageName(e.Name())
			if err != nil {
				continue
			}
			m := Msg{Dir: d, Name: e.Name(), Key: mn.Unique, Size: mn.Size}
			if m.Size < 0 {
				if fi, err := e.Info(); err == nil {
					m.Size = fi.Size()
				}
			}
			out = append(out, m)
		}
	}
	return out, nil
}

// Read implements Target.
func (t *DirTarget) Read(_ context.Context, mailbox string, m Msg) ([]byte, error) {
	return os.ReadFile(filepath.Join(t.p(mailbox), m.Dir, m.Name))
}

func (t *DirTarget) find(mailbox, key string) (dir, name string, err error) {
	for _, d := range []string{"new", "cur"} {
		es, err := os.ReadDir(filepath.Join(t.p(mailbox), d))
		if err != nil {
			return "", "", err
		}
		for _, e := range es {
			if mn, err := client.ParseMessageName(e.Name()); err == nil && mn.Unique == key {
				return d, e.Name(), nil
			}
		}
	}
	return "", "", fmt.Errorf("%s: %w", key, client.ErrNoMessage)
}

// Flag implements Target (rename into cur/, fsync of both directories).
func (t *DirTarget) Flag(_ context.Context, mailbox, key, flags string) error {
	d, name, err := t.find(mailbox, key)
	if err != nil {
		return err
	}
	mn, err := client.ParseMessageName(name)
	if err != nil {
		return err
	}
	base := mn.Unique
	if mn.Size >= 0 {
		base = fmt.Sprintf("%s,S=%d", mn.Unique, mn.Size)
	}
	to := base + ":2," + flags
	if err := os.Rename(filepath.Join(t.p(mailbox), d, name), filepath.Join(t.p(mailbox), "cur", to)); err != nil {
		return err
	}
	if err := syncDir(filepath.Join(t.p(mailbox), "cur")); err != nil {
		return err
	}
	if d != "cur" {
		return syncDir(filepath.Join(t.p(mailbox), d))
	}
	return nil
}

// Delete implements Target.
func (t *DirTarget) Delete(_ context.Context, mailbox, key string) error {
	d, name, err := t.find(mailbox, key)
	if err != nil {
		return err
	}
	if err := os.Remove(filepath.Join(t.p(mailbox), d, name)); err != nil {
		return err
	}
	return syncDir(filepath.Join(t.p(mailbox), d))
}

// TmpFiles implements Target.
func (t *DirTarget) TmpFiles(_ context.Context, mailbox string) ([]string, error) {
	es, err := os.ReadDir(filepath.Join(t.p(mailbox), "tmp"))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range es {
		out = append(out, e.Name())
	}
	return out, nil
}

// Mkdir implements Target.
func (t *DirTarget) Mkdir(_ context.Context, p string) error { return os.MkdirAll(t.p(p), 0o755) }

// Create implements Target.
func (t *DirTarget) Create(_ context.Context, p string, data []byte, sync bool) error {
	return t.write(p, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, data, sync)
}

// Append implements Target.
func (t *DirTarget) Append(_ context.Context, p string, data []byte, sync bool) error {
	return t.write(p, os.O_WRONLY|os.O_APPEND, data, sync)
}

func (t *DirTarget) write(p string, flag int, data []byte, sync bool) error {
	f, err := os.OpenFile(t.p(p), flag, 0o644)
	if err != nil {
		return err
	}
	_, err = f.Write(data)
	if err == nil && sync {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// ReadFile implements Target.
func (t *DirTarget) ReadFile(_ context.Context, p string) ([]byte, error) { return os.ReadFile(t.p(p)) }

// Remove implements Target.
func (t *DirTarget) Remove(_ context.Context, p string) error { return os.Remove(t.p(p)) }

// ReadDir implements Target: readdir plus lstat of every entry, what
// READDIRPLUS returns.
func (t *DirTarget) ReadDir(_ context.Context, p string) (int, error) {
	f, err := os.Open(t.p(p))
	if err != nil {
		return 0, err
	}
	defer f.Close()
	n := 0
	for {
		es, err := f.ReadDir(4096)
		for _, e := range es {
			if _, err := e.Info(); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return n, err
			}
			n++
		}
		if err == io.EOF || (err == nil && len(es) == 0) {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// RemoveAll implements Target.
func (t *DirTarget) RemoveAll(_ context.Context, p string) error { return os.RemoveAll(t.p(p)) }

// Close implements Target.
func (t *DirTarget) Close() error { return nil }

// ---------------------------------------------------------------- nfs://

// NFSTarget is an NFSv3 export reached through package client.
type NFSTarget struct {
	name string
	url  string
	c    *client.Client
}

// DialNFS mounts url; name is how the target is reported.
func DialNFS(ctx context.Context, name, url string, log *slog.Logger) (*NFSTarget, error) {
	c, err := client.Dial(ctx, url, client.Options{Logger: log, RPC: client.RPCOptions{Conns: 2}})
	if err != nil {
		return nil, fmt.Errorf("suite: dial %s: %w", url, err)
	}
	return &NFSTarget{name: name, url: url, c: c}, nil
}

// Name implements Target.
func (t *NFSTarget) Name() string { return t.name }

// URL is the nfs:// URL the target was dialled with.
func (t *NFSTarget) URL() string { return t.url }

// Client is the underlying NFS client.
func (t *NFSTarget) Client() *client.Client { return t.c }

// MakeMaildir implements Target.
func (t *NFSTarget) MakeMaildir(ctx context.Context, mailbox string) error {
	return t.c.MakeMaildir(ctx, mailbox)
}

// Deliver implements Target with client.Deliver.
func (t *NFSTarget) Deliver(ctx context.Context, mailbox string, body []byte) (string, error) {
	name, err := t.c.Deliver(ctx, mailbox, bytes.NewReader(body))
	if err != nil {
		return "", err
	}
	mn, err := client.ParseMessageName(name)
	if err != nil {
		return "", err
	}
	return mn.Unique, nil
}

// List implements Target.
func (t *NFSTarget) List(ctx context.Context, mailbox string) ([]Msg, error) {
	ms, err := t.c.List(ctx, mailbox)
	if err != nil {
		return nil, err
	}
	out := make([]Msg, len(ms))
	for i, m := range ms {
		out[i] = Msg{Dir: m.Dir, Name: m.Name, Key: m.Key, Size: m.Size}
	}
	return out, nil
}

// listExact lists new/ and cur/ as they are, for Verify: every name, where
// List (client.List) shows a key found in both directories once, taking
// it for a message renamed while it lists, and so would hide a message a
// server left under two names.
func (t *NFSTarget) listExact(ctx context.Context, mailbox string) ([]Msg, error) {
	var out []Msg
	for _, d := range []string{"new", "cur"} {
		fh, _, err := t.c.LookupPath(ctx, path.Join(mailbox, d))
		if err != nil {
			return nil, err
		}
		err = t.c.ReadDirPlusAll(ctx, fh, func(es []client.DirEntryPlus) bool {
			for _, e := range es {
				mn, err := client.ParseMessageName(e.Name)
				if err != nil {
					continue
				}
				m := Msg{Dir: d, Name: e.Name, Key: mn.Unique, Size: mn.Size}
				if m.Size < 0 && e.Attr != nil {
					m.Size = int64(e.Attr.Size)
				}
				out = append(out, m)
			}
			return true
		})
		if err != nil {
			return nil, err
		}
	}
	return out, nil
}

// Read implements Target.
func (t *NFSTarget) Read(ctx context.Context, mailbox string, m Msg) ([]byte, error) {
	return t.c.ReadFile(ctx, path.Join(mailbox, m.Dir, m.Name))
}

// Flag implements Target.
func (t *NFSTarget) Flag(ctx context.Context, mailbox, key, flags string) error {
	_, err := t.c.SetFlags(ctx, mailbox, key, flags)
	return err
}

// Delete implements Target.
func (t *NFSTarget) Delete(ctx context.Context, mailbox, key string) error {
	return t.c.Delete(ctx, mailbox, key)
}

// TmpFiles implements Target.
func (t *NFSTarget) TmpFiles(ctx context.Context, mailbox string) ([]string, error) {
	fh, _, err := t.c.LookupPath(ctx, path.Join(mailbox, "tmp"))
	if err != nil {
		return nil, err
	}
	var out []string
	err = t.c.ReadDirAll(ctx, fh, func(es []client.DirEntry) bool {
		for _, e := range es {
			out = append(out, e.Name)
		}
		return true
	})
	return out, err
}

// Mkdir implements Target.
func (t *NFSTarget) Mkdir(ctx context.Context, p string) error {
	dir := t.c.Root()
	for _, el := range strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/") {
		if el == "" {
			continue
		}
		fh, _, err := t.c.Lookup(ctx, dir, el)
		if err != nil && client.IsStatus(err, nfs3.StatusNoEnt) {
			mode := uint32(0o755)
			fh, _, err = t.c.Mkdir(ctx, dir, el, client.SetAttr{Mode: &mode})
			if err != nil && client.IsStatus(err, nfs3.StatusExist) { // lost a race
				fh, _, err = t.c.Lookup(ctx, dir, el)
			}
		}
		if err != nil {
			return fmt.Errorf("mkdir %s: %w", p, err)
		}
		dir = fh
	}
	return nil
}

// Create implements Target: CREATE (UNCHECKED, truncating) and FILE_SYNC
// WRITEs; over NFS every write is durable whatever sync says.
func (t *NFSTarget) Create(ctx context.Context, p string, data []byte, _ bool) error {
	return t.c.WriteFile(ctx, p, data, 0o644)
}

// Append implements Target: GETATTR for the size, FILE_SYNC WRITEs there.
func (t *NFSTarget) Append(ctx context.Context, p string, data []byte, _ bool) error {
	fh, attr, err := t.c.LookupPath(ctx, p)
	if err != nil {
		return err
	}
	off := attr.Size
	for len(data) > 0 {
		n := min(len(data), t.c.MaxWrite())
		r, err := t.c.Write(ctx, fh, off, data[:n], client.FileSync)
		if err != nil {
			return err
		}
		if r.Count <= 0 {
			return fmt.Errorf("append %s: short write", p)
		}
		off += uint64(r.Count)
		data = data[r.Count:]
	}
	return nil
}

// ReadFile implements Target.
func (t *NFSTarget) ReadFile(ctx context.Context, p string) ([]byte, error) {
	return t.c.ReadFile(ctx, p)
}

// Remove implements Target.
func (t *NFSTarget) Remove(ctx context.Context, p string) error {
	dir, name := path.Split(path.Clean("/" + p))
	fh, _, err := t.c.LookupPath(ctx, dir)
	if err != nil {
		return err
	}
	return t.c.Remove(ctx, fh, name)
}

// ReadDir implements Target with READDIRPLUS.
func (t *NFSTarget) ReadDir(ctx context.Context, p string) (int, error) {
	fh, _, err := t.c.LookupPath(ctx, p)
	if err != nil {
		return 0, err
	}
	n := 0
	err = t.c.ReadDirPlusAll(ctx, fh, func(es []client.DirEntryPlus) bool {
		n += len(es)
		return true
	})
	return n, err
}

// RemoveAll implements Target: a depth-first walk with READDIR, REMOVE and
// RMDIR.
func (t *NFSTarget) RemoveAll(ctx context.Context, p string) error {
	fh, attr, err := t.c.LookupPath(ctx, p)
	if err != nil {
		if client.IsStatus(err, nfs3.StatusNoEnt) {
			return nil
		}
		return err
	}
	dir, name := path.Split(path.Clean("/" + p))
	pfh, _, err := t.c.LookupPath(ctx, dir)
	if err != nil {
		return err
	}
	if attr.Type != nfs3.TypeDir {
		return t.c.Remove(ctx, pfh, name)
	}
	if err := t.emptyDir(ctx, fh); err != nil {
		return err
	}
	return t.c.Rmdir(ctx, pfh, name)
}

func (t *NFSTarget) emptyDir(ctx context.Context, fh []byte) error {
	var es []client.DirEntryPlus
	if err := t.c.ReadDirPlusAll(ctx, fh, func(page []client.DirEntryPlus) bool {
		es = append(es, page...)
		return true
	}); err != nil {
		return err
	}
	for _, e := range es {
		isDir := e.Attr != nil && e.Attr.Type == nfs3.TypeDir
		if e.Attr == nil {
			_, a, err := t.c.Lookup(ctx, fh, e.Name)
			if err != nil {
				return err
			}
			isDir = a != nil && a.Type == nfs3.TypeDir
		}
		if isDir {
			cfh := e.Handle
			if len(cfh) == 0 {
				var err error
				if cfh, _, err = t.c.Lookup(ctx, fh, e.Name); err != nil {
					return err
				}
			}
			if err := t.emptyDir(ctx, cfh); err != nil {
				return err
			}
			if err := t.c.Rmdir(ctx, fh, e.Name); err != nil {
				return err
			}
			continue
		}
		if err := t.c.Remove(ctx, fh, e.Name); err != nil && !client.IsStatus(err, nfs3.StatusNoEnt) {
			return err
		}
	}
	return nil
}

// Close implements Target.
func (t *NFSTarget) Close() error { return t.c.Close() }

// ---------------------------------------------------------------- self

// SelfTarget is mailnfsd started in this process over a temporary
// directory, driven through NFS over loopback.
type SelfTarget struct {
	*NFSTarget
	d      *nfsd.Daemon
	base   string
	export string
	owned  bool
}

// StartSelf starts mailnfsd on listen (empty: 127.0.0.1) over a new
// temporary directory and mounts it. Exports allow 127.0.0.0/8 and, when
// listen is another address, its /24.
func StartSelf(ctx context.Context, listen string, log *slog.Logger) (*SelfTarget, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if listen == "" {
		listen = "127.0.0.1"
	}
	base, err := os.MkdirTemp("", "mailnfs-suite-self-")
	if err != nil {
		return nil, err
	}
	if err := os.Chmod(base, 0o755); err != nil {
		return nil, err
	}
	s := &SelfTarget{base: base, export: filepath.Join(base, "export"), owned: true}
	fail := func(err error) (*SelfTarget, error) {
		s.Close()
		return nil, err
	}
	if err := os.Mkdir(s.export, 0o755); err != nil {
		return fail(err)
	}
	clients := "127.0.0.0/8(rw,no_root_squash)"
	if listen != "127.0.0.1" {
		clients += " " + listen[:strings.LastIndex(listen, ".")] + ".0/24(rw,no_root_squash)"
	}
	cfg := nfsd.Config{
		ExportsText:     s.export + " " + clients + "\n",
		Listen:          listen,
		StateDir:        filepath.Join(base, "state"),
		Logger:          log,
		ShutdownTimeout: 10 * time.Second,
	}
	if err := cfg.Validate(); err != nil {
		return fail(err)
	}
	d, err := nfsd.Start(ctx, cfg)
	if err != nil {
		return fail(fmt.Errorf("suite: start mailnfsd: %w", err))
	}
	s.d = d
	url := s.URLFor(listen)
	t, err := DialNFS(ctx, "self", url, log)
	if err != nil {
		return fail(err)
	}
	s.NFSTarget = t
	return s, nil
}

// URLFor is the nfs URL of the self server seen at host.
func (s *SelfTarget) URLFor(host string) string {
	return fmt.Sprintf("nfs://%s%s?nfsport=%d&mountport=%d", host, s.export, s.d.NFSAddr().Port(), s.d.MountAddr().Port())
}

// LocalRoot is the export directory on disk.
func (s *SelfTarget) LocalRoot() string { return s.export }

// Close unmounts, stops the server and removes the temporary directory.
func (s *SelfTarget) Close() error {
	var errs []error
	if s.NFSTarget != nil {
		errs = append(errs, s.NFSTarget.Close())
	}
	if s.d != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
		errs = append(errs, s.d.Shutdown(ctx))
		cancel()
	}
	if s.owned {
		errs = append(errs, os.RemoveAll(s.base))
	}
	return errors.Join(errs...)
}
