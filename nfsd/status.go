package nfsd

import (
	"errors"
	"syscall"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/maildirfs"
)

// ErrAccess is returned by an Authorizer when the client may not use the
// export a handle belongs to; NFSv3 answers NFS3ERR_ACCES.
var ErrAccess = errors.New("nfsd: access denied")

// errnoStatus maps the errnos a Store returns to nfsstat3 (RFC 1813 §2.6;
// the pairs follow Linux knfsd's nfserrno table).
var errnoStatus = map[syscall.Errno]nfs3.Status{
	syscall.EPERM:        nfs3.StatusPerm,
	syscall.ENOENT:       nfs3.StatusNoEnt,
	syscall.EIO:          nfs3.StatusIO,
	syscall.ENXIO:        nfs3.StatusNXIO,
	syscall.EACCES:       nfs3.StatusAcces,
	syscall.EEXIST:       nfs3.StatusExist,
	syscall.EXDEV:        nfs3.StatusXDev,
	syscall.ENODEV:       nfs3.StatusNoDev,
	syscall.ENOTDIR:      nfs3.StatusNotDir,
	syscall.EISDIR:       nfs3.StatusIsDir,
	syscall.EINVAL:       nfs3.StatusInval,
	syscall.EFBIG:        nfs3.StatusFBig,
	syscall.ENOSPC:       nfs3.StatusNoSpc,
	syscall.EROFS:        nfs3.StatusROFS,
	syscall.EMLINK:       nfs3.StatusMLink,
	syscall.ENAMETOOLONG: nfs3.StatusNameTooLong,
	syscall.ENOTEMPTY:    nfs3.StatusNotEmpty,
	syscall.EDQUOT:       nfs3.StatusDQuot,
	syscall.ESTALE:       nfs3.StatusStale,
	// ELOOP comes from O_NOFOLLOW meeting a symlink where a file or
	// directory was required: the argument is wrong for the object.
	syscall.ELOOP:      nfs3.StatusInval,
	syscall.EOPNOTSUPP: nfs3.StatusNotSupp,
	syscall.ENOSYS:     nfs3.StatusNotSupp,
	syscall.EOVERFLOW:  nfs3.StatusFBig,
	syscall.ETXTBSY:    nfs3.StatusAcces,
	// EBUSY: the name is a mount point (a file system or a file mounted
	// inside the export on the box), which REMOVE, RMDIR and RENAME
	// cannot touch. knfsd's nfsd_unlink answers NFSv3 ACCES ("name is
	// mounted-on. There is no perfect error status").
	syscall.EBUSY: nfs3.StatusAcces,
	// EAGAIN: the store is busy (e.g. a lock or migration); JUKEBOX makes
	// the client retry later with a new xid.
	syscall.EAGAIN: nfs3.StatusJukebox,
}

// statusFromError maps a Store or Authorizer error to nfsstat3. nil is
// NFS3_OK. Corrupt on-disk state is NFS3ERR_IO; anything without a mapping
// is NFS3ERR_SERVERFAULT (clients report EIO), never "not supported". The
// caller logs unmapped errors (see NFS3.status).
func statusFromError(err error) nfs3.Status {
	if err == nil {
		return nfs3.StatusOK
	}
	var st nfs3.Status
	if errors.As(err, &st) {
		return st
	}
	switch {
	case errors.Is(err, maildirfs.ErrBadHandle):
		return nfs3.StatusBadHandle
	case errors.Is(err, maildirfs.ErrStale):
		return nfs3.StatusStale
	case errors.Is(err, maildirfs.ErrNotSync):
		return nfs3.StatusNotSync
	case errors.Is(err, maildirfs.ErrBadCookie):
		return nfs3.StatusBadCookie
	case errors.Is(err, ErrAccess):
		return nfs3.StatusAcces
	case errors.Is(err, maildirfs.ErrCorrupt):
		return nfs3.StatusIO
	}
	var errno syscall.Errno
	if errors.As(err, &errno) {
		if st, ok := errnoStatus[errno]; ok {
			return st
		}
	}
	return nfs3.StatusServerFault
}
