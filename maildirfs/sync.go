package maildirfs

import (
	"sync/atomic"

	"golang.org/x/sys/unix"
)

// syncFile makes n's data (and metadata when full) durable.
func (f *FS) syncFile(n *node, full bool) error {
	f.stats.fileSyncCalls.Add(1)
	fd, err := f.io(n, false)
	if err != nil {
		return err
	}
	return n.sync.Do(f.opts.SyncWindow, full, func(full bool) error {
		fsyncsRunning.Add(1)
		defer fsyncsRunning.Add(-1)
		f.stats.fileSyncs.Add(1)
		err := f.inject(FaultFsync)
		if err == nil {
			if full {
				err = unix.Fsync(fd)
			} else {
				err = fdatasync(fd)
			}
		}
		if err != nil {
			n.syncFails.Add(1)
			f.syncFailed(err)
		}
		return err
	})
}

// syncDir makes the entries of directory n durable.
func (f *FS) syncDir(n *node) error {
	if UnsafeWriteOnly {
		return nil
	}
	f.stats.dirSyncCalls.Add(1)
	fd, err := f.io(n, false)
	if err != nil {
		return err
	}
	return n.sync.Do(f.opts.SyncWindow, true, func(bool) error {
		fsyncsRunning.Add(1)
		defer fsyncsRunning.Add(-1)
		f.stats.dirSyncs.Add(1)
		err := f.inject(FaultFsync)
		if err == nil {
			err = unix.Fsync(fd)
		}
		if err != nil {
			n.syncFails.Add(1)
			f.syncFailed(err)
		}
		return err
	})
}

// fsyncsRunning counts the fsync/fdatasync calls in progress in this
// process (all stores: they usually share a disk). It only steers
// syncBoth.
var fsyncsRunning atomic.Int64

// syncBoth makes two objects durable and returns a's error, else b's; both
// always run, so the sync counters and the verifier rotation stay exact.
// On an idle store it runs them at the same time (b on a goroutine it
// waits for): two fsyncs of different inodes overlap their writes and
// waits (on a journaling file system they mostly wait for the same
// commit), so a lone operation waits about once instead of twice. While
// other syncs are running it runs them one after the other: the disk is
// busy anyway, and concurrent calls only add flushes to its queue
// (measured: BenchmarkDeliver1 ~30% faster concurrent, BenchmarkDeliver32
// slower). Use it only where the order of the two does not matter.
func syncBoth(a, b func() error) error {
	if fsyncsRunning.Load() > 0 {
		err := a()
		if e := b(); err == nil {
			err = e
		}
		return err
	}
	errB := make(chan error, 1)
	go func() { errB <- b() }()
	err := a()
	if e := <-errB; err == nil {
		err = e
	}
	return err
}

// commitModel says which syncs make a namespace operation durable on a
// file system, so that an operation waits for as few as are needed and
// never fewer. commitModelFS in sys_*.go knows the file systems; anything
// it does not know gets the zero value: every changed inode is synced,
// and a rename's two directories in turn.
type commitModel struct {
	// oneSync: every namespace operation is one transaction, and an fsync
	// of any inode it changed commits that transaction and all earlier
	// ones, so one sync makes the whole operation durable (ext4 with a
	// journal: jbd2 commits the inode's last transaction; XFS: the log is
	// forced up to the inode's last commit sequence).
	//
	// ext4 without a journal gets no such shortcut: there an fsync of a
	// new file also writes the directory block holding its entry
	// (ext4_sync_parent), but not the directory's inode, which carries
	// its size and block map when the entry needed a new block (traced
	// on 6.18: the parent's inode block was written only when it shared
	// a block with the new file's inode). So both are synced.
	oneSync bool
	// renameAtomic: a rename between two directories is committed as one
	// unit, so the order in which its directories are synced cannot
	// matter for a crash and they may be synced at once.
	renameAtomic bool
}

// commit returns the commit model of the export's file system, found once
// per store (not per device number: a device may be reformatted and
// mounted again under the same number while the process runs).
func (f *FS) commit() commitModel {
	f.commitOnce.Do(func() { f.commitM = commitModelFS(f.rootFd, f.rootDev) })
	return f.commitM
}

// CommitModel is what the store relies on to make a namespace operation
// durable on the export's file system, for models of it (crashfs) and
// for operators (mailnfsd logs it at start).
type CommitModel struct {
	// OneSync: one sync of any inode an operation changed commits all of
	// the operation (journalling file systems).
	OneSync bool
	// RenameAtomic: a rename's two directories are synced at once.
	RenameAtomic bool
}

// CommitModel returns the commit model the store uses for its export.
func (f *FS) CommitModel() CommitModel {
	m := f.commit()
	return CommitModel{OneSync: m.oneSync, RenameAtomic: m.renameAtomic}
}

// syncCreated makes a just-created object n and its entry in d durable:
// where one sync commits an operation (oneSync), n's, since n was changed
// last (the chown and chmod after the create, in a later transaction than
// the entry: d's sync would not reach them); else both at once (syncBoth).
func (f *FS) syncCreated(n, d *node) error {
	if UnsafeWriteOnly {
		return nil
	}
	if f.commit().oneSync {
		return f.syncNode(n)
	}
	return syncBoth(func() error { return f.syncNode(n) }, func() error { return f.syncDir(d) })
}

// syncFailed rotates the write verifier: data acknowledged UNSTABLE may be
// lost, so clients must resend it (RFC 1813 §3.3.7).
func (f *FS) syncFailed(err error) {
	f.stats.syncErrors.Add(1)
	f.rotateVerifier()
	f.log.Warn("maildirfs: sync failed; write verifier rotated", "err", err)
}
