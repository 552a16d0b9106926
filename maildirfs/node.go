package maildirfs

import (
	"container/list"
	"sync"
	"sync/atomic"

	"github.com/mailnfs/mailnfs/internal/groupcommit"
	"golang.org/x/sys/unix"
)

// node is one open object in the handle cache.
type node struct {
	key    string   // kernelFH.key()
	kfh    kernelFH // to reopen with other flags
	h      Handle
	pathFd int      // stat, *at calls as dirfd (Linux: O_PATH; FreeBSD: O_RDONLY, -1 for special files; sys_*.go)
	typ    FileType // never changes for an inode
	ino    uint64

	ioMu       sync.Mutex // guards opening ioFd
	ioFd       int        // -1 until needed; reg: O_RDWR (or O_RDONLY), dir: O_RDONLY
	ioWritable bool
	oldFds     []int // replaced ioFds, closed with the node; guarded by ioMu

	curMu   sync.Mutex   // guards curs
	curs    []*dirCursor // open directory cursors, at most maxDirCursors
	nextCur int          // round robin when all are busy; guarded by curMu

	sync      groupcommit.Syncer // group commit of fsyncs of ioFd
	syncFails atomic.Uint64      // failed syncs of ioFd, ever (they may have lost writes)

	// Directories (dirchange.go): wseq counts the namespace changes of
	// the directory in progress and those begun and ended (its wcc
	// data); claims (guarded by cmu) holds the names reserved by a
	// creation or a RENAME, each with a channel closed when it ends.
	wseq   atomic.Uint64
	cmu    sync.Mutex
	claims map[string]chan struct{}
	// checked is when a directory was last found inside the export
	// (FS.since; fs.go, connected).
	checked atomic.Int64

	// Compression (compress.go). zmu: readers (READ, WRITE, SETATTR of the
	// size) hold it shared, a rewrite in place exclusively.
	zmu       sync.RWMutex
	zfmu      sync.Mutex    // guards the fields below
	zidx      *zindex       // parsed index of the compressed file
	zidxCtime unix.Timespec // ctime zidx was read at
	zfi       int           // frame held in zfbuf, -1: none (zero: set by zread before use)
	zfbuf     []byte

	// attrMu serializes SETATTRs of the object, so that a guard's ctime
	// is checked and the change made with no other SETATTR between them.
	attrMu sync.Mutex

	// acl is the access ACL as last read (acl.go); nil until needed.
	acl atomic.Pointer[aclCache]

	// Guarded by nodeCache.mu.
	refs    int
	elem    *list.Element
	dropped bool
}

// nodeCache is a bounded LRU of open nodes keyed by kernel handle. Nodes in
// use (refs > 0) are never closed; a dropped or evicted node is closed when
// its last user releases it.
type nodeCache struct {
	mu    sync.Mutex
	max   int
	byKey map[string]*node // guarded by mu
	byIno map[uint64]*node // guarded by mu
	lru   *list.List       // guarded by mu; front = most recent
}

func (c *nodeCache) init(max int) {
	c.max = max
	c.byKey = make(map[string]*node)
	c.byIno = make(map[uint64]*node)
	c.lru = list.New()
	caches.Lock()
	if caches.set == nil {
		caches.set = make(map[*nodeCache]struct{})
	}
	caches.set[c] = struct{}{}
	caches.Unlock()
}

// caches holds the node cache of every open FS of the process. Each
// cache is bounded on its own (MaxOpenNodes), so with several exports
// their sum can exceed the process's file descriptor limit; the cache of
// the export that then needs a descriptor may have none to give back.
// An open that fails for want of descriptors (outOfFds) therefore sheds
// unused nodes of every cache (ShedUnused) and is tried once more.
// Lock order: caches -> nodeCache.mu.
var caches struct {
	sync.Mutex
	set map[*nodeCache]struct{}
}

// outOfFds reports the errors of an open that found the process's (EMFILE)
// or the system's (ENFILE) file table full.
func outOfFds(err error) bool { return err == unix.EMFILE || err == unix.ENFILE }

// ShedUnused closes the least recently used half of the unused nodes
// (cached files and directories) of every open FS of the process, so that
// an open or an accept that found the file table full (outOfFds) can be
// tried again: the stores' caches are then what holds most descriptors.
// It runs only on that failure (in the store, and in a server's accept).
func ShedUnused() {
	var victims []*node
	caches.Lock()
	for c := range caches.set {
		victims = c.shed(victims)
	}
	caches.Unlock()
	for _, v := range victims {
		v.close()
	}
}

// shed removes about half of c's unused nodes, least recently used first,
// appends them to victims (to be closed by the caller) and returns it.
func (c *nodeCache) shed(victims []*node) []*node {
	c.mu.Lock()
	defer c.mu.Unlock()
	unused := 0
	for e := c.lru.Front(); e != nil; e = e.Next() {
		if e.Value.(*node).refs == 0 {
			unused++
		}
	}
	for e := c.lru.Back(); e != nil && unused > 0; {
		prev := e.Prev()
		if v := e.Value.(*node); v.refs == 0 {
			c.removeLocked(v)
			victims = append(victims, v)
			unused -= 2 // half: stop when as many are kept as shed
		}
		e = prev
	}
	return victims
}

func (c *nodeCache) len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.byKey)
}

// lookup returns a referenced node or nil.
func (c *nodeCache) lookup(key string) *node {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.byKey[key]
	if n == nil {
		return nil
	}
	n.refs++
	c.lru.MoveToFront(n.elem)
	return n
}

// insert adds n with one reference, or returns the node already cached for
// its key (closing n's fd).
func (c *nodeCache) insert(n *node) *node {
	c.mu.Lock()
	if old := c.byKey[n.key]; old != nil {
		old.refs++
		c.lru.MoveToFront(old.elem)
		c.mu.Unlock()
		n.close()
		return old
	}
	n.refs = 1
	n.elem = c.lru.PushFront(n)
	c.byKey[n.key] = n
	c.byIno[n.ino] = n
	var victims []*node
	for e := c.lru.Back(); e != nil && len(c.byKey) > c.max; {
		prev := e.Prev()
		v := e.Value.(*node)
		if v.refs == 0 {
			c.removeLocked(v)
			victims = append(victims, v)
		}
		e = prev
	}
	c.mu.Unlock()
	for _, v := range victims {
		v.close()
	}
	return n
}

func (c *nodeCache) removeLocked(n *node) {
	if n.dropped {
		return
	}
	n.dropped = true
	c.lru.Remove(n.elem)
	delete(c.byKey, n.key)
	if c.byIno[n.ino] == n {
		delete(c.byIno, n.ino)
	}
}

// release drops one reference.
func (c *nodeCache) release(n *node) {
	c.mu.Lock()
	n.refs--
	closeIt := n.refs == 0 && n.dropped
	c.mu.Unlock()
	if closeIt {
		n.close()
	}
}

// lookupIno returns the referenced cached node of inode ino, or nil.
func (c *nodeCache) lookupIno(ino uint64) *node {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.byIno[ino]
	if n == nil {
		return nil
	}
	n.refs++
	return n
}

// drop removes n from the cache (its object is gone); it is closed once
// unused.
func (c *nodeCache) drop(n *node) {
	c.mu.Lock()
	c.removeLocked(n)
	c.mu.Unlock()
}

// dropIno drops the cached node for inode ino, if any (after its last link
// was removed, so its fd does not keep the space allocated).
func (c *nodeCache) dropIno(ino uint64) {
	c.mu.Lock()
	n := c.byIno[ino]
	var closeIt bool
	if n != nil {
		c.removeLocked(n)
		closeIt = n.refs == 0
	}
	c.mu.Unlock()
	if closeIt {
		n.close()
	}
}

func (c *nodeCache) closeAll() {
	caches.Lock()
	delete(caches.set, c)
	caches.Unlock()
	c.mu.Lock()
	var all []*node
	for _, n := range c.byKey {
		all = append(all, n)
	}
	for _, n := range all {
		c.removeLocked(n)
	}
	c.mu.Unlock()
	for _, n := range all {
		n.close()
	}
}

// stat stats n through its path fd (or, where it has none, its handle).
func (n *node) stat(st *unix.Stat_t) error { return pathStat(n.pathFd, n.kfh, st) }

func (n *node) close() {
	if n.pathFd >= 0 {
		unix.Close(n.pathFd)
		n.pathFd = -1
	}
	if n.ioFd >= 0 {
		unix.Close(n.ioFd)
		n.ioFd = -1
	}
	for _, c := range n.curs {
		unix.Close(c.fd)
	}
	n.curs = nil
	for _, fd := range n.oldFds {
		unix.Close(fd)
	}
	n.oldFds = nil
}

// io returns an fd usable for read/write/fsync/getdents. For regular files
// it is opened O_RDWR when possible (the server runs as root; permissions
// are checked in user space), else O_RDONLY; for directories O_RDONLY.
func (f *FS) io(n *node, needWrite bool) (int, error) {
	n.ioMu.Lock()
	defer n.ioMu.Unlock()
	if n.ioFd >= 0 && (!needWrite || n.ioWritable) {
		return n.ioFd, nil
	}
	var fd int
	var err error
	writable := false
	switch n.typ {
	case TypeDir:
		fd, err = f.openNode(n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
	case TypeReg:
		if !f.opts.ReadOnly {
			fd, err = f.openNode(n, unix.O_RDWR|unix.O_CLOEXEC)
			writable = err == nil
		}
		if !writable {
			if needWrite && err != nil {
				return -1, err
			}
			fd, err = f.openNode(n, unix.O_RDONLY|unix.O_CLOEXEC)
		}
	default:
		return -1, unix.EINVAL
	}
	if err != nil {
		if err == unix.ESTALE {
			return -1, ErrStale
		}
		return -1, err
	}
	if needWrite && !writable {
		unix.Close(fd)
		return -1, unix.EROFS
	}
	if n.ioFd >= 0 {
		// Upgrade O_RDONLY -> O_RDWR. Others may still be using the old fd
		// without a lock: close it only with the node.
		n.oldFds = append(n.oldFds, n.ioFd)
	}
	n.ioFd, n.ioWritable = fd, writable
	return fd, nil
}

// maxDirCursors bounds the open directory fds per directory node, so that
// concurrent READDIRs of one big directory do not all queue on one fd.
const maxDirCursors = 4

// dirCursor is one directory fd whose file offset is the READDIR position;
// mu makes lseek+getdents atomic.
type dirCursor struct {
	mu sync.Mutex
	fd int
}

// cursor returns a locked cursor of directory n: a free one, a new one if
// fewer than maxDirCursors exist, else (round robin) a busy one after
// waiting for it. The caller unlocks c.mu.
func (f *FS) cursor(n *node) (*dirCursor, error) {
	n.curMu.Lock()
	for _, c := range n.curs {
		if c.mu.TryLock() {
			n.curMu.Unlock()
			return c, nil
		}
	}
	if len(n.curs) < maxDirCursors {
		fd, err := f.openNode(n, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC)
		if err != nil {
			n.curMu.Unlock()
			if err == unix.ESTALE {
				return nil, ErrStale
			}
			return nil, err
		}
		c := &dirCursor{fd: fd}
		c.mu.Lock()
		n.curs = append(n.curs, c)
		n.curMu.Unlock()
		return c, nil
	}
	c := n.curs[n.nextCur%len(n.curs)]
	n.nextCur++
	n.curMu.Unlock()
	c.mu.Lock()
	return c, nil
}
