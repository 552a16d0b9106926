package nfsd

import (
	"context"
	"log/slog"
	"net/netip"

	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// Request is one decoded RPC call handed to a Program.
type Request struct {
	XID  uint32
	Prog uint32
	Vers uint32
	Proc uint32

	// Cred is the call's credential as sent. AuthSys is set when its flavor
	// is AUTH_SYS and the body decoded (the transport answers AUTH_BADCRED
	// for a malformed one, so a Program never sees it).
	Cred    rpc.OpaqueAuth
	AuthSys *rpc.AuthSysParms

	// Addr is the client's address and source port; Net is "tcp" or "udp".
	Addr netip.AddrPort
	Net  string

	// Local is the server address the call arrived on.
	Local netip.AddrPort

	// Args holds the procedure's arguments; a Program must check Args.Done()
	// (or Err) after decoding and answer GarbageArgs on failure.
	Args *xdr.Decoder

	// Log is the request-scoped logger (connection and xid attributes).
	Log *slog.Logger

	// MayHaveRun is set on a non-idempotent call that may have run
	// before with no reply reaching the client (same client address, XID
	// and arguments): one an earlier run of the server began (DRCLog), a
	// retransmission across a restart, or one this run began whose reply
	// has since been evicted from the duplicate request cache for room.
	// The call may have been carried out, so a Program may answer the
	// error that its own effect causes (NOENT for a RENAME whose source
	// is gone and whose target is there) as success.
	MayHaveRun bool

	// Completed is set with MayHaveRun when this run carried the call out
	// to its reply, which has since been evicted from the duplicate
	// request cache (not when an earlier run began it): an object the
	// call made was then given to its caller, so one at its name that is
	// not the caller's (root's file made there since) is not its own and
	// is not finished for it.
	Completed bool

	// Refused is set by a Program on a call it answered with an error
	// that leaves nothing done (NFS3: any status but OK, IO and
	// SERVERFAULT). The duplicate request cache then keeps no key of the
	// call once its reply is evicted, and the duplicate request log marks
	// it, so that a retransmission is run again as new rather than marked
	// MayHaveRun: a GUARDED CREATE refused EXIST because another client
	// held the name must not be answered as done on its retransmission.
	Refused bool

	// export is the path of the export the call's handle belongs to,
	// once NFS3 has authorized it: for the call's log lines.
	export string
}

// Program serves one ONC RPC program over all its versions.
type Program interface {
	// Prog returns the program number.
	Prog() uint32
	// Versions returns the lowest and highest version served; a call for
	// another version gets PROG_MISMATCH with this range.
	Versions() (low, high uint32)
	// Serve runs one call. On rpc.Success it has appended the procedure's
	// results to res. Any other status is sent as an accepted reply with
	// that status and res is discarded. A non-zero AuthStat (with Denied)
	// is sent as MSG_DENIED/AUTH_ERROR. A panic inside Serve is recovered
	// by the transport and answered as SYSTEM_ERR.
	Serve(ctx context.Context, req *Request, res *xdr.Encoder) Status
}

// Status is a Program's verdict on one call.
type Status struct {
	Accept rpc.AcceptStat
	// Auth, when non-zero, turns the reply into MSG_DENIED/AUTH_ERROR.
	Auth rpc.AuthStat
	// Drop means send no reply at all (a denied portmap caller, an
	// in-progress duplicate).
	Drop bool
}

// Cacheable is implemented by Programs with non-idempotent procedures. The
// transport's duplicate request cache stores and replays replies only for
// calls for which NonIdempotent returns true.
type Cacheable interface {
	NonIdempotent(vers, proc uint32) bool
}

// ReplySizer is implemented by Programs with procedures whose replies may
// be large (NFS READ and READDIR). The TCP transport reserves ReplySize
// bytes of the connection's Server.MaxQueuedPerConn for such a call from
// when it is read until its reply is written, so that a client that does
// not read its replies cannot have more of them built.
type ReplySizer interface {
	// ReplySize bounds the reply to a call of vers and proc given its
	// record (call header and arguments, not yet decoded or checked); 0
	// means a small reply, counted only once it is built.
	ReplySize(vers, proc uint32, rec []byte) int
}

// Common statuses.
var (
	StatusOK          = Status{Accept: rpc.Success}
	StatusProcUnavail = Status{Accept: rpc.ProcUnavail}
	StatusGarbage     = Status{Accept: rpc.GarbageArgs}
	StatusSystemErr   = Status{Accept: rpc.SystemErr}
)
