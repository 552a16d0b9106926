// Package crashfs is a power-loss model for maildirfs: a wrapper around a
// *maildirfs.FS that runs operations one at a time, records which of them
// were acknowledged (returned no error) and which syncs each one caused,
// and keeps two copies of an abstract file tree: the live one (every change
// that happened) and the durable one (what a sync has made durable). A
// "crash clone" is the durable tree: it is what would be left after a power
// loss at that moment, if the kernel kept exactly what was fsynced.
//
// After every acknowledged operation the wrapper checks the durability
// contract of docs/design.md, "acknowledged implies synced":
//
//   - CREATE, MKDIR, LINK, REMOVE, RMDIR: the parent directory's entry (or
//     its absence) is in the durable tree;
//   - RENAME: the target entry is durable in the target directory and the
//     source entry is durably gone from the source directory;
//   - WRITE FILE_SYNC or DATA_SYNC: the written bytes are durable;
//   - COMMIT and SETATTR of the size: the whole file content is durable;
//   - an operation during which a sync failed is not acknowledged.
//
// CrashClone writes the durable tree to a real directory so that
// maildirfs.Check can judge the Maildir left after a power loss.
//
// # What this proves, and what not
//
// The store does real system calls on a real file system, and a SIGKILL or
// a power cut of the test machine would not show what the disk kept. This
// model instead proves the ordering inside maildirfs: that every
// acknowledgement is preceded by a sync of each object the operation
// changed (with OneSync, of one of them). A sync is attributed from the
// store's own counters (maildirfs.Stats: FileSyncs for files, DirSyncs for
// directories): since
// operations run one at a time through the wrapper and the store syncs only
// on the caller's goroutine, every sync counted during an operation is a
// sync of an object that operation touched (so the store must be opened
// without Options.Compress, whose background worker syncs on its own
// goroutine); directory syncs are credited in
// the store's documented order (RENAME: target, then source). The model
// assumes the kernel's fsync makes an object's content or entries durable,
// and that nothing is durable without a sync, except what the store's
// CommitModel says a sync also covers (with OneSync, the whole operation).
// It tracks entries and file content, not inode metadata (owner, mode,
// link count), whose syncs maildirfs/doc.go ("Durability") describes.
// Without OneSync the two directories of a RENAME are credited one at a
// time, so a crash between the target's and the source's sync keeps the
// name in both; that is more pessimistic than a file system that commits
// a rename as one unit (btrfs, ZFS, where the store syncs both at once).
// Such a state can only follow a RENAME that was not acknowledged (its
// second sync failed); the tests allow the resulting duplicate Maildir
// name for exactly those.
// It does not model the kernel's own crash behaviour (reordering inside the
// journal, torn writes, or pages dropped after a failed fsync).
package crashfs

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"sync"

	"github.com/mailnfs/mailnfs/maildirfs"
)

// object is one inode of the model: a directory (entries) or a file
// (content), each in its live and durable version.
type object struct {
	dir             bool
	entries, dEntry map[string]uint64 // name -> file id (live, durable)
	data, dData     []byte            // content (live, durable)
}

// FS wraps a *maildirfs.FS and models what is durable. Its operation
// methods are serialised. Use Violations after a run.
type FS struct {
	fs *maildirfs.FS

	mu         sync.Mutex
	objs       map[uint64]*object
	rootID     uint64
	violations []string
	acked      int
	syncs      int // syncs credited to objects
	failed     int // operations that failed with a sync error
}

// Wrap models fs, whose export root is the directory root on disk. The
// tree under root at this moment is taken as durable.
func Wrap(fs *maildirfs.FS, root string) (*FS, error) {
	m := &FS{fs: fs, objs: map[uint64]*object{}}
	a, err := fs.Getattr(fs.Root())
	if err != nil {
		return nil, err
	}
	m.rootID = a.FileID
	if err := m.load(root, a.FileID); err != nil {
		return nil, err
	}
	return m, nil
}

// load reads the directory at path (inode id) and everything below it.
func (m *FS) load(path string, id uint64) error {
	o := &object{dir: true, entries: map[string]uint64{}, dEntry: map[string]uint64{}}
	m.objs[id] = o
	es, err := os.ReadDir(path)
	if err != nil {
		return err
	}
	for _, e := range es {
		info, err := e.Info()
		if err != nil {
			return err
		}
		cid := inode(info)
		o.entries[e.Name()], o.dEntry[e.Name()] = cid, cid
		p := filepath.Join(path, e.Name())
		switch {
		case info.IsDir():
			if err := m.load(p, cid); err != nil {
				return err
			}
		case info.Mode().IsRegular():
			if m.objs[cid] == nil {
				b, err := os.ReadFile(p)
				if err != nil {
					return err
				}
				m.objs[cid] = &object{data: b, dData: bytes.Clone(b)}
			}
		default:
			return fmt.Errorf("crashfs: %s: only directories and regular files are modelled", p)
		}
	}
	return nil
}

// Unwrap returns the store.
func (m *FS) Unwrap() *maildirfs.FS { return m.fs }

// Violations returns every broken "acknowledged implies synced" rule seen.
func (m *FS) Violations() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]string(nil), m.violations...)
}

// Counts returns the number of acknowledged operations, of syncs credited
// to objects, and of operations that failed because a sync failed.
func (m *FS) Counts() (acked, syncs, syncFailed int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.acked, m.syncs, m.failed
}

func (m *FS) violate(format string, args ...any) {
	m.violations = append(m.violations, fmt.Sprintf(format, args...))
}

// deltas are the sync counters one store operation moved.
type deltas struct{ file, dir, errs uint64 }

// run runs one store operation and returns the sync counters it moved
// and its error.
func (m *FS) run(op func() error) (deltas, error) {
	before := m.fs.Stats()
	err := op()
	after := m.fs.Stats()
	return deltas{after.FileSyncs - before.FileSyncs, after.DirSyncs - before.DirSyncs, after.SyncErrors - before.SyncErrors}, err
}

// settle credits the syncs of one operation: files and dirs are the
// objects it touched, in the order the store syncs them. It reports
// whether the operation may stand acknowledged.
func (m *FS) settle(name string, err error, d deltas, files, dirs []uint64) bool {
	if d.errs > 0 {
		m.failed++
		if err == nil {
			m.violate("%s: a sync failed but the operation was acknowledged", name)
		}
		// Which sync failed is unknown: credit none.
		return false
	}
	n := int(d.dir)
	for _, id := range dirs {
		if n == 0 {
			break
		}
		if o := m.objs[id]; o != nil && o.dir {
			o.dEntry = cloneMap(o.entries)
			m.syncs++
		}
		n--
	}
	if d.file > 0 {
		for _, id := range files {
			if o := m.objs[id]; o != nil && !o.dir {
				o.dData = bytes.Clone(o.data)
				m.syncs++
			}
		}
	}
	if err != nil {
		return false
	}
	m.acked++
	return true
}

func cloneMap(in map[string]uint64) map[string]uint64 {
	out := make(map[string]uint64, len(in))
	for k, v := range in {
		out[k] = v
	}
	return out
}

func (m *FS) dirID(h maildirfs.Handle) (uint64, *object, error) {
	a, err := m.fs.Getattr(h)
	if err != nil {
		return 0, nil, err
	}
	o := m.objs[a.FileID]
	if o == nil || !o.dir {
		return 0, nil, fmt.Errorf("crashfs: directory %d is not modelled", a.FileID)
	}
	return a.FileID, o, nil
}

func (m *FS) fileID(h maildirfs.Handle) (uint64, *object, error) {
	a, err := m.fs.Getattr(h)
	if err != nil {
		return 0, nil, err
	}
	o := m.objs[a.FileID]
	if o == nil || o.dir {
		return 0, nil, fmt.Errorf("crashfs: file %d is not modelled", a.FileID)
	}
	return a.FileID, o, nil
}

// checkEntry reports a violation unless dir's durable entry name is id
// (or absent, with id 0).
func (m *FS) checkEntry(op string, dir uint64, name string, id uint64) {
	got, ok := m.objs[dir].dEntry[name]
	switch {
	case id == 0 && ok:
		m.violate("%s: %q acknowledged as gone but still in the durable directory %d", op, name, dir)
	case id != 0 && got != id:
		m.violate("%s: %q acknowledged but the durable directory %d has %d, want %d (parent not synced before the reply)", op, name, dir, got, id)
	}
}

// Create is maildirfs.FS.Create, modelled.
func (m *FS) Create(dir maildirfs.Handle, c maildirfs.Cred, name string, how maildirfs.CreateMode, attr maildirfs.SetAttr, verf [8]byte) (maildirfs.Handle, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	did, dobj, err := m.dirID(dir)
	if err != nil {
		return nil, err
	}
	var h maildirfs.Handle
	var a *maildirfs.Attr
	d, err := m.run(func() (err error) {
		h, a, _, err = m.fs.Create(dir, c, name, how, attr, verf)
		return err
	})
	var fid uint64
	if a != nil {
		fid = a.FileID
		if m.objs[fid] == nil {
			m.objs[fid] = &object{}
		}
		m.objs[fid].data = m.objs[fid].data[:min(len(m.objs[fid].data), int(a.Size))]
		dobj.entries[name] = fid
	} else if err != nil {
		// Failed after the change, perhaps: learn the truth from the
		// store (a CREATE that failed its sync left the file there).
		m.relearn(dir, did, name)
	}
	if m.fs.CommitModel().OneSync && d.file > 0 && d.dir == 0 {
		d.dir = 1 // the new file's sync committed its entry too
	}
	if m.settle("CREATE "+name, err, d, []uint64{fid}, []uint64{did}) {
		m.checkEntry("CREATE", did, name, fid)
	}
	return h, err
}

// relearn updates dir's live entry name from the store after a failed
// operation that may or may not have changed it.
func (m *FS) relearn(dir maildirfs.Handle, did uint64, name string) {
	dobj := m.objs[did]
	_, a, _, err := m.fs.Lookup(dir, maildirfs.Cred{}, name)
	if err != nil {
		delete(dobj.entries, name)
		return
	}
	if m.objs[a.FileID] == nil {
		if a.Type == maildirfs.TypeDir {
			m.objs[a.FileID] = &object{dir: true, entries: map[string]uint64{}, dEntry: map[string]uint64{}}
		} else {
			m.objs[a.FileID] = &object{}
		}
	}
	dobj.entries[name] = a.FileID
}

// Mkdir is maildirfs.FS.Mkdir, modelled.
func (m *FS) Mkdir(dir maildirfs.Handle, c maildirfs.Cred, name string, attr maildirfs.SetAttr) (maildirfs.Handle, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	did, dobj, err := m.dirID(dir)
	if err != nil {
		return nil, err
	}
	var h maildirfs.Handle
	var a *maildirfs.Attr
	d, err := m.run(func() (err error) {
		h, a, _, err = m.fs.Mkdir(dir, c, name, attr)
		return err
	})
	var id uint64
	if a != nil {
		id = a.FileID
		m.objs[id] = &object{dir: true, entries: map[string]uint64{}, dEntry: map[string]uint64{}}
		dobj.entries[name] = id
	} else if err != nil {
		m.relearn(dir, did, name)
	}
	if m.settle("MKDIR "+name, err, d, nil, []uint64{did}) {
		m.checkEntry("MKDIR", did, name, id)
	}
	return h, err
}

// Write is maildirfs.FS.Write, modelled.
func (m *FS) Write(h maildirfs.Handle, c maildirfs.Cred, off uint64, data []byte, stable maildirfs.StableHow) (int, maildirfs.StableHow, [8]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fid, o, err := m.fileID(h)
	if err != nil {
		return 0, 0, [8]byte{}, err
	}
	var n int
	var committed maildirfs.StableHow
	var verf [8]byte
	d, err := m.run(func() (err error) {
		n, committed, verf, _, err = m.fs.Write(h, c, off, data, stable)
		return err
	})
	if n > 0 {
		end := int(off) + n
		if len(o.data) < end {
			o.data = append(o.data, make([]byte, end-len(o.data))...)
		}
		copy(o.data[off:], data[:n])
	}
	if m.settle(fmt.Sprintf("WRITE %d+%d", off, len(data)), err, d, []uint64{fid}, nil) && committed != maildirfs.Unstable {
		if len(o.dData) < int(off)+n || !bytes.Equal(o.dData[off:int(off)+n], data[:n]) {
			m.violate("WRITE %d+%d of file %d acknowledged as %v but its data is not durable", off, n, fid, committed)
		}
	}
	return n, committed, verf, err
}

// Commit is maildirfs.FS.Commit, modelled.
func (m *FS) Commit(h maildirfs.Handle, c maildirfs.Cred) ([8]byte, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	fid, o, err := m.fileID(h)
	if err != nil {
		return [8]byte{}, err
	}
	var verf [8]byte
	d, err := m.run(func() (err error) {
		verf, _, err = m.fs.Commit(h, c, 0, 0)
		return err
	})
	if m.settle("COMMIT", err, d, []uint64{fid}, nil) && !bytes.Equal(o.dData, o.data) {
		m.violate("COMMIT of file %d acknowledged but %d of its %d bytes are not durable", fid, diffBytes(o.dData, o.data), len(o.data))
	}
	return verf, err
}

// Truncate is maildirfs.FS.SetAttr of the size, modelled.
func (m *FS) Truncate(h maildirfs.Handle, c maildirfs.Cred, size uint64) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	fid, o, err := m.fileID(h)
	if err != nil {
		return err
	}
	d, err := m.run(func() error {
		_, err := m.fs.SetAttr(h, c, maildirfs.SetAttr{Size: &size}, nil)
		return err
	})
	if err == nil || d.errs > 0 {
		if int(size) <= len(o.data) {
			o.data = o.data[:size]
		} else {
			o.data = append(o.data, make([]byte, int(size)-len(o.data))...)
		}
	}
	if m.settle("SETATTR size", err, d, []uint64{fid}, nil) && !bytes.Equal(o.dData, o.data) {
		m.violate("SETATTR size %d of file %d acknowledged but not durable", size, fid)
	}
	return err
}

// Rename is maildirfs.FS.Rename, modelled.
func (m *FS) Rename(from maildirfs.Handle, fromName string, to maildirfs.Handle, toName string, c maildirfs.Cred) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	fid, fobj, err := m.dirID(from)
	if err != nil {
		return err
	}
	tid, tobj, err := m.dirID(to)
	if err != nil {
		return err
	}
	moved, had := fobj.entries[fromName]
	d, err := m.run(func() error {
		_, _, err := m.fs.Rename(from, fromName, to, toName, c)
		return err
	})
	if err == nil || d.errs > 0 {
		if had && !(fid == tid && fromName == toName) {
			delete(fobj.entries, fromName)
			tobj.entries[toName] = moved
		}
	}
	dirs := []uint64{tid}
	if fid != tid {
		dirs = append(dirs, fid)
		if m.fs.CommitModel().OneSync && d.dir == 1 {
			d.dir = 2 // the target's sync committed the whole rename
		}
	}
	if m.settle("RENAME "+fromName+" "+toName, err, d, nil, dirs) {
		m.checkEntry("RENAME (target)", tid, toName, moved)
		if fid != tid || fromName != toName {
			m.checkEntry("RENAME (source)", fid, fromName, 0)
		}
	}
	return err
}

// Remove is maildirfs.FS.Remove (or Rmdir with dir set), modelled.
func (m *FS) Remove(dir maildirfs.Handle, c maildirfs.Cred, name string, isDir bool) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	did, dobj, err := m.dirID(dir)
	if err != nil {
		return err
	}
	op := "REMOVE"
	d, err := m.run(func() error {
		var err error
		if isDir {
			op = "RMDIR"
			_, err = m.fs.Rmdir(dir, c, name)
		} else {
			_, err = m.fs.Remove(dir, c, name)
		}
		return err
	})
	if err == nil || d.errs > 0 {
		delete(dobj.entries, name)
	}
	if m.settle(op+" "+name, err, d, nil, []uint64{did}) {
		m.checkEntry(op, did, name, 0)
	}
	return err
}

// Link is maildirfs.FS.Link, modelled.
func (m *FS) Link(file, dir maildirfs.Handle, name string, c maildirfs.Cred) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	fid, _, err := m.fileID(file)
	if err != nil {
		return err
	}
	did, dobj, err := m.dirID(dir)
	if err != nil {
		return err
	}
	d, err := m.run(func() error {
		_, _, err := m.fs.Link(file, dir, name, c)
		return err
	})
	if err == nil || d.errs > 0 {
		dobj.entries[name] = fid
	}
	if m.settle("LINK "+name, err, d, nil, []uint64{did}) {
		m.checkEntry("LINK", did, name, fid)
	}
	return err
}

func diffBytes(a, b []byte) int {
	n := 0
	for i := range max(len(a), len(b)) {
		if i >= len(a) || i >= len(b) || a[i] != b[i] {
			n++
		}
	}
	return n
}

// CrashClone writes the durable tree into dir (which must not exist): the
// state a power loss right now would leave, as far as the model knows.
// Hard links become separate copies.
func (m *FS) CrashClone(dir string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.clone(dir, m.rootID, 0)
}

func (m *FS) clone(path string, id uint64, depth int) error {
	if depth > 64 {
		return errors.New("crashfs: durable tree too deep (a cycle?)")
	}
	if err := os.Mkdir(path, 0o755); err != nil {
		return err
	}
	o := m.objs[id]
	names := make([]string, 0, len(o.dEntry))
	for n := range o.dEntry {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		cid := o.dEntry[n]
		c := m.objs[cid]
		p := filepath.Join(path, n)
		switch {
		case c == nil:
			return fmt.Errorf("crashfs: durable entry %s names unknown object %d", p, cid)
		case c.dir:
			if err := m.clone(p, cid, depth+1); err != nil {
				return err
			}
		default:
			if err := os.WriteFile(p, c.dData, 0o600); err != nil {
				return err
			}
		}
	}
	return nil
}

// Live returns the live content of the file named by the path elements
// below the root, and the durable content, for tests.
func (m *FS) Live(path ...string) (live, durable []byte, ok bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	id := m.rootID
	for _, p := range path {
		o := m.objs[id]
		if o == nil || !o.dir {
			return nil, nil, false
		}
		if id, ok = o.entries[p]; !ok {
			return nil, nil, false
		}
	}
	o := m.objs[id]
	if o == nil || o.dir {
		return nil, nil, false
	}
	return o.data, o.dData, true
}
