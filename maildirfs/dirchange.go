package maildirfs

import (
	"golang.org/x/sys/unix"
)

// Directory changes: each namespace operation changes its directory
// through dirChange (RENAME its two through dirChange2), which holds the
// directory's nsMu around a stat, the change and a second stat. The two
// stats are the operation's wcc_data (RFC 1813 §2.6): a client that finds
// the before attributes equal to what it has cached takes the difference
// to the after attributes as this operation's own change and keeps its
// cached listing, so no other change by this server may fall between
// them. The lock is held only around those system calls, never across a
// sync (syncing changes no attributes of a directory), so concurrent
// deliveries into one new/ still share their fsyncs.

// dirChange runs fn, which changes directory d, with d.nsMu held, and
// fills wcc from stats of d taken just before and just after it. A stat
// that fails leaves that side of wcc empty (both are optional).
func (f *FS) dirChange(d *node, wcc *Wcc, fn func() error) error {
	d.nsMu.Lock()
	defer d.nsMu.Unlock()
	return f.dirChangeLocked(d, wcc, fn)
}

func (f *FS) dirChangeLocked(d *node, wcc *Wcc, fn func() error) error {
	var pre, post unix.Stat_t
	wcc.Before = nil
	if d.stat(&pre) == nil {
		wcc.Before = wccAttr(&pre)
	}
	err := fn()
	wcc.After = nil
	if d.stat(&post) == nil {
		wcc.After = f.attr(&post)
	}
	return err
}

// dirChange2 is dirChange for a change of two directories (RENAME): both
// are locked, in the order of their inode numbers so that two renames
// between the same directories cannot wait for each other, and each gets
// its wcc from stats taken under both locks. The same directory twice is
// locked once and both wccs are the same.
func (f *FS) dirChange2(a, b *node, wa, wb *Wcc, fn func() error) error {
	if a == b {
		err := f.dirChange(a, wa, fn)
		*wb = *wa
		return err
	}
	first, second := a, b
	if b.ino < a.ino || (b.ino == a.ino && b.key < a.key) {
		first, second = b, a
	}
	first.nsMu.Lock()
	defer first.nsMu.Unlock()
	second.nsMu.Lock()
	defer second.nsMu.Unlock()
	var pa, pb unix.Stat_t
	wa.Before, wb.Before = nil, nil
	if a.stat(&pa) == nil {
		wa.Before = wccAttr(&pa)
	}
	if b.stat(&pb) == nil {
		wb.Before = wccAttr(&pb)
	}
	err := fn()
	wa.After, wb.After = nil, nil
	if a.stat(&pa) == nil {
		wa.After = f.attr(&pa)
	}
	if b.stat(&pb) == nil {
		wb.After = f.attr(&pb)
	}
	return err
}

// startCreateLocked records that name in d was just created by this server
// and is being set up (owner, mode, sync); d.nsMu is held. A CREATE,
// MKDIR, SYMLINK or MKNOD of the same name that meets it waits for
// endCreate instead of answering with a half-made object (an UNCHECKED
// CREATE would return a root-owned 0600 file before its owner's chown) or
// EEXIST for a name its creator may yet remove again.
// A name removed and created again meanwhile (by another client) gets a
// new entry; each creator ends its own (the channel returned).
func (d *node) startCreateLocked(name string) chan struct{} {
	if d.creating == nil {
		d.creating = make(map[string]chan struct{})
	}
	ch := make(chan struct{})
	d.creating[name] = ch
	return ch
}

// endCreate ends what startCreateLocked began. With undo (the set-up
// failed), the object made is removed first if name still names it (ino),
// so that a failed CREATE leaves nothing in tmp/ and a GUARDED retry is not
// EEXIST; wcc then describes that removal, without before attributes
// (other changes may have come between the creation and the removal).
// Waiting creators go on afterwards.
func (f *FS) endCreate(d *node, name string, ch chan struct{}, ino uint64, isDir bool, undo bool, wcc *Wcc) {
	d.nsMu.Lock()
	if undo {
		f.dirChangeLocked(d, wcc, func() error {
			var st unix.Stat_t
			if unix.Fstatat(d.pathFd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Ino != ino {
				return nil // removed or replaced meanwhile
			}
			flags := 0
			if isDir {
				flags = unix.AT_REMOVEDIR // fails if entries were made in it meanwhile
			}
			if unix.Unlinkat(d.pathFd, name, flags) == nil {
				f.cache.dropIno(ino)
			}
			return nil
		})
		wcc.Before = nil
	}
	if d.creating[name] == ch {
		delete(d.creating, name)
	}
	d.nsMu.Unlock()
	close(ch)
}
