package maildirfs

import (
	"bytes"
	"os"

	"golang.org/x/sys/unix"
)

// Handle resolution by search (Options.HandleSearch).
//
// A process without CAP_DAC_READ_SEARCH may make kernel handles
// (name_to_handle_at) but not open them (open_by_handle_at: EPERM). With
// HandleSearch such a store still serves: a handle whose node is cached
// uses the node's O_PATH fd as always, and I/O fds are reopened from it
// through /proc/self/fd (reopenFd); a handle not cached (after a restart,
// or once evicted) is found by walking the export and comparing each
// entry's kernel handle with it (searchHandle). The handles, their MACs
// and their life across renames and restarts are the same as a root
// server's; only a cache miss costs a walk of the tree, so this is for
// small exports such as mailnfsd -demo's, not for service.

// maxSearchEntries bounds the entries one search looks at: a handle not
// found among them is answered as stale.
const maxSearchEntries = 1 << 20

// maxSearchDepth bounds how deep below the export root a search descends.
const maxSearchDepth = 64

// openK opens the object of k with open(2) flags: open_by_handle_at, or
// with HandleSearch a search and a reopen.
func (f *FS) openK(k kernelFH, flags int) (int, error) {
	if !f.search {
		return openHandle(f.rootFd, k, flags)
	}
	pfd, err := f.searchHandle(k)
	if err != nil {
		return -1, err
	}
	defer unix.Close(pfd)
	return reopenFd(pfd, flags)
}

// openNode opens n's object with open(2) flags for I/O or a directory
// listing.
func (f *FS) openNode(n *node, flags int) (int, error) {
	if !f.search {
		return openHandle(f.rootFd, n.kfh, flags)
	}
	return reopenFd(n.pathFd, flags)
}

// openKPath opens the object of k as a node's path fd.
func (f *FS) openKPath(k kernelFH) (int, error) {
	if !f.search {
		return openPath(f.rootFd, k)
	}
	return f.searchHandle(k)
}

// sameFH reports whether a and b name the same object.
func sameFH(a, b kernelFH) bool { return a.typ == b.typ && bytes.Equal(a.bytes, b.bytes) }

// searchHandle returns an O_PATH fd of the object whose kernel handle is
// k, found by walking the export from its root (depth first, not into
// other file systems, not following symlinks); unix.ESTALE if it is not
// there (removed, moved out, or beyond maxSearchEntries or
// maxSearchDepth). Directories the server may not read are skipped.
func (f *FS) searchHandle(k kernelFH) (int, error) {
	if rk, _, err := fdHandle(f.rootFd, f.rootFd, "."); err == nil && sameFH(rk, k) {
		return openChildPath(f.rootFd, ".")
	}
	budget := maxSearchEntries
	var walk func(dirfd, depth int) (int, error)
	walk = func(dirfd, depth int) (int, error) {
		// An fd of its own: a dup would share (and move) the file
		// offset of dirfd, the export root's fd among them.
		rfd, err := unix.Openat(dirfd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if err != nil {
			return -1, nil // unreadable: not searched
		}
		d := os.NewFile(uintptr(rfd), "")
		ents, err := d.ReadDir(-1)
		d.Close()
		if err != nil {
			return -1, nil // unreadable: not searched
		}
		var dirs []string
		for _, e := range ents {
			if budget--; budget < 0 {
				return -1, unix.ESTALE
			}
			name := e.Name()
			ck, mnt, err := nameHandle(dirfd, name)
			if err != nil || mnt != f.mountID {
				continue // gone, or another file system mounted there
			}
			if sameFH(ck, k) {
				fd, err := openChildPath(dirfd, name)
				if err != nil {
					continue
				}
				// The name may have been replaced since: check the
				// object opened.
				if vk, _, err := fdHandle(fd, dirfd, name); err == nil && sameFH(vk, k) {
					return fd, nil
				}
				unix.Close(fd)
				continue
			}
			if e.IsDir() {
				dirs = append(dirs, name)
			}
		}
		if depth >= maxSearchDepth {
			return -1, nil
		}
		for _, name := range dirs {
			sub, err := unix.Openat(dirfd, name, oWalk|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
			if err != nil {
				continue
			}
			fd, err := walk(sub, depth+1)
			unix.Close(sub)
			if fd >= 0 || err != nil {
				return fd, err
			}
		}
		return -1, nil
	}
	// A file renamed during the walk from a directory not yet read into
	// one already read (new/ to cur/) is missed: a second walk finds it,
	// and only handles of removed files pay for two.
	fd, err := walk(f.rootFd, 0)
	if err == nil && fd < 0 {
		budget = maxSearchEntries
		fd, err = walk(f.rootFd, 0)
	}
	if err == nil && fd < 0 {
		err = unix.ESTALE
	}
	return fd, err
}

// openChildK opens the object of k, just found as name in d, as a node's
// path fd. With HandleSearch it opens name and checks that it is still
// that object (unix.ESTALE if another took its place), not the tree.
func (f *FS) openChildK(d *node, name string, k kernelFH) (int, error) {
	if !f.search {
		return openPath(f.rootFd, k)
	}
	fd, err := openChildPath(d.pathFd, name)
	if err != nil {
		if err == unix.ENOENT {
			err = unix.ESTALE
		}
		return -1, err
	}
	if vk, _, err := fdHandle(fd, d.pathFd, name); err != nil || !sameFH(vk, k) {
		unix.Close(fd)
		return -1, unix.ESTALE
	}
	return fd, nil
}
