package client

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"path"
	"strings"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// Wire types re-exported for callers outside the module's internal tree.
type (
	// Attr is fattr3.
	Attr = nfs3.Fattr
	// SetAttr is sattr3: nil pointers and DontChange leave a field alone.
	SetAttr = nfs3.SetAttr
	// Time is nfstime3.
	Time = nfs3.Time
	// WccData is wcc_data: attributes before and after an operation.
	WccData = nfs3.WccData
	// FileType is ftype3.
	FileType = nfs3.FileType
	// StableHow is stable_how for WRITE.
	StableHow = nfs3.StableHow
	// CreateMode is createmode3.
	CreateMode = nfs3.CreateMode
	// SpecData is specdata3 (device major and minor).
	SpecData = nfs3.SpecData
	// FSStat is the FSSTAT result.
	FSStat = nfs3.FsstatRes
	// FSInfo is the FSINFO result.
	FSInfo = nfs3.FsinfoRes
	// Pathconf is the PATHCONF result.
	Pathconf = nfs3.PathconfRes
	// DirEntry is one READDIR entry.
	DirEntry = nfs3.Entry
	// DirEntryPlus is one READDIRPLUS entry; Attr and Handle may be nil.
	DirEntryPlus = nfs3.EntryPlus
)

// Stable-how and create-mode values.
const (
	Unstable  = nfs3.Unstable
	DataSync  = nfs3.DataSync
	FileSync  = nfs3.FileSync
	Unchecked = nfs3.Unchecked
	Guarded   = nfs3.Guarded
	Exclusive = nfs3.Exclusive
)

// JUKEBOX back-off: first wait, doubling up to the maximum (Linux waits 5 s).
const (
	jukeboxFirstWait = 100 * time.Millisecond
	jukeboxMaxWait   = 5 * time.Second
)

type encoder interface{ Encode(*xdr.Encoder) }
type decoder interface{ Decode(*xdr.Decoder) }

// call runs one NFSv3 procedure and decodes its result into res. Decode
// failures are errors; the caller checks the status.
func (c *Client) call(ctx context.Context, proc nfs3.Proc, name string, args encoder, res decoder) error {
	var fn func(*xdr.Encoder)
	if args != nil {
		fn = args.Encode
	}
	b, err := c.rpc.Call(ctx, nfs3.Program, nfs3.Version, uint32(proc), c.auth, fn)
	// RFC 1813 §2.6: NFS3ERR_JUKEBOX means "try again later"; like the
	// Linux client, wait and resend as a new call (new XID). Every NFSv3
	// result starts with its nfsstat3.
	for wait := jukeboxFirstWait; err == nil && len(b) >= 4 && nfs3.Status(binary.BigEndian.Uint32(b)) == nfs3.StatusJukebox; wait = min(2*wait, jukeboxMaxWait) {
		c.log.Debug("client: NFS3ERR_JUKEBOX, retrying", "proc", proc.String(), "wait", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return statusErr(proc, name, nfs3.StatusJukebox)
		case <-t.C:
		}
		b, err = c.rpc.Call(ctx, nfs3.Program, nfs3.Version, uint32(proc), c.auth, fn)
		if err != nil && ctx.Err() != nil {
			// The deadline ended a retry: the server's last word was
			// "try again later", which says more than the deadline.
			return statusErr(proc, name, nfs3.StatusJukebox)
		}
	}
	if err != nil {
		if e, ok := err.(*Error); ok {
			e.Op, e.Path = proc.String(), name
			return e
		}
		return fmt.Errorf("client: %s %s: %w", proc, name, err)
	}
	if res == nil {
		return nil
	}
	d := xdr.NewDecoder(b)
	res.Decode(d)
	if err := d.Err(); err != nil {
		return fmt.Errorf("client: %s %s: bad reply: %w", proc, name, err)
	}
	if n := d.Remaining(); n > 0 {
		// Tolerated, as the Linux client does: stock go-nfs appends 4
		// bytes to FSSTAT.
		c.log.Debug("client: trailing bytes after reply", "proc", proc.String(), "bytes", n)
	}
	return nil
}

func statusErr(proc nfs3.Proc, name string, s nfs3.Status) error {
	if s == nfs3.StatusOK {
		return nil
	}
	return &Error{Prog: rpc.ProgNFS, Proc: uint32(proc), Op: proc.String(), Path: name, Status: s}
}

// Null pings the NFS server (procedure 0).
func (c *Client) Null(ctx context.Context) error {
	return c.call(ctx, nfs3.ProcNull, "", nil, nil)
}

// Getattr returns the attributes of fh.
func (c *Client) Getattr(ctx context.Context, fh []byte) (*Attr, error) {
	var r nfs3.GetattrRes
	if err := c.call(ctx, nfs3.ProcGetattr, "", &nfs3.GetattrArgs{Object: fh}, &r); err != nil {
		return nil, err
	}
	if err := statusErr(nfs3.ProcGetattr, "", r.Status); err != nil {
		return nil, err
	}
	return &r.Attr, nil
}

// Setattr changes attributes of fh. With guard set, the server applies the
// change only if the object's ctime still equals *guard (NFS3ERR_NOT_SYNC
// otherwise).
func (c *Client) Setattr(ctx context.Context, fh []byte, attr SetAttr, guard *Time) (WccData, error) {
	a := nfs3.SetattrArgs{Object: fh, NewAttr: attr}
	if guard != nil {
		a.Guard = nfs3.Guard{Check: true, Ctime: *guard}
	}
	var r nfs3.SetattrRes
	if err := c.call(ctx, nfs3.ProcSetattr, "", &a, &r); err != nil {
		return WccData{}, err
	}
	return r.Wcc, statusErr(nfs3.ProcSetattr, "", r.Status)
}

// Lookup finds name in dir. attr may be nil if the server sent none.
func (c *Client) Lookup(ctx context.Context, dir []byte, name string) (fh []byte, attr *Attr, err error) {
	var r nfs3.LookupRes
	if err := c.call(ctx, nfs3.ProcLookup, name, &nfs3.LookupArgs{Dir: dir, Name: name}, &r); err != nil {
		return nil, nil, err
	}
	if err := statusErr(nfs3.ProcLookup, name, r.Status); err != nil {
		return nil, nil, err
	}
	return r.Object, r.ObjAttr, nil
}

// Access asks which of the ACCESS3_* bits in want the credential has on fh.
func (c *Client) Access(ctx context.Context, fh []byte, want uint32) (uint32, error) {
	var r nfs3.AccessRes
	if err := c.call(ctx, nfs3.ProcAccess, "", &nfs3.AccessArgs{Object: fh, Access: want}, &r); err != nil {
		return 0, err
	}
	return r.Access, statusErr(nfs3.ProcAccess, "", r.Status)
}

// Readlink returns a symbolic link's target.
func (c *Client) Readlink(ctx context.Context, fh []byte) (string, error) {
	var r nfs3.ReadlinkRes
	if err := c.call(ctx, nfs3.ProcReadlink, "", &nfs3.ReadlinkArgs{Object: fh}, &r); err != nil {
		return "", err
	}
	return r.Target, statusErr(nfs3.ProcReadlink, "", r.Status)
}

// Read reads up to count bytes (capped at rtmax) at off.
func (c *Client) Read(ctx context.Context, fh []byte, off uint64, count int) (data []byte, eof bool, err error) {
	n := uint32(min(max(count, 0), int(c.rtmax)))
	var r nfs3.ReadRes
	if err := c.call(ctx, nfs3.ProcRead, "", &nfs3.ReadArgs{File: fh, Offset: off, Count: n}, &r); err != nil {
		return nil, false, err
	}
	if err := statusErr(nfs3.ProcRead, "", r.Status); err != nil {
		return nil, false, err
	}
	if int(r.Count) != len(r.Data) || r.Count > n {
		return nil, false, fmt.Errorf("client: READ: count %d, %d data bytes, asked %d", r.Count, len(r.Data), n)
	}
	return r.Data, r.EOF, nil
}

// WriteResult is what WRITE returned.
type WriteResult struct {
	Count     int
	Committed StableHow
	Verf      [8]byte
	Wcc       WccData
}

// Write sends one WRITE of data (which must fit in MaxWrite) at off.
func (c *Client) Write(ctx context.Context, fh []byte, off uint64, data []byte, stable StableHow) (WriteResult, error) {
	if len(data) > int(c.wtmax) {
		return WriteResult{}, fmt.Errorf("client: WRITE of %d bytes exceeds wtmax %d", len(data), c.wtmax)
	}
	var r nfs3.WriteRes
	a := nfs3.WriteArgs{File: fh, Offset: off, Count: uint32(len(data)), Stable: stable, Data: data}
	if err := c.call(ctx, nfs3.ProcWrite, "", &a, &r); err != nil {
		return WriteResult{}, err
	}
	wr := WriteResult{Count: int(r.Count), Committed: r.Committed, Verf: r.Verf, Wcc: r.Wcc}
	if err := statusErr(nfs3.ProcWrite, "", r.Status); err != nil {
		return wr, err
	}
	if r.Count > a.Count {
		return wr, fmt.Errorf("client: WRITE: server claims %d bytes of %d", r.Count, a.Count)
	}
	return wr, nil
}

// Commit asks the server to make [off, off+count) stable (count 0: to the
// end) and returns its write verifier.
func (c *Client) Commit(ctx context.Context, fh []byte, off uint64, count uint32) ([8]byte, error) {
	var r nfs3.CommitRes
	if err := c.call(ctx, nfs3.ProcCommit, "", &nfs3.CommitArgs{File: fh, Offset: off, Count: count}, &r); err != nil {
		return [8]byte{}, err
	}
	return r.Verf, statusErr(nfs3.ProcCommit, "", r.Status)
}

// Create creates a regular file name in dir. For Unchecked and Guarded,
// attr is applied; for Exclusive, verf is the 8-byte create verifier and
// attr is ignored (set attributes with Setattr afterwards, RFC 1813
// §3.3.8). If the server returns no handle, Create looks the name up.
func (c *Client) Create(ctx context.Context, dir []byte, name string, mode CreateMode, attr SetAttr, verf [8]byte) ([]byte, *Attr, error) {
	a := nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: dir, Name: name}, Mode: mode, Attr: attr, Verf: verf}
	return c.created(ctx, nfs3.ProcCreate, dir, name, &a)
}

// Mkdir creates a directory.
func (c *Client) Mkdir(ctx context.Context, dir []byte, name string, attr SetAttr) ([]byte, *Attr, error) {
	return c.created(ctx, nfs3.ProcMkdir, dir, name, &nfs3.MkdirArgs{Where: nfs3.DirOpArgs{Dir: dir, Name: name}, Attr: attr})
}

// Symlink creates a symbolic link name -> target.
func (c *Client) Symlink(ctx context.Context, dir []byte, name, target string, attr SetAttr) ([]byte, *Attr, error) {
	return c.created(ctx, nfs3.ProcSymlink, dir, name, &nfs3.SymlinkArgs{Where: nfs3.DirOpArgs{Dir: dir, Name: name}, Attr: attr, Target: target})
}

// Mknod creates a special file (FIFO, socket, block or character device).
func (c *Client) Mknod(ctx context.Context, dir []byte, name string, typ FileType, attr SetAttr, spec SpecData) ([]byte, *Attr, error) {
	return c.created(ctx, nfs3.ProcMknod, dir, name, &nfs3.MknodArgs{Where: nfs3.DirOpArgs{Dir: dir, Name: name}, Type: typ, Attr: attr, Spec: spec})
}

func (c *Client) created(ctx context.Context, proc nfs3.Proc, dir []byte, name string, args encoder) ([]byte, *Attr, error) {
	var r nfs3.CreateRes
	if err := c.call(ctx, proc, name, args, &r); err != nil {
		return nil, nil, err
	}
	if err := statusErr(proc, name, r.Status); err != nil {
		return nil, nil, err
	}
	if r.Object == nil {
		return c.Lookup(ctx, dir, name)
	}
	return r.Object, r.ObjAttr, nil
}

// Remove removes a non-directory.
func (c *Client) Remove(ctx context.Context, dir []byte, name string) error {
	var r nfs3.RemoveRes
	if err := c.call(ctx, nfs3.ProcRemove, name, &nfs3.RemoveArgs{Dir: dir, Name: name}, &r); err != nil {
		return err
	}
	return statusErr(nfs3.ProcRemove, name, r.Status)
}

// Rmdir removes an empty directory.
func (c *Client) Rmdir(ctx context.Context, dir []byte, name string) error {
	var r nfs3.RmdirRes
	if err := c.call(ctx, nfs3.ProcRmdir, name, &nfs3.RmdirArgs{Dir: dir, Name: name}, &r); err != nil {
		return err
	}
	return statusErr(nfs3.ProcRmdir, name, r.Status)
}

// Rename atomically renames fromDir/fromName to toDir/toName, replacing a
// compatible existing target.
func (c *Client) Rename(ctx context.Context, fromDir []byte, fromName string, toDir []byte, toName string) error {
	var r nfs3.RenameRes
	a := nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: fromDir, Name: fromName}, To: nfs3.DirOpArgs{Dir: toDir, Name: toName}}
	if err := c.call(ctx, nfs3.ProcRename, fromName, &a, &r); err != nil {
		return err
	}
	return statusErr(nfs3.ProcRename, fromName, r.Status)
}

// Link makes dir/name a hard link to fh.
func (c *Client) Link(ctx context.Context, fh, dir []byte, name string) error {
	var r nfs3.LinkRes
	if err := c.call(ctx, nfs3.ProcLink, name, &nfs3.LinkArgs{File: fh, Link: nfs3.DirOpArgs{Dir: dir, Name: name}}, &r); err != nil {
		return err
	}
	return statusErr(nfs3.ProcLink, name, r.Status)
}

// DirPage is one READDIR reply: entries, the verifier to send back with
// the last entry's cookie, and whether the directory ended.
type DirPage struct {
	Entries []DirEntry
	Verf    [8]byte
	EOF     bool
}

// ReadDir reads one page of dir from cookie (0 and a zero verf for the
// first page) with a reply budget of count bytes.
func (c *Client) ReadDir(ctx context.Context, dir []byte, cookie uint64, verf [8]byte, count uint32) (DirPage, error) {
	var r nfs3.ReaddirRes
	if err := c.call(ctx, nfs3.ProcReaddir, "", &nfs3.ReaddirArgs{Dir: dir, Cookie: cookie, Verf: verf, Count: count}, &r); err != nil {
		return DirPage{}, err
	}
	if err := statusErr(nfs3.ProcReaddir, "", r.Status); err != nil {
		return DirPage{}, err
	}
	return DirPage{Entries: r.Entries, Verf: r.Verf, EOF: r.EOF}, nil
}

// DirPagePlus is one READDIRPLUS reply.
type DirPagePlus struct {
	Entries []DirEntryPlus
	Verf    [8]byte
	EOF     bool
}

// ReadDirPlus reads one READDIRPLUS page (dircount: budget for names and
// cookies; maxcount: for the whole reply).
func (c *Client) ReadDirPlus(ctx context.Context, dir []byte, cookie uint64, verf [8]byte, dircount, maxcount uint32) (DirPagePlus, error) {
	var r nfs3.ReaddirplusRes
	a := nfs3.ReaddirplusArgs{Dir: dir, Cookie: cookie, Verf: verf, DirCount: dircount, MaxCount: maxcount}
	if err := c.call(ctx, nfs3.ProcReaddirplus, "", &a, &r); err != nil {
		return DirPagePlus{}, err
	}
	if err := statusErr(nfs3.ProcReaddirplus, "", r.Status); err != nil {
		return DirPagePlus{}, err
	}
	return DirPagePlus{Entries: r.Entries, Verf: r.Verf, EOF: r.EOF}, nil
}

// maxDirPages bounds a listing, so a server that never says eof cannot make
// a helper loop forever.
const maxDirPages = 1 << 20

// ReadDirAll lists dir with READDIR, page by page, leaving out "." and "..".
// fn is called per page; returning false stops early.
func (c *Client) ReadDirAll(ctx context.Context, dir []byte, fn func([]DirEntry) bool) error {
	var cookie uint64
	var verf [8]byte
	for range maxDirPages {
		p, err := c.ReadDir(ctx, dir, cookie, verf, c.dtpref)
		if err != nil {
			return err
		}
		ents := p.Entries[:0:0]
		for _, e := range p.Entries {
			if e.Name != "." && e.Name != ".." {
				ents = append(ents, e)
			}
		}
		if len(ents) > 0 && !fn(ents) {
			return nil
		}
		if p.EOF {
			return nil
		}
		if len(p.Entries) == 0 {
			return fmt.Errorf("client: READDIR: empty page without eof")
		}
		cookie, verf = p.Entries[len(p.Entries)-1].Cookie, p.Verf
	}
	return fmt.Errorf("client: READDIR: more than %d pages", maxDirPages)
}

// ReadDirPlusAll lists dir with READDIRPLUS (names, attributes, handles),
// leaving out "." and "..". A server that answers NOTSUPP is listed with
// READDIR instead, and entries then carry no attributes or handles.
func (c *Client) ReadDirPlusAll(ctx context.Context, dir []byte, fn func([]DirEntryPlus) bool) error {
	var cookie uint64
	var verf [8]byte
	maxcount := max(c.dtpref, 4096)
	for range maxDirPages {
		p, err := c.ReadDirPlus(ctx, dir, cookie, verf, maxcount, maxcount)
		if IsStatus(err, NFS3ErrNotSupp) && cookie == 0 {
			return c.ReadDirAll(ctx, dir, func(es []DirEntry) bool {
				ps := make([]DirEntryPlus, len(es))
				for i, e := range es {
					ps[i] = DirEntryPlus{FileID: e.FileID, Name: e.Name, Cookie: e.Cookie}
				}
				return fn(ps)
			})
		}
		if err != nil {
			return err
		}
		ents := p.Entries[:0:0]
		for _, e := range p.Entries {
			if e.Name != "." && e.Name != ".." {
				ents = append(ents, e)
			}
		}
		if len(ents) > 0 && !fn(ents) {
			return nil
		}
		if p.EOF {
			return nil
		}
		if len(p.Entries) == 0 {
			return fmt.Errorf("client: READDIRPLUS: empty page without eof")
		}
		cookie, verf = p.Entries[len(p.Entries)-1].Cookie, p.Verf
	}
	return fmt.Errorf("client: READDIRPLUS: more than %d pages", maxDirPages)
}

// FSStat returns space and inode figures for the file system holding fh.
func (c *Client) FSStat(ctx context.Context, fh []byte) (FSStat, error) {
	var r nfs3.FsstatRes
	if err := c.call(ctx, nfs3.ProcFsstat, "", &nfs3.FsstatArgs{Object: fh}, &r); err != nil {
		return FSStat{}, err
	}
	return r, statusErr(nfs3.ProcFsstat, "", r.Status)
}

// FSInfo returns the server's transfer sizes and properties.
func (c *Client) FSInfo(ctx context.Context, fh []byte) (FSInfo, error) {
	var r nfs3.FsinfoRes
	if err := c.call(ctx, nfs3.ProcFsinfo, "", &nfs3.FsinfoArgs{Object: fh}, &r); err != nil {
		return FSInfo{}, err
	}
	return r, statusErr(nfs3.ProcFsinfo, "", r.Status)
}

// Pathconf returns name limits and case behaviour for fh.
func (c *Client) Pathconf(ctx context.Context, fh []byte) (Pathconf, error) {
	var r nfs3.PathconfRes
	if err := c.call(ctx, nfs3.ProcPathconf, "", &nfs3.PathconfArgs{Object: fh}, &r); err != nil {
		return Pathconf{}, err
	}
	return r, statusErr(nfs3.ProcPathconf, "", r.Status)
}

// LookupPath walks a slash-separated path relative to the root handle
// ("" or "." is the root). It does not follow symbolic links.
func (c *Client) LookupPath(ctx context.Context, p string) ([]byte, *Attr, error) {
	return c.LookupPathFrom(ctx, c.rootFH(), p)
}

// LookupPathFrom walks p from the directory handle start.
func (c *Client) LookupPathFrom(ctx context.Context, start []byte, p string) ([]byte, *Attr, error) {
	fh := start
	var attr *Attr
	for _, name := range strings.Split(strings.Trim(path.Clean("/"+p), "/"), "/") {
		if name == "" {
			continue
		}
		var err error
		fh, attr, err = c.Lookup(ctx, fh, name)
		if err != nil {
			if e, ok := err.(*Error); ok {
				e.Path = p
			}
			return nil, nil, err
		}
	}
	if attr == nil {
		a, err := c.Getattr(ctx, fh)
		if err != nil {
			return nil, nil, err
		}
		attr = a
	}
	return fh, attr, nil
}

// ReadAll reads the whole file fh, in rtmax-sized READs.
func (c *Client) ReadAll(ctx context.Context, fh []byte) ([]byte, error) {
	var buf bytes.Buffer
	_, err := c.copyTo(ctx, fh, &buf)
	return buf.Bytes(), err
}

func (c *Client) copyTo(ctx context.Context, fh []byte, w io.Writer) (int64, error) {
	var off uint64
	for {
		data, eof, err := c.Read(ctx, fh, off, int(c.rtmax))
		if err != nil {
			return int64(off), err
		}
		if _, err := w.Write(data); err != nil {
			return int64(off), err
		}
		off += uint64(len(data))
		if eof {
			return int64(off), nil
		}
		if len(data) == 0 {
			return int64(off), fmt.Errorf("client: READ: no data and no eof at offset %d", off)
		}
	}
}

// ReadFile reads the file at path p (relative to the root).
func (c *Client) ReadFile(ctx context.Context, p string) ([]byte, error) {
	fh, _, err := c.LookupPath(ctx, p)
	if err != nil {
		return nil, err
	}
	return c.ReadAll(ctx, fh)
}

// WriteFile creates or truncates the file at p (relative to the root; the
// parent must exist) with mode perm and writes data to it durably.
func (c *Client) WriteFile(ctx context.Context, p string, data []byte, perm uint32) error {
	dir, name := path.Split(path.Clean("/" + p))
	dfh, _, err := c.LookupPath(ctx, dir)
	if err != nil {
		return err
	}
	zero := uint64(0)
	fh, _, err := c.Create(ctx, dfh, name, Unchecked, SetAttr{Mode: &perm, Size: &zero}, [8]byte{})
	if err != nil {
		return err
	}
	return c.WriteAll(ctx, fh, data)
}

// WriteAll writes data to fh from offset 0 durably: one FILE_SYNC WRITE if
// it fits in wtmax, else UNSTABLE WRITEs and a COMMIT, rewriting everything
// if the server's write verifier changes in between (reference.md §4.6).
func (c *Client) WriteAll(ctx context.Context, fh []byte, data []byte) error {
	if len(data) <= int(c.wtmax) {
		r, err := c.Write(ctx, fh, 0, data, FileSync)
		if err != nil {
			return err
		}
		if r.Count != len(data) || r.Committed != FileSync {
			// A short or unstable answer to a FILE_SYNC request: finish
			// with the general path.
			return c.writeUnstable(ctx, fh, data)
		}
		return nil
	}
	return c.writeUnstable(ctx, fh, data)
}

func (c *Client) writeUnstable(ctx context.Context, fh []byte, data []byte) error {
	for attempt := 0; attempt < 5; attempt++ {
		var verf [8]byte
		first, changed, stable := true, false, true
		for off := 0; off < len(data); {
			end := min(off+int(c.wtmax), len(data))
			r, err := c.Write(ctx, fh, uint64(off), data[off:end], Unstable)
			if err != nil {
				return err
			}
			if r.Count == 0 {
				return fmt.Errorf("client: WRITE at %d: server wrote 0 bytes", off)
			}
			if first {
				verf, first = r.Verf, false
			} else if r.Verf != verf {
				changed = true
			}
			if r.Committed != FileSync {
				stable = false
			}
			off += r.Count
		}
		if changed {
			continue // the server restarted mid-way: write everything again
		}
		if stable && len(data) > 0 {
			return nil
		}
		cv, err := c.Commit(ctx, fh, 0, 0)
		if err != nil {
			return err
		}
		if len(data) == 0 || cv == verf {
			return nil
		}
		c.log.Warn("client: write verifier changed before COMMIT; rewriting", "attempt", attempt)
	}
	return fmt.Errorf("client: write verifier kept changing; data not committed")
}
