package maildirfs

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mailnfs/mailnfs/internal/ratelog"
)

// keyFile is the name of the handle key inside Options.StateDir.
const keyFile = "maildirfs-handle.key"

// FS is one export: a directory tree served through fd-relative system
// calls. All methods are safe for concurrent use.
type FS struct {
	root     string
	rootFd   int  // O_RDONLY|O_DIRECTORY; also the mount fd for open_by_handle_at (Linux)
	search   bool // handles are resolved by searching the tree (Options.HandleSearch, search.go)
	rootDev  uint64
	rootIno  uint64
	mountID  uint64 // of the root (Linux mount id, FreeBSD fsid): kernel handles from other mounts are refused
	rootNode *node  // pinned in the cache
	rootH    Handle

	commitOnce sync.Once
	commitM    commitModel // the file system's, found on first use (commit)

	// corruptLog limits the lines about a compressed file that does not
	// decode (or was left half rewritten) to one a minute per inode: a
	// client may read or write it again and again (each call fails with
	// EIO).
	corruptLog ratelog.Limiter[uint64]

	key      [32]byte
	macs     sync.Pool // of hash.Hash: HMAC-SHA256 keyed with key
	exportID uint32
	fsid     uint64
	opts     Options
	log      *slog.Logger

	cache nodeCache
	z     *zstore // nil: no compression (compress.go)

	verfMu sync.Mutex
	verf   [8]byte // guarded by verfMu

	closed atomic.Bool
	opened time.Time // monotonic base of since

	// The sweep of unlinked nodes (sweepUnlinked): closed by Close to
	// stop it, and by it once stopped.
	sweepStop, sweepDone chan struct{}

	stats struct {
		fileSyncCalls, dirSyncCalls atomic.Uint64
		fileSyncs, dirSyncs         atomic.Uint64
		syncErrors                  atomic.Uint64
		hits, misses                atomic.Uint64
	}
}

// Open opens the export rooted at root. The handle key is read from (or
// created in) opts.StateDir. Open fails if the process may not call
// open_by_handle_at (it needs CAP_DAC_READ_SEARCH: run mailnfsd as root, or
// grant only that capability and set NoChown, as mailnfsd does when not
// root); there is no weaker fallback mode.
func Open(root string, opts Options) (*FS, error) {
	return open(root, opts, false)
}

// open is Open; zforce sets up compression state even for an unmarked tree.
func open(root string, opts Options, zforce bool) (*FS, error) {
	if opts.StateDir == "" {
		return nil, errors.New("maildirfs: Options.StateDir is required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxOpenNodes <= 0 {
		opts.MaxOpenNodes = 1024
	}
	f := &FS{root: root, exportID: opts.ExportID, opts: opts, log: opts.Logger, opened: time.Now()}
	key, created, err := loadKey(opts.StateDir)
	if err != nil {
		return nil, err
	}
	for _, w := range keyExposure(opts.StateDir) {
		opts.Logger.Warn("maildirfs: "+w, "state_dir", opts.StateDir)
	}
	if created == keyRestored {
		opts.Logger.Warn("maildirfs: the handle key was gone from the state directory while mailnfsd ran (the directory removed or emptied); wrote back the key this process signs handles with, so that they survive the next restart. Anything else that was there (drc.log, the compression journal) was lost with it",
			"key", filepath.Join(opts.StateDir, keyFile))
	} else if created == keyCreated {
		// The same as a first start, unless the state directory was lost
		// or replaced: then every handle given out before fails its MAC
		// (ErrBadHandle), and only this line tells the operator why.
		opts.Logger.Warn("maildirfs: no handle key in the state directory; created a new one. Expected on a first start; otherwise the state directory was lost or replaced, and clients that mounted before get NFS3ERR_BADHANDLE until they mount again",
			"key", filepath.Join(opts.StateDir, keyFile))
	}
	f.key = key
	f.fsid = binary.BigEndian.Uint64(f.mac(binary.BigEndian.AppendUint32([]byte("fsid"), opts.ExportID))[:8])
	if _, err := rand.Read(f.verf[:]); err != nil {
		return nil, fmt.Errorf("maildirfs: write verifier: %w", err)
	}
	fd, err := unix.Open(root, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: root, Err: err}
	}
	f.rootFd = fd
	// The offline tools (Compact, Expand: zforce) rewrite files outside
	// any store's locks and retire the compression journal: they must
	// have the tree alone. Stores share it. The lock goes with the fd.
	how := unix.LOCK_SH
	if zforce {
		how = unix.LOCK_EX
	}
	if err := unix.Flock(fd, how|unix.LOCK_NB); err != nil && err != unix.EWOULDBLOCK {
		// A file system without flock: serve it, without the guard.
		opts.Logger.Warn("maildirfs: cannot lock the export root; mailnfsd compact or expand would not see that it is served", "root", root, "err", err)
	} else if err != nil {
		unix.Close(fd)
		if zforce {
			return nil, fmt.Errorf("maildirfs: %s is being served (a mailnfsd has it open; a store taken out of the exports by a reload stays open a few minutes): stop mailnfsd first: %w", root, unix.EBUSY)
		}
		return nil, fmt.Errorf("maildirfs: %s is being converted by mailnfsd compact or expand; serve it once that has finished: %w", root, unix.EBUSY)
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return nil, &os.PathError{Op: "fstat", Path: root, Err: err}
	}
	f.rootDev, f.rootIno = st.Dev, st.Ino
	k, mnt, err := fdHandle(fd, fd, ".")
	if err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EPERM) { // FreeBSD: getfhat needs root too
			return nil, fmt.Errorf("maildirfs: %s: %w", handlePrivilegeHint, err)
		}
		return nil, fmt.Errorf("maildirfs: %s on %s (filesystem without exportable handles?): %w", handleCall, root, err)
	}
	k.bytes = append([]byte(nil), k.bytes...)
	h, ok := f.encodeHandle(k)
	if !ok {
		unix.Close(fd)
		return nil, fmt.Errorf("maildirfs: kernel file handle of %s too large (%d bytes, type %d)", root, len(k.bytes), k.typ)
	}
	// Probe handle resolution now so a missing privilege fails Open, not
	// every request later.
	pfd, err := openPath(fd, k)
	if errors.Is(err, unix.EPERM) && opts.HandleSearch {
		f.search = true
		opts.Logger.Warn("maildirfs: "+handleOpenCall+" not permitted (not root): handles not cached are found by searching the export, which is slow for more than a few thousand files; fine for a demo, not for service (run mailnfsd as root)", "root", root)
		pfd, err = openChildPath(fd, ".")
	}
	if err != nil {
		unix.Close(fd)
		if errors.Is(err, unix.EPERM) {
			return nil, fmt.Errorf("maildirfs: %s: %w", handlePrivilegeHint, err)
		}
		return nil, fmt.Errorf("maildirfs: %s on %s: %w", handleOpenCall, root, err)
	}
	f.cache.init(opts.MaxOpenNodes)
	f.rootH = h
	f.mountID = mnt
	n := &node{key: k.key(), kfh: k, h: h, pathFd: pfd, ioFd: -1, typ: TypeDir, ino: st.Ino}
	f.rootNode = n
	f.cache.insert(n) // refs = 1: pinned forever
	if f.search && (opts.Compress != "" || zmarked(fd)) {
		f.cache.closeAll()
		unix.Close(fd)
		return nil, fmt.Errorf("maildirfs: %s: compression at rest needs it (%s is compressed or to be): %w", handlePrivilegeHint, root, unix.EPERM)
	}
	if err := f.zopen(zforce); err != nil {
		f.cache.closeAll()
		unix.Close(fd)
		return nil, err
	}
	f.sweepStop, f.sweepDone = make(chan struct{}), make(chan struct{})
	go f.sweepLoop(unlinkedSweep)
	return f, nil
}

// unlinkedSweep is how often the store looks for cached objects that a
// local process removed (sweepUnlinked). A variable for tests.
var unlinkedSweep = 2 * time.Second

// sweepLoop runs sweepUnlinked every period until Close.
func (f *FS) sweepLoop(period time.Duration) {
	defer close(f.sweepDone)
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-f.sweepStop:
			return
		case <-t.C:
			f.sweepUnlinked()
		}
	}
}

// sweepUnlinked drops the unused cached nodes whose object has no link
// left. Their fds would otherwise keep the inode, and a file's blocks,
// allocated until the LRU evicted them or a request came for them:
// REMOVE and RENAME over a name drop the node of the last link
// themselves, but a local process's rm (a local IMAP server expunging,
// an operator freeing a user's mail) is not seen. knfsd closes its cached
// files on the same event (fsnotify). One stat per unused node, off the
// request path.
func (f *FS) sweepUnlinked() {
	c := &f.cache
	c.mu.Lock()
	cands := make([]*node, 0, len(c.byKey))
	for _, n := range c.byKey {
		if n.refs == 0 {
			n.refs++ // held across the stat: not closed under it
			cands = append(cands, n)
		}
	}
	c.mu.Unlock()
	for _, n := range cands {
		var st unix.Stat_t
		if n.stat(&st) == nil && st.Nlink == 0 {
			c.drop(n)
			f.zgone(n.ino)
		}
		f.put(n)
	}
}

// keyExposure reports how the handle key in dir is open to other local
// users: whoever reads it can sign handles (any file of the export's file
// system, for a client the exports admit), whoever may write the
// directory can put their own key in its place for the next start.
func keyExposure(dir string) []string {
	var ws []string
	if st, err := os.Stat(dir); err == nil && st.Mode().Perm()&0o022 != 0 {
		if st.Mode()&os.ModeSticky == 0 {
			ws = append(ws, fmt.Sprintf("the state directory is writable by group or others (mode %04o): a local user could replace the handle key; chmod go-w it", st.Mode().Perm()))
		} else {
			// The sticky bit keeps others from replacing the files
			// there, not from creating the ones that are missing.
			ws = append(ws, fmt.Sprintf("the state directory is writable by group or others (mode 1%03o, sticky, like /tmp): a local user could create the files mailnfsd makes there (a handle key of their own if it is ever missing, drc.log, the compression journal); use a directory of its own that only root writes (default /var/lib/mailnfsd)", st.Mode().Perm()))
		}
	}
	if st, err := os.Stat(filepath.Join(dir, keyFile)); err == nil && st.Mode().Perm()&0o077 != 0 {
		ws = append(ws, fmt.Sprintf("the handle key is readable or writable by group or others (mode %04o): whoever reads it can forge file handles; chmod 600 it", st.Mode().Perm()))
	}
	return ws
}

// checkKey fails unless b, read from the key file p, is a key.
func checkKey(p string, b []byte) error {
	if len(b) != 32 {
		return fmt.Errorf("maildirfs: %s: %d bytes, want 32 (restore it from a backup; or remove it, and clients get NFS3ERR_BADHANDLE until they mount again): %w", p, len(b), ErrCorrupt)
	}
	return nil
}

// CheckStateDir reports what would fail Open in the state directory dir
// before a store opens (mailnfsd -check-config): dir not a directory, or a
// handle key that cannot be read or is not a key. A missing dir or key is
// no error: Open creates it.
func CheckStateDir(dir string) error {
	if st, err := os.Stat(dir); err == nil && !st.IsDir() {
		return fmt.Errorf("maildirfs: state dir %s: %w", dir, unix.ENOTDIR)
	}
	p := filepath.Join(dir, keyFile)
	b, err := os.ReadFile(p)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("maildirfs: read key: %w", err)
	}
	return checkKey(p, b)
}

// keyOrigin says where loadKey's key came from.
type keyOrigin int

const (
	keyRead     keyOrigin = iota // the key file
	keyCreated                   // a new key, written to the missing file
	keyRestored                  // the key this process loaded before, written back to the missing file
)

// loadedKeys holds the handle key each state directory had when this
// process first loaded it. A store opened later (a reload) that finds the
// key file gone writes this one back rather than a new key: the stores
// already open sign with it, and a new key on disk would fail every handle
// they gave out at the next restart.
var loadedKeys struct {
	sync.Mutex
	m map[string][32]byte // by filepath.Clean(dir)
}

// loadKey reads the 32-byte handle key, creating it (0600) on first use;
// origin reports whether this call created it or wrote back the one this
// process loaded before.
func loadKey(dir string) (key [32]byte, origin keyOrigin, err error) {
	loadedKeys.Lock()
	defer loadedKeys.Unlock()
	known, ok := loadedKeys.m[filepath.Clean(dir)]
	key, origin, err = loadKeyFile(dir, known, ok)
	if err == nil && !ok {
		if loadedKeys.m == nil {
			loadedKeys.m = make(map[string][32]byte)
		}
		loadedKeys.m[filepath.Clean(dir)] = key
	}
	return key, origin, err
}

// RestoreKey writes back the handle key this process loaded from stateDir
// if the key file is gone (the state directory removed or emptied while
// the server runs): the stores sign with it, and the next start would
// otherwise make a new key and fail every handle given out. It reports
// whether it wrote it. A state directory no store of this process has
// loaded a key from, and a key file that is there, are left alone.
func RestoreKey(stateDir string) (bool, error) {
	loadedKeys.Lock()
	defer loadedKeys.Unlock()
	known, ok := loadedKeys.m[filepath.Clean(stateDir)]
	if !ok {
		return false, nil
	}
	if _, err := os.Lstat(filepath.Join(stateDir, keyFile)); !errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	_, origin, err := loadKeyFile(stateDir, known, true)
	return origin == keyRestored, err
}

// loadKeyFile is loadKey: a missing key file is created with known, if
// haveKnown, else with a new random key.
func loadKeyFile(dir string, known [32]byte, haveKnown bool) (key [32]byte, origin keyOrigin, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return key, keyRead, fmt.Errorf("maildirfs: state dir: %w", err)
	}
	p := filepath.Join(dir, keyFile)
	for range 3 {
		b, err := os.ReadFile(p)
		if err == nil {
			if err := checkKey(p, b); err != nil {
				return key, keyRead, err
			}
			copy(key[:], b)
			return key, origin, nil
		}
		if !errors.Is(err, os.ErrNotExist) {
			return key, keyRead, fmt.Errorf("maildirfs: read key: %w", err)
		}
		// Write a temporary file, sync it, then link it into place: two
		// concurrent Opens agree on one key.
		if haveKnown {
			key = known
		} else if _, err := rand.Read(key[:]); err != nil {
			return key, keyRead, err
		}
		tmp, err := os.CreateTemp(dir, keyFile+".tmp*")
		if err != nil {
			return key, keyRead, fmt.Errorf("maildirfs: create key: %w", err)
		}
		err = tmp.Chmod(0o600)
		if err == nil {
			_, err = tmp.Write(key[:])
		}
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			err = os.Link(tmp.Name(), p)
			if err == nil {
				origin = keyCreated
				if haveKnown {
					origin = keyRestored
				}
			}
			if errors.Is(err, os.ErrExist) {
				err = nil
			}
		}
		os.Remove(tmp.Name())
		if err != nil {
			return key, keyRead, fmt.Errorf("maildirfs: write key: %w", err)
		}
		if d, err := os.Open(dir); err == nil {
			d.Sync()
			d.Close()
		}
	}
	return key, keyRead, fmt.Errorf("maildirfs: could not establish key in %s", dir)
}

// Close closes every cached fd. Calls after Close fail.
func (f *FS) Close() error {
	if f.closed.Swap(true) {
		return nil
	}
	close(f.sweepStop)
	<-f.sweepDone
	f.zclose()
	f.cache.closeAll()
	return unix.Close(f.rootFd)
}

// Root returns the handle of the export root.
func (f *FS) Root() Handle { return append(Handle(nil), f.rootH...) }

// FSID returns the fsid reported in every Attr; it is derived from the key
// and the export id, so it is constant across restarts.
func (f *FS) FSID() uint64 { return f.fsid }

// WriteVerifier returns the current write verifier: random per Open,
// replaced after any failed sync.
func (f *FS) WriteVerifier() [8]byte {
	f.verfMu.Lock()
	defer f.verfMu.Unlock()
	return f.verf
}

func (f *FS) rotateVerifier() {
	var v [8]byte
	rand.Read(v[:])
	f.verfMu.Lock()
	f.verf = v
	f.verfMu.Unlock()
}

// Stats returns a snapshot of the counters.
func (f *FS) Stats() Stats {
	s := Stats{
		FileSyncCalls: f.stats.fileSyncCalls.Load(),
		DirSyncCalls:  f.stats.dirSyncCalls.Load(),
		FileSyncs:     f.stats.fileSyncs.Load(),
		DirSyncs:      f.stats.dirSyncs.Load(),
		SyncErrors:    f.stats.syncErrors.Load(),
		CacheHits:     f.stats.hits.Load(),
		CacheMisses:   f.stats.misses.Load(),
		OpenNodes:     f.cache.len(),
	}
	if z := f.z; z != nil {
		s.Compressed, s.Expanded = z.compressed.Load(), z.expanded.Load()
		s.CompressPending = int(z.pending.Load())
		z.bmu.Lock()
		s.CompressBacklog = len(z.backlog) + int(z.sweeping.Load())
		z.bmu.Unlock()
		s.CompressDropped, s.CompressFailed = z.dropped.Load(), z.failed.Load()
		s.CompressPlainBytes, s.CompressStoredBytes = z.plainBytes.Load(), z.storedBytes.Load()
		s.CompressDict, s.CompressDicts = z.learn.dictID.Load(), int(z.learn.dicts.Load())
		s.CompressTrainings = z.learn.trains.Load()
	}
	s.SyncCalls = s.FileSyncCalls + s.DirSyncCalls
	s.SyncBatches = s.FileSyncs + s.DirSyncs
	return s
}

// inject runs the fault hook for op.
func (f *FS) inject(op FaultOp) error {
	if f.opts.Inject == nil {
		return nil
	}
	return f.opts.Inject(op)
}

// get resolves h to a referenced node and its current stat. The caller must
// f.put(n). ErrBadHandle: not ours; ErrStale: the object is gone, or is a
// directory no longer inside the export (connected, recheck).
func (f *FS) get(h Handle) (*node, *unix.Stat_t, error) {
	n, st, _, err := f.getGen(h)
	return n, st, err
}

// getGen is get that also returns n.wseq as read before the stat (for a
// directory: dirChange may then use the stat as its before attributes).
func (f *FS) getGen(h Handle) (*node, *unix.Stat_t, uint64, error) {
	if f.closed.Load() {
		return nil, nil, 0, syscall.EBADF
	}
	n := f.cachedHandle(h) // a hit needs no MAC computation
	if n != nil {
		f.stats.hits.Add(1)
	} else {
		k, err := f.decodeHandle(h)
		if err != nil {
			return nil, nil, 0, err
		}
		f.stats.misses.Add(1)
		fd, err := f.openKPath(k)
		if err != nil {
			if e := handleOpenErr(err); e != nil {
				return nil, nil, 0, e
			}
			return nil, nil, 0, fmt.Errorf("%s: %w", handleOpenCall, err)
		}
		var st unix.Stat_t
		if err := pathStat(fd, k, &st); err != nil {
			unix.Close(fd)
			return nil, nil, 0, err
		}
		if st.Dev != f.rootDev || st.Nlink == 0 {
			unix.Close(fd)
			return nil, nil, 0, ErrStale
		}
		typ := fileType(uint32(st.Mode))
		if typ == TypeDir {
			// As knfsd (nfsd_acceptable): a directory moved out of the
			// export by a local process is no longer reachable.
			if err := f.connected(fd); err != nil {
				unix.Close(fd)
				return nil, nil, 0, err
			}
		}
		k.bytes = append([]byte(nil), k.bytes...)
		n = f.cache.insert(f.newNode(k, append(Handle(nil), h...), fd, &st))
	}
	if n.typ == TypeDir && n != f.rootNode {
		if err := f.recheck(n); err != nil {
			f.put(n)
			return nil, nil, 0, err
		}
	}
	st := new(unix.Stat_t)
	gen := n.wseq.Load()
	if f.z != nil && n.typ == TypeReg {
		// Never observe a rewrite in progress (compress.go).
		n.zmu.RLock()
		defer n.zmu.RUnlock()
	}
	if err := n.stat(st); err != nil {
		f.put(n)
		return nil, nil, 0, err
	}
	if st.Nlink == 0 {
		f.cache.drop(n)
		f.put(n)
		return nil, nil, 0, ErrStale
	}
	f.zfixFd(n.pathFd, st)
	return n, st, gen, nil
}

func (f *FS) put(n *node) { f.cache.release(n) }

// maxDirDepth bounds the walk up from a directory to the export root
// (connected): a directory deeper below the root is treated as outside.
// The walk costs an openat and an fstat a level, and stops at the first
// ancestor vouched for by the cache, so deep trees cost that once.
const maxDirDepth = 4096

// dirRecheck is how long a cached directory node is trusted to be inside
// the export before a request finds out again (recheck). A variable for
// tests.
var dirRecheck = time.Second

// since is the time since Open on the monotonic clock, for node.checked.
func (f *FS) since() int64 { return int64(time.Since(f.opened)) }

// connected returns nil if the directory open as fd is inside the export:
// its ancestors, opened one by one through ".." (an fd a level, oWalk,
// each step from the one before, so that a rename elsewhere in the chain
// during the walk cannot make it skip or repeat a level; at most
// maxDirDepth), include the export root, or a cached directory that was
// found inside it within dirRecheck. Otherwise ErrStale: a local process
// moved it out of the export (the walk reaches the root of the file
// system, whose ".." is itself, or leaves the file system), which knfsd
// answers with NFS3ERR_STALE too (nfsd_acceptable checks a directory even
// with no_subtree_check).
func (f *FS) connected(fd int) error {
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return err
	}
	cur := fd // not ours to close
	defer func() {
		if cur != fd {
			unix.Close(cur)
		}
	}()
	for range maxDirDepth {
		if st.Dev != f.rootDev {
			return ErrStale // left the export's file system
		}
		if st.Ino == f.rootIno {
			return nil
		}
		up, err := unix.Openat(cur, "..", oWalk|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			if errors.Is(err, unix.ENOENT) {
				return ErrStale // removed meanwhile
			}
			return err
		}
		if cur != fd {
			unix.Close(cur)
		}
		cur = up
		var pst unix.Stat_t
		if err := unix.Fstat(cur, &pst); err != nil {
			return err
		}
		if pst.Dev == st.Dev && pst.Ino == st.Ino {
			return ErrStale // the root of the file system: its ".." is itself
		}
		if pst.Dev == f.rootDev && f.vouched(pst.Ino) {
			return nil
		}
		st = pst
	}
	return ErrStale
}

// newNode makes the node of the object with kernel handle k and handle h,
// open as path fd fd with stat st. A directory is known to be inside the
// export now: it was found there (a name in a directory inside) or
// connected said so.
func (f *FS) newNode(k kernelFH, h Handle, fd int, st *unix.Stat_t) *node {
	n := &node{key: k.key(), kfh: k, h: h, pathFd: fd, ioFd: -1, typ: fileType(uint32(st.Mode)), ino: st.Ino}
	if n.typ == TypeDir {
		n.checked.Store(f.since())
	}
	return n
}

// vouched reports whether the directory with inode ino has a cached node
// found inside the export within dirRecheck: then so is everything below
// it (connected stops there).
func (f *FS) vouched(ino uint64) bool {
	c := &f.cache
	c.mu.Lock()
	n := c.byIno[ino]
	ok := n != nil && n.typ == TypeDir && !n.dropped
	c.mu.Unlock()
	return ok && f.since()-n.checked.Load() < int64(dirRecheck)
}

// recheck makes sure that a cached directory node is still inside the
// export once per dirRecheck (a local process may have moved it out since
// it was cached): if not, the node is dropped and ErrStale returned, and
// so is every later request for it (the handle no longer resolves).
func (f *FS) recheck(n *node) error {
	now := f.since()
	last := n.checked.Load()
	if now-last < int64(dirRecheck) || !n.checked.CompareAndSwap(last, now) {
		return nil // checked recently, or another request checks it now
	}
	if err := f.connected(n.pathFd); err != nil {
		f.cache.drop(n)
		return err
	}
	return nil
}

// attr converts a stat to an Attr.
func (f *FS) attr(st *unix.Stat_t) *Attr {
	return &Attr{
		Type:      fileType(uint32(st.Mode)),
		Mode:      uint32(st.Mode) & 0o7777,
		Nlink:     uint32(st.Nlink),
		UID:       st.Uid,
		GID:       st.Gid,
		Size:      uint64(st.Size),
		Used:      uint64(st.Blocks) * 512,
		RdevMajor: unix.Major(st.Rdev),
		RdevMinor: unix.Minor(st.Rdev),
		FSID:      f.fsid,
		FileID:    st.Ino,
		Atime:     ts(st.Atim),
		Mtime:     ts(st.Mtim),
		Ctime:     ts(st.Ctim),
	}
}

func ts(t unix.Timespec) time.Time { return time.Unix(t.Sec, t.Nsec) }

func wccAttr(st *unix.Stat_t) *WccAttr {
	if st == nil {
		return nil
	}
	return &WccAttr{Size: uint64(st.Size), Mtime: ts(st.Mtim), Ctime: ts(st.Ctim)}
}

func fileType(mode uint32) FileType {
	switch mode & unix.S_IFMT {
	case unix.S_IFDIR:
		return TypeDir
	case unix.S_IFLNK:
		return TypeLnk
	case unix.S_IFBLK:
		return TypeBlk
	case unix.S_IFCHR:
		return TypeChr
	case unix.S_IFSOCK:
		return TypeSock
	case unix.S_IFIFO:
		return TypeFifo
	}
	return TypeReg
}

// postAttr stats n now; nil if that fails (post_op_attr is optional).
func (f *FS) postAttr(n *node) *Attr {
	var st unix.Stat_t
	if n.stat(&st) != nil {
		return nil
	}
	f.zfixFd(n.pathFd, &st)
	return f.attr(&st)
}

var _ io.Closer = (*FS)(nil)
