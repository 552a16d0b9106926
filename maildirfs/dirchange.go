package maildirfs

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// Directory changes: each namespace operation changes its directory
// through dirChange (RENAME its two through dirChange2), which stats the
// directory just before and just after the system call; the two stats are
// its wcc_data (RFC 1813 §2.6). A client that finds the before attributes
// equal to what it has cached takes the difference to the after
// attributes as this operation's own change and keeps its cached listing,
// so the before attributes are sent only when no other change of the
// directory by this server can have fallen between the two stats;
// otherwise none are sent (the RFC allows it), and the client revalidates.
// Nothing is locked: each directory node counts the changes in progress
// and the changes begun and ended (node.wseq), and a change that began
// alone and saw no other begin or end before its own end was alone
// throughout. Deliveries into one new/ so never wait for each other in
// the store (the kernel orders the system calls themselves).

// wseq: the high 32 bits count the changes of the directory in progress,
// the low 32 bits the begins and ends (wrapping; only equality is used).
const (
	wBegin = 1<<32 + 1          // +1 in progress, +1 event
	wEnd   = ^uint64(1<<32) + 2 // -1 in progress, +1 event
	// noW0 is a wseq read that never lets dirChange keep getDir's stat.
	noW0 = ^uint64(0)
)

// wAdd adds delta (wBegin or wEnd) to w and returns the new value. When
// the event half wraps to 0, the addition carried one into the
// in-progress half: that carry is taken out again (a reader in between
// sees one change too many in progress, which only withholds before
// attributes).
func wAdd(w *atomic.Uint64, delta uint64) uint64 {
	v := w.Add(delta)
	if uint32(v) == 0 {
		const carry = uint64(1) << 32
		w.Add(^(carry - 1)) // minus carry
		v -= carry
	}
	return v
}

// unchanged reports whether nothing changed between two reads of wseq,
// w0 and w1: no change was in progress at the first, and none began or
// ended in between.
func unchanged(w0, w1 uint64) bool { return w0>>32 == 0 && w1 == w0 }

// quiet reports whether getDir's stat, taken after it read wseq as w0, may
// serve as the before attributes of the change that began at v: no change
// was in progress then, and none began or ended in between.
func quiet(w0, v uint64) bool { return w0>>32 == 0 && uint32(v) == uint32(w0)+1 }

// alone reports whether a change that began at v and ended at e was the
// only change of its directory by this server from begin to end.
func alone(v, e uint64) bool { return v>>32 == 1 && uint32(e) == uint32(v)+1 }

// dirChange runs fn, which changes directory d, and fills wcc from stats
// of d taken just before (or getDir's, if quiet) and just after it; the
// before attributes are dropped unless the change was alone. A stat that
// fails leaves that side of wcc empty (both are optional). WRITE and
// SETATTR change a file (or SETATTR any object) through it too, so their
// wcc is as exact; a file's sizes are uncompressed (statNode).
func (f *FS) dirChange(d *node, wcc *Wcc, w0 uint64, fn func() error) error {
	v := wAdd(&d.wseq, wBegin)
	var st unix.Stat_t
	if !quiet(w0, v) {
		wcc.Before = nil
		if f.statNode(d, &st) == nil {
			wcc.Before = wccAttr(&st)
		}
	}
	err := fn()
	wcc.After = nil
	if f.statNode(d, &st) == nil {
		wcc.After = f.attr(&st)
	}
	if e := wAdd(&d.wseq, wEnd); !alone(v, e) {
		wcc.Before = nil
	}
	return err
}

// statNode stats n with a regular file's uncompressed size.
func (f *FS) statNode(n *node, st *unix.Stat_t) error {
	if err := n.stat(st); err != nil {
		return err
	}
	f.zfixFd(n.pathFd, st)
	return nil
}

// dirChange2 is dirChange for a change of two directories (RENAME); each
// wcc is judged on its own directory. The same directory twice counts
// once and both wccs are the same.
func (f *FS) dirChange2(a, b *node, wa, wb *Wcc, w0a, w0b uint64, fn func() error) error {
	if a == b {
		err := f.dirChange(a, wa, w0a, fn)
		*wb = *wa
		return err
	}
	va, vb := wAdd(&a.wseq, wBegin), wAdd(&b.wseq, wBegin)
	var st unix.Stat_t
	if !quiet(w0a, va) {
		wa.Before = nil
		if a.stat(&st) == nil {
			wa.Before = wccAttr(&st)
		}
	}
	if !quiet(w0b, vb) {
		wb.Before = nil
		if b.stat(&st) == nil {
			wb.Before = wccAttr(&st)
		}
	}
	err := fn()
	wa.After, wb.After = nil, nil
	if a.stat(&st) == nil {
		wa.After = f.attr(&st)
	}
	if b.stat(&st) == nil {
		wb.After = f.attr(&st)
	}
	if e := wAdd(&a.wseq, wEnd); !alone(va, e) {
		wa.Before = nil
	}
	if e := wAdd(&b.wseq, wEnd); !alone(vb, e) {
		wb.Before = nil
	}
	return err
}

// claim reserves name in directory d for a creation (CREATE, MKDIR,
// SYMLINK, MKNOD) or a RENAME onto it, from before its system call until
// the object is set up (owner, mode, sync) or removed again. It returns
// the caller's claim, or, when another holds name, that one's channel to
// wait on (closed by unclaim) before trying again. So no creation answers
// a half-made object (an UNCHECKED CREATE would return a root-owned 0600
// file before its owner's chown), or EEXIST for an object its creator may
// yet remove, and no RENAME puts another object under a name between its
// creation and its chown.
func (d *node) claim(name string) (mine, busy chan struct{}) {
	d.cmu.Lock()
	defer d.cmu.Unlock()
	if ch := d.claims[name]; ch != nil {
		return nil, ch
	}
	if d.claims == nil {
		d.claims = make(map[string]chan struct{})
	}
	mine = make(chan struct{})
	d.claims[name] = mine
	return mine, nil
}

// claimWait is claim that waits for another claim of name to end.
func (d *node) claimWait(name string) chan struct{} {
	for {
		mine, busy := d.claim(name)
		if mine != nil {
			return mine
		}
		<-busy
	}
}

// unclaim ends a claim of name in d.
func (d *node) unclaim(name string, mine chan struct{}) {
	d.cmu.Lock()
	delete(d.claims, name)
	d.cmu.Unlock()
	close(mine)
}

// undoCreate removes the object a creation made (inode ino, name in d)
// after its set-up failed, if name still names it: a failed CREATE leaves
// nothing in tmp/, and a GUARDED retry is not EEXIST. The caller still
// holds its claim of name. wcc then describes that removal, without
// before attributes (other changes may have come since the creation).
func (f *FS) undoCreate(d *node, name string, ino uint64, isDir bool, wcc *Wcc) {
	f.dirChange(d, wcc, noW0, func() error {
		var st unix.Stat_t
		if unix.Fstatat(d.pathFd, name, &st, unix.AT_SYMLINK_NOFOLLOW) != nil || st.Ino != ino {
			return nil // removed or replaced meanwhile (by a local process)
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
