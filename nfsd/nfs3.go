package nfsd

import (
	"context"
	"encoding/binary"
	"errors"
	"log/slog"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/ratelog"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/maildirfs"
)

// Values this server advertises in FSINFO and PATHCONF (reference §4.9).
const (
	// fsinfoDtpref is the preferred READDIR count.
	fsinfoDtpref = 64 << 10
	// fsinfoProperties is FSF3_LINK|FSF3_SYMLINK|FSF3_HOMOGENEOUS|FSF3_CANSETTIME.
	fsinfoProperties = nfs3.FSFLink | nfs3.FSFSymlink | nfs3.FSFHomogeneous | nfs3.FSFCanSetTime
	// maxDirReply bounds the READDIR(PLUS) reply built in memory whatever
	// count the client sends.
	maxDirReply = nfs3.MaxIO
	// defaultLinkMax is PATHCONF linkmax when the Store cannot tell: ext2/3's
	// limit, the lowest of the common Linux file systems.
	defaultLinkMax = 32000

	// A reply over UDP must fit one datagram (maxUDPReply), or the
	// transport drops it and every retransmission fails again. FSINFO over
	// UDP advertises sizes that fit, and READ, READDIR and READDIRPLUS cut
	// their replies to fit whatever count the client sends (RFC 1813 lets
	// a server return less).
	//
	// udpIOMax is rtmax and wtmax over UDP: the largest multiple of 4 KiB
	// whose READ reply (or WRITE call, with 400-byte credential and
	// verifier) fits a datagram.
	udpIOMax = 60 << 10
	// udpIOPref is rtpref, wtpref and dtpref over UDP: knfsd's UDP
	// payload, which keeps a datagram to 23 IP fragments at MTU 1500.
	udpIOPref = 32 << 10
	// udpMaxResults is the room for NFS results in a UDP reply: a datagram
	// less the accepted-reply header with its AUTH_NONE verifier.
	udpMaxResults = maxUDPReply - 24
)

// overUDP tells whether req came in a datagram, so its reply must fit one.
func overUDP(req *Request) bool { return req.Net == "udp" }

// maxIO is the rtmax and wtmax for req's transport.
func maxIO(req *Request) uint32 {
	if overUDP(req) {
		return udpIOMax
	}
	return nfs3.MaxIO
}

// maxDirResults bounds the encoded READDIR(PLUS) results for req's
// transport.
func maxDirResults(req *Request) uint32 {
	if overUDP(req) {
		return udpMaxResults
	}
	return maxDirReply
}

// NFS3 is the NFSv3 program (RFC 1813): program 100003, version 3. It
// implements Program and Cacheable. Every call's handles are checked with
// Auth, which also selects the export's Store and the caller's mapped
// credential. Its zero value is not usable: Auth is required.
type NFS3 struct {
	// Auth resolves a handle to its export and checks the caller. Required.
	Auth Authorizer
	// Logger receives store errors that have no specific NFS status, for
	// calls whose Request carries no Log (Request.Log, with connection and
	// xid attributes, is preferred). Nil discards.
	Logger *slog.Logger

	counters n3Counters                  // replies by procedure and status (Stats)
	retries  ratelog.Limiter[netip.Addr] // logRetry's lines
	// storeErrors limits the lines of status.
	storeErrors ratelog.Limiter[storeErrorKey]
}

var (
	_ Program    = (*NFS3)(nil)
	_ Cacheable  = (*NFS3)(nil)
	_ ReplySizer = (*NFS3)(nil)
)

// Prog returns 100003.
func (n *NFS3) Prog() uint32 { return nfs3.Program }

// Versions returns 3, 3.
func (n *NFS3) Versions() (low, high uint32) { return nfs3.Version, nfs3.Version }

// replyOverhead bounds what a READ, READDIR or READDIRPLUS reply adds to
// its count: the RPC reply header, status, post-op attributes, count, eof
// and lengths (about 140 bytes).
const replyOverhead = 512

// ReplySize bounds the replies of READ, READDIR and READDIRPLUS by the
// count the call asks for (capped at rtmax), its last argument word
// (RFC 1813 §3.3.6, §3.3.16; maxcount in §3.3.17): the server never
// answers more. Other replies are small. A record too short or malformed
// gets a bound for whatever its last word says, and then its GARBAGE_ARGS.
func (n *NFS3) ReplySize(vers, proc uint32, rec []byte) int {
	if vers != nfs3.Version || len(rec) < 4 {
		return 0
	}
	switch nfs3.Proc(proc) {
	case nfs3.ProcRead, nfs3.ProcReaddir, nfs3.ProcReaddirplus:
		count := binary.BigEndian.Uint32(rec[len(rec)-4:])
		return int(min(count, nfs3.MaxIO)) + replyOverhead
	}
	return 0
}

// NonIdempotent reports the procedures whose replies the duplicate request
// cache must replay rather than re-execute.
func (n *NFS3) NonIdempotent(vers, proc uint32) bool {
	if vers != nfs3.Version {
		return false
	}
	switch nfs3.Proc(proc) {
	case nfs3.ProcSetattr, nfs3.ProcWrite, nfs3.ProcCreate, nfs3.ProcMkdir, nfs3.ProcSymlink,
		nfs3.ProcMknod, nfs3.ProcRemove, nfs3.ProcRmdir, nfs3.ProcRename, nfs3.ProcLink:
		return true
	}
	return false
}

// argsCodec and resCodec are the nfs3 wire types' methods.
type argsCodec[A any] interface {
	*A
	Decode(*xdr.Decoder)
}

type resCodec[R any] interface {
	*R
	nfs3.Result
	Encode(*xdr.Encoder)
}

// call decodes the arguments (GARBAGE_ARGS if they do not decode or have
// trailing bytes), runs fn, counts and encodes its result.
func call[A, R any, PA argsCodec[A], PR resCodec[R]](ctx context.Context, n *NFS3, req *Request, res *xdr.Encoder,
	fn func(context.Context, *Request, *A, *R)) Status {
	var a A
	PA(&a).Decode(req.Args)
	if req.Args.Done() != nil {
		return StatusGarbage
	}
	var r R
	fn(ctx, req, &a, &r)
	n.done(ctx, req, PR(&r).Stat())
	PR(&r).Encode(res)
	return StatusOK
}

// done counts a reply and traces it at debug level.
func (n *NFS3) done(ctx context.Context, req *Request, st nfs3.Status) {
	n.counters.add(nfs3.Proc(req.Proc), st)
	req.Refused = st != nfs3.StatusOK && st != nfs3.StatusIO && st != nfs3.StatusServerFault
	if req.Log != nil && req.Log.Enabled(ctx, slog.LevelDebug) {
		req.Log.Debug("nfs3: reply", "proc", nfs3.Proc(req.Proc).String(), "status", st.String())
	}
}

// Serve runs one NFSv3 call.
func (n *NFS3) Serve(ctx context.Context, req *Request, res *xdr.Encoder) Status {
	switch nfs3.Proc(req.Proc) {
	case nfs3.ProcNull:
		if req.Args.Done() != nil {
			return StatusGarbage
		}
		n.done(ctx, req, nfs3.StatusOK)
		return StatusOK
	case nfs3.ProcGetattr:
		return call(ctx, n, req, res, n.getattr)
	case nfs3.ProcSetattr:
		return call(ctx, n, req, res, n.setattr)
	case nfs3.ProcLookup:
		return call(ctx, n, req, res, n.lookup)
	case nfs3.ProcAccess:
		return call(ctx, n, req, res, n.access)
	case nfs3.ProcReadlink:
		return call(ctx, n, req, res, n.readlink)
	case nfs3.ProcRead:
		return n.read(ctx, req, res)
	case nfs3.ProcWrite:
		return call(ctx, n, req, res, n.write)
	case nfs3.ProcCreate:
		return call(ctx, n, req, res, n.create)
	case nfs3.ProcMkdir:
		return call(ctx, n, req, res, n.mkdir)
	case nfs3.ProcSymlink:
		return call(ctx, n, req, res, n.symlink)
	case nfs3.ProcMknod:
		return call(ctx, n, req, res, n.mknod)
	case nfs3.ProcRemove:
		return call(ctx, n, req, res, n.remove)
	case nfs3.ProcRmdir:
		return call(ctx, n, req, res, n.rmdir)
	case nfs3.ProcRename:
		return call(ctx, n, req, res, n.rename)
	case nfs3.ProcLink:
		return call(ctx, n, req, res, n.link)
	case nfs3.ProcReaddir:
		return call(ctx, n, req, res, n.readdir)
	case nfs3.ProcReaddirplus:
		return call(ctx, n, req, res, n.readdirplus)
	case nfs3.ProcFsstat:
		return call(ctx, n, req, res, n.fsstat)
	case nfs3.ProcFsinfo:
		return call(ctx, n, req, res, n.fsinfo)
	case nfs3.ProcPathconf:
		return call(ctx, n, req, res, n.pathconf)
	case nfs3.ProcCommit:
		return call(ctx, n, req, res, n.commit)
	}
	return StatusProcUnavail
}

var discardLogger = slog.New(slog.DiscardHandler)

func (n *NFS3) logger(req *Request) *slog.Logger {
	switch {
	case req.Log != nil:
		return req.Log
	case n.Logger != nil:
		return n.Logger
	}
	return discardLogger
}

// storeErrorLines is how many "nfs3: store error" lines are logged per
// procedure and status a minute: enough to show a fault's errors as it
// starts, not a line per call while it lasts (file descriptors used up,
// say, when every call fails).
const storeErrorLines = 10

// storeErrorKey keys NFS3.storeErrors.
type storeErrorKey struct {
	proc uint32
	st   nfs3.Status
}

// status maps err and logs errors that have no specific NFS status (the
// reply then says only SERVERFAULT or IO), up to storeErrorLines a minute
// per procedure and status; held_back counts those not logged since the
// previous line (the metrics count every reply).
func (n *NFS3) status(req *Request, err error) nfs3.Status {
	st := statusFromError(err)
	if st == nfs3.StatusServerFault || errors.Is(err, maildirfs.ErrCorrupt) {
		if ok, held := n.storeErrors.AllowN(storeErrorKey{req.Proc, st}, time.Now(), storeErrorLines); ok {
			n.logger(req).Warn("nfs3: store error", "proc", nfs3.Proc(req.Proc).String(), "status", st.String(), "err", err,
				"export", req.export, "held_back", held)
		}
	}
	return st
}

// authorize resolves h through Auth.
func (n *NFS3) authorize(req *Request, h []byte) (Access, nfs3.Status) {
	if n.Auth == nil {
		n.logger(req).Error("nfs3: no Authorizer configured")
		return Access{}, nfs3.StatusServerFault
	}
	if len(h) == 0 || len(h) > maildirfs.MaxHandle {
		return Access{}, nfs3.StatusBadHandle
	}
	acc, err := n.Auth.Authorize(req, h)
	if err != nil {
		return Access{}, n.status(req, err)
	}
	if acc.Store == nil {
		n.logger(req).Error("nfs3: Authorizer returned no Store", "export", acc.Export)
		return Access{}, nfs3.StatusServerFault
	}
	// Which export a store error is on: with exports on several disks,
	// the line must say which one fails.
	req.export = acc.Export
	return acc, nfs3.StatusOK
}

// checkName applies the server's name rules before the store sees it, as
// the store does (open("") is ENOENT): longer than NAME_MAX is NAMETOOLONG,
// empty is NOENT, and a name containing "/" or NUL cannot name a directory
// entry (INVAL, rather than Linux knfsd's GARBAGE_ARGS, so the client sees
// a file error).
func checkName(name string) nfs3.Status {
	switch {
	case len(name) > nfs3.MaxName:
		return nfs3.StatusNameTooLong
	case name == "":
		return nfs3.StatusNoEnt
	case strings.ContainsAny(name, "/\x00"):
		return nfs3.StatusInval
	}
	return nfs3.StatusOK
}

// fattr converts the store's attributes to fattr3 (nil stays nil).
func fattr(a *maildirfs.Attr) *nfs3.Fattr {
	if a == nil {
		return nil
	}
	v := fattrOf(a)
	return &v
}

// fattrOf converts the store's attributes to fattr3.
func fattrOf(a *maildirfs.Attr) nfs3.Fattr {
	return nfs3.Fattr{
		Type:   nfs3.FileType(a.Type),
		Mode:   a.Mode & 0o7777,
		Nlink:  a.Nlink,
		UID:    a.UID,
		GID:    a.GID,
		Size:   a.Size,
		Used:   a.Used,
		Rdev:   nfs3.SpecData{Major: a.RdevMajor, Minor: a.RdevMinor},
		FSID:   a.FSID,
		FileID: a.FileID,
		Atime:  nfs3.TimeOf(a.Atime),
		Mtime:  nfs3.TimeOf(a.Mtime),
		Ctime:  nfs3.TimeOf(a.Ctime),
	}
}

// wcc converts the store's weak cache consistency data.
func wcc(w maildirfs.Wcc) nfs3.WccData {
	out := nfs3.WccData{After: fattr(w.After)}
	if w.Before != nil {
		out.Before = &nfs3.WccAttr{Size: w.Before.Size, Mtime: nfs3.TimeOf(w.Before.Mtime), Ctime: nfs3.TimeOf(w.Before.Ctime)}
	}
	return out
}

// setAttr converts sattr3 for the store.
func setAttr(s *nfs3.SetAttr) maildirfs.SetAttr {
	out := maildirfs.SetAttr{
		UID:   s.UID,
		GID:   s.GID,
		Size:  s.Size,
		Atime: maildirfs.TimeHow(s.Atime),
		Mtime: maildirfs.TimeHow(s.Mtime),
	}
	if s.Mode != nil {
		m := *s.Mode & 0o7777 // mode3 carries permission bits only
		out.Mode = &m
	}
	if s.Atime == nfs3.SetToClientTime {
		out.AtimeVal = s.AtimeVal.Time()
	}
	if s.Mtime == nfs3.SetToClientTime {
		out.MtimeVal = s.MtimeVal.Time()
	}
	return out
}

// postAttr fetches post-op attributes for a failure reply; nil if it
// cannot (post_op_attr FALSE is always legal).
func postAttr(acc Access, h []byte) *nfs3.Fattr {
	a, err := acc.Store.Getattr(h)
	if err != nil {
		return nil
	}
	return fattr(&a)
}

// fillAfter completes w.After for a failure reply.
func fillAfter(w *nfs3.WccData, acc Access, h []byte) {
	if w.After == nil && acc.Store != nil {
		w.After = postAttr(acc, h)
	}
}

// RFC 1813 §3.3.1.
func (n *NFS3) getattr(_ context.Context, req *Request, a *nfs3.GetattrArgs, r *nfs3.GetattrRes) {
	acc, st := n.authorize(req, a.Object)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	attr, err := acc.Store.Getattr(a.Object)
	if err != nil {
		r.Status = n.status(req, err)
		return
	}
	r.Attr = fattrOf(&attr)
}

// RFC 1813 §3.3.2.
func (n *NFS3) setattr(_ context.Context, req *Request, a *nfs3.SetattrArgs, r *nfs3.SetattrRes) {
	acc, st := n.authorize(req, a.Object)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	if acc.ReadOnly {
		r.Status = nfs3.StatusROFS
		fillAfter(&r.Wcc, acc, a.Object)
		return
	}
	var guard func(time.Time) bool
	if a.Guard.Check {
		// As the client saw the ctime: fattr3's nfstime3, which holds
		// no time before 1970 or after 2106 (nfs3.TimeOf clamps it),
		// and whose nanoseconds are compared as sent (not carried into
		// the seconds).
		guard = func(ctime time.Time) bool { return nfs3.TimeOf(ctime) == a.Guard.Ctime }
	}
	w, err := acc.Store.SetAttr(a.Object, acc.Cred, setAttr(&a.NewAttr), guard)
	r.Wcc = wcc(w)
	if err != nil {
		r.Status = n.status(req, err)
		fillAfter(&r.Wcc, acc, a.Object)
	}
}

// RFC 1813 §3.3.3.
func (n *NFS3) lookup(_ context.Context, req *Request, a *nfs3.LookupArgs, r *nfs3.LookupRes) {
	acc, st := n.authorize(req, a.Dir)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	if st := checkName(a.Name); st != nfs3.StatusOK {
		r.Status, r.DirAttr = st, postAttr(acc, a.Dir)
		return
	}
	h, attr, dirAttr, err := acc.Store.Lookup(a.Dir, acc.Cred, a.Name)
	r.DirAttr = fattr(dirAttr)
	if err != nil {
		r.Status = n.status(req, err)
		if r.DirAttr == nil {
			r.DirAttr = postAttr(acc, a.Dir)
		}
		return
	}
	r.Object, r.ObjAttr = h, fattr(&attr)
}

// RFC 1813 §3.3.4. On a read-only export the modifying bits are never
// granted.
func (n *NFS3) access(_ context.Context, req *Request, a *nfs3.AccessArgs, r *nfs3.AccessRes) {
	acc, st := n.authorize(req, a.Object)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	want := a.Access & (nfs3.AccessRead | nfs3.AccessLookup | nfs3.AccessModify | nfs3.AccessExtend | nfs3.AccessDelete | nfs3.AccessExecute)
	granted, post, err := acc.Store.Access(a.Object, acc.Cred, want)
	r.ObjAttr = fattr(post)
	if err != nil {
		r.Status = n.status(req, err)
		if r.ObjAttr == nil {
			r.ObjAttr = postAttr(acc, a.Object)
		}
		return
	}
	if acc.ReadOnly {
		granted &^= nfs3.AccessModify | nfs3.AccessExtend | nfs3.AccessDelete
	}
	r.Access = granted & want
}

// RFC 1813 §3.3.5.
func (n *NFS3) readlink(_ context.Context, req *Request, a *nfs3.ReadlinkArgs, r *nfs3.ReadlinkRes) {
	acc, st := n.authorize(req, a.Object)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	target, post, err := acc.Store.Readlink(a.Object, acc.Cred)
	r.Attr = fattr(post)
	if err != nil {
		r.Status = n.status(req, err)
		if r.Attr == nil {
			r.Attr = postAttr(acc, a.Object)
		}
		return
	}
	r.Target = target
}

// readBufs holds READ buffers of nfs3.MaxIO bytes.
var readBufs = sync.Pool{New: func() any { b := make([]byte, nfs3.MaxIO); return &b }}

// RFC 1813 §3.3.6. count is capped at rtmax (nfs3.MaxIO, udpIOMax over
// UDP); the data is read into a pooled buffer that is returned once
// encoded.
func (n *NFS3) read(ctx context.Context, req *Request, res *xdr.Encoder) Status {
	var a nfs3.ReadArgs
	a.Decode(req.Args)
	if req.Args.Done() != nil {
		return StatusGarbage
	}
	var r nfs3.ReadRes
	defer func() { n.done(ctx, req, r.Status) }()
	acc, st := n.authorize(req, a.File)
	if st != nfs3.StatusOK {
		r.Status = st
		r.Encode(res)
		return StatusOK
	}
	bp := readBufs.Get().(*[]byte)
	defer readBufs.Put(bp)
	buf := (*bp)[:min(a.Count, maxIO(req))]
	nr, eof, post, err := acc.Store.Read(a.File, acc.Cred, a.Offset, buf)
	r.Attr = fattr(post)
	if err != nil {
		r.Status = n.status(req, err)
		if r.Attr == nil {
			r.Attr = postAttr(acc, a.File)
		}
	} else {
		r.Count, r.EOF, r.Data = uint32(nr), eof, buf[:nr]
	}
	r.Encode(res)
	return StatusOK
}

// RFC 1813 §3.3.7. A WRITE longer than wtmax is cut to wtmax (a short
// write the client continues). committed and the verifier come from the
// store, which has synced before returning a stable level.
func (n *NFS3) write(_ context.Context, req *Request, a *nfs3.WriteArgs, r *nfs3.WriteRes) {
	acc, st := n.authorize(req, a.File)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	if acc.ReadOnly {
		r.Status = nfs3.StatusROFS
		fillAfter(&r.Wcc, acc, a.File)
		return
	}
	data := a.Data
	if len(data) > nfs3.MaxIO {
		data = data[:nfs3.MaxIO]
	}
	nw, committed, verf, w, err := acc.Store.Write(a.File, acc.Cred, a.Offset, data, maildirfs.StableHow(a.Stable))
	r.Wcc = wcc(w)
	if err != nil {
		r.Status = n.status(req, err)
		fillAfter(&r.Wcc, acc, a.File)
		return
	}
	if nfs3.StableHow(committed) < a.Stable {
		// RFC 1813 §3.3.7: committed must be at least what was asked; a
		// store that did less must not have the client drop its copy.
		n.logger(req).Error("nfs3: store committed less than asked", "asked", a.Stable.String(),
			"committed", nfs3.StableHow(committed).String(), "export", acc.Export)
		r.Status = nfs3.StatusServerFault
		return
	}
	r.Count, r.Committed, r.Verf = uint32(nw), nfs3.StableHow(committed), verf
}

// RFC 1813 §3.3.21.
func (n *NFS3) commit(_ context.Context, req *Request, a *nfs3.CommitArgs, r *nfs3.CommitRes) {
	acc, st := n.authorize(req, a.File)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	verf, w, err := acc.Store.Commit(a.File, acc.Cred, a.Offset, a.Count)
	r.Wcc = wcc(w)
	if err != nil {
		r.Status = n.status(req, err)
		fillAfter(&r.Wcc, acc, a.File)
		return
	}
	r.Verf = verf
}

// prepareDirOp authorizes a namespace-changing call on dir/name: the
// export must be writable and the name acceptable. On failure it fills the
// directory's wcc and returns the status.
func (n *NFS3) prepareDirOp(req *Request, where *nfs3.DirOpArgs, dirWcc *nfs3.WccData) (Access, nfs3.Status) {
	acc, st := n.authorize(req, where.Dir)
	if st != nfs3.StatusOK {
		return acc, st
	}
	if acc.ReadOnly {
		st = nfs3.StatusROFS
	} else {
		st = checkName(where.Name)
	}
	if st != nfs3.StatusOK {
		fillAfter(dirWcc, acc, where.Dir)
	}
	return acc, st
}

// finishCreate fills a CREATE/MKDIR/SYMLINK/MKNOD result.
func (n *NFS3) finishCreate(req *Request, acc Access, dir []byte, r *nfs3.CreateRes, h maildirfs.Handle, attr *maildirfs.Attr, w maildirfs.Wcc, err error) {
	r.DirWcc = wcc(w)
	if err != nil {
		r.Status = n.status(req, err)
		fillAfter(&r.DirWcc, acc, dir)
		return
	}
	r.Object, r.ObjAttr = h, fattr(attr)
}

// RFC 1813 §3.3.8.
func (n *NFS3) create(_ context.Context, req *Request, a *nfs3.CreateArgs, r *nfs3.CreateRes) {
	acc, st := n.prepareDirOp(req, &a.Where, &r.DirWcc)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	h, attr, w, err := acc.Store.Create(a.Where.Dir, acc.Cred, a.Where.Name, maildirfs.CreateMode(a.Mode), setAttr(&a.Attr), a.Verf)
	if a.Mode != nfs3.Unchecked && retryDone(req, err, nfs3.StatusExist) && callersOwn(req, acc, a.Where.Dir, a.Where.Name) {
		// The earlier run may have made the file and stopped before it
		// was finished (owner, mode, verifier) or before it replied.
		rh, ra, rw, rerr := acc.Store.FinishCreate(a.Where.Dir, acc.Cred, a.Where.Name, maildirfs.CreateMode(a.Mode), setAttr(&a.Attr), a.Verf)
		if rerr == nil {
			n.logRetry(req, a.Where.Name)
			h, attr, w, err = rh, ra, rw, nil
		}
	} else if a.Mode == nfs3.Unchecked && req.MayHaveRun && err == nil && attr.Size == 0 && (!req.Completed || attr.UID == acc.Cred.UID) {
		// UNCHECKED opens what it finds, which may be the file an
		// earlier run made and did not give to its owner: finish it
		// (FinishCreate takes only an empty file still the server's or
		// already the caller's; on anything else the open stands).
		if rh, ra, rw, rerr := acc.Store.FinishCreate(a.Where.Dir, acc.Cred, a.Where.Name, maildirfs.CreateMode(a.Mode), setAttr(&a.Attr), a.Verf); rerr == nil {
			h, attr, w = rh, ra, rw
		}
	}
	n.finishCreate(req, acc, a.Where.Dir, r, h, attr, w, err)
}

// RFC 1813 §3.3.9.
func (n *NFS3) mkdir(_ context.Context, req *Request, a *nfs3.MkdirArgs, r *nfs3.MkdirRes) {
	acc, st := n.prepareDirOp(req, &a.Where, &r.DirWcc)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	h, attr, w, err := acc.Store.Mkdir(a.Where.Dir, acc.Cred, a.Where.Name, setAttr(&a.Attr))
	if retryDone(req, err, nfs3.StatusExist) && callersOwn(req, acc, a.Where.Dir, a.Where.Name) {
		rh, ra, rw, rerr := acc.Store.FinishMkdir(a.Where.Dir, acc.Cred, a.Where.Name, setAttr(&a.Attr))
		if rerr == nil {
			n.logRetry(req, a.Where.Name)
			h, attr, w, err = rh, ra, rw, nil
		}
	}
	n.finishCreate(req, acc, a.Where.Dir, r, h, attr, w, err)
}

// RFC 1813 §3.3.10.
func (n *NFS3) symlink(_ context.Context, req *Request, a *nfs3.SymlinkArgs, r *nfs3.SymlinkRes) {
	acc, st := n.prepareDirOp(req, &a.Where, &r.DirWcc)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	h, attr, w, err := acc.Store.Symlink(a.Where.Dir, acc.Cred, a.Where.Name, a.Target, setAttr(&a.Attr))
	if retryDone(req, err, nfs3.StatusExist) && callersOwn(req, acc, a.Where.Dir, a.Where.Name) {
		rh, ra, rw, rerr := acc.Store.FinishSymlink(a.Where.Dir, acc.Cred, a.Where.Name, a.Target, setAttr(&a.Attr))
		if rerr == nil {
			n.logRetry(req, a.Where.Name)
			h, attr, w, err = rh, ra, rw, nil
		}
	}
	n.finishCreate(req, acc, a.Where.Dir, r, h, attr, w, err)
}

// RFC 1813 §3.3.11. Regular files, directories and symlinks have their own
// procedures, and unknown types do not exist: both are NFS3ERR_BADTYPE.
func (n *NFS3) mknod(_ context.Context, req *Request, a *nfs3.MknodArgs, r *nfs3.MknodRes) {
	acc, st := n.prepareDirOp(req, &a.Where, &r.DirWcc)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	switch a.Type {
	case nfs3.TypeChr, nfs3.TypeBlk, nfs3.TypeSock, nfs3.TypeFifo:
	default:
		r.Status = nfs3.StatusBadType
		fillAfter(&r.DirWcc, acc, a.Where.Dir)
		return
	}
	h, attr, w, err := acc.Store.Mknod(a.Where.Dir, acc.Cred, a.Where.Name, maildirfs.FileType(a.Type), setAttr(&a.Attr), a.Spec.Major, a.Spec.Minor)
	n.finishCreate(req, acc, a.Where.Dir, r, h, attr, w, err)
}

// RFC 1813 §3.3.12.
func (n *NFS3) remove(_ context.Context, req *Request, a *nfs3.RemoveArgs, r *nfs3.RemoveRes) {
	acc, st := n.prepareDirOp(req, a, &r.Wcc)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	w, err := acc.Store.Remove(a.Dir, acc.Cred, a.Name)
	r.Wcc = wcc(w)
	if retryDone(req, err, nfs3.StatusNoEnt) {
		r.Status = n.answerDone(req, a.Name, acc.Store, a.Dir)
		fillAfter(&r.Wcc, acc, a.Dir)
		return
	}
	if err != nil {
		r.Status = n.status(req, err)
		fillAfter(&r.Wcc, acc, a.Dir)
	}
}

// RFC 1813 §3.3.13.
func (n *NFS3) rmdir(_ context.Context, req *Request, a *nfs3.RmdirArgs, r *nfs3.RmdirRes) {
	acc, st := n.prepareDirOp(req, a, &r.Wcc)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	w, err := acc.Store.Rmdir(a.Dir, acc.Cred, a.Name)
	r.Wcc = wcc(w)
	if retryDone(req, err, nfs3.StatusNoEnt) {
		r.Status = n.answerDone(req, a.Name, acc.Store, a.Dir)
		fillAfter(&r.Wcc, acc, a.Dir)
		return
	}
	if err != nil {
		r.Status = n.status(req, err)
		fillAfter(&r.Wcc, acc, a.Dir)
	}
}

// RFC 1813 §3.3.14. Both directories must belong to the same export's
// store, else NFS3ERR_XDEV; both wcc_data are sent on success and failure.
func (n *NFS3) rename(_ context.Context, req *Request, a *nfs3.RenameArgs, r *nfs3.RenameRes) {
	from, st := n.prepareDirOp(req, &a.From, &r.FromWcc)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	to, st := n.prepareDirOp(req, &a.To, &r.ToWcc)
	if st == nfs3.StatusOK && to.Store != from.Store {
		st = nfs3.StatusXDev
		fillAfter(&r.ToWcc, to, a.To.Dir)
	}
	if st != nfs3.StatusOK {
		r.Status = st
		fillAfter(&r.FromWcc, from, a.From.Dir)
		return
	}
	fw, tw, err := from.Store.Rename(a.From.Dir, a.From.Name, a.To.Dir, a.To.Name, from.Cred)
	r.FromWcc, r.ToWcc = wcc(fw), wcc(tw)
	if retryDone(req, err, nfs3.StatusNoEnt) {
		// The source is gone; done if the target is there.
		if _, _, _, lerr := to.Store.Lookup(a.To.Dir, to.Cred, a.To.Name); lerr == nil {
			// Target first, as the store syncs a rename.
			r.Status = n.answerDone(req, a.From.Name, to.Store, a.To.Dir, a.From.Dir)
			fillAfter(&r.FromWcc, from, a.From.Dir)
			fillAfter(&r.ToWcc, to, a.To.Dir)
			return
		}
	}
	if err != nil {
		r.Status = n.status(req, err)
		fillAfter(&r.FromWcc, from, a.From.Dir)
		fillAfter(&r.ToWcc, to, a.To.Dir)
	}
}

// RFC 1813 §3.3.15. The file and the directory must belong to the same
// export's store, else NFS3ERR_XDEV.
func (n *NFS3) link(_ context.Context, req *Request, a *nfs3.LinkArgs, r *nfs3.LinkRes) {
	file, st := n.authorize(req, a.File)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	dir, st := n.prepareDirOp(req, &a.Link, &r.DirWcc)
	if st == nfs3.StatusOK && dir.Store != file.Store {
		st = nfs3.StatusXDev
		fillAfter(&r.DirWcc, dir, a.Link.Dir)
	}
	if st == nfs3.StatusOK && file.ReadOnly {
		st = nfs3.StatusROFS
		fillAfter(&r.DirWcc, dir, a.Link.Dir)
	}
	if st != nfs3.StatusOK {
		r.Status = st
		r.FileAttr = postAttr(file, a.File)
		return
	}
	attr, w, err := dir.Store.Link(a.File, a.Link.Dir, a.Link.Name, dir.Cred)
	r.FileAttr, r.DirWcc = fattr(attr), wcc(w)
	if retryDone(req, err, nfs3.StatusExist) {
		// The name is taken; done if by the file itself.
		_, la, _, lerr := dir.Store.Lookup(a.Link.Dir, dir.Cred, a.Link.Name)
		fa, ferr := file.Store.Getattr(a.File)
		if lerr == nil && ferr == nil && la.FileID == fa.FileID {
			r.Status = n.answerDone(req, a.Link.Name, dir.Store, a.Link.Dir, a.File)
			r.FileAttr = fattr(&fa)
			fillAfter(&r.DirWcc, dir, a.Link.Dir)
			return
		}
	}
	if err != nil {
		r.Status = n.status(req, err)
		if r.FileAttr == nil {
			r.FileAttr = postAttr(file, a.File)
		}
		fillAfter(&r.DirWcc, dir, a.Link.Dir)
	}
}

// cookieVerf is the READDIR cookie verifier. Cookies are the file
// system's own d_off values, which stay valid across unrelated changes, so
// the verifier is constant and never checked: a listing in progress never
// gets NFS3ERR_BAD_COOKIE (reference §4.9, Maildir advice).
var cookieVerf [nfs3.VerfSize]byte

// RFC 1813 §3.3.16. Entries are added while the whole reply, counted at
// its exact XDR size with directory attributes, stays within count (and
// within a datagram over UDP).
func (n *NFS3) readdir(ctx context.Context, req *Request, a *nfs3.ReaddirArgs, r *nfs3.ReaddirRes) {
	acc, st := n.authorize(req, a.Dir)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	budget := int(min(a.Count, maxDirResults(req)))
	used := nfs3.ReaddirFixedSize(true)
	eof, dirAttr, err := acc.Store.ReadDir(a.Dir, acc.Cred, a.Cookie, false, func(e *maildirfs.DirEntry) bool {
		size := nfs3.EntrySize(len(e.Name))
		if used+size > budget || ctx.Err() != nil {
			return false
		}
		used += size
		r.Entries = append(r.Entries, nfs3.Entry{FileID: e.FileID, Name: e.Name, Cookie: e.Cookie})
		return true
	})
	r.DirAttr = fattr(dirAttr)
	if err == nil && !eof {
		r.Entries = r.Entries[:wholeCookies(len(r.Entries), a.Cookie, func(i int) uint64 { return r.Entries[i].Cookie })]
	}
	if r.Status = n.readdirStatus(ctx, req, err, len(r.Entries), eof); r.Status == nfs3.StatusOK {
		r.Verf, r.EOF = cookieVerf, eof
	} else {
		r.Entries = nil
		if r.DirAttr == nil {
			r.DirAttr = postAttr(acc, a.Dir)
		}
	}
}

// wholeCookies returns how many of the n entries of a READDIR(PLUS) reply
// that did not reach the end to keep, the reply having resumed at cookie
// from; cookie(i) is entry i's. Each entry's cookie is where the entry
// after it begins, so an entry whose cookie equals the one before it
// (from, for the first) begins where the next does: on ext4, whose
// cookies are name hashes, the two names have the same hash, and a
// listing resumed at that cookie starts at this entry again. A reply so
// never ends inside such a run: it is cut before it, and a run the reply
// cannot get past leaves none (NFS3ERR_TOOSMALL; the client asks with a
// larger count), as a listing that resumed there would list the same
// names for ever.
func wholeCookies(n int, from uint64, cookie func(i int) uint64) int {
	for n > 0 {
		before := from
		if n > 1 {
			before = cookie(n - 2)
		}
		if cookie(n-1) != before {
			break
		}
		n--
	}
	return n
}

// RFC 1813 §3.3.17. The reply is filled up to maxcount (its exact XDR
// size; within a datagram over UDP); dircount is ignored, as Linux knfsd does. dircount budgets only
// the entries' fileid, name and cookie, a limit no client needs (they size
// their buffers by maxcount), and the Linux client sends maxcount/8: a
// server honouring it returns about 2.5x fewer entries per reply (4 KiB
// names) and a listing takes that many more round trips.
func (n *NFS3) readdirplus(ctx context.Context, req *Request, a *nfs3.ReaddirplusArgs, r *nfs3.ReaddirplusRes) {
	acc, st := n.authorize(req, a.Dir)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	maxBudget := int(min(a.MaxCount, maxDirResults(req)))
	used := nfs3.ReaddirFixedSize(true)
	// Attributes and handle copies are carved from chunks: one allocation
	// per chunk rather than two per entry. A chunk is never appended to
	// beyond its capacity, so pointers into it stay valid.
	var (
		attrs   []nfs3.Fattr
		handles []byte
	)
	eof, dirAttr, err := acc.Store.ReadDir(a.Dir, acc.Cred, a.Cookie, true, func(e *maildirfs.DirEntry) bool {
		size := nfs3.EntryPlusSize(len(e.Name), e.Attr != nil, e.Handle)
		if used+size > maxBudget || ctx.Err() != nil {
			return false
		}
		used += size
		en := nfs3.EntryPlus{FileID: e.FileID, Name: e.Name, Cookie: e.Cookie}
		if e.Attr != nil {
			if len(attrs) == cap(attrs) {
				attrs = make([]nfs3.Fattr, 0, 64)
			}
			attrs = append(attrs, fattrOf(e.Attr))
			en.Attr = &attrs[len(attrs)-1]
		}
		if e.Handle != nil {
			// Copied: the store's DirEntry is only lent to emit.
			if len(handles)+len(e.Handle) > cap(handles) {
				handles = make([]byte, 0, max(4096, len(e.Handle)))
			}
			start := len(handles)
			handles = append(handles, e.Handle...)
			en.Handle = handles[start:len(handles):len(handles)]
		}
		r.Entries = append(r.Entries, en)
		return true
	})
	r.DirAttr = fattr(dirAttr)
	if err == nil && !eof {
		r.Entries = r.Entries[:wholeCookies(len(r.Entries), a.Cookie, func(i int) uint64 { return r.Entries[i].Cookie })]
	}
	if r.Status = n.readdirStatus(ctx, req, err, len(r.Entries), eof); r.Status == nfs3.StatusOK {
		r.Verf, r.EOF = cookieVerf, eof
	} else {
		r.Entries = nil
		if r.DirAttr == nil {
			r.DirAttr = postAttr(acc, a.Dir)
		}
	}
}

// readdirStatus is the status of a READDIR or READDIRPLUS reply that
// listed entries entries and reached eof or not, with the store's error.
func (n *NFS3) readdirStatus(ctx context.Context, req *Request, err error, entries int, eof bool) nfs3.Status {
	switch {
	case err != nil:
		return n.status(req, err)
	case entries == 0 && !eof && ctx.Err() != nil:
		return nfs3.StatusJukebox // cancelled (shutdown), not too small
	case entries == 0 && !eof:
		return nfs3.StatusTooSmall
	}
	return nfs3.StatusOK
}

// RFC 1813 §3.3.18.
func (n *NFS3) fsstat(_ context.Context, req *Request, a *nfs3.FsstatArgs, r *nfs3.FsstatRes) {
	acc, st := n.authorize(req, a.Object)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	fs, post, err := acc.Store.FSStat(a.Object)
	r.Attr = fattr(post)
	if err != nil {
		r.Status = n.status(req, err)
		if r.Attr == nil {
			r.Attr = postAttr(acc, a.Object)
		}
		return
	}
	r.TBytes, r.FBytes, r.ABytes = fs.TotalBytes, fs.FreeBytes, fs.AvailBytes
	r.TFiles, r.FFiles, r.AFiles = fs.TotalFiles, fs.FreeFiles, fs.AvailFiles
	r.Invarsec = 0 // volatile: mail stores change constantly
}

// RFC 1813 §3.3.19. Over UDP the sizes are ones whose replies fit a
// datagram (udpIOMax, udpIOPref).
func (n *NFS3) fsinfo(_ context.Context, req *Request, a *nfs3.FsinfoArgs, r *nfs3.FsinfoRes) {
	acc, st := n.authorize(req, a.Object)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	attr, err := acc.Store.Getattr(a.Object)
	if err != nil {
		r.Status = n.status(req, err)
		return
	}
	iomax, iopref, dtpref := uint32(nfs3.MaxIO), uint32(nfs3.MaxIO), uint32(fsinfoDtpref)
	maxSize := uint64(1<<63 - 1)
	if m, ok := acc.Store.(MaxFileSizer); ok {
		maxSize = m.MaxFileSize()
	}
	if overUDP(req) {
		iomax, iopref, dtpref = udpIOMax, udpIOPref, udpIOPref
	}
	*r = nfs3.FsinfoRes{
		Status: nfs3.StatusOK, Attr: fattr(&attr),
		Rtmax: iomax, Rtpref: iopref, Rtmult: 4096,
		Wtmax: iomax, Wtpref: iopref, Wtmult: 4096,
		Dtpref:      dtpref,
		MaxFileSize: maxSize,
		TimeDelta:   nfs3.Time{Seconds: 0, Nseconds: 1},
		Properties:  fsinfoProperties,
	}
}

// RFC 1813 §3.3.20.
func (n *NFS3) pathconf(_ context.Context, req *Request, a *nfs3.PathconfArgs, r *nfs3.PathconfRes) {
	acc, st := n.authorize(req, a.Object)
	if st != nfs3.StatusOK {
		r.Status = st
		return
	}
	attr, err := acc.Store.Getattr(a.Object)
	if err != nil {
		r.Status = n.status(req, err)
		return
	}
	linkMax := uint32(defaultLinkMax)
	if lm, ok := acc.Store.(LinkMaxer); ok {
		linkMax = lm.LinkMax()
	}
	*r = nfs3.PathconfRes{
		Status: nfs3.StatusOK, Attr: fattr(&attr),
		Linkmax: linkMax, NameMax: nfs3.MaxName,
		NoTrunc: true, ChownRestricted: true, CaseInsensitive: false, CasePreserving: true,
	}
}
