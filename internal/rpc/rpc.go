// Package rpc holds the ONC RPC v2 (RFC 5531) message layer shared by the
// mailnfs server and client: call and reply headers, AUTH_NONE and AUTH_SYS
// credentials, and record marking on stream transports.
//
// It depends only on package xdr. Every length read from the wire is bounded
// by the RFC's limits (opaque_auth bodies of 400 bytes, AUTH_SYS machine names
// of 255 bytes and 16 gids) and by MaxRecord for whole records.
package rpc

import (
	"errors"
	"fmt"

	"github.com/mailnfs/mailnfs/internal/xdr"
)

// Message types.
const (
	Call  = 0
	Reply = 1
)

// Version is the only RPC version there is.
const Version = 2

// Reply status (reply_stat).
const (
	MsgAccepted = 0
	MsgDenied   = 1
)

// AcceptStat is the accept_stat of an accepted reply.
type AcceptStat uint32

// accept_stat values (RFC 5531 §9).
const (
	Success      AcceptStat = 0
	ProgUnavail  AcceptStat = 1
	ProgMismatch AcceptStat = 2
	ProcUnavail  AcceptStat = 3
	GarbageArgs  AcceptStat = 4
	SystemErr    AcceptStat = 5
)

func (s AcceptStat) String() string {
	switch s {
	case Success:
		return "SUCCESS"
	case ProgUnavail:
		return "PROG_UNAVAIL"
	case ProgMismatch:
		return "PROG_MISMATCH"
	case ProcUnavail:
		return "PROC_UNAVAIL"
	case GarbageArgs:
		return "GARBAGE_ARGS"
	case SystemErr:
		return "SYSTEM_ERR"
	}
	return fmt.Sprintf("accept_stat(%d)", uint32(s))
}

// RejectStat is the reject_stat of a denied reply.
type RejectStat uint32

// reject_stat values.
const (
	RPCMismatch RejectStat = 0
	AuthError   RejectStat = 1
)

// AuthStat is an auth_stat.
type AuthStat uint32

// auth_stat values.
const (
	AuthOK           AuthStat = 0
	AuthBadCred      AuthStat = 1
	AuthRejectedCred AuthStat = 2
	AuthBadVerf      AuthStat = 3
	AuthRejectedVerf AuthStat = 4
	AuthTooWeak      AuthStat = 5
)

func (s AuthStat) String() string {
	switch s {
	case AuthOK:
		return "AUTH_OK"
	case AuthBadCred:
		return "AUTH_BADCRED"
	case AuthRejectedCred:
		return "AUTH_REJECTEDCRED"
	case AuthBadVerf:
		return "AUTH_BADVERF"
	case AuthRejectedVerf:
		return "AUTH_REJECTEDVERF"
	case AuthTooWeak:
		return "AUTH_TOOWEAK"
	}
	return fmt.Sprintf("auth_stat(%d)", uint32(s))
}

// Auth flavors.
const (
	AuthNone  = 0
	AuthSys   = 1
	AuthShort = 2
)

// Limits from RFC 5531 and the AUTH_SYS definition.
const (
	MaxAuthBody    = 400
	MaxMachineName = 255
	MaxGids        = 16
)

// Well-known program numbers.
const (
	ProgPortmap = 100000
	ProgNFS     = 100003
	ProgMount   = 100005
)

// ErrNotCall means a message that should be a CALL is not one.
var ErrNotCall = errors.New("rpc: message is not a call")

// ErrNotReply means a message that should be a REPLY is not one.
var ErrNotReply = errors.New("rpc: message is not a reply")

// OpaqueAuth is an opaque_auth: a flavor and up to 400 bytes of body.
type OpaqueAuth struct {
	Flavor uint32
	Body   []byte
}

func decodeOpaqueAuth(d *xdr.Decoder) OpaqueAuth {
	return OpaqueAuth{Flavor: d.Uint32(), Body: d.Opaque(MaxAuthBody)}
}

func (a OpaqueAuth) encode(e *xdr.Encoder) {
	e.Uint32(a.Flavor)
	e.Opaque(a.Body)
}

// AuthSysParms is the body of an AUTH_SYS credential.
type AuthSysParms struct {
	Stamp       uint32
	MachineName string
	UID, GID    uint32
	GIDs        []uint32
}

// ErrBadAuthSys means an AUTH_SYS body did not decode exactly.
var ErrBadAuthSys = errors.New("rpc: malformed AUTH_SYS credential")

// DecodeAuthSys decodes an AUTH_SYS body. The body must be consumed exactly.
func DecodeAuthSys(body []byte) (AuthSysParms, error) {
	d := xdr.NewDecoder(body)
	var p AuthSysParms
	p.Stamp = d.Uint32()
	p.MachineName = d.String(MaxMachineName)
	p.UID = d.Uint32()
	p.GID = d.Uint32()
	n := d.Count(MaxGids, 4)
	if n > 0 {
		p.GIDs = make([]uint32, n)
		for i := range p.GIDs {
			p.GIDs[i] = d.Uint32()
		}
	}
	if err := d.Done(); err != nil {
		return AuthSysParms{}, fmt.Errorf("%w: %v", ErrBadAuthSys, err)
	}
	return p, nil
}

// Encode appends the AUTH_SYS body to e. More than 16 gids are cut to 16.
func (p AuthSysParms) Encode(e *xdr.Encoder) {
	e.Uint32(p.Stamp)
	name := p.MachineName
	if len(name) > MaxMachineName {
		name = name[:MaxMachineName]
	}
	e.String(name)
	e.Uint32(p.UID)
	e.Uint32(p.GID)
	g := p.GIDs
	if len(g) > MaxGids {
		g = g[:MaxGids]
	}
	e.Uint32(uint32(len(g)))
	for _, v := range g {
		e.Uint32(v)
	}
}

// Credential returns p as an opaque_auth of flavor AUTH_SYS.
func (p AuthSysParms) Credential() OpaqueAuth {
	var e xdr.Encoder
	p.Encode(&e)
	return OpaqueAuth{Flavor: AuthSys, Body: e.Bytes()}
}

// CallHeader is the fixed part of an RPC CALL, up to the arguments.
type CallHeader struct {
	XID     uint32
	RPCVers uint32
	Prog    uint32
	Vers    uint32
	Proc    uint32
	Cred    OpaqueAuth
	Verf    OpaqueAuth
}

// DecodeCall decodes a call header. The decoder is left at the arguments.
// A message that is not a CALL or is truncated is an error; a wrong RPC
// version is not (the caller answers RPC_MISMATCH).
func DecodeCall(d *xdr.Decoder) (CallHeader, error) {
	var h CallHeader
	h.XID = d.Uint32()
	if mt := d.Uint32(); d.Err() == nil && mt != Call {
		return h, ErrNotCall
	}
	h.RPCVers = d.Uint32()
	h.Prog = d.Uint32()
	h.Vers = d.Uint32()
	h.Proc = d.Uint32()
	h.Cred = decodeOpaqueAuth(d)
	h.Verf = decodeOpaqueAuth(d)
	if err := d.Err(); err != nil {
		return h, fmt.Errorf("rpc: call header: %w", err)
	}
	return h, nil
}

// Encode appends the call header to e.
func (h CallHeader) Encode(e *xdr.Encoder) {
	e.Uint32(h.XID)
	e.Uint32(Call)
	v := h.RPCVers
	if v == 0 {
		v = Version
	}
	e.Uint32(v)
	e.Uint32(h.Prog)
	e.Uint32(h.Vers)
	e.Uint32(h.Proc)
	h.Cred.encode(e)
	h.Verf.encode(e)
}

// EncodeAccepted appends the header of an accepted reply with an AUTH_NONE
// verifier and the given status. For ProgMismatch the caller appends low and
// high; for Success, the results.
func EncodeAccepted(e *xdr.Encoder, xid uint32, stat AcceptStat) {
	e.Uint32(xid)
	e.Uint32(Reply)
	e.Uint32(MsgAccepted)
	e.Uint32(AuthNone)
	e.Uint32(0)
	e.Uint32(uint32(stat))
}

// EncodeProgMismatch appends a complete PROG_MISMATCH reply.
func EncodeProgMismatch(e *xdr.Encoder, xid, low, high uint32) {
	EncodeAccepted(e, xid, ProgMismatch)
	e.Uint32(low)
	e.Uint32(high)
}

// EncodeRPCMismatch appends a complete MSG_DENIED/RPC_MISMATCH reply (2..2).
func EncodeRPCMismatch(e *xdr.Encoder, xid uint32) {
	e.Uint32(xid)
	e.Uint32(Reply)
	e.Uint32(MsgDenied)
	e.Uint32(uint32(RPCMismatch))
	e.Uint32(Version)
	e.Uint32(Version)
}

// EncodeAuthError appends a complete MSG_DENIED/AUTH_ERROR reply.
func EncodeAuthError(e *xdr.Encoder, xid uint32, stat AuthStat) {
	e.Uint32(xid)
	e.Uint32(Reply)
	e.Uint32(MsgDenied)
	e.Uint32(uint32(AuthError))
	e.Uint32(uint32(stat))
}

// ReplyError is a reply that carried no results: denied, or accepted with a
// status other than SUCCESS. Client code returns it as an error.
type ReplyError struct {
	Denied    bool
	Reject    RejectStat
	Auth      AuthStat
	Accept    AcceptStat
	Low, High uint32 // version range for PROG_MISMATCH and RPC_MISMATCH
}

func (e *ReplyError) Error() string {
	switch {
	case e.Denied && e.Reject == RPCMismatch:
		return fmt.Sprintf("rpc: RPC_MISMATCH (server speaks %d..%d)", e.Low, e.High)
	case e.Denied:
		return "rpc: AUTH_ERROR " + e.Auth.String()
	case e.Accept == ProgMismatch:
		return fmt.Sprintf("rpc: PROG_MISMATCH (server speaks %d..%d)", e.Low, e.High)
	}
	return "rpc: " + e.Accept.String()
}

// DecodeReply decodes a reply header. On SUCCESS it returns the XID and a nil
// error with the decoder at the results; otherwise a *ReplyError (or a decode
// error) and the XID.
func DecodeReply(d *xdr.Decoder) (xid uint32, err error) {
	xid = d.Uint32()
	if mt := d.Uint32(); d.Err() == nil && mt != Reply {
		return xid, ErrNotReply
	}
	switch stat := d.Uint32(); {
	case d.Err() != nil:
	case stat == MsgAccepted:
		decodeOpaqueAuth(d) // verifier; AUTH_NONE or AUTH_SHORT, ignored
		as := AcceptStat(d.Uint32())
		if d.Err() == nil && as != Success {
			re := &ReplyError{Accept: as}
			if as == ProgMismatch {
				re.Low, re.High = d.Uint32(), d.Uint32()
			}
			if d.Err() == nil {
				return xid, re
			}
		}
	case stat == MsgDenied:
		re := &ReplyError{Denied: true, Reject: RejectStat(d.Uint32())}
		switch re.Reject {
		case RPCMismatch:
			re.Low, re.High = d.Uint32(), d.Uint32()
		case AuthError:
			re.Auth = AuthStat(d.Uint32())
		}
		if d.Err() == nil {
			return xid, re
		}
	default:
		d.Fail(fmt.Errorf("rpc: bad reply_stat %d", stat))
	}
	if err := d.Err(); err != nil {
		return xid, fmt.Errorf("rpc: reply header: %w", err)
	}
	return xid, nil
}
