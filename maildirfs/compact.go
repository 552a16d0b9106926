package maildirfs

import (
	"fmt"

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
		if dir != "new" && dir != "cur" {
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
// root and the name of the directory holding it ("" for the root), not
// crossing into other filesystems or mounts and not following symlinks.
// Like the store, it never builds a path: each directory is opened by its
// handle and its entries are taken relative to that fd, so a tree deeper
// than PATH_MAX is walked whole, and a directory a local process swaps
// for a symlink meanwhile is not followed. The directories still to visit
// are kept as handles (depth first: the siblings along the current path).
func (f *FS) zwalk(fn func(dir string, h Handle) error) error {
	type pending struct {
		name string
		k    kernelFH
	}
	stack := []pending{{"", f.rootNode.kfh}}
	buf := make([]byte, direntBuf)
	var names []string
	for len(stack) > 0 {
		d := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		fd, err := f.openK(d.k, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
		if err != nil {
			if err == unix.ESTALE || err == unix.ENOENT {
				continue // removed meanwhile
			}
			return err
		}
		// All names first, as a directory walk reads them: fn may add
		// and remove entries while it rewrites a file.
		names = names[:0]
		_, err = eachDirent(fd, buf, func(_, _ uint64, b []byte) bool {
			name := string(b)
			if name != "." && name != ".." && (d.name != "" || name != zDictDir) {
				names = append(names, name)
			}
			return true
		})
		for _, name := range names {
			if err != nil {
				break
			}
			var st unix.Stat_t
			if unix.Fstatat(fd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Dev != f.rootDev {
				continue // gone, or another filesystem mounted here
			}
			typ := st.Mode & unix.S_IFMT
			if typ != unix.S_IFDIR && typ != unix.S_IFREG {
				continue
			}
			k, mnt, herr := nameHandle(fd, name)
			if herr != nil || mnt != f.mountID {
				continue // gone, or a bind mount
			}
			k.bytes = append([]byte(nil), k.bytes...)
			if typ == unix.S_IFDIR {
				stack = append(stack, pending{name, k})
			} else if h, ok := f.encodeHandle(k); ok {
				err = fn(d.name, h)
			}
		}
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return nil
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
