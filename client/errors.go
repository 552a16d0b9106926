package client

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/mailnfs/mailnfs/internal/rpc"
)

// Error is a call that reached the server and failed there: either the RPC
// layer refused it (RPC set: PROG_UNAVAIL, AUTH_ERROR, ...) or the procedure
// answered a non-OK status (Status: an nfsstat3, or a mountstat3 for MOUNT
// calls). Transport failures (dial, connection loss, timeouts) are not
// *Error; see Temporary.
//
// errors.Is(err, fs.ErrNotExist), fs.ErrExist and fs.ErrPermission work, and
// errors.Is(err, syscall.ENOENT) and friends match the status's errno.
type Error struct {
	Prog   uint32 // RPC program (100003 NFS, 100005 MOUNT, 100000 portmap)
	Proc   uint32 // procedure number
	Op     string // procedure name, e.g. "LOOKUP"
	Path   string // name or path involved, when known
	Status uint32 // nfsstat3 or mountstat3; 0 when RPC is set
	RPC    *rpc.ReplyError
}

// NFSv3 status codes (RFC 1813 §2.6) that the client inspects.
const (
	NFS3OK             = 0
	NFS3ErrPerm        = 1
	NFS3ErrNoEnt       = 2
	NFS3ErrIO          = 5
	NFS3ErrNXIO        = 6
	NFS3ErrAcces       = 13
	NFS3ErrExist       = 17
	NFS3ErrXDev        = 18
	NFS3ErrNoDev       = 19
	NFS3ErrNotDir      = 20
	NFS3ErrIsDir       = 21
	NFS3ErrInval       = 22
	NFS3ErrFBig        = 27
	NFS3ErrNoSpc       = 28
	NFS3ErrROFS        = 30
	NFS3ErrMLink       = 31
	NFS3ErrNameTooLong = 63
	NFS3ErrNotEmpty    = 66
	NFS3ErrDQuot       = 69
	NFS3ErrStale       = 70
	NFS3ErrRemote      = 71
	NFS3ErrBadHandle   = 10001
	NFS3ErrNotSync     = 10002
	NFS3ErrBadCookie   = 10003
	NFS3ErrNotSupp     = 10004
	NFS3ErrTooSmall    = 10005
	NFS3ErrServerFault = 10006
	NFS3ErrBadType     = 10007
	NFS3ErrJukebox     = 10008
)

var statusNames = map[uint32]string{
	NFS3OK: "NFS3_OK", NFS3ErrPerm: "NFS3ERR_PERM", NFS3ErrNoEnt: "NFS3ERR_NOENT",
	NFS3ErrIO: "NFS3ERR_IO", NFS3ErrNXIO: "NFS3ERR_NXIO", NFS3ErrAcces: "NFS3ERR_ACCES",
	NFS3ErrExist: "NFS3ERR_EXIST", NFS3ErrXDev: "NFS3ERR_XDEV", NFS3ErrNoDev: "NFS3ERR_NODEV",
	NFS3ErrNotDir: "NFS3ERR_NOTDIR", NFS3ErrIsDir: "NFS3ERR_ISDIR", NFS3ErrInval: "NFS3ERR_INVAL",
	NFS3ErrFBig: "NFS3ERR_FBIG", NFS3ErrNoSpc: "NFS3ERR_NOSPC", NFS3ErrROFS: "NFS3ERR_ROFS",
	NFS3ErrMLink: "NFS3ERR_MLINK", NFS3ErrNameTooLong: "NFS3ERR_NAMETOOLONG",
	NFS3ErrNotEmpty: "NFS3ERR_NOTEMPTY", NFS3ErrDQuot: "NFS3ERR_DQUOT", NFS3ErrStale: "NFS3ERR_STALE",
	NFS3ErrRemote: "NFS3ERR_REMOTE", NFS3ErrBadHandle: "NFS3ERR_BADHANDLE",
	NFS3ErrNotSync: "NFS3ERR_NOT_SYNC", NFS3ErrBadCookie: "NFS3ERR_BAD_COOKIE",
	NFS3ErrNotSupp: "NFS3ERR_NOTSUPP", NFS3ErrTooSmall: "NFS3ERR_TOOSMALL",
	NFS3ErrServerFault: "NFS3ERR_SERVERFAULT", NFS3ErrBadType: "NFS3ERR_BADTYPE",
	NFS3ErrJukebox: "NFS3ERR_JUKEBOX",
}

// statusErrno maps the nfsstat3 values that share an errno number.
func statusErrno(s uint32) (syscall.Errno, bool) {
	switch s {
	case NFS3ErrPerm, NFS3ErrNoEnt, NFS3ErrIO, NFS3ErrNXIO, NFS3ErrAcces, NFS3ErrExist,
		NFS3ErrXDev, NFS3ErrNoDev, NFS3ErrNotDir, NFS3ErrIsDir, NFS3ErrInval, NFS3ErrFBig,
		NFS3ErrNoSpc, NFS3ErrROFS, NFS3ErrMLink, NFS3ErrNameTooLong, NFS3ErrNotEmpty,
		NFS3ErrDQuot, NFS3ErrStale, NFS3ErrRemote:
		return syscall.Errno(s), true
	case NFS3ErrNotSupp:
		return syscall.ENOTSUP, true
	case NFS3ErrBadHandle:
		return syscall.EBADF, true
	}
	return 0, false
}

// StatusName returns the symbolic name of an nfsstat3.
func StatusName(s uint32) string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("nfsstat3(%d)", s)
}

func mountStatusName(s uint32) string {
	switch s {
	case 0:
		return "MNT3_OK"
	case 1:
		return "MNT3ERR_PERM"
	case 2:
		return "MNT3ERR_NOENT"
	case 5:
		return "MNT3ERR_IO"
	case 13:
		return "MNT3ERR_ACCES"
	case 20:
		return "MNT3ERR_NOTDIR"
	case 22:
		return "MNT3ERR_INVAL"
	case 63:
		return "MNT3ERR_NAMETOOLONG"
	case 10004:
		return "MNT3ERR_NOTSUPP"
	case 10006:
		return "MNT3ERR_SERVERFAULT"
	}
	return fmt.Sprintf("mountstat3(%d)", s)
}

func (e *Error) Error() string {
	op := e.Op
	if op == "" {
		op = fmt.Sprintf("prog %d proc %d", e.Prog, e.Proc)
	}
	if e.Path != "" {
		op += " " + e.Path
	}
	if e.RPC != nil {
		return "client: " + op + ": " + e.RPC.Error()
	}
	if e.Prog == rpc.ProgMount {
		return "client: " + op + ": " + mountStatusName(e.Status)
	}
	return "client: " + op + ": " + StatusName(e.Status)
}

// Unwrap returns the RPC-level error, if any, so errors.As finds an
// *rpc.ReplyError.
func (e *Error) Unwrap() error {
	if e.RPC != nil {
		return e.RPC
	}
	return nil
}

// Is matches fs.ErrNotExist, fs.ErrExist, fs.ErrPermission and the
// syscall.Errno that corresponds to the status.
func (e *Error) Is(target error) bool {
	if e.RPC != nil {
		return false
	}
	errno, ok := statusErrno(e.Status)
	if !ok {
		return false
	}
	switch target {
	case fs.ErrNotExist:
		return errno == syscall.ENOENT
	case fs.ErrExist:
		return errno == syscall.EEXIST
	case fs.ErrPermission:
		return errno == syscall.EACCES || errno == syscall.EPERM
	}
	if t, ok := target.(syscall.Errno); ok {
		return t == errno
	}
	return false
}

// IsStatus reports whether err is an *Error with NFS status s.
func IsStatus(err error, s uint32) bool {
	var e *Error
	return errors.As(err, &e) && e.RPC == nil && e.Status == s
}

// Temporary reports whether err is worth retrying later: transport failures
// (connection refused or lost, timeouts, ErrDisconnected), NFS3ERR_JUKEBOX,
// NFS3ERR_SERVERFAULT, NFS3ERR_IO, NFS3ERR_NOSPC, NFS3ERR_DQUOT (an MTA
// defers and retries) and RPC SYSTEM_ERR. Programming and permission errors
// are not temporary.
func Temporary(err error) bool {
	if err == nil {
		return false
	}
	var e *Error
	if errors.As(err, &e) {
		if e.RPC != nil {
			return !e.RPC.Denied && e.RPC.Accept == rpc.SystemErr
		}
		if e.Prog == rpc.ProgMount {
			return e.Status == 5 || e.Status == 10006
		}
		switch e.Status {
		case NFS3ErrJukebox, NFS3ErrServerFault, NFS3ErrIO, NFS3ErrNoSpc, NFS3ErrDQuot, NFS3ErrStale:
			return true
		}
		return false
	}
	// Everything else comes from the transport or the context.
	return true
}
