package client

import (
	"errors"
	"fmt"
	"io/fs"
	"syscall"

	"github.com/mailnfs/mailnfs/client/userdb"
	"github.com/mailnfs/mailnfs/internal/nfs3"
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
	Status Status // nfsstat3, or a mountstat3 value for MOUNT calls; 0 when RPC is set
	RPC    *rpc.ReplyError
}

// Status is an NFSv3 status (nfsstat3, RFC 1813 §2.6).
type Status = nfs3.Status

// NFSv3 status codes that callers commonly inspect.
const (
	NFS3OK             = nfs3.StatusOK
	NFS3ErrPerm        = nfs3.StatusPerm
	NFS3ErrNoEnt       = nfs3.StatusNoEnt
	NFS3ErrIO          = nfs3.StatusIO
	NFS3ErrAcces       = nfs3.StatusAcces
	NFS3ErrExist       = nfs3.StatusExist
	NFS3ErrNotDir      = nfs3.StatusNotDir
	NFS3ErrIsDir       = nfs3.StatusIsDir
	NFS3ErrInval       = nfs3.StatusInval
	NFS3ErrNoSpc       = nfs3.StatusNoSpc
	NFS3ErrROFS        = nfs3.StatusROFS
	NFS3ErrNameTooLong = nfs3.StatusNameTooLong
	NFS3ErrNotEmpty    = nfs3.StatusNotEmpty
	NFS3ErrDQuot       = nfs3.StatusDQuot
	NFS3ErrStale       = nfs3.StatusStale
	NFS3ErrBadHandle   = nfs3.StatusBadHandle
	NFS3ErrNotSync     = nfs3.StatusNotSync
	NFS3ErrBadCookie   = nfs3.StatusBadCookie
	NFS3ErrNotSupp     = nfs3.StatusNotSupp
	NFS3ErrTooSmall    = nfs3.StatusTooSmall
	NFS3ErrServerFault = nfs3.StatusServerFault
	NFS3ErrJukebox     = nfs3.StatusJukebox
)

// statusErrno maps the nfsstat3 values that share an errno number.
func statusErrno(s Status) (syscall.Errno, bool) {
	switch {
	case s == NFS3ErrNotSupp:
		return syscall.ENOTSUP, true
	case s == NFS3ErrBadHandle:
		return syscall.EBADF, true
	case s > 0 && s < 100:
		return syscall.Errno(s), true
	}
	return 0, false
}

// Error describes the failure: procedure, path and status name.
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
		return "client: " + op + ": " + nfs3.MountStat(e.Status).String()
	}
	return "client: " + op + ": " + e.Status.String()
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
func IsStatus(err error, s Status) bool {
	var e *Error
	return errors.As(err, &e) && e.RPC == nil && e.Status == s
}

// Temporary reports whether err is worth retrying later: transport failures
// (connection refused or lost, timeouts, ErrDisconnected), NFS3ERR_JUKEBOX,
// NFS3ERR_SERVERFAULT, NFS3ERR_IO, NFS3ERR_NOSPC, NFS3ERR_DQUOT,
// NFS3ERR_STALE (an MTA defers and retries), RPC SYSTEM_ERR, and any
// refusal of a remount (the box refused to MNT again an export this
// client had mounted: its exports changed, a reload dropped the export;
// mail waits for the box to be put right instead of bouncing). Programming
// and permission errors are not temporary, and neither are ErrOverQuota
// and a userdb syntax error.
func Temporary(err error) bool {
	if err == nil {
		return false
	}
	if re := (*remountError)(nil); errors.As(err, &re) {
		return true
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
	for _, perm := range []error{ErrBadMessageName, ErrBadFlags, ErrNoMessage, ErrMessageTooLarge, ErrBadURL, ErrOverQuota} {
		if errors.Is(err, perm) {
			return false
		}
	}
	if se := (*userdb.SyntaxError)(nil); errors.As(err, &se) {
		return false // a line of the userdb to fix
	}
	// Everything else comes from the transport or the context.
	return true
}

// remountError is a failed remount of an export the client had mounted
// (Client.remount); Temporary takes it for one whatever the cause.
type remountError struct{ err error }

func (e *remountError) Error() string { return "client: remount: " + e.err.Error() }
func (e *remountError) Unwrap() error { return e.err }
