package nfsd

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/maildirfs"
)

// The Access and Authorizer types of docs/design.md are declared in
// authorizer.go; Exports below is their implementation.

// ErrExportsClosed is returned by Reload after Close.
var ErrExportsClosed = errors.New("nfsd: exports closed")

// ErrInsecurePort is returned by Authorize for a call from a source port of
// 1024 or more to an export whose rule for the client says secure
// (Rule.Secure). It wraps NFS3ERR_PERM, the status Linux knfsd answers.
var ErrInsecurePort = fmt.Errorf("nfsd: call from an unreserved source port to a secure export: %w", nfs3.StatusPerm)

// reservedPorts is IPPORT_RESERVED: source ports below it can only be
// bound by root, which is what "secure" asks of a client.
const reservedPorts = 1024

// maxInsecureLogged bounds the (client, export) pairs whose refusals for
// an unreserved port were logged; when full, the set starts over.
const maxInsecureLogged = 4096

// ExportsOptions configure OpenExports.
type ExportsOptions struct {
	// StateDir holds the handle key shared by every export (see
	// maildirfs.Options.StateDir). Required.
	StateDir string
	// Logger receives reload and store messages. Nil discards.
	Logger *slog.Logger
	// NoChown is passed to every store: created objects keep the server's
	// uid (a server not running as root).
	NoChown bool
	// HandleSearch is passed to every store (maildirfs.Options).
	HandleSearch bool
	// SyncWindow is passed to every store (group commit wait); zero syncs
	// at once.
	SyncWindow time.Duration
	// OpenStore opens the store of one export. Nil means maildirfs.Open;
	// tests wrap stores with it (fault injection, counting).
	OpenStore func(root string, opts maildirfs.Options) (Store, error)
	// Denied, if set, is called for every refused MNT and NFS call with
	// the rule that refused it (Config.Denied). It must not block.
	Denied func(rule string)
}

// Exports is the live export table: the parsed rules plus one open Store per
// exported directory, each opened with ExportID(path) as its handle export
// id and the shared StateDir, so handles route back to their export and
// survive restarts.
//
// It implements Authorizer for every NFS call and answers MOUNT's
// questions. The rules sit in an immutable snapshot behind an
// atomic.Pointer: Reload builds a new snapshot and swaps it in, and calls
// already running finish on the snapshot they loaded.
//
// Stores are kept by path while the table serves the path: a reload that
// drops a path (or finds an mp export unmounted) retires its store, which
// is closed retireGrace later (a call in flight may still use it); its
// compression worker stops at once (pauseCompression). A
// reload that brings the path back within that time, on the same
// directory, takes the retired store back (one tree never has two stores,
// which would run two compression workers on one journal); later, it
// opens a new one, and handles stay valid across stores. Close closes
// them all.
// An Exports is safe for concurrent use.
type Exports struct {
	opts ExportsOptions
	log  *slog.Logger
	cur  atomic.Pointer[exportSet]

	// mu serialises Reload and Close; it guards stores and closed. It is
	// never held while a call is served.
	mu struct {
		sync.Mutex
		stores map[string]Store // by export path
		// compress is the Compress each store was opened with, by path.
		compress map[string]string
		// ids identify the directory each store was opened on, by path
		// (zero if it could not be read).
		ids map[string]fileID
		// retired are stores a reload dropped (their path is no longer
		// served) or replaced (another file system was mounted on their
		// directory); calls in flight may still use them, so each is
		// closed retireGrace later, or by Close.
		retired []retiredStore
		// retireSeq numbers retirements, so that the timer of an
		// earlier retirement of a store brought back since does not
		// close it.
		retireSeq uint64
		closed    bool
		// closedStats are the counters of the retired stores closed
		// since, summed by the path they served: PathStats adds them to
		// the path's live stores, so that a path's counters in the
		// metrics do not fall back to zero when a reload gives it a new
		// store.
		closedStats map[string]maildirfs.Stats
	}

	// insecure remembers the (client, export) pairs already logged as
	// refused for an unreserved source port, so each is logged once.
	insecure struct {
		sync.Mutex
		logged map[string]bool
	}
}

var _ Authorizer = (*Exports)(nil)

// exportSet is one immutable snapshot of the table.
type exportSet struct {
	table *ExportTable
	byID  map[uint32]*liveExport
	list  []*liveExport // table order
}

// retiredStore is a store a reload retired, waiting to be closed.
type retiredStore struct {
	store    Store
	path     string // the export path it served
	compress string // as opened
	id       fileID // the directory it was opened on
	seq      uint64
}

// liveExport is an export with its open store.
type liveExport struct {
	*Export
	store Store
	dir   fileID // the directory the store opened; zero if not known
}

// OpenExports opens a store for every export in t and returns the live
// table. On error nothing stays open.
func OpenExports(t *ExportTable, opts ExportsOptions) (*Exports, error) {
	if opts.StateDir == "" {
		return nil, errors.New("nfsd: ExportsOptions.StateDir is required")
	}
	x := &Exports{opts: opts, log: opts.Logger}
	if x.log == nil {
		x.log = slog.New(slog.DiscardHandler)
	}
	x.mu.stores = map[string]Store{}
	x.mu.compress = map[string]string{}
	x.mu.ids = map[string]fileID{}
	if err := x.Reload(t); err != nil {
		return nil, err
	}
	return x, nil
}

// Reload makes t the table that new calls see. Stores for new paths are
// opened first; if one fails, the ones just opened are closed, the old
// table stays in force and the error (naming the export's file position)
// is returned.
//
// An export with a Mountpoint that is not a mount point now is left out of
// the new table (logged as an error; the rest is served). One whose
// directory is another than when its store was opened (a file system
// mounted or remounted there since, or the directory replaced) gets a new
// store. A store replaced, or whose path the new table does not serve,
// stays open for calls in flight for retireGrace (or until Close). One
// whose directory is gone fails the reload, as it fails Start, and so
// does a compressing export that overlaps another (compressOverlap).
func (x *Exports) Reload(t *ExportTable) error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.mu.closed {
		return ErrExportsClosed
	}
	if err := compressOverlap(t.Exports); err != nil {
		return err
	}
	set := &exportSet{table: t, byID: make(map[uint32]*liveExport, len(t.Exports))}
	type storeState struct {
		store    Store
		compress string
		id       fileID
	}
	var opened []string
	var revived []retiredStore
	replaced := map[string]storeState{}
	fail := func(err error) error {
		for _, p := range opened {
			if cerr := x.mu.stores[p].Close(); cerr != nil {
				err = fmt.Errorf("%w; closing %s also failed: %v", err, p, cerr)
			}
			delete(x.mu.stores, p)
			delete(x.mu.compress, p)
			delete(x.mu.ids, p)
		}
		for _, r := range revived {
			delete(x.mu.stores, r.path)
			delete(x.mu.compress, r.path)
			delete(x.mu.ids, r.path)
			x.retireLocked(r)
		}
		for p, old := range replaced {
			x.mu.stores[p], x.mu.compress[p], x.mu.ids[p] = old.store, old.compress, old.id
			resumeCompression(old.store)
		}
		return err
	}
	for _, e := range t.Exports {
		if msg := mountpointProblem(e); msg != "" {
			x.log.Error("exports: "+e.MountpointPos.String()+": "+msg, "export", e.Path, "mountpoint", e.Mountpoint)
			continue
		}
		st := x.mu.stores[e.Path]
		if st != nil {
			// The store holds the directory it opened, whatever is at
			// the path now: a file system mounted or remounted there, or
			// the directory replaced (moved away and another put in its
			// place) gets a new store, as the path is what the exports
			// name. A directory gone fails the reload below, as at start.
			id, err := dirID(e.Path)
			if was := x.mu.ids[e.Path]; was == (fileID{}) {
				// Not known (a test's OpenStore without a directory).
				id, err = was, nil
			}
			if err == nil && id != x.mu.ids[e.Path] {
				x.log.Info("exports: the export's directory is another than when it was opened (replaced, or another file system mounted there); serving the new one",
					"export", e.Path, "pos", e.Pos.String())
			}
			if err != nil || id != x.mu.ids[e.Path] {
				replaced[e.Path] = storeState{st, x.mu.compress[e.Path], x.mu.ids[e.Path]}
				// Before the new store opens: one tree, one worker.
				pauseCompression(st)
				st = nil
			}
		}
		if st == nil && replaced[e.Path].store == nil {
			// A path back within retireGrace of being dropped gets
			// its store back: two stores of one tree would run two
			// compression workers on one journal.
			if r, ok := x.reviveLocked(e.Path); ok {
				revived = append(revived, r)
				st = r.store
				resumeCompression(st)
				x.mu.stores[e.Path], x.mu.compress[e.Path], x.mu.ids[e.Path] = r.store, r.compress, r.id
				if r.compress != e.Compress {
					x.log.Warn("exports: compress changed for an open export; it takes effect when mailnfsd restarts",
						"export", e.Path, "pos", e.Pos.String(), "running", r.compress, "file", e.Compress)
				}
			}
		}
		if st == nil {
			var err error
			st, err = x.open(e)
			if err != nil {
				return fail(fmt.Errorf("%s: export %s: %w", e.Pos, e.Path, err))
			}
			x.mu.stores[e.Path] = st
			x.mu.compress[e.Path] = e.Compress
			x.mu.ids[e.Path], _ = dirID(e.Path)
			opened = append(opened, e.Path)
		} else if old := x.mu.compress[e.Path]; old != e.Compress {
			// The store stays open (calls in flight use it), so the
			// setting it was opened with stays until a restart.
			x.log.Warn("exports: compress changed for an open export; it takes effect when mailnfsd restarts",
				"export", e.Path, "pos", e.Pos.String(), "running", old, "file", e.Compress)
		}
		if o := set.byID[e.ID]; o != nil {
			// ParseExports rejects colliding ids; a hand-built table
			// might not.
			return fail(fmt.Errorf("%s: export %s has the same handle id as %s", e.Pos, e.Path, o.Path))
		}
		le := &liveExport{Export: e, store: st, dir: x.mu.ids[e.Path]}
		set.byID[e.ID] = le
		set.list = append(set.list, le)
	}
	x.cur.Store(set)
	for p, old := range replaced {
		x.retireLocked(retiredStore{store: old.store, path: p, compress: old.compress, id: old.id})
	}
	// A path the new table does not serve (dropped from the file, or an
	// mp export no longer mounted) has its store retired too: kept, it
	// held its fds and node cache (and a detached file system) for the
	// life of the process, one more for every path ever dropped.
	served := make(map[string]bool, len(set.list))
	for _, le := range set.list {
		served[le.Path] = true
	}
	for p, st := range x.mu.stores {
		if !served[p] {
			x.retireLocked(retiredStore{store: st, path: p, compress: x.mu.compress[p], id: x.mu.ids[p]})
			delete(x.mu.stores, p)
			delete(x.mu.compress, p)
			delete(x.mu.ids, p)
		}
	}
	return nil
}

// retireLocked closes r's store, no longer in the table, retireGrace from
// now (or at Close): calls in flight may still use it.
func (x *Exports) retireLocked(r retiredStore) {
	pauseCompression(r.store)
	x.mu.retireSeq++
	r.seq = x.mu.retireSeq
	x.mu.retired = append(x.mu.retired, r)
	time.AfterFunc(retireGrace, func() { x.closeRetired(r.store, r.seq) })
}

// compressionPauser is a store with a compression worker (maildirfs.FS).
type compressionPauser interface {
	PauseCompression()
	ResumeCompression()
}

// pauseCompression stops st's compression worker, if it has one, once its
// current rewrite is done: a retired or replaced store stays open for
// calls in flight, and another store may serve the same tree by then; two
// workers must never rewrite one file.
func pauseCompression(st Store) {
	if p, ok := st.(compressionPauser); ok {
		p.PauseCompression()
	}
}

// resumeCompression starts again the worker pauseCompression stopped, for
// a store back in service.
func resumeCompression(st Store) {
	if p, ok := st.(compressionPauser); ok {
		p.ResumeCompression()
	}
}

// reviveLocked takes back from the retired stores the one of path, if it
// was opened on the directory path names now.
func (x *Exports) reviveLocked(path string) (retiredStore, bool) {
	id, err := dirID(path)
	if err != nil {
		return retiredStore{}, false
	}
	for i, r := range x.mu.retired {
		if r.path == path && r.id == id {
			x.mu.retired = slices.Delete(x.mu.retired, i, i+1)
			return r, true
		}
	}
	return retiredStore{}, false
}

// retireGrace is how long a store dropped or replaced by a reload stays open for the
// calls still using it: longer than any call should run. A variable for
// tests.
var retireGrace = 2 * time.Minute

// closeRetired closes st, a store retired by a reload, unless Close has
// closed it already.
func (x *Exports) closeRetired(st Store, seq uint64) {
	x.mu.Lock()
	i := slices.IndexFunc(x.mu.retired, func(r retiredStore) bool { return r.store == st && r.seq == seq })
	if x.mu.closed || i < 0 {
		x.mu.Unlock()
		return
	}
	// Its counts until now stay in the path's counters (PathStats);
	// a call still running on it may add a few more that are lost.
	path := x.mu.retired[i].path
	if x.mu.closedStats == nil {
		x.mu.closedStats = map[string]maildirfs.Stats{}
	}
	c := x.mu.closedStats[path]
	addCounters(&c, st.Stats())
	x.mu.closedStats[path] = c
	x.mu.retired = slices.Delete(x.mu.retired, i, i+1)
	x.mu.Unlock()
	if err := st.Close(); err != nil {
		x.log.Warn("exports: closing a replaced export store failed", "err", err)
	}
}

func (x *Exports) open(e *Export) (Store, error) {
	o := maildirfs.Options{
		StateDir:   x.opts.StateDir,
		ExportID:   e.ID,
		NoChown:    x.opts.NoChown,
		SyncWindow: x.opts.SyncWindow,

		HandleSearch: x.opts.HandleSearch,
		Compress:     e.Compress,
		Logger:       x.log.With("export", e.Path),
	}
	if x.opts.OpenStore != nil {
		return x.opts.OpenStore(e.Path, o)
	}
	fs, err := maildirfs.Open(e.Path, o)
	if err != nil {
		return nil, err
	}
	// How many syncs an operation costs depends on the file system
	// (maildirfs.CommitModel): worth a line when sizing a box.
	m := fs.CommitModel()
	limited, why := maildirfs.UserWriteLimits()
	o.Logger.Info("nfsd: export opened", "one_sync_per_op", m.OneSync, "rename_synced_at_once", m.RenameAtomic, "user_writes_limited", limited)
	if !limited {
		o.Logger.Warn("nfsd: users' writes are not held to the file system's limits for users", "why", why)
	}
	if maildirfs.UnsafeWriteOnly {
		o.Logger.Error("nfsd: MEASURING BUILD (tag mailnfs_unsafe_writeonly): CREATE, RENAME and the other namespace operations are NOT durable; never serve mail with it", "export", e.Path)
	}
	return fs, nil
}

// Close closes every store. Calls still running may fail afterwards; close
// the server first.
func (x *Exports) Close() error {
	x.mu.Lock()
	defer x.mu.Unlock()
	if x.mu.closed {
		return nil
	}
	x.mu.closed = true
	var errs []error
	for p, st := range x.mu.stores {
		if err := st.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close export %s: %w", p, err))
		}
	}
	for _, r := range x.mu.retired {
		if err := r.store.Close(); err != nil {
			errs = append(errs, fmt.Errorf("close a replaced export store: %w", err))
		}
	}
	x.mu.stores, x.mu.retired = nil, nil
	return errors.Join(errs...)
}

// Table returns the table in force.
func (x *Exports) Table() *ExportTable { return x.cur.Load().table }

// Store returns the store of the export at path, or nil.
func (x *Exports) Store(path string) Store {
	for _, le := range x.cur.Load().list {
		if le.Path == path {
			return le.store
		}
	}
	return nil
}

// PathStats returns the Stats of the store serving the export at path,
// with its counters (syncs, cache hits and misses, compressions and their
// bytes, trainings) summed over every store that has served path in this
// process: the one serving it now, those a reload retired (still open
// for calls in flight, or closed since). A reload that drops a path and
// brings it back after retireGrace, or that finds another directory at
// it, opens a new store, whose own counts start at zero; the metrics
// read these sums, so that their counters never go down. ok is false
// when no store serves path now.
func (x *Exports) PathStats(path string) (st maildirfs.Stats, ok bool) {
	// Under mu, so that no store is counted twice or not at all while a
	// reload or closeRetired moves it.
	x.mu.Lock()
	defer x.mu.Unlock()
	s := x.Store(path)
	if s == nil {
		return st, false
	}
	st = s.Stats()
	for _, r := range x.mu.retired {
		if r.path == path && r.store != s {
			addCounters(&st, r.store.Stats())
		}
	}
	addCounters(&st, x.mu.closedStats[path])
	return st, true
}

// addCounters adds the counter fields of s to dst; gauges (open nodes,
// the compression queue, dictionaries) stay dst's.
func addCounters(dst *maildirfs.Stats, s maildirfs.Stats) {
	dst.FileSyncCalls += s.FileSyncCalls
	dst.DirSyncCalls += s.DirSyncCalls
	dst.SyncCalls += s.SyncCalls
	dst.FileSyncs += s.FileSyncs
	dst.DirSyncs += s.DirSyncs
	dst.SyncBatches += s.SyncBatches
	dst.SyncErrors += s.SyncErrors
	dst.CacheHits += s.CacheHits
	dst.CacheMisses += s.CacheMisses
	dst.Compressed += s.Compressed
	dst.Expanded += s.Expanded
	dst.CompressDropped += s.CompressDropped
	dst.CompressFailed += s.CompressFailed
	dst.CompressPlainBytes += s.CompressPlainBytes
	dst.CompressStoredBytes += s.CompressStoredBytes
	dst.CompressTrainings += s.CompressTrainings
}

// Authorize routes handle h to its export by the export id in the handle
// (maildirfs.ExportIDOf), checks the client's address against that
// export's rules and maps the credential. Errors: maildirfs.ErrBadHandle
// (not one of our handles), maildirfs.ErrStale (no export with that id any
// more), ErrAccess (the client may not use the export) and
// ErrInsecurePort (the client's rule says secure and the call came from
// port 1024 or above).
func (x *Exports) Authorize(req *Request, h []byte) (Access, error) {
	id, ok := maildirfs.ExportIDOf(h)
	if !ok {
		return Access{}, maildirfs.ErrBadHandle
	}
	le := x.cur.Load().byID[id]
	if le == nil {
		return Access{}, maildirfs.ErrStale
	}
	r := le.Match(req.Addr.Addr())
	if r == nil {
		x.denied("nfs:host:" + le.Path)
		return Access{}, ErrAccess
	}
	if !x.portAllowed(req, le.Export, r, "nfs") {
		return Access{}, ErrInsecurePort
	}
	return Access{Store: le.store, Cred: r.Squash.Map(req.AuthSys), ReadOnly: r.ReadOnly, Export: le.Path}, nil
}

// portAllowed reports whether req may use export e under rule r: a rule
// that says secure (Rule.Secure) requires a reserved source port. A
// refusal is reported to Denied as what+":insecure_port:"+path and logged
// at Warn once per client and export.
func (x *Exports) portAllowed(req *Request, e *Export, r *Rule, what string) bool {
	if !r.Secure || req.Addr.Port() < reservedPorts {
		return true
	}
	x.denied(what + ":insecure_port:" + e.Path)
	client := req.Addr.Addr().Unmap()
	key := client.String() + "\x00" + e.Path
	x.insecure.Lock()
	first := !x.insecure.logged[key]
	if first {
		if x.insecure.logged == nil || len(x.insecure.logged) >= maxInsecureLogged {
			x.insecure.logged = map[string]bool{}
		}
		x.insecure.logged[key] = true
	}
	x.insecure.Unlock()
	if first {
		x.log.Warn("nfsd: refused calls from an unreserved source port: the export's rule for this client says secure (logged once per client and export)",
			"client", client, "port", req.Addr.Port(), "export", e.Path, "rule", r.Pos.String(), "proto", what)
	}
	return false
}

// denied reports a refusal to ExportsOptions.Denied.
func (x *Exports) denied(rule string) {
	if x.opts.Denied != nil {
		x.opts.Denied(rule)
	}
}

// resolve finds the export a MOUNT dirpath names: the export itself, or the
// export with the longest path above it (rel is then the rest, without a
// leading slash). path must be cleaned. le is nil if no export covers it.
func (s *exportSet) resolve(path string) (le *liveExport, rel string) {
	for _, e := range s.list {
		switch {
		case e.Path == path:
			return e, ""
		case e.Path == "/" || strings.HasPrefix(path, e.Path+"/"):
			if le == nil || len(e.Path) > len(le.Path) {
				le = e
			}
		}
	}
	if le == nil {
		return nil, ""
	}
	return le, strings.TrimPrefix(strings.TrimPrefix(path, le.Path), "/")
}
