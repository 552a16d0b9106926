package maildirfs

import (
	"context"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"log/slog"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mailnfs/mailnfs/internal/ratelog"
)

// Compression at rest (Options.Compress): see doc.go, "Compression".

const (
	// zBatch bounds the messages one background step compresses under one
	// journal sync; zBatchBytes bounds their plain bytes.
	zBatch      = 64
	zBatchBytes = 32 << 20
	// zMaxFile: larger files are left plain (they are read into memory).
	zMaxFile = 64 << 20
	// zQueue bounds the background queue. A message that finds it full
	// is not queued; its directory is remembered instead (at most
	// zMaxBacklog of them) and swept once the queue is empty: every
	// regular file in it is compressed if it is not yet.
	zQueue      = 4096
	zMaxBacklog = 4096
	// zMaxEnts bounds the cache of per-inode compression state.
	zMaxEnts = 1 << 17
	// zRootMarker is the value of zXattr on the export root: the tree may
	// hold compressed files, so every regular file is checked.
	zRootMarker = "tree"
	zJournalDir = "maildirfs-z"
	zWorkerJ    = "worker.j"
	zJMagic     = "MNFSZJ02" // records with a rewrite id (zrec)
	zJMagic1    = "MNFSZJ01" // records from before ids, still redone at Open
	// zIdleFactor: after a group during which messages were delivered,
	// the worker idles this many times as long as the group took, so
	// while deliveries run it takes at most 1/(1+zIdleFactor) of a CPU
	// and of the disk's time. Measured side by side on 2 cores, 32 NFS
	// deliverers (mailnfs bench deliver): with a third of a CPU (2) the
	// compressed export delivered 0.86x the plain one's rate, with a
	// tenth (9) 0.99x. When nothing was delivered during the group, it
	// goes on at once: idle time catches up.
	zIdleFactor = 9
)

// Minimum size and gain: files below zMinSize stay plain, and so do files
// whose compressed form saves less than 1/zMinGainDiv of their size (0:
// compress whatever the gain).
// Variables so tests can compress tiny files.
var (
	zMinSize    int64 = 512
	zMinGainDiv int64 = 8
)

// zcrashHook, when set (tests), is called before each step of a rewrite;
// a non-nil result stops the rewrite there as if the process had died: no
// cleanup runs, the journal stays.
var zcrashHook func(step string) error

// errZCrash marks a simulated crash from zcrashHook.
var errZCrash = errors.New("maildirfs: simulated crash")

// zent is the cached compression state of an inode, valid while its ctime
// and physical size are unchanged (our own transitions update it under the
// node's zmu).
type zent struct {
	ctime unix.Timespec
	size  int64 // physical st_size
	// usize is the uncompressed size: of a compressed file, or of a
	// pending one (what it holds once its rewrite is finished); -1: plain.
	usize int64
	id    uint64 // the marker's rewrite id (0: none, or a "Z1" marker)
	// pending: the marker is a "Z2" one naming another size than
	// st_size: a rewrite stopped part way (zresolve finishes it).
	pending bool
	// foreign: the file has a marker this version cannot read (a
	// newer mailnfsd's format, found after a downgrade); it is pending
	// for good with usize its physical size, so that it is neither
	// served nor rewritten (zresolve answers EIO).
	foreign bool
}

// compressed reports whether e is a complete compressed file.
func (e zent) compressed() bool { return e.usize >= 0 && !e.pending }

// zstore is the compression state of an FS; nil when compression is off and
// the tree was never compressed (no root marker).
type zstore struct {
	compress bool // compress messages delivered into new/ or cur/
	jdir     string
	jdirFd   int
	jlock    *zjournalLock // the journal directory's, shared by this process's stores
	jmu      sync.Mutex    // guards wj and its content
	wj       int           // worker journal, O_RDWR

	mu   sync.Mutex
	ents map[uint64]zent // guarded by mu
	// retained holds, by inode, the journal records kept after a
	// rewrite failed without a crash: that file's rewrite is finished
	// (zresolve) before anything else is done with it; guarded by mu.
	// nretained is its length, read without mu on the request paths.
	retained  map[uint64]zkept
	nretained atomic.Int64
	// broken: the worker journal could not be set aside after a failed
	// group; no more groups run (their records must not be overwritten).
	broken atomic.Bool
	// failLog limits the worker's lines about failed groups to one a
	// minute.
	failLog ratelog.Limiter[struct{}]
	// expandLog limits the lines about expansions that could not write
	// their journal to one a minute.
	expandLog ratelog.Limiter[struct{}]

	queue chan Handle
	bmu   sync.Mutex
	// backlog holds the handles of new/ and cur/ directories that had a
	// message turned away by the full queue, for zsweep; guarded by bmu.
	backlog  map[string]Handle
	sweeping atomic.Int64 // directories taken from backlog and not swept yet
	// wmu guards cancel: the running worker's, nil while none runs
	// (compression off, paused, or closed).
	wmu    sync.Mutex
	cancel context.CancelFunc
	wg     sync.WaitGroup
	seq    atomic.Uint64

	pending                               atomic.Int64  // queued or being compressed
	arrivals                              atomic.Uint64 // messages queued or dropped, ever
	compressed, expanded, dropped, failed atomic.Uint64
	plainBytes, storedBytes               atomic.Uint64

	learn zlearn // trained dictionaries (zlearn.go)
}

// zrec is one journal record: the final content of an inode and the
// metadata to restore. Redoing it is idempotent, and it is redone only
// while the inode's marker carries its id (zmatch), that is while the
// rewrite it describes is the last one begun on the inode: any change by
// a client first finishes or undoes that (zready, zplain, zforTimes), and
// a later rewrite stamps its own id, so a record left behind can never be
// redone over newer data.
type zrec struct {
	compress     bool // compress (else expand)
	kfh          kernelFH
	ino          uint64
	id           uint64 // random, never 0 (legacy records: 0)
	csize        int64  // the compressed size (of data, or before an expansion)
	atime, mtime unix.Timespec
	usize        int64
	data         []byte
	legacy       bool // an MNFSZJ01 record (no id, no csize)
}

// zkept locates the record that finishes a rewrite that failed without a
// crash (zstore.retained).
type zkept struct {
	journal string // file name in the journal directory
	id      uint64
}

// znewID returns a random rewrite id (never 0).
func znewID() uint64 {
	for {
		if id := mrand.Uint64(); id != 0 {
			return id
		}
	}
}

// zopen sets up compression state at Open: the root marker, the journal
// directory, recovery of interrupted rewrites, and the background worker.
// force: set up even when the tree is unmarked (Expand).
func (f *FS) zopen(force bool) error {
	switch f.opts.Compress {
	case "", "zstd":
	default:
		return fmt.Errorf("maildirfs: unknown Options.Compress %q (want \"\" or \"zstd\")", f.opts.Compress)
	}
	marked := zmarked(f.rootFd)
	// A subdirectory of a compressed tree exported on its own holds
	// compressed files too: a marked directory above the root, on the
	// same filesystem, counts as the root's mark (and its dictionaries
	// are loaded for reading).
	above := -1
	if !marked {
		above = zmarkedAbove(f.rootFd)
	}
	if above >= 0 {
		defer unix.Close(above)
	}
	if !marked && above < 0 && f.opts.Compress == "" && !force {
		return nil
	}
	z := &zstore{compress: f.opts.Compress != "" && !f.opts.ReadOnly, ents: make(map[uint64]zent), retained: make(map[uint64]zkept), wj: -1, jdirFd: -1}
	if !marked && f.opts.Compress != "" {
		// Mark the tree before the first file is compressed, durably, so a
		// later Open without Compress still decodes it.
		if err := unix.Fsetxattr(f.rootFd, zXattr, []byte(zRootMarker), 0); err != nil {
			return fmt.Errorf("maildirfs: marking %s for compression (needs user xattrs): %w", f.root, err)
		}
		if err := unix.Fsync(f.rootFd); err != nil {
			return fmt.Errorf("maildirfs: fsync %s: %w", f.root, err)
		}
	}
	var sfs unix.Statfs_t
	if err := unix.Fstatfs(f.rootFd, &sfs); err != nil {
		return fmt.Errorf("maildirfs: statfs %s: %w", f.root, err)
	}
	id := fmt.Sprintf("%08x%08x-%02x%s", uint32(sfs.Fsid.Val[0]), uint32(sfs.Fsid.Val[1]), f.rootNode.kfh.typ, hex.EncodeToString(f.rootNode.kfh.bytes))
	z.jdir = filepath.Join(f.opts.StateDir, zJournalDir, id)
	if err := os.MkdirAll(z.jdir, 0o700); err != nil {
		return fmt.Errorf("maildirfs: journal dir: %w", err)
	}
	var err error
	z.jdirFd, err = unix.Open(z.jdir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return fmt.Errorf("maildirfs: journal dir: %w", err)
	}
	if z.jlock, err = zlockJournal(z.jdirFd, f.log); err != nil {
		unix.Close(z.jdirFd)
		return fmt.Errorf("maildirfs: compression journal %s of %s: %w", z.jdir, f.root, err)
	}
	f.z = z
	if above >= 0 {
		f.zloadDictsAbove(above)
	}
	if err := f.zloadDicts(); err != nil {
		f.zclose()
		return err
	}
	if err := f.zrecover(); err != nil {
		f.zclose()
		return err
	}
	z.wj, err = unix.Openat(z.jdirFd, zWorkerJ, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
	if err == nil {
		err = unix.Fsync(z.jdirFd)
	}
	if err != nil {
		f.zclose()
		return fmt.Errorf("maildirfs: worker journal: %w", err)
	}
	if z.compress {
		z.queue = make(chan Handle, zQueueLen)
		z.backlog = make(map[string]Handle)
		z.wmu.Lock()
		f.zstartLocked()
		z.wmu.Unlock()
	}
	return nil
}

// zstartLocked starts the compression worker; z.wmu is held and none runs.
func (f *FS) zstartLocked() {
	z := f.z
	ctx, cancel := context.WithCancel(context.Background())
	z.cancel = cancel
	z.wg.Add(1)
	go func() {
		defer z.wg.Done()
		f.zworker(ctx)
	}()
}

// zstopLocked stops the worker, if one runs, after the group it is
// rewriting; z.wmu is held.
func (z *zstore) zstopLocked() {
	if z.cancel != nil {
		z.cancel()
		z.wg.Wait()
		z.cancel = nil
	}
}

// PauseCompression stops the background compression worker once the
// rewrite it runs is done; messages delivered meanwhile wait in its queue
// (or its sweep backlog) for ResumeCompression. A server pauses a store
// that a reload retired but keeps open for calls in flight: another store
// may serve the same tree by then, and two workers must never rewrite one
// file. Reads still decode. No-op for a store that does not compress.
func (f *FS) PauseCompression() {
	if f.z == nil || !f.z.compress {
		return
	}
	f.z.wmu.Lock()
	defer f.z.wmu.Unlock()
	f.z.zstopLocked()
}

// ResumeCompression starts the worker PauseCompression stopped (a
// retired store taken back into service). No-op if it runs, if the store
// does not compress, or after Close.
func (f *FS) ResumeCompression() {
	if f.z == nil || !f.z.compress || f.closed.Load() {
		return
	}
	f.z.wmu.Lock()
	defer f.z.wmu.Unlock()
	if f.z.cancel == nil && !f.closed.Load() {
		f.zstartLocked()
	}
}

// zmarked reports whether the directory open as fd carries the tree's
// compression mark.
func zmarked(fd int) bool {
	var v [16]byte
	k, err := unix.Fgetxattr(fd, zXattr, v[:])
	return err == nil && string(v[:k]) == zRootMarker
}

// zmarkedAbove returns an fd of the nearest directory above the directory
// open as rootFd, on the same filesystem, that carries the tree's mark, or
// -1. The walk stops at the filesystem's root or a mount point.
func zmarkedAbove(rootFd int) int {
	var st unix.Stat_t
	if unix.Fstat(rootFd, &st) != nil {
		return -1
	}
	fd := rootFd
	for range maxDirDepth {
		up, err := unix.Openat(fd, "..", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
		if fd != rootFd {
			unix.Close(fd)
		}
		if err != nil {
			return -1
		}
		var ust unix.Stat_t
		if unix.Fstat(up, &ust) != nil || ust.Dev != st.Dev || ust.Ino == st.Ino {
			unix.Close(up) // another filesystem, or "/" (its own parent)
			return -1
		}
		if zmarked(up) {
			return up
		}
		fd, st = up, ust
	}
	if fd != rootFd {
		unix.Close(fd)
	}
	return -1
}

// zstop stops the worker (queued messages stay plain) and closes the
// journal fds.
func (f *FS) zclose() {
	z := f.z
	if z == nil {
		return
	}
	z.wmu.Lock()
	z.zstopLocked()
	z.wmu.Unlock()
	if z.wj >= 0 {
		unix.Close(z.wj)
		z.wj = -1
	}
	if z.jdirFd >= 0 {
		unix.Close(z.jdirFd)
		z.jdirFd = -1
	}
	if z.jlock != nil {
		z.jlock.release()
		z.jlock = nil
	}
}

// zjournalLocks holds, by directory, the flock of each journal directory
// a store of this process has open. Another process must not open the
// same tree's journal while one does: its Open would redo the running
// worker's records under it and retire its journals (a failed-N.j whose
// files then answer EIO), and the two workers would rewrite the same
// files. That happens when a second mailnfsd is started with the same
// -state-dir and exports (its stores open before it finds the ports
// taken). Stores of one process share the lock: a reload keeps one store
// per tree itself (nfsd).
var zjournalLocks struct {
	mu sync.Mutex
	m  map[zdirID]*zjournalLock
}

type zdirID struct{ dev, ino uint64 }

// zjournalLock is the flock of one journal directory, held while n > 0.
type zjournalLock struct {
	id zdirID
	fd int // -1: the file system has no flock; nothing is held
	n  int // guarded by zjournalLocks.mu
}

// zlockJournal takes (or shares, within this process) the lock of the
// journal directory open as dirFd. It fails with EBUSY if another process
// holds it.
func zlockJournal(dirFd int, log *slog.Logger) (*zjournalLock, error) {
	var st unix.Stat_t
	if err := unix.Fstat(dirFd, &st); err != nil {
		return nil, err
	}
	id := zdirID{uint64(st.Dev), st.Ino}
	zjournalLocks.mu.Lock()
	defer zjournalLocks.mu.Unlock()
	if l := zjournalLocks.m[id]; l != nil {
		l.n++
		return l, nil
	}
	// An fd of its own: the lock must outlive the store that took it
	// while another store of this process shares it.
	fd, err := unix.Openat(dirFd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	if err := unix.Flock(fd, unix.LOCK_EX|unix.LOCK_NB); err == unix.EWOULDBLOCK {
		unix.Close(fd)
		return nil, fmt.Errorf("in use by another process (a mailnfsd with the same -state-dir serving this tree, or mailnfsd compact or expand): stop it first, or give this one a -state-dir of its own: %w", unix.EBUSY)
	} else if err != nil {
		// A file system without flock (a state directory on NFS without
		// a lock manager): go on without the guard.
		log.Warn("maildirfs: cannot lock the compression journal's directory; a second mailnfsd started with the same -state-dir would not be stopped from using it", "err", err)
		unix.Close(fd)
		fd = -1
	}
	l := &zjournalLock{id: id, fd: fd, n: 1}
	if zjournalLocks.m == nil {
		zjournalLocks.m = make(map[zdirID]*zjournalLock)
	}
	zjournalLocks.m[id] = l
	return l, nil
}

// release gives up one store's share of the lock; the last one unlocks.
func (l *zjournalLock) release() {
	zjournalLocks.mu.Lock()
	defer zjournalLocks.mu.Unlock()
	if l.n--; l.n > 0 {
		return
	}
	delete(zjournalLocks.m, l.id)
	if l.fd >= 0 {
		unix.Close(l.fd)
	}
}

func zstep(step string) error {
	if zcrashHook != nil {
		return zcrashHook(step)
	}
	return nil
}

// ---- per-inode state and logical sizes ----

func (z *zstore) lookup(st *unix.Stat_t) (zent, bool) {
	z.mu.Lock()
	e, ok := z.ents[st.Ino]
	z.mu.Unlock()
	return e, ok && e.ctime == st.Ctim && e.size == st.Size
}

func (z *zstore) store(ino uint64, e zent) {
	z.mu.Lock()
	if len(z.ents) >= zMaxEnts {
		clear(z.ents)
	}
	z.ents[ino] = e
	z.mu.Unlock()
}

// zforget drops the cached state of ino (its last link is gone, or a
// rewrite of it failed).
func (f *FS) zforget(ino uint64) {
	if f.z == nil {
		return
	}
	f.z.mu.Lock()
	delete(f.z.ents, ino)
	f.z.mu.Unlock()
}

// zgone forgets ino, whose last link was removed: its cached state and any
// record kept to finish a rewrite of it.
func (f *FS) zgone(ino uint64) {
	if f.z == nil {
		return
	}
	f.zforget(ino)
	f.z.release(ino)
}

// keep records that the rewrite of ino with id is to be finished from
// journal (a failure without a crash).
func (z *zstore) keep(ino uint64, journal string, id uint64) {
	z.mu.Lock()
	if _, ok := z.retained[ino]; !ok {
		z.nretained.Add(1)
	}
	z.retained[ino] = zkept{journal: journal, id: id}
	z.mu.Unlock()
}

// release drops the kept record of ino.
func (z *zstore) release(ino uint64) {
	z.mu.Lock()
	if _, ok := z.retained[ino]; ok {
		delete(z.retained, ino)
		z.nretained.Add(-1)
	}
	z.mu.Unlock()
}

// kept returns the kept record of ino, if any.
func (z *zstore) kept(ino uint64) (zkept, bool) {
	if z.nretained.Load() == 0 {
		return zkept{}, false
	}
	z.mu.Lock()
	k, ok := z.retained[ino]
	z.mu.Unlock()
	return k, ok
}

// zstate returns the compression state of a regular file with stat st
// (usize -1: plain). getx reads the marker xattr.
func (f *FS) zstate(st *unix.Stat_t, getx func(buf []byte) (int, error)) zent {
	z := f.z
	e := zent{ctime: st.Ctim, size: st.Size, usize: -1}
	if z == nil || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size < zHdrLen {
		return e
	}
	if c, ok := z.lookup(st); ok {
		return c
	}
	var v [zXattrLen + 1]byte
	k, err := getx(v[:])
	if err == nil {
		if us, cs, id, ok := zparseXattr(v[:k]); ok {
			switch {
			case cs == st.Size:
				e.usize, e.id = us, id
			case id != 0:
				e.usize, e.id, e.pending = us, id, true
			}
		} else {
			err = unix.ERANGE
		}
	}
	if err == unix.ERANGE {
		// A marker longer than any this version writes, or one it
		// cannot parse: served as plain, the file's bytes would be a
		// newer format's compressed data.
		e.usize, e.pending, e.foreign = st.Size, true, true
	}
	z.store(st.Ino, e)
	return e
}

// zfixStable is zfixAt/zfixFd for a stat taken without the node's zmu
// (LOOKUP, READDIRPLUS): if the inode's node is cached, a rewrite may be in
// progress, so the stat is taken again under its zmu. A rewrite holds its
// node (cached, referenced) from before the first change to after the last,
// so an inode without a cached node was not being rewritten at the stat.
// The caller must not hold any zmu.
func (f *FS) zfixStable(st *unix.Stat_t, fix func(st *unix.Stat_t)) {
	if f.z == nil || st.Mode&unix.S_IFMT != unix.S_IFREG {
		return
	}
	if n := f.cache.lookupIno(st.Ino); n != nil {
		n.zmu.RLock()
		var st2 unix.Stat_t
		if n.stat(&st2) == nil && st2.Ino == st.Ino && st2.Dev == st.Dev {
			*st = st2
			fix = func(st *unix.Stat_t) { f.zfixFd(n.pathFd, st) }
		}
		fix(st)
		n.zmu.RUnlock()
		f.put(n)
		return
	}
	fix(st)
}

// postAttrStable is postAttr of a node whose zmu the caller does not hold.
func (f *FS) postAttrStable(n *node) *Attr {
	if f.z != nil && n.typ == TypeReg {
		n.zmu.RLock()
		defer n.zmu.RUnlock()
	}
	return f.postAttr(n)
}

// statStable stats n as get does: under its zmu, so never in the middle
// of a rewrite, with the uncompressed size.
func (f *FS) statStable(n *node) (*unix.Stat_t, error) {
	if f.z != nil && n.typ == TypeReg {
		n.zmu.RLock()
		defer n.zmu.RUnlock()
	}
	st := new(unix.Stat_t)
	if err := n.stat(st); err != nil {
		return nil, err
	}
	f.zfixFd(n.pathFd, st)
	return st, nil
}

// zfixFd replaces st.Size of the object open as fd (O_PATH is fine) by its
// uncompressed size.
func (f *FS) zfixFd(fd int, st *unix.Stat_t) {
	if f.z == nil {
		return
	}
	if e := f.zstate(st, func(b []byte) (int, error) {
		return getxattrFd(fd, zXattr, b)
	}); e.usize >= 0 {
		st.Size = e.usize
	}
}

// zfixAt is zfixFd for name in directory dirfd (not following a symlink).
func (f *FS) zfixAt(dirfd int, name string, st *unix.Stat_t) {
	if f.z == nil {
		return
	}
	if e := f.zstate(st, func(b []byte) (int, error) {
		return lgetxattrAt(dirfd, name, zXattr, b)
	}); e.usize >= 0 {
		st.Size = e.usize
	}
}

// znode returns n's physical stat and compression state. The caller holds
// n.zmu.
func (f *FS) znode(n *node) (*unix.Stat_t, zent, error) {
	st := new(unix.Stat_t)
	if err := n.stat(st); err != nil {
		return nil, zent{}, err
	}
	e := f.zstate(st, func(b []byte) (int, error) {
		return getxattrFd(n.pathFd, zXattr, b)
	})
	return st, e, nil
}

// zunfinished reports whether the rewrite of the file with stat st and
// state e is to be finished before the file is used: it stopped part way
// (pending), or it failed without a crash and its record was kept (the
// file may look complete while its data did not reach the disk).
func (f *FS) zunfinished(st *unix.Stat_t, e zent) bool {
	if e.pending {
		return true
	}
	_, ok := f.z.kept(st.Ino)
	return ok
}

// ---- serving compressed files ----

// zread serves READ of a compressed file: only the frames covering the range
// are read and decompressed; the last decoded frame is kept per node for
// sequential readers. The caller holds n.zmu for reading.
func (f *FS) zread(n *node, st *unix.Stat_t, off uint64, buf []byte) (int, error) {
	fd, err := f.io(n, false)
	if err != nil {
		return 0, err
	}
	n.zfmu.Lock()
	defer n.zfmu.Unlock()
	zi := n.zidx
	if zi == nil || n.zidxCtime != st.Ctim || zi.offs[len(zi.offs)-1] != st.Size {
		zi, err = zloadIndex(fd, st.Size)
		if err != nil {
			if ok, held := f.corruptLog.Allow(st.Ino, time.Now()); ok {
				f.log.Error("maildirfs: unreadable compressed file (logged once a minute per file)", "ino", st.Ino, "err", err, "held_back", held)
			}
			return 0, unix.EIO
		}
		n.zidx, n.zidxCtime, n.zfi = zi, st.Ctim, -1
	}
	total := 0
	for total < len(buf) && int64(off)+int64(total) < zi.usize {
		pos := int64(off) + int64(total)
		i := int(pos / zi.frameSize)
		if n.zfi != i {
			src := make([]byte, zi.offs[i+1]-zi.offs[i])
			if err := preadFull(fd, src, zi.offs[i]); err != nil {
				return total, err
			}
			if cap(n.zfbuf) < int(zi.frameSize) {
				n.zfbuf = make([]byte, 0, zi.frameSize)
			}
			out, err := zi.decodeFrame(i, src, n.zfbuf)
			if err != nil {
				n.zfi = -1
				if ok, held := f.corruptLog.Allow(st.Ino, time.Now()); ok {
					f.log.Error("maildirfs: unreadable compressed frame (logged once a minute per file)", "ino", st.Ino, "err", err, "held_back", held)
				}
				return total, unix.EIO
			}
			n.zfbuf, n.zfi = out, i
		}
		total += copy(buf[total:], n.zfbuf[pos-int64(i)*zi.frameSize:])
	}
	return total, nil
}

// zloadIndex reads and parses the header and index of a compressed file.
func zloadIndex(fd int, size int64) (*zindex, error) {
	hdr := make([]byte, zHdrLen)
	if err := preadFull(fd, hdr, 0); err != nil {
		return nil, err
	}
	_, _, nf, err := zparseHeader(hdr, size)
	if err != nil {
		return nil, err
	}
	b := make([]byte, zHdrLen+4*nf)
	if err := preadFull(fd, b, 0); err != nil {
		return nil, err
	}
	return zparseIndex(b, size)
}

// preadFull reads exactly len(b) bytes at off.
func preadFull(fd int, b []byte, off int64) error {
	for k := 0; k < len(b); {
		m, err := unix.Pread(fd, b[k:], off+int64(k))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if m == 0 {
			return fmt.Errorf("short read at %d: %w", off+int64(k), unix.EIO)
		}
		k += m
	}
	return nil
}

func pwriteFull(fd int, b []byte, off int64) error {
	for k := 0; k < len(b); {
		m, err := unix.Pwrite(fd, b[k:], off+int64(k))
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			return err
		}
		if m == 0 {
			return unix.EIO
		}
		k += m
	}
	return nil
}

// zready returns with n.zmu held for reading and n's stat and state, after
// finishing a rewrite of n that failed without a crash (zresolve), so n is
// either plain or completely compressed. On error zmu is not held.
func (f *FS) zready(n *node) (*unix.Stat_t, zent, error) {
	for {
		n.zmu.RLock()
		st, e, err := f.znode(n)
		if err != nil {
			n.zmu.RUnlock()
			return nil, zent{}, err
		}
		if !f.zunfinished(st, e) {
			return st, e, nil
		}
		n.zmu.RUnlock()
		n.zmu.Lock()
		st, e, err = f.znode(n)
		if err == nil && f.zunfinished(st, e) {
			err = f.zresolve(n, st, e)
		}
		n.zmu.Unlock()
		if err != nil {
			return nil, zent{}, err
		}
	}
}

// zplain makes sure n is stored plain before a modification by c (WRITE,
// SETATTR of the size): a compressed file is expanded first. It returns
// with n.zmu held for reading (so the compressor waits) and the function
// that releases it. The expansion is written as root: for a caller other
// than root it needs the room it keeps to be left for users
// (roomForUser), or a few compressed files of zeros would be expanded
// into the reserve kept for root (and left pending when it ran out).
// keep is the size the modification leaves the file (a truncation), or
// -1 (a WRITE): a truncation gives back what the expansion took beyond
// it, so truncating a compressed file on a disk full for users is not
// refused.
func (f *FS) zplain(n *node, c Cred, keep int64) (func(), error) {
	if f.z == nil || n.typ != TypeReg {
		return func() {}, nil
	}
	for {
		pst, e, err := f.zready(n)
		if err != nil {
			return nil, err
		}
		if e.usize < 0 {
			return n.zmu.RUnlock, nil
		}
		n.zmu.RUnlock()
		need := e.usize
		if keep >= 0 && keep < need {
			need = keep
		}
		if need > pst.Size {
			if err := roomForUser(f.rootFd, c, need-pst.Size); err != nil {
				return nil, err
			}
		}
		n.zmu.Lock()
		err = f.zexpandNode(n)
		n.zmu.Unlock()
		if err != nil {
			return nil, err
		}
	}
}

// zforTimes prepares n for a SETATTR of its times, which a redo of the
// journal record of its last rewrite would undo (the record restores the
// times it had then): a rewrite that failed is finished first, and a
// compressed file's marker gets a new id, so no record left behind
// matches it any more. It returns with n.zmu held (the change of the
// times must not fall inside a rewrite) and the function that releases
// it.
func (f *FS) zforTimes(n *node) (func(), error) {
	if f.z == nil || n.typ != TypeReg {
		return func() {}, nil
	}
	n.zmu.Lock()
	st, e, err := f.znode(n)
	if err == nil && f.zunfinished(st, e) {
		if err = f.zresolve(n, st, e); err == nil {
			st, e, err = f.znode(n)
		}
	}
	if err == nil && e.compressed() && e.id != 0 {
		var fd int
		if fd, err = f.io(n, true); err == nil {
			err = unix.Fsetxattr(fd, zXattr, zxattrValue(e.usize, st.Size, znewID()), 0)
		}
		f.zforget(st.Ino)
	}
	if err != nil {
		n.zmu.Unlock()
		return nil, err
	}
	return n.zmu.Unlock, nil
}

// ---- rewriting in place ----

// zresolve finishes the rewrite of n that failed without a crash (n.zmu is
// held): its kept journal record is redone and synced. A file left pending
// whose record is gone (the journal was lost) stays so and answers EIO.
func (f *FS) zresolve(n *node, st *unix.Stat_t, e zent) error {
	z := f.z
	k, ok := z.kept(st.Ino)
	var rec *zrec
	if ok {
		rec = f.zfindRec(k.journal, n.kfh, st.Ino, k.id)
	}
	switch {
	case e.foreign:
		if ok, held := f.corruptLog.Allow(st.Ino, time.Now()); ok {
			f.log.Error("maildirfs: file compressed in a format this mailnfsd does not know (by a newer version, before a downgrade?); it answers EIO until served by that version or expanded with it (logged once a minute per file)", "ino", st.Ino, "held_back", held)
		}
		return unix.EIO
	case (rec == nil || e.id != rec.id) && e.pending:
		if ok, held := f.corruptLog.Allow(st.Ino, time.Now()); ok {
			f.log.Error("maildirfs: file left half rewritten and its journal record is gone; it answers EIO (logged once a minute per file)", "ino", st.Ino, "held_back", held)
		}
		return unix.EIO
	case rec == nil || (e.id != rec.id && rec.compress):
		z.release(st.Ino) // complete, and nothing of that rewrite to redo
		return nil
	}
	fd, err := f.io(n, true)
	if err == nil && e.id != rec.id {
		// An expansion that failed before its id was stamped.
		err = f.zstamp(n, fd, rec)
	}
	if err == nil {
		err = f.zapply(n, fd, rec, true)
	}
	if err != nil {
		f.zforget(st.Ino)
		if !errors.Is(err, errZCrash) {
			f.log.Error("maildirfs: finishing a failed compression rewrite failed again", "ino", st.Ino, "err", err)
		}
		return err
	}
	f.zsettled(n, fd, rec)
	z.release(st.Ino)
	return nil
}

// zfindRec reads the record of inode ino (kernel handle kfh) with id from
// the journal file name; nil if it is not there.
func (f *FS) zfindRec(name string, kfh kernelFH, ino, id uint64) *zrec {
	b, err := os.ReadFile(filepath.Join(f.z.jdir, name))
	if err != nil {
		f.log.Error("maildirfs: reading a kept compression journal", "journal", name, "err", err)
		return nil
	}
	for len(b) > 0 {
		rec, k, err := zdecodeRec(b)
		if err != nil {
			return nil
		}
		b = b[k:]
		if rec.ino == ino && rec.id == id && rec.kfh.typ == kfh.typ && string(rec.kfh.bytes) == string(kfh.bytes) {
			return rec
		}
	}
	return nil
}

// zexpandNode rewrites compressed n plain, through a journal of its own
// (synced before the inode is touched, removed after the inode is synced),
// finishing a failed rewrite of it first. The caller holds n.zmu.
func (f *FS) zexpandNode(n *node) error {
	z := f.z
	st, e, err := f.znode(n)
	if err == nil && f.zunfinished(st, e) {
		if err = f.zresolve(n, st, e); err == nil {
			st, e, err = f.znode(n)
		}
	}
	if err != nil || e.usize < 0 {
		return err
	}
	// The store compresses no file larger than zMaxFile (zsized), so a
	// marker claiming more (damaged, or set by a local user: user.*
	// xattrs are the owner's) is refused before the file is read into
	// memory, and a header must claim the marker's size before any frame
	// is decoded: zero frames claiming a terabyte fit in a few MiB.
	if e.usize > zMaxFile || st.Size > 2*zMaxFile {
		if ok, held := f.corruptLog.Allow(st.Ino, time.Now()); ok {
			f.log.Error("maildirfs: cannot expand compressed file (logged once a minute per file)", "ino", st.Ino,
				"err", fmt.Errorf("marker names %d bytes in a file of %d, more than the store compresses: %w", e.usize, st.Size, ErrCorrupt), "held_back", held)
		}
		return unix.EIO
	}
	fd, err := f.io(n, true)
	if err != nil {
		return err
	}
	comp := make([]byte, st.Size)
	if err := preadFull(fd, comp, 0); err != nil {
		return err
	}
	zi, err := zparseIndex(comp, st.Size)
	if err == nil && zi.usize != e.usize {
		err = fmt.Errorf("header names %d bytes, marker %d: %w", zi.usize, e.usize, ErrCorrupt)
	}
	var plain []byte
	if err == nil {
		plain, err = zdecodeAll(comp)
	}
	if err != nil || int64(len(plain)) != e.usize {
		if ok, held := f.corruptLog.Allow(st.Ino, time.Now()); ok {
			f.log.Error("maildirfs: cannot expand compressed file (logged once a minute per file)", "ino", st.Ino, "err", err, "held_back", held)
		}
		return unix.EIO
	}
	rec := &zrec{compress: false, kfh: n.kfh, ino: st.Ino, id: znewID(), csize: st.Size, atime: st.Atim, mtime: st.Mtim, usize: e.usize, data: plain}
	name := fmt.Sprintf("e-%d-%d.j", st.Ino, z.seq.Add(1))
	if err := zwriteJournal(z.jdirFd, name, [][]byte{rec.encode()}); err != nil {
		// Nothing was touched. The call fails (a full state directory:
		// NFS3ERR_NOSPC, with room on the export), so say which disk.
		unix.Unlinkat(z.jdirFd, name, 0)
		if ok, held := z.expandLog.Allow(struct{}{}, time.Now()); ok {
			f.log.Error("maildirfs: cannot expand a compressed file for a write: its compression journal in the state directory cannot be written; the write fails (logged once a minute)",
				"journal", filepath.Join(z.jdir, name), "ino", st.Ino, "err", err, "held_back", held)
		}
		return err
	}
	if err := zstep("expand-journaled"); err != nil {
		return err
	}
	if err := zstep("expand-mark"); err != nil {
		return err
	}
	err = f.zstamp(n, fd, rec)
	if err == nil {
		err = f.zapply(n, fd, rec, true)
	}
	if err != nil {
		f.zforget(st.Ino)
		if !errors.Is(err, errZCrash) {
			f.log.Error("maildirfs: expanding failed; the file is finished before its next use, or from the journal at the next Open", "ino", st.Ino, "err", err)
			z.keep(st.Ino, name, rec.id)
		}
		return err
	}
	f.zsettled(n, fd, rec)
	if err := zstep("expand-applied"); err != nil {
		return err
	}
	// The record no longer matches (the marker is gone): removing it is
	// tidiness, not safety.
	if err := unix.Unlinkat(z.jdirFd, name, 0); err == nil {
		unix.Fsync(z.jdirFd)
	}
	z.expanded.Add(1)
	return nil
}

// zstamp puts the id of rec, an expansion of the compressed file open as
// fd, on its marker and syncs it: before the content changes, as the
// record is redone only while its id is there.
func (f *FS) zstamp(n *node, fd int, rec *zrec) error {
	if err := unix.Fsetxattr(fd, zXattr, zxattrValue(rec.usize, rec.csize, rec.id), 0); err != nil {
		return err
	}
	return f.zsync(n, fd)
}

// zsync fsyncs fd, n's, during a rewrite: a failure counts as a failed
// sync of n (it may have taken the report of a writeback error of data a
// client wrote, so the verifier rotates and stable writes waiting fail).
func (f *FS) zsync(n *node, fd int) error {
	err := f.inject(FaultFsync)
	if err == nil {
		err = unix.Fsync(fd)
	}
	if err != nil {
		if n != nil {
			n.syncFails.Add(1)
		}
		f.syncFailed(err)
	}
	return err
}

// zsettled records n's new state after rec was applied.
func (f *FS) zsettled(n *node, fd int, rec *zrec) {
	var st unix.Stat_t
	if unix.Fstat(fd, &st) != nil {
		f.zforget(rec.ino)
		return
	}
	e := zent{ctime: st.Ctim, size: st.Size, usize: -1}
	if rec.compress {
		e.usize, e.id = rec.usize, rec.id
	}
	f.z.store(st.Ino, e)
	if n != nil {
		n.zfmu.Lock()
		n.zidx, n.zfi = nil, -1
		n.zfmu.Unlock()
	}
}

// zapply writes rec into the inode open as fd (n's, or nil during
// recovery), whose marker already carries rec's id: content, size, times,
// and for an expansion the removal of the marker. A compression is synced
// only if sync (the group syncs the file system once); an expansion
// always is, before the marker goes (the content and times must be
// durable while the record still matches) and after. Idempotent.
func (f *FS) zapply(n *node, fd int, rec *zrec, sync bool) error {
	if !rec.compress {
		// Extend to the plain size first: the size then no longer is the
		// one the marker names, so a stat shows the uncompressed size
		// throughout and the state is pending until the end.
		if err := zstep("truncate"); err != nil {
			return err
		}
		if err := unix.Ftruncate(fd, int64(len(rec.data))); err != nil {
			return err
		}
	}
	if err := zstep("write"); err != nil {
		return err
	}
	if err := f.inject(FaultWrite); err != nil {
		return err
	}
	if err := pwriteFull(fd, rec.data, 0); err != nil {
		return err
	}
	if rec.compress {
		if err := zstep("truncate"); err != nil {
			return err
		}
		if err := unix.Ftruncate(fd, int64(len(rec.data))); err != nil {
			return err
		}
	}
	if err := zstep("times"); err != nil {
		return err
	}
	// The rewrite must not change the mtime clients see (Dovecot's
	// INTERNALDATE); ctime changes and is reported as it is.
	if err := futimensFd(fd, []unix.Timespec{rec.atime, rec.mtime}); err != nil {
		return err
	}
	if rec.compress && !sync {
		return nil
	}
	if err := zstep("fsync"); err != nil {
		return err
	}
	if err := f.zsync(n, fd); err != nil {
		return err
	}
	if rec.compress {
		return nil
	}
	if err := zstep("xattr"); err != nil {
		return err
	}
	if err := unix.Fremovexattr(fd, zXattr); err != nil && err != errNoAttr {
		return err
	}
	return f.zsync(n, fd)
}

// zwriteJournal creates name in the journal directory holding recs, durably
// (file and directory entry).
func zwriteJournal(dirFd int, name string, recs [][]byte) error {
	fd, err := unix.Openat(dirFd, name, unix.O_RDWR|unix.O_CREAT|unix.O_TRUNC|unix.O_CLOEXEC, 0o600)
	if err != nil {
		return err
	}
	var off int64
	for _, r := range recs {
		if err == nil {
			err = pwriteFull(fd, r, off)
			off += int64(len(r))
		}
	}
	if err == nil {
		err = unix.Fsync(fd)
	}
	unix.Close(fd)
	if err == nil {
		err = unix.Fsync(dirFd)
	}
	return err
}

// encode serializes rec:
//
//	magic(8: MNFSZJ02) | op(1: 'C' or 'E') | kfh len(1) | kfh type(4) | kfh |
//	ino(8) | id(8) | csize(8) | atime sec,nsec | mtime sec,nsec (8 each) |
//	usize(8) | data len(8) | data | CRC-32C of everything before (4)
//
// A legacy record (MNFSZJ01) has no id and no csize.
func (r *zrec) encode() []byte {
	b := make([]byte, 0, 8+2+4+len(r.kfh.bytes)+8*9+len(r.data)+4)
	if r.legacy {
		b = append(b, zJMagic1...)
	} else {
		b = append(b, zJMagic...)
	}
	op := byte('E')
	if r.compress {
		op = 'C'
	}
	b = append(b, op, byte(len(r.kfh.bytes)))
	b = binary.BigEndian.AppendUint32(b, uint32(r.kfh.typ))
	b = append(b, r.kfh.bytes...)
	b = binary.BigEndian.AppendUint64(b, r.ino)
	if !r.legacy {
		b = binary.BigEndian.AppendUint64(b, r.id)
		b = binary.BigEndian.AppendUint64(b, uint64(r.csize))
	}
	for _, v := range []int64{r.atime.Sec, r.atime.Nsec, r.mtime.Sec, r.mtime.Nsec, r.usize, int64(len(r.data))} {
		b = binary.BigEndian.AppendUint64(b, uint64(v))
	}
	b = append(b, r.data...)
	return binary.BigEndian.AppendUint32(b, crc32.Checksum(b, crcTable))
}

// zforeignJournal reports whether b starts with the magic of a journal
// record version other than those zdecodeRec reads (two digits after
// "MNFSZJ"; a magic torn by a crash has zeros there), and returns it.
func zforeignJournal(b []byte) (string, bool) {
	if len(b) < len(zJMagic) || string(b[:6]) != zJMagic[:6] {
		return "", false
	}
	v := string(b[:len(zJMagic)])
	known := v == zJMagic || v == zJMagic1
	return v, !known && b[6] >= '0' && b[6] <= '9' && b[7] >= '0' && b[7] <= '9'
}

// zdecodeRec parses one record at the start of b and returns it and its
// length. A torn or corrupt record is an error (the journal ends there).
func zdecodeRec(b []byte) (*zrec, int, error) {
	bad := fmt.Errorf("journal record: %w", ErrCorrupt)
	if len(b) < 14 || (string(b[:8]) != zJMagic && string(b[:8]) != zJMagic1) || (b[8] != 'C' && b[8] != 'E') {
		return nil, 0, bad
	}
	r := &zrec{compress: b[8] == 'C', legacy: string(b[:8]) == zJMagic1}
	kl := int(b[9])
	if kl == 0 || kl > maxKernelFH {
		return nil, 0, bad
	}
	r.kfh.typ = int32(binary.BigEndian.Uint32(b[10:]))
	p := 14
	fixed := 8 * 7
	if !r.legacy {
		fixed += 8 * 2
	}
	if len(b) < p+kl+fixed {
		return nil, 0, bad
	}
	r.kfh.bytes = append([]byte(nil), b[p:p+kl]...)
	p += kl
	r.ino = binary.BigEndian.Uint64(b[p:])
	p += 8
	if !r.legacy {
		r.id = binary.BigEndian.Uint64(b[p:])
		r.csize = int64(binary.BigEndian.Uint64(b[p+8:]))
		p += 16
		if r.id == 0 || r.csize < zHdrLen || r.csize > zMaxUSize {
			return nil, 0, bad
		}
	}
	var v [6]int64
	for i := range v {
		v[i] = int64(binary.BigEndian.Uint64(b[p:]))
		p += 8
	}
	r.atime = unix.Timespec{Sec: v[0], Nsec: v[1]}
	r.mtime = unix.Timespec{Sec: v[2], Nsec: v[3]}
	r.usize = v[4]
	dl := v[5]
	if r.usize < 0 || r.usize > zMaxUSize || dl < 0 || dl > int64(len(b)-p-4) {
		return nil, 0, bad
	}
	r.data = b[p : p+int(dl)]
	p += int(dl)
	if crc32.Checksum(b[:p], crcTable) != binary.BigEndian.Uint32(b[p:]) {
		return nil, 0, bad
	}
	return r, p + 4, nil
}

// zrecover redoes the journaled rewrites (Open, before serving): each
// valid record whose inode still exists and still carries its id
// (zmatch) is applied again; then every journal is retired.
func (f *FS) zrecover() error {
	z := f.z
	ents, err := os.ReadDir(z.jdir)
	if err != nil {
		return fmt.Errorf("maildirfs: journal dir: %w", err)
	}
	retired := false
	for _, e := range ents {
		name := e.Name()
		if !strings.HasSuffix(name, ".j") {
			continue
		}
		b, err := os.ReadFile(filepath.Join(z.jdir, name))
		if err != nil {
			return fmt.Errorf("maildirfs: journal: %w", err)
		}
		redone, stale := 0, 0
		for len(b) > 0 {
			rec, k, err := zdecodeRec(b)
			if err != nil {
				if v, ok := zforeignJournal(b); ok {
					// A newer version's rewrites, met after a downgrade:
					// retiring the journal would leave them unfinished for
					// good, even after going back to that version.
					return fmt.Errorf("maildirfs: journal %s: a record in a format this mailnfsd does not know (%s: written by a newer version?); start that version to finish its rewrites, or move the journal away: %w", filepath.Join(z.jdir, name), v, ErrCorrupt)
				}
				// A torn tail: it was never synced, so no inode was touched
				// for it.
				break
			}
			b = b[k:]
			done, err := f.zredo(rec)
			if err != nil {
				return fmt.Errorf("maildirfs: journal %s: redo inode %d: %w", name, rec.ino, err)
			}
			if done {
				redone++
			} else {
				stale++
			}
		}
		if redone > 0 {
			f.log.Warn("maildirfs: finished interrupted compression rewrites", "journal", name, "records", redone, "stale", stale)
		}
		if name == zWorkerJ {
			err = unix.Truncate(filepath.Join(z.jdir, name), 0)
		} else {
			err = unix.Unlinkat(z.jdirFd, name, 0)
		}
		if err != nil {
			return fmt.Errorf("maildirfs: journal: %w", err)
		}
		retired = retired || redone+stale > 0 || name != zWorkerJ
	}
	if !retired {
		return nil
	}
	// Redone inodes were synced by zapply; the retired journals must be
	// durable before anything else is rewritten (a record that no longer
	// matches could only be skipped again, but it costs a read).
	if fd, err := unix.Openat(z.jdirFd, zWorkerJ, unix.O_RDONLY|unix.O_CLOEXEC, 0); err == nil {
		err = unix.Fsync(fd)
		unix.Close(fd)
		if err != nil {
			return err
		}
	}
	return unix.Fsync(z.jdirFd)
}

// zredo applies rec to its inode if it still exists and carries rec's id
// (zmatch), syncing it; done reports whether it did.
func (f *FS) zredo(rec *zrec) (done bool, _ error) {
	fd, err := f.openK(rec.kfh, unix.O_RDWR|unix.O_CLOEXEC)
	if err != nil {
		if handleOpenErr(err) == ErrStale {
			return false, nil // removed since: nothing to finish
		}
		return false, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return false, err
	}
	if st.Ino != rec.ino || st.Mode&unix.S_IFMT != unix.S_IFREG || st.Nlink == 0 || !zmatch(fd, rec) {
		return false, nil
	}
	if rec.legacy && rec.compress {
		// Records from before ids: the marker matched by sizes.
		return true, f.zapply(nil, fd, rec, true)
	}
	return true, f.zapply(nil, fd, rec, true)
}

// zmatch reports whether the inode open as fd is still in the rewrite
// that rec describes: its marker carries rec's id. The rewrite stamps the
// id durably before it changes the content, and every later change of the
// inode by the store removes or replaces it, so a record that matches is
// never older than the inode's content. A legacy record (no id) matches a
// "Z1" marker naming its sizes, as it was redone before ids existed.
func zmatch(fd int, rec *zrec) bool {
	var v [zXattrLen + 1]byte
	k, err := unix.Fgetxattr(fd, zXattr, v[:])
	if err != nil {
		return false
	}
	us, cs, id, ok := zparseXattr(v[:k])
	switch {
	case !ok || us != rec.usize:
		return false
	case rec.legacy:
		return id == 0 && (!rec.compress || cs == int64(len(rec.data)))
	}
	return id == rec.id
}

// ---- background compression ----

// zdelivered queues the file handle h for compression when it was moved
// from a directory named tmp into one named new or cur.
func (f *FS) zdelivered(from *node, to *node, h func() (Handle, bool)) {
	z := f.z
	if z == nil || !z.compress {
		return
	}
	if from != nil && dirName(from.pathFd) != "tmp" {
		return
	}
	tn := dirName(to.pathFd)
	if tn != "new" && tn != "cur" {
		return
	}
	hh, ok := h()
	if !ok {
		return
	}
	z.arrivals.Add(1)
	z.pending.Add(1)
	select {
	case z.queue <- hh:
	default:
		z.pending.Add(-1)
		z.dropped.Add(1)
		f.zremember(to, tn)
	}
}

// zremember puts directory d (named tn) in the backlog for a sweep, and
// with a new/ its sibling cur/, where a reader may move the message first.
func (f *FS) zremember(d *node, tn string) {
	// "../cur" stays inside the export: d is not its root.
	if f.z.remember(d.h) || tn != "new" || d.ino == f.rootIno {
		return
	}
	k, mnt, err := nameHandle(d.pathFd, "../cur")
	if err != nil || mnt != f.mountID {
		return
	}
	if ch, ok := f.encodeHandle(k); ok {
		f.z.remember(ch)
	}
}

// remember adds directory h to the backlog unless it is full, and
// reports whether h was there already.
func (z *zstore) remember(h Handle) (known bool) {
	z.bmu.Lock()
	defer z.bmu.Unlock()
	if _, known = z.backlog[string(h)]; !known && len(z.backlog) < zMaxBacklog {
		z.backlog[string(h)] = h
	}
	return known
}

// zsized reports whether a file of size bytes is in the range the worker
// compresses (zMinSize..zMaxFile).
func zsized(size int64) bool { return size >= zMinSize && size <= zMaxFile }

// zQueueLen is the capacity of the background queue (a variable for
// tests).
var zQueueLen = zQueue

// takeBacklog removes and returns one remembered directory.
func (z *zstore) takeBacklog() (Handle, bool) {
	z.bmu.Lock()
	defer z.bmu.Unlock()
	for k, h := range z.backlog {
		delete(z.backlog, k)
		z.sweeping.Add(1) // under bmu, as Stats reads both: it counts the directory once
		return h, true
	}
	return nil, false
}

// pace idles after a group of work that started at t0, when messages
// arrived during it (arrivals moved from a0): see zIdleFactor. It returns
// false once ctx has ended.
func (z *zstore) pace(ctx context.Context, t0 time.Time, a0 uint64) bool {
	if z.arrivals.Load() == a0 {
		return ctx.Err() == nil // no deliveries meanwhile: go on at once
	}
	select {
	case <-ctx.Done():
		return false
	case <-time.After(time.Since(t0) * zIdleFactor):
		return true
	}
}

// zsweep compresses, in groups paced like the queue's, every regular file
// of the directory dh that is not compressed yet: the messages the full
// queue turned away, and any others left plain. The directory must still
// be a new or cur.
func (f *FS) zsweep(ctx context.Context, dh Handle) {
	d, _, err := f.get(dh)
	if err != nil {
		return // gone
	}
	defer f.put(d)
	if tn := dirName(d.pathFd); d.typ != TypeDir || (tn != "new" && tn != "cur") {
		return
	}
	fd, err := unix.Openat(d.pathFd, ".", unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return
	}
	defer unix.Close(fd)
	var batch []Handle
	flush := func() bool {
		t0, a0 := time.Now(), f.z.arrivals.Load()
		f.zcompressLogged(batch)
		batch = batch[:0]
		return f.z.pace(ctx, t0, a0)
	}
	more := true
	eachDirent(fd, make([]byte, direntBuf), func(_, _ uint64, name []byte) bool {
		if string(name) == "." || string(name) == ".." {
			return true
		}
		// One fstatat rules out most files without opening them (which
		// would also push the clients' objects out of the cache): not
		// regular, out of the size range, or known compressed from the
		// state cache.
		var st unix.Stat_t
		if unix.Fstatat(fd, string(name), &st, unix.AT_SYMLINK_NOFOLLOW) != nil ||
			st.Mode&unix.S_IFMT != unix.S_IFREG || !zsized(st.Size) {
			return true
		}
		if e, ok := f.z.lookup(&st); ok && e.usize >= 0 {
			return true
		}
		k, mnt, err := nameHandle(fd, string(name))
		if err != nil || mnt != f.mountID {
			return true // gone, or a mount point
		}
		if h, ok := f.encodeHandle(k); ok {
			batch = append(batch, h)
		}
		if len(batch) == zBatch {
			more = flush()
		}
		return more
	})
	if more && len(batch) > 0 {
		flush()
	}
}

func (f *FS) zworker(ctx context.Context) {
	z := f.z
	for {
		var h Handle
		select {
		case <-ctx.Done():
			return
		case h = <-z.queue:
		default:
			// The queue is empty: sweep a directory whose messages it
			// turned away, if any, else wait for the next message.
			if dh, ok := z.takeBacklog(); ok {
				f.zsweep(ctx, dh)
				z.sweeping.Add(-1)
				continue
			}
			select {
			case <-ctx.Done():
				return
			case h = <-z.queue:
			}
		}
		batch := []Handle{h}
	drain:
		for len(batch) < zBatch {
			select {
			case h := <-z.queue:
				batch = append(batch, h)
			default:
				break drain
			}
		}
		t0, a0 := time.Now(), z.arrivals.Load()
		f.zcompressLogged(batch)
		z.pending.Add(-int64(len(batch)))
		// Duty cycle: leave the CPU and the disk to deliveries most of
		// the time; the queue absorbs bursts and idle time catches up.
		if !z.pace(ctx, t0, a0) {
			return
		}
	}
}

// zcompressLogged is zcompress for the background worker: an error is
// logged (a crash of the test hook is not).
func (f *FS) zcompressLogged(hs []Handle) {
	if _, err := f.zcompress(hs); err != nil && !errors.Is(err, errZCrash) {
		// A lasting cause (a full or read-only state directory) fails
		// every group, several a second while mail arrives.
		if ok, held := f.z.failLog.Allow(struct{}{}, time.Now()); ok {
			f.log.Warn("maildirfs: background compression (logged once a minute)", "err", err, "held_back", held)
		}
	}
}

// zjob is one message being compressed.
type zjob struct {
	n   *node
	fd  int
	rec *zrec
	// state: 0 not marked (left as it was), 1 marked, 2 rewritten, 3
	// done (rewritten and synced), -1 failed (its record is kept).
	state int
}

// zcompress compresses the files named by hs in place, in groups
// (zcompressGroup). Files not worth compressing, already compressed, gone
// or not regular are skipped. It returns how many files it compressed.
func (f *FS) zcompress(hs []Handle) (int, error) {
	total := 0
	for len(hs) > 0 {
		k, used, err := f.zcompressGroup(hs)
		total += k
		hs = hs[used:]
		if err != nil {
			return total, err
		}
	}
	f.zmaybeTrain()
	return total, nil
}

// zcompressGroup compresses a prefix of hs of at most zBatchBytes plain
// bytes; used is the length of that prefix. Every file is locked (zmu),
// read and compressed; all records (each with a new random id) go to the
// worker journal, which is synced; each file's marker is set to its
// record's id and the markers are synced (a record is redone only on a
// file that carries its id, zmatch); each inode is rewritten; the file
// system is synced once; the journal is emptied and the locks are
// released.
//
// A failure that is not a crash fails the files it may have damaged, not
// the group: a file whose rewrite failed, or whose data may not have
// reached the disk (the group's sync failed, and then its own fsync),
// keeps its record (the worker journal is renamed failed-N.j and a new
// one begun) and is finished before its next use (zresolve) or at the
// next Open. A file that is done needs nothing more, and its record,
// should it be redone, changes nothing: same content, same times, and any
// later change by a client replaces the id first.
func (f *FS) zcompressGroup(hs []Handle) (done, used int, _ error) {
	z := f.z
	if z.broken.Load() {
		return 0, len(hs), fmt.Errorf("maildirfs: compression stopped: the worker journal could not be set aside after a failure: %w", unix.EIO)
	}
	var jobs []*zjob
	defer func() {
		for _, j := range jobs {
			j.n.zmu.Unlock()
			f.put(j.n)
		}
	}()
	var bytes int64
	var recs [][]byte
	seen := make(map[string]bool)
	for _, h := range hs {
		if bytes >= zBatchBytes {
			break
		}
		used++
		if seen[string(h)] {
			continue // holding its zmu already: get would wait for ourselves
		}
		seen[string(h)] = true
		n, _, err := f.get(h)
		if err != nil {
			continue
		}
		n.zmu.Lock()
		rec, fd, err := f.zprepare(n)
		if err != nil || rec == nil {
			n.zmu.Unlock()
			f.put(n)
			continue
		}
		jobs = append(jobs, &zjob{n: n, fd: fd, rec: rec})
		recs = append(recs, rec.encode())
		bytes += rec.usize
	}
	if len(jobs) == 0 {
		return 0, used, nil
	}
	z.jmu.Lock()
	defer z.jmu.Unlock()
	var off int64
	var err error
	for _, r := range recs {
		if err = pwriteFull(z.wj, r, off); err != nil {
			break
		}
		off += int64(len(r))
	}
	if err == nil {
		err = unix.Ftruncate(z.wj, off)
	}
	if err == nil {
		err = f.inject(FaultFsync)
	}
	if err == nil {
		err = fdatasync(z.wj)
	}
	if err != nil {
		// Nothing was touched (no marker carries the records' ids):
		// empty the journal and give up the group. The journal is in
		// the state directory, not the export: say so, or a full state
		// directory reads as a full mail disk.
		unix.Ftruncate(z.wj, 0)
		fdatasync(z.wj)
		return 0, used, fmt.Errorf("compression journal %s (in the state directory; these messages stay uncompressed): %w", filepath.Join(z.jdir, zWorkerJ), err)
	}
	if err := zstep("journaled"); err != nil {
		return 0, used, err
	}
	var failed error
	fail := func(j *zjob, err error) {
		j.state = -1
		if failed == nil {
			failed = err
		}
	}
	// Mark: st_size is still the plain size, not the compressed size the
	// marker names, so the file is pending from here on.
	var marked []int
	for _, j := range jobs {
		if err := zstep("xattr"); err != nil {
			return 0, used, err
		}
		if err := unix.Fsetxattr(j.fd, zXattr, zxattrValue(j.rec.usize, int64(len(j.rec.data)), j.rec.id), 0); err != nil {
			if failed == nil {
				failed = err // the file is as it was: nothing to finish
			}
			f.zforget(j.rec.ino)
			continue
		}
		j.state = 1
		marked = append(marked, j.fd)
	}
	if len(marked) > 0 {
		if err := zstep("marked"); err != nil {
			return 0, used, err
		}
		if err := f.zsyncGroup(jobs, marked, true); err != nil {
			for _, j := range jobs {
				if j.state == 1 {
					fail(j, err)
				}
			}
		}
	}
	var applied []int
	for _, j := range jobs {
		if j.state != 1 {
			continue
		}
		if err := f.zapply(j.n, j.fd, j.rec, false); err != nil {
			if errors.Is(err, errZCrash) {
				return done, used, err
			}
			fail(j, err)
			continue
		}
		j.state = 2
		applied = append(applied, j.fd)
	}
	if len(applied) > 0 {
		if err := zstep("fsync"); err != nil {
			return done, used, err
		}
		// One syncfs makes every rewritten inode durable (a journal
		// commit plus their data) instead of one fsync per file
		// (syncRewritten). If it fails, each file's own fsync tells
		// which of them failed (a writeback error of a file is reported
		// to an fsync of that file too).
		gerr := f.zsyncGroup(jobs, applied, false)
		for _, j := range jobs {
			if j.state != 2 {
				continue
			}
			if gerr != nil {
				if err := f.zsync(j.n, j.fd); err != nil {
					fail(j, err)
					continue
				}
			}
			j.state = 3
		}
	}
	if err := zstep("applied"); err != nil {
		return done, used, err
	}
	kept := false
	for _, j := range jobs {
		switch j.state {
		case 3:
			f.zsettled(j.n, j.fd, j.rec)
			done++
			z.compressed.Add(1)
			z.plainBytes.Add(uint64(j.rec.usize))
			z.storedBytes.Add(uint64(len(j.rec.data)))
		case -1:
			kept = true
			f.zforget(j.rec.ino)
			z.failed.Add(1)
			f.log.Error("maildirfs: compressing in place failed; the file is finished before its next use, or from the journal at the next Open", "ino", j.rec.ino, "err", failed)
		}
	}
	if kept {
		if err := f.zkeepJournal(jobs); err != nil {
			return done, used, fmt.Errorf("%w; keeping the journal also failed: %v", failed, err)
		}
		return done, used, failed
	}
	if err := unix.Ftruncate(z.wj, 0); err != nil {
		return done, used, err
	}
	if err := fdatasync(z.wj); err != nil {
		return done, used, err
	}
	return done, used, failed
}

// zsyncGroup makes the changes to the files open as fds (of jobs) durable
// with one sync: where one sync commits all earlier operations
// (commitModel.oneSync) and only markers changed, an fsync of the last;
// else the file system (syncRewritten). A failure counts as a failed sync
// of every file of the group.
func (f *FS) zsyncGroup(jobs []*zjob, fds []int, markers bool) error {
	err := f.inject(FaultFsync)
	if err == nil {
		if markers && f.commit().oneSync {
			err = unix.Fsync(fds[len(fds)-1])
		} else {
			err = syncRewritten(f.rootFd, fds)
		}
	}
	if err != nil {
		for _, j := range jobs {
			j.n.syncFails.Add(1)
		}
		f.syncFailed(err)
	}
	return err
}

// zkeepJournal keeps the records of the group just run for its failed
// files: the worker journal becomes failed-N.j and a new one is begun. If
// that fails the worker stops, so that the records are never overwritten.
func (f *FS) zkeepJournal(jobs []*zjob) error {
	z := f.z
	aside := fmt.Sprintf("failed-%d.j", z.seq.Add(1))
	journal := aside
	err := unix.Renameat(z.jdirFd, zWorkerJ, z.jdirFd, aside)
	if err == nil {
		var wj int
		wj, err = unix.Openat(z.jdirFd, zWorkerJ, unix.O_RDWR|unix.O_CREAT|unix.O_CLOEXEC, 0o600)
		if err == nil {
			unix.Close(z.wj)
			z.wj = wj
			err = unix.Fsync(z.jdirFd)
		}
	} else {
		journal = zWorkerJ
	}
	for _, j := range jobs {
		if j.state == -1 {
			z.keep(j.rec.ino, journal, j.rec.id)
		}
	}
	if err != nil {
		z.broken.Store(true)
		f.log.Error("maildirfs: cannot set the compression journal aside; compression stops until a restart", "err", err)
	}
	return err
}

// zprepare reads and compresses n (the caller holds n.zmu) and returns the
// journal record and a writable fd, or nil when n is to stay as it is:
// not regular, gone, out of the size range, already compressed, or with
// a rewrite to finish.
func (f *FS) zprepare(n *node) (*zrec, int, error) {
	if n.typ != TypeReg {
		return nil, -1, nil
	}
	st, e, err := f.znode(n)
	if err != nil || e.usize >= 0 || f.zunfinished(st, e) || st.Nlink == 0 || !zsized(st.Size) {
		return nil, -1, err
	}
	fd, err := f.io(n, true)
	if err != nil {
		return nil, -1, err
	}
	plain := make([]byte, st.Size)
	if err := preadFull(fd, plain, 0); err != nil {
		return nil, -1, err
	}
	comp := zencodeWith(f.zencoder(), plain)
	f.z.zsample(plain)
	if int64(len(comp)) == st.Size {
		return nil, -1, nil // the marker could not tell the two apart
	}
	if zMinGainDiv > 0 && int64(len(comp)) > st.Size-st.Size/zMinGainDiv {
		return nil, -1, nil
	}
	return &zrec{compress: true, kfh: n.kfh, ino: st.Ino, id: znewID(), csize: int64(len(comp)), atime: st.Atim, mtime: st.Mtim, usize: st.Size, data: comp}, fd, nil
}
