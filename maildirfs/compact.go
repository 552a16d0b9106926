package maildirfs

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// CompactReport summarizes a Compact or Expand run.
type CompactReport struct {
	// Files is the number of regular files considered.
	Files int
	// Changed is the number of files rewritten (compressed by Compact,
	// expanded by Expand).
	Changed int
	// PlainBytes and StoredBytes are the uncompressed and on-disk sizes of
	// the files considered, after the run.
	PlainBytes, StoredBytes int64
}

// Compact compresses, in place, every regular file in a directory named new
// or cur under root that is not compressed yet (the offline form of
// Options.Compress = "zstd", for "mailnfsd compact"). It fails with EBUSY
// on a tree a store has open (doc.go, "Compression"). The server must not
// be serving root meanwhile. opts.StateDir must be the server's: it holds
// the journal that makes every step crash-safe; any interrupted rewrite
// (of this tool or of the server) is finished first. Running it again is
// harmless.
func Compact(root string, opts Options) (CompactReport, error) {
	opts.Compress = "zstd"
	opts.ReadOnly = false
	f, err := open(root, opts, true)
	if err != nil {
		return CompactReport{}, err
	}
	defer f.Close()
	var rep CompactReport
	var batch []Handle
	flush := func() error {
		k, err := f.zcompress(batch)
		rep.Changed += k
		batch = batch[:0]
		return err
	}
	err = f.zwalk(func(dir string, h Handle) error {
		if d := filepath.Base(dir); d != "new" && d != "cur" {
			return nil
		}
		batch = append(batch, h)
		if len(batch) == zBatch {
			return flush()
		}
		return nil
	})
	if err == nil {
		err = flush()
	}
	if err2 := f.zsum(&rep); err == nil {
		err = err2
	}
	return rep, err
}

// Expand rewrites every compressed file under root plain (for "mailnfsd
// expand"), then removes the compression mark of the tree. Crash-safe and
// idempotent like Compact; the server must not be serving root meanwhile.
// A server that still has Compress set compresses new deliveries again.
func Expand(root string, opts Options) (CompactReport, error) {
	opts.Compress = ""
	opts.ReadOnly = false
	f, err := open(root, opts, true)
	if err != nil {
		return CompactReport{}, err
	}
	defer f.Close()
	var rep CompactReport
	err = f.zwalk(func(_ string, h Handle) error {
		n, _, err := f.get(h)
		if err != nil {
			return nil // gone
		}
		defer f.put(n)
		n.zmu.Lock()
		defer n.zmu.Unlock()
		_, e, err := f.znode(n)
		if err != nil || e.usize < 0 {
			return err
		}
		if err := f.zexpandNode(n); err != nil {
			return fmt.Errorf("expand inode %d: %w", n.ino, err)
		}
		rep.Changed++
		return nil
	})
	if err2 := f.zsum(&rep); err == nil {
		err = err2
	}
	if err == nil && rep.StoredBytes == rep.PlainBytes {
		if rerr := unix.Fremovexattr(f.rootFd, zXattr); rerr != nil && rerr != errNoAttr {
			err = rerr
		} else {
			err = unix.Fsync(f.rootFd)
		}
	}
	return rep, err
}

// zwalk calls fn with the handle of every regular file under the export
// root (not crossing into other filesystems, not following symlinks).
func (f *FS) zwalk(fn func(dir string, h Handle) error) error {
	return filepath.WalkDir(f.root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if d.IsDir() {
			var st unix.Stat_t
			if unix.Lstat(p, &st) == nil && st.Dev != f.rootDev {
				return filepath.SkipDir
			}
			if p == filepath.Join(f.root, zDictDir) {
				return filepath.SkipDir // the store's dictionaries, not mail
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		k, mnt, err := nameHandle(unix.AT_FDCWD, p)
		if err != nil || mnt != f.mountID {
			return nil // gone, or another filesystem
		}
		h, ok := f.encodeHandle(k)
		if !ok {
			return nil
		}
		return fn(filepath.Dir(p), h)
	})
}

// zsum fills the size totals of rep from the tree.
func (f *FS) zsum(rep *CompactReport) error {
	return f.zwalk(func(_ string, h Handle) error {
		n, st, err := f.get(h)
		if err != nil {
			return nil
		}
		defer f.put(n)
		var pst unix.Stat_t
		if err := n.stat(&pst); err != nil {
			return nil
		}
		rep.Files++
		rep.PlainBytes += st.Size
		rep.StoredBytes += pst.Size
		return nil
	})
}
