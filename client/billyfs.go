package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/go-git/go-billy/v5"
	"github.com/mailnfs/mailnfs/internal/nfs3"
)

// BillyFS is a go-billy (v5) view of a mounted export, so any billy consumer
// can use an export without a kernel mount. Paths are slash-separated and
// relative to the view's root ("/a" and "a" are the same). Every call uses
// the context given to NewBillyFS; writes are FILE_SYNC, so data is stable
// when Write returns. Lock and Unlock do nothing (Maildir needs no locks and
// NFSv3 has none without NLM).
type BillyFS struct {
	c    *Client
	ctx  context.Context
	base string // chroot prefix, "/" for the client's root
}

var _ billy.Filesystem = (*BillyFS)(nil)

// NewBillyFS returns a billy view of c's root.
func NewBillyFS(ctx context.Context, c *Client) *BillyFS {
	return &BillyFS{c: c, ctx: ctx, base: "/"}
}

func (b *BillyFS) abs(name string) string { return path.Join(b.base, path.Clean("/"+name)) }

// inside checks that name does not climb above the view's root ("..",
// "foo/../..", "/../foo"), as go-billy's chroot helper refuses.
func inside(name string) error {
	depth := 0
	for _, part := range strings.Split(name, "/") {
		switch part {
		case "", ".":
		case "..":
			depth--
			if depth < 0 {
				return billy.ErrCrossedBoundary
			}
		default:
			depth++
		}
	}
	return nil
}

// pathErr turns a client error into an *fs.PathError carrying the errno,
// so os.IsNotExist and friends work.
func pathErr(op, name string, err error) error {
	if err == nil {
		return nil
	}
	if errors.Is(err, billy.ErrCrossedBoundary) {
		return billy.ErrCrossedBoundary
	}
	var ce *Error
	if errors.As(err, &ce) && ce.RPC == nil {
		if errno, ok := statusErrno(ce.Status); ok {
			return &fs.PathError{Op: op, Path: name, Err: errno}
		}
	}
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return err
	}
	return &fs.PathError{Op: op, Path: name, Err: err}
}

// lookup walks p (absolute in the export view) without following a final
// symlink; intermediate symlinks are followed (up to 40 in all).
func (b *BillyFS) lookup(p string, follow bool) ([]byte, *Attr, error) {
	return b.walk(p, follow, 0)
}

func (b *BillyFS) walk(p string, follow bool, hops int) ([]byte, *Attr, error) {
	fh := b.c.rootFH()
	attr, err := b.c.Getattr(b.ctx, fh)
	if err != nil {
		return nil, nil, err
	}
	parts := strings.Split(strings.Trim(path.Clean(p), "/"), "/")
	cur := "/"
	for i, name := range parts {
		if name == "" {
			continue
		}
		nfh, nattr, err := b.c.Lookup(b.ctx, fh, name)
		if err != nil {
			return nil, nil, err
		}
		if nattr == nil {
			if nattr, err = b.c.Getattr(b.ctx, nfh); err != nil {
				return nil, nil, err
			}
		}
		last := i == len(parts)-1
		if nattr.Type == nfs3.TypeLnk && (!last || follow) {
			if hops >= 40 {
				return nil, nil, &Error{Prog: 100003, Op: "LOOKUP", Path: p, Status: nfs3.Status(syscall.ELOOP)}
			}
			target, err := b.c.Readlink(b.ctx, nfh)
			if err != nil {
				return nil, nil, err
			}
			if path.IsAbs(target) {
				// Absolute targets are relative to the view's root, as
				// in go-billy's chroot.
				target = path.Join(b.base, target)
			} else {
				target = path.Join(cur, target)
			}
			if b.base != "/" && target != b.base && !strings.HasPrefix(target, b.base+"/") {
				return nil, nil, billy.ErrCrossedBoundary
			}
			rest := strings.Join(parts[i+1:], "/")
			return b.walk(path.Join(target, rest), follow, hops+1)
		}
		fh, attr, cur = nfh, nattr, path.Join(cur, name)
	}
	return fh, attr, nil
}

func (b *BillyFS) parent(p string) ([]byte, string, error) {
	dir, name := path.Split(p)
	if name == "" {
		return nil, "", &Error{Prog: 100003, Op: "LOOKUP", Path: p, Status: nfs3.StatusInval}
	}
	fh, attr, err := b.lookup(dir, true)
	if err != nil {
		return nil, "", err
	}
	if attr.Type != nfs3.TypeDir {
		return nil, "", &Error{Prog: 100003, Op: "LOOKUP", Path: dir, Status: nfs3.StatusNotDir}
	}
	return fh, name, nil
}

// Create creates or truncates filename (mode 0666), making parents.
func (b *BillyFS) Create(filename string) (billy.File, error) {
	return b.OpenFile(filename, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o666)
}

// Open opens filename for reading.
func (b *BillyFS) Open(filename string) (billy.File, error) {
	return b.OpenFile(filename, os.O_RDONLY, 0)
}

// OpenFile opens filename with os.O_* flags; O_CREATE makes missing parent
// directories, as go-billy's osfs does.
func (b *BillyFS) OpenFile(filename string, flag int, perm os.FileMode) (billy.File, error) {
	if err := inside(filename); err != nil {
		return nil, err
	}
	p := b.abs(filename)
	fh, attr, err := b.lookup(p, true)
	switch {
	case err == nil && flag&os.O_CREATE != 0 && flag&os.O_EXCL != 0:
		return nil, pathErr("open", filename, &Error{Prog: 100003, Op: "CREATE", Path: p, Status: nfs3.StatusExist})
	case err == nil:
	case IsStatus(err, NFS3ErrNoEnt) && flag&os.O_CREATE != 0:
		if err := b.MkdirAll(path.Dir(strings.TrimPrefix(p, b.base)), 0o777); err != nil {
			return nil, err
		}
		dfh, name, err := b.parent(p)
		if err != nil {
			return nil, pathErr("open", filename, err)
		}
		mode := uint32(perm.Perm())
		how := Unchecked
		if flag&os.O_EXCL != 0 {
			how = Guarded
		}
		fh, attr, err = b.c.Create(b.ctx, dfh, name, how, SetAttr{Mode: &mode}, [8]byte{})
		if err != nil {
			return nil, pathErr("open", filename, err)
		}
	default:
		return nil, pathErr("open", filename, err)
	}
	if attr == nil {
		if attr, err = b.c.Getattr(b.ctx, fh); err != nil {
			return nil, pathErr("open", filename, err)
		}
	}
	if attr.Type == nfs3.TypeDir && flag&(os.O_WRONLY|os.O_RDWR) != 0 {
		return nil, pathErr("open", filename, &Error{Prog: 100003, Status: nfs3.StatusIsDir})
	}
	f := &billyFile{fs: b, name: strings.TrimPrefix(path.Clean("/"+filename), "/"), fh: fh, flag: flag}
	if flag&os.O_TRUNC != 0 && flag&(os.O_WRONLY|os.O_RDWR) != 0 && attr.Size != 0 {
		if err := f.Truncate(0); err != nil {
			return nil, err
		}
	}
	return f, nil
}

// Stat returns file information, following symbolic links.
func (b *BillyFS) Stat(filename string) (os.FileInfo, error) {
	if err := inside(filename); err != nil {
		return nil, err
	}
	_, attr, err := b.lookup(b.abs(filename), true)
	if err != nil {
		return nil, pathErr("stat", filename, err)
	}
	return fileInfo{name: path.Base(path.Clean("/" + filename)), a: *attr}, nil
}

// Lstat returns file information without following a final symlink.
func (b *BillyFS) Lstat(filename string) (os.FileInfo, error) {
	if err := inside(filename); err != nil {
		return nil, err
	}
	_, attr, err := b.lookup(b.abs(filename), false)
	if err != nil {
		return nil, pathErr("lstat", filename, err)
	}
	return fileInfo{name: path.Base(path.Clean("/" + filename)), a: *attr}, nil
}

// Rename renames oldpath to newpath, making newpath's parents.
func (b *BillyFS) Rename(oldpath, newpath string) error {
	if err := inside(oldpath); err != nil {
		return err
	}
	if err := inside(newpath); err != nil {
		return err
	}
	from, to := b.abs(oldpath), b.abs(newpath)
	ofh, oname, err := b.parent(from)
	if err != nil {
		return pathErr("rename", oldpath, err)
	}
	if err := b.MkdirAll(path.Dir(strings.TrimPrefix(to, b.base)), 0o777); err != nil {
		return err
	}
	nfh, nname, err := b.parent(to)
	if err != nil {
		return pathErr("rename", newpath, err)
	}
	return pathErr("rename", oldpath, b.c.Rename(b.ctx, ofh, oname, nfh, nname))
}

// Remove removes a file or an empty directory.
func (b *BillyFS) Remove(filename string) error {
	if err := inside(filename); err != nil {
		return err
	}
	p := b.abs(filename)
	dfh, name, err := b.parent(p)
	if err != nil {
		return pathErr("remove", filename, err)
	}
	_, attr, err := b.c.Lookup(b.ctx, dfh, name)
	if err != nil {
		return pathErr("remove", filename, err)
	}
	if attr != nil && attr.Type == nfs3.TypeDir {
		return pathErr("remove", filename, b.c.Rmdir(b.ctx, dfh, name))
	}
	return pathErr("remove", filename, b.c.Remove(b.ctx, dfh, name))
}

// Join joins path elements.
func (b *BillyFS) Join(elem ...string) string { return path.Join(elem...) }

// TempFile creates a new file in dir whose name starts with prefix.
func (b *BillyFS) TempFile(dir, prefix string) (billy.File, error) {
	for range 10 {
		var r [6]byte
		_, _ = rand.Read(r[:])
		name := path.Join(dir, prefix+hex.EncodeToString(r[:]))
		f, err := b.OpenFile(name, os.O_RDWR|os.O_CREATE|os.O_EXCL, 0o600)
		if os.IsExist(err) {
			continue
		}
		return f, err
	}
	return nil, pathErr("tempfile", dir, &Error{Prog: 100003, Status: nfs3.StatusExist})
}

// ReadDir lists a directory, sorted by name.
func (b *BillyFS) ReadDir(p string) ([]os.FileInfo, error) {
	if err := inside(p); err != nil {
		return nil, err
	}
	fh, attr, err := b.lookup(b.abs(p), true)
	if err != nil {
		return nil, pathErr("readdir", p, err)
	}
	if attr.Type != nfs3.TypeDir {
		return nil, pathErr("readdir", p, &Error{Prog: 100003, Status: nfs3.StatusNotDir})
	}
	var out []os.FileInfo
	var werr error
	err = b.c.ReadDirPlusAll(b.ctx, fh, func(es []DirEntryPlus) bool {
		for _, e := range es {
			a := e.Attr
			if a == nil {
				efh, ea, err := b.c.Lookup(b.ctx, fh, e.Name)
				if err == nil && ea == nil {
					ea, err = b.c.Getattr(b.ctx, efh)
				}
				if err != nil {
					werr = err
					return false
				}
				a = ea
			}
			out = append(out, fileInfo{name: e.Name, a: *a})
		}
		return true
	})
	if err == nil {
		err = werr
	}
	if err != nil {
		return nil, pathErr("readdir", p, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name() < out[j].Name() })
	return out, nil
}

// MkdirAll makes p and any missing parents.
func (b *BillyFS) MkdirAll(p string, perm os.FileMode) error {
	if err := inside(p); err != nil {
		return err
	}
	fh := b.c.rootFH()
	cur := "/"
	for _, name := range strings.Split(strings.Trim(b.abs(p), "/"), "/") {
		if name == "" {
			continue
		}
		cur = path.Join(cur, name)
		nfh, attr, err := b.lookup(cur, true)
		if IsStatus(err, NFS3ErrNoEnt) {
			mode := uint32(perm.Perm())
			nfh, attr, err = b.c.Mkdir(b.ctx, fh, name, SetAttr{Mode: &mode})
			if IsStatus(err, NFS3ErrExist) {
				nfh, attr, err = b.lookup(cur, true)
			}
		}
		if err != nil {
			return pathErr("mkdir", p, err)
		}
		if attr != nil && attr.Type != nfs3.TypeDir {
			return pathErr("mkdir", p, &Error{Prog: 100003, Status: nfs3.StatusNotDir})
		}
		fh = nfh
	}
	return nil
}

// Symlink creates link pointing to target, making link's parents.
func (b *BillyFS) Symlink(target, link string) error {
	if err := inside(link); err != nil {
		return err
	}
	p := b.abs(link)
	if err := b.MkdirAll(path.Dir(strings.TrimPrefix(p, b.base)), 0o777); err != nil {
		return err
	}
	dfh, name, err := b.parent(p)
	if err != nil {
		return pathErr("symlink", link, err)
	}
	_, _, err = b.c.Symlink(b.ctx, dfh, name, target, SetAttr{})
	return pathErr("symlink", link, err)
}

// Readlink returns a symbolic link's target.
func (b *BillyFS) Readlink(link string) (string, error) {
	if err := inside(link); err != nil {
		return "", err
	}
	fh, attr, err := b.lookup(b.abs(link), false)
	if err != nil {
		return "", pathErr("readlink", link, err)
	}
	if attr.Type != nfs3.TypeLnk {
		return "", &fs.PathError{Op: "readlink", Path: link, Err: syscall.EINVAL}
	}
	t, err := b.c.Readlink(b.ctx, fh)
	return t, pathErr("readlink", link, err)
}

// Chroot returns a view rooted at p (which must be a directory).
func (b *BillyFS) Chroot(p string) (billy.Filesystem, error) {
	if err := inside(p); err != nil {
		return nil, err
	}
	np := b.abs(p)
	if err := b.MkdirAll(strings.TrimPrefix(np, b.base), 0o777); err != nil {
		return nil, err
	}
	return &BillyFS{c: b.c, ctx: b.ctx, base: np}, nil
}

// Root returns the view's root path within the export.
func (b *BillyFS) Root() string { return b.base }

// abs within a chroot: paths are joined under base; MkdirAll/lookup walk
// from the client's root, so they take absolute export paths.

// fileInfo is an os.FileInfo over fattr3.
type fileInfo struct {
	name string
	a    Attr
}

func (i fileInfo) Name() string { return i.name }
func (i fileInfo) Size() int64  { return int64(i.a.Size) }
func (i fileInfo) Mode() os.FileMode {
	m := os.FileMode(i.a.Mode & 0o777)
	switch i.a.Type {
	case nfs3.TypeDir:
		m |= os.ModeDir
	case nfs3.TypeLnk:
		m |= os.ModeSymlink
	case nfs3.TypeFifo:
		m |= os.ModeNamedPipe
	case nfs3.TypeSock:
		m |= os.ModeSocket
	case nfs3.TypeChr:
		m |= os.ModeDevice | os.ModeCharDevice
	case nfs3.TypeBlk:
		m |= os.ModeDevice
	}
	return m
}
func (i fileInfo) ModTime() time.Time { return i.a.Mtime.Time() }
func (i fileInfo) IsDir() bool        { return i.a.Type == nfs3.TypeDir }
func (i fileInfo) Sys() any           { return &i.a }

// billyFile is an open file of a BillyFS.
type billyFile struct {
	fs   *BillyFS
	name string
	fh   []byte
	flag int

	mu     sync.Mutex
	off    int64
	closed bool
}

var errFileClosed = os.ErrClosed

func (f *billyFile) Name() string { return f.name }

func (f *billyFile) check(write bool) error {
	if f.closed {
		return &fs.PathError{Op: "use", Path: f.name, Err: errFileClosed}
	}
	acc := f.flag & (os.O_RDONLY | os.O_WRONLY | os.O_RDWR)
	if write && acc == os.O_RDONLY {
		return &fs.PathError{Op: "write", Path: f.name, Err: syscall.EBADF}
	}
	if !write && acc == os.O_WRONLY {
		return &fs.PathError{Op: "read", Path: f.name, Err: syscall.EBADF}
	}
	return nil
}

func (f *billyFile) Write(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.check(true); err != nil {
		return 0, err
	}
	if f.flag&os.O_APPEND != 0 {
		a, err := f.fs.c.Getattr(f.fs.ctx, f.fh)
		if err != nil {
			return 0, pathErr("write", f.name, err)
		}
		f.off = int64(a.Size)
	}
	n, err := f.writeAt(p, f.off)
	f.off += int64(n)
	return n, err
}

func (f *billyFile) writeAt(p []byte, off int64) (int, error) {
	done := 0
	for done < len(p) {
		end := min(done+f.fs.c.MaxWrite(), len(p))
		r, err := f.fs.c.Write(f.fs.ctx, f.fh, uint64(off)+uint64(done), p[done:end], FileSync)
		if err != nil {
			return done, pathErr("write", f.name, err)
		}
		if r.Count == 0 {
			return done, &fs.PathError{Op: "write", Path: f.name, Err: io.ErrShortWrite}
		}
		done += r.Count
	}
	return done, nil
}

func (f *billyFile) Read(p []byte) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.readAt(p, f.off)
	f.off += int64(n)
	return n, err
}

func (f *billyFile) ReadAt(p []byte, off int64) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	n, err := f.readAt(p, off)
	if err == nil && n < len(p) {
		err = io.EOF
	}
	return n, err
}

func (f *billyFile) readAt(p []byte, off int64) (int, error) {
	if err := f.check(false); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, &fs.PathError{Op: "read", Path: f.name, Err: syscall.EINVAL}
	}
	if len(p) == 0 {
		return 0, nil
	}
	done := 0
	for done < len(p) {
		data, eof, err := f.fs.c.Read(f.fs.ctx, f.fh, uint64(off)+uint64(done), len(p)-done)
		if err != nil {
			return done, pathErr("read", f.name, err)
		}
		done += copy(p[done:], data)
		if eof || len(data) == 0 {
			if done == 0 {
				return 0, io.EOF
			}
			return done, nil
		}
	}
	return done, nil
}

func (f *billyFile) Seek(offset int64, whence int) (int64, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: errFileClosed}
	}
	var base int64
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		base = f.off
	case io.SeekEnd:
		a, err := f.fs.c.Getattr(f.fs.ctx, f.fh)
		if err != nil {
			return 0, pathErr("seek", f.name, err)
		}
		base = int64(a.Size)
	default:
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: syscall.EINVAL}
	}
	if base+offset < 0 {
		return 0, &fs.PathError{Op: "seek", Path: f.name, Err: syscall.EINVAL}
	}
	f.off = base + offset
	return f.off, nil
}

func (f *billyFile) Close() error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.closed {
		return &fs.PathError{Op: "close", Path: f.name, Err: errFileClosed}
	}
	f.closed = true
	return nil
}

// Lock does nothing: see BillyFS.
func (f *billyFile) Lock() error { return nil }

// Unlock does nothing.
func (f *billyFile) Unlock() error { return nil }

func (f *billyFile) Truncate(size int64) error {
	if size < 0 {
		return &fs.PathError{Op: "truncate", Path: f.name, Err: syscall.EINVAL}
	}
	s := uint64(size)
	_, err := f.fs.c.Setattr(f.fs.ctx, f.fh, SetAttr{Size: &s}, nil)
	return pathErr("truncate", f.name, err)
}
