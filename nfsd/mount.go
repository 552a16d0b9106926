package nfsd

import (
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net/netip"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/ratelog"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/maildirfs"
)

// DefaultMaxMounts bounds the DUMP mount list when Mount.MaxMounts is zero.
const DefaultMaxMounts = 1024

// maxMountReply bounds the DUMP and EXPORT results so a reply fits one UDP
// datagram (showmount asks over UDP as often as over TCP); entries beyond
// it are left out.
const maxMountReply = 60000

// mountFlavors are the flavors a MNT v3 reply offers, preferred first: the
// Linux kernel uses the first one it supports and BSD clients refuse a
// list without AUTH_SYS (rclone PR #9597).
var mountFlavors = []uint32{rpc.AuthSys, rpc.AuthNone}

// Mount is the MOUNT program, 100005 versions 1 to 3 (RFC 1813 Appendix I).
//
//   - NULL.
//   - MNT: the path is cleaned ("." and empty components dropped; ".." is
//     MNT3ERR_ACCES) and must be an export, or with -alldirs (always on
//     Linux lines) a directory below one, resolved with Store.LookupPath
//     under the mapped credential. A client that no rule of the export
//     names, or a path that no export covers, gets MNT3ERR_ACCES, as from
//     FreeBSD and Linux mountd. The v3 reply carries the handle and the
//     flavors AUTH_SYS, AUTH_NONE. A v1 (and v2) MNT answers
//     MNT3ERR_NOTSUPP: its fhstatus holds a 32-byte NFSv2 handle and this
//     server does not serve NFSv2; showmount, the only v1 user, asks only
//     EXPORT and DUMP. MNTs and UMNTs are logged at most once a minute per
//     client address and what happened (logLimited).
//   - DUMP: the (client address, path) pairs of successful MNTs not yet
//     unmounted, in MNT order; at most MaxMounts, the oldest dropped first.
//     The list lives in memory only (no rmtab): it is advisory in every
//     implementation.
//   - UMNT, UMNTALL: remove the caller's entries (by client address).
//   - EXPORT (and v1/v2 EXPORTALL): every export with its clients; an empty
//     list means everyone (showmount prints "(everyone)"); networks appear
//     as "10.1.2.0/24". The reply is cut to fit a datagram: exports are
//     listed whole, in order, until one does not fit, and the cut is
//     logged at Warn.
//
// Reserved source ports are not required (FreeBSD mountd -n, Linux
// insecure): libnfs and Go clients run unprivileged. Where a Linux rule
// says secure explicitly, a MNT from port 1024 or above is refused
// MNT3ERR_ACCES, as Linux mountd's "illegal port" (its NFS calls are
// refused by Exports.Authorize). Mount is safe for concurrent use.
type Mount struct {
	// Exports answers which export a path is and who may mount it.
	// Required.
	Exports *Exports
	// MaxMounts bounds the DUMP list. Zero means DefaultMaxMounts.
	MaxMounts int

	mu struct {
		sync.Mutex
		list []nfs3.MountEntry // in MNT order, no duplicates
	}
	// truncWarned is the exports table whose cut EXPORT reply was last
	// logged.
	truncWarned atomic.Pointer[exportSet]
	// logs rate-limits the log lines of MNT and UMNT.
	logs ratelog.Limiter[mountLogKey]
}

// mountLogKey keys the MNT and UMNT log lines: a client address and what
// happened (a fixed word, or "granted:" and the export's path from the
// configuration; never a path the client sent).
type mountLogKey struct {
	addr netip.Addr
	what string
}

var (
	_ Program    = (*Mount)(nil)
	_ ReplySizer = (*Mount)(nil)
)

// ReplySize bounds the DUMP and EXPORT replies (maxMountReply); the
// others are small.
func (m *Mount) ReplySize(vers, proc uint32, rec []byte) int {
	switch nfs3.MountProc(proc) {
	case nfs3.MountProcDump, nfs3.MountProcExport, nfs3.MountProcExportAll:
		return maxMountReply + 64
	}
	return 0
}

// Prog returns 100005.
func (m *Mount) Prog() uint32 { return nfs3.MountProgram }

// Versions returns 1..3; version 2 is answered like version 1.
func (m *Mount) Versions() (low, high uint32) { return nfs3.MountV1, nfs3.MountV3 }

// Serve runs one MOUNT call.
func (m *Mount) Serve(ctx context.Context, req *Request, res *xdr.Encoder) Status {
	v3 := req.Vers == nfs3.MountV3
	switch nfs3.MountProc(req.Proc) {
	case nfs3.MountProcNull:
		if req.Args.Done() != nil {
			return StatusGarbage
		}
		return StatusOK
	case nfs3.MountProcMnt:
		var a nfs3.DirPath
		a.Decode(req.Args)
		if req.Args.Done() != nil {
			return StatusGarbage
		}
		h, st := m.mnt(req, a.Path, v3)
		if !v3 {
			r := nfs3.FHStatus{Status: st}
			r.Encode(res)
			return StatusOK
		}
		r := nfs3.MountRes3{Status: st}
		if st == nfs3.MountOK {
			r.Handle, r.AuthFlavors = h, mountFlavors
		}
		r.Encode(res)
		return StatusOK
	case nfs3.MountProcDump:
		if req.Args.Done() != nil {
			return StatusGarbage
		}
		m.dump().Encode(res)
		return StatusOK
	case nfs3.MountProcUmnt:
		var a nfs3.DirPath
		a.Decode(req.Args)
		if req.Args.Done() != nil {
			return StatusGarbage
		}
		path, _ := cleanMountPath(a.Path)
		m.forget(clientName(req), func(dir string) bool { return dir == path || dir == a.Path })
		m.logLimited(req, "umnt", "mount: unmounted", "client", clientName(req), "path", a.Path)
		return StatusOK
	case nfs3.MountProcUmntAll:
		if req.Args.Done() != nil {
			return StatusGarbage
		}
		m.forget(clientName(req), func(string) bool { return true })
		m.logLimited(req, "umntall", "mount: unmounted all", "client", clientName(req))
		return StatusOK
	case nfs3.MountProcExport:
		if req.Args.Done() != nil {
			return StatusGarbage
		}
		m.exports(req).Encode(res)
		return StatusOK
	case nfs3.MountProcExportAll:
		if v3 {
			return StatusProcUnavail
		}
		if req.Args.Done() != nil {
			return StatusGarbage
		}
		m.exports(req).Encode(res)
		return StatusOK
	}
	return StatusProcUnavail
}

// mnt checks and resolves a MNT path and records the mount. A MNT of
// MOUNT v1 or v2 (v3 false) that passes every check is still refused with
// MNT3ERR_NOTSUPP, and neither recorded nor logged as granted: its NFSv2
// handle has no server.
func (m *Mount) mnt(req *Request, dirpath string, v3 bool) (maildirfs.Handle, nfs3.MountStat) {
	client := clientName(req)
	path, st := cleanMountPath(dirpath)
	if st != nfs3.MountOK {
		m.logLimited(req, "bad_path", "mount: refused", "client", client, "path", dirpath, "status", st)
		m.Exports.denied("mount:bad_path")
		return nil, st
	}
	le, rel := m.Exports.cur.Load().resolve(path)
	if le == nil {
		m.logLimited(req, "not_exported", "mount: refused: path is not exported", "client", client, "path", path)
		m.Exports.denied("mount:not_exported")
		return nil, nfs3.MountAcces
	}
	r := le.Match(req.Addr.Addr())
	if r == nil {
		m.logLimited(req, "host", "mount: refused: client not allowed", "client", client, "path", path, "export", le.Path)
		m.Exports.denied("mount:host:" + le.Path)
		return nil, nfs3.MountAcces
	}
	if !m.Exports.portAllowed(req, le.Export, r, "mount") {
		// Linux "secure", written out: Linux mountd's "illegal port".
		m.logLimited(req, "insecure_port", "mount: refused: unreserved source port for a secure export", "client", client, "port", req.Addr.Port(), "path", path, "export", le.Path)
		return nil, nfs3.MountAcces
	}
	if le.dir != (fileID{}) {
		// A directory removed (or a file system unmounted from under an
		// export without mp) leaves the store serving a deleted
		// directory: every handle would be stale. Say so here, where the
		// client would otherwise be granted a dead mount.
		if _, err := os.Stat(le.Path); errors.Is(err, fs.ErrNotExist) {
			// Once a minute per export, whoever asks.
			if ok, held := m.logs.Allow(mountLogKey{what: "gone:" + le.Path}, time.Now()); ok {
				reqLog(req).Error("mount: refused: the export's directory is gone (removed since mailnfsd opened it); restore it and reload mailnfsd",
					"client", client, "path", path, "export", le.Path, "pos", le.Pos.String(), "held_back", held)
			}
			return nil, nfs3.MountNoEnt
		}
	}
	h := le.store.Root()
	if rel != "" {
		if !r.AllDirs {
			m.logLimited(req, "alldirs", "mount: refused: subdirectory of an export without -alldirs", "client", client, "path", path, "export", le.Path)
			m.Exports.denied("mount:alldirs:" + le.Path)
			return nil, nfs3.MountAcces
		}
		var err error
		h, err = le.store.LookupPath(r.Squash.Map(req.AuthSys), rel)
		if err != nil {
			st := mountStatFromError(err)
			m.logLimited(req, "lookup", "mount: refused", "client", client, "path", path, "export", le.Path, "status", st, "err", err)
			return nil, st
		}
	}
	if !v3 {
		m.logLimited(req, "v1", "mount: refused: MOUNT v1 MNT asks for an NFSv2 handle; NFSv2 is not served", "client", client, "path", path, "export", le.Path, "vers", req.Vers)
		return nil, nfs3.MountNotSupp
	}
	m.remember(nfs3.MountEntry{Hostname: client, Directory: path})
	m.logLimited(req, "granted:"+le.Path, "mount: granted", "client", client, "path", path, "export", le.Path, "ro", r.ReadOnly)
	return h, nfs3.MountOK
}

// logLimited logs a MNT or UMNT at Info, at most once a minute per client
// address and what (the reason of a refusal, "granted:" and the export,
// "umnt", "umntall"): a client retrying a mount it may not make, a flood
// of MNTs for made-up paths or of UMNTs (which need no rights), and a
// front end that mounts for every message it delivers (mailnfs deliver)
// must not flood the log. held_back counts the events of that address
// and what since its previous line; every refusal is still counted by
// Exports.Denied.
func (m *Mount) logLimited(req *Request, what, msg string, attrs ...any) {
	ok, held := m.logs.Allow(mountLogKey{req.Addr.Addr(), what}, time.Now())
	if ok {
		reqLog(req).Info(msg, append(attrs, "held_back", held)...)
	}
}

// cleanMountPath drops empty and "." components; ".." is refused.
func cleanMountPath(p string) (string, nfs3.MountStat) {
	if !strings.HasPrefix(p, "/") || strings.IndexByte(p, 0) >= 0 {
		return "", nfs3.MountInval
	}
	var parts []string
	for _, c := range strings.Split(p, "/") {
		switch c {
		case "", ".":
		case "..":
			return "", nfs3.MountAcces
		default:
			parts = append(parts, c)
		}
	}
	return "/" + strings.Join(parts, "/"), nfs3.MountOK
}

// mountStatFromError maps a LookupPath error to mountstat3.
func mountStatFromError(err error) nfs3.MountStat {
	var errno syscall.Errno
	switch {
	case errors.As(err, &errno):
		switch errno {
		case syscall.ENOENT:
			return nfs3.MountNoEnt
		case syscall.ENOTDIR, syscall.ELOOP:
			return nfs3.MountNotDir
		case syscall.EACCES:
			return nfs3.MountAcces
		case syscall.EPERM:
			return nfs3.MountPerm
		case syscall.ENAMETOOLONG:
			return nfs3.MountNameTooLong
		case syscall.EINVAL:
			return nfs3.MountInval
		case syscall.EIO:
			return nfs3.MountIO
		}
	case errors.Is(err, maildirfs.ErrStale), errors.Is(err, maildirfs.ErrBadHandle):
		return nfs3.MountNoEnt
	}
	return nfs3.MountServerFault
}

// clientName is the DUMP host name of the caller: its address.
func clientName(req *Request) string { return req.Addr.Addr().Unmap().String() }

func (m *Mount) max() int {
	if m.MaxMounts > 0 {
		return m.MaxMounts
	}
	return DefaultMaxMounts
}

// remember adds a mount list entry, moving a repeated one to the end.
func (m *Mount) remember(e nfs3.MountEntry) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.mu.list
	for i, o := range l {
		if o == e {
			l = append(l[:i], l[i+1:]...)
			break
		}
	}
	if len(l) >= m.max() {
		l = append(l[:0], l[len(l)-m.max()+1:]...)
	}
	m.mu.list = append(l, e)
}

// forget removes the entries of host whose directory matches.
func (m *Mount) forget(host string, match func(dir string) bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	l := m.mu.list[:0]
	for _, e := range m.mu.list {
		if e.Hostname != host || !match(e.Directory) {
			l = append(l, e)
		}
	}
	clear(m.mu.list[len(l):])
	m.mu.list = l
}

// dump returns the mount list, cut to maxMountReply encoded bytes.
func (m *Mount) dump() nfs3.MountList {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out nfs3.MountList
	size := 4
	for _, e := range m.mu.list {
		size += 4 + xdrStringSize(e.Hostname) + xdrStringSize(e.Directory)
		if size > maxMountReply {
			break
		}
		out = append(out, e)
	}
	return out
}

// Mounts returns a copy of the mount list (DUMP), for tests and status.
func (m *Mount) Mounts() []nfs3.MountEntry {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]nfs3.MountEntry(nil), m.mu.list...)
}

// exports returns the EXPORT result, cut to maxMountReply encoded bytes.
// An export is listed whole or not at all, because an export with a cut
// group list would read as open to everyone when no group fits. The list
// ends at the first export that does not fit; that is logged at Warn once
// per exports table.
func (m *Mount) exports(req *Request) nfs3.Exports {
	set := m.Exports.cur.Load()
	var out nfs3.Exports
	size := 4
	for _, le := range set.list {
		ex := nfs3.Export{Dir: le.Path, Groups: le.Groups()}
		n := 4 + xdrStringSize(ex.Dir) + 4
		for _, g := range ex.Groups {
			n += 4 + xdrStringSize(g)
		}
		if size+n > maxMountReply {
			if m.truncWarned.Swap(set) != set {
				reqLog(req).Warn("mount: EXPORT reply truncated to fit one datagram; showmount lists only the first exports",
					"listed", len(out), "exports", len(set.list), "first_left_out", ex.Dir, "limit_bytes", maxMountReply)
			}
			break
		}
		size += n
		out = append(out, ex)
	}
	return out
}

func xdrStringSize(s string) int { return 4 + len(s) + xdr.Pad(len(s)) }

// reqLog is the request's logger, or a discarding one.
func reqLog(req *Request) *slog.Logger {
	if req.Log != nil {
		return req.Log
	}
	return slog.New(slog.DiscardHandler)
}
