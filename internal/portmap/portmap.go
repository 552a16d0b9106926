// Package portmap holds the wire types of the portmapper (program 100000):
// portmap version 2 and rpcbind versions 3 and 4 (RFC 1833), shared by the
// server in nfsd and the Go client.
//
// Every type has an Encode method and a Decode function over package xdr, so
// either side can use either direction. Decoders never trust a peer's
// lengths: strings are bounded (MaxNetid, MaxUaddr, MaxOwner), linked lists
// (pmaplist, rpcblist, rpcb_entry_list) stop with xdr.ErrTooLong after
// MaxListEntries elements, and errors are the decoder's sticky errors, so a
// caller decodes all fields and checks d.Err() or d.Done() once.
//
// Universal addresses (uaddr, RFC 5665 §5.2.3.3) are handled by FormatUaddr
// and ParseUaddr.
package portmap

import (
	"errors"

	"github.com/mailnfs/mailnfs/internal/xdr"
)

// Prog is the portmapper's program number.
const Prog = 100000

// Port is the portmapper's well-known port on TCP and UDP.
const Port = 111

// Versions of program 100000.
const (
	V2 = 2 // portmap
	V3 = 3 // rpcbind
	V4 = 4 // rpcbind
)

// Portmap version 2 procedures (RFC 1833 §3.2).
const (
	PmapProcNull    = 0 // void -> void
	PmapProcSet     = 1 // pmap -> bool
	PmapProcUnset   = 2 // pmap -> bool
	PmapProcGetPort = 3 // pmap -> uint32 port, 0 = not registered
	PmapProcDump    = 4 // void -> pmaplist
	PmapProcCallit  = 5 // call_args -> call_result
)

// Rpcbind version 3 and 4 procedures (RFC 1833 §2.2). Numbers 0..8 are the
// same in both versions; 9..12 exist only in version 4.
const (
	RpcbProcNull        = 0  // void -> void
	RpcbProcSet         = 1  // rpcb -> bool
	RpcbProcUnset       = 2  // rpcb -> bool
	RpcbProcGetAddr     = 3  // rpcb -> string uaddr, "" = not registered
	RpcbProcDump        = 4  // void -> rpcblist
	RpcbProcCallit      = 5  // rpcb_rmtcallargs -> rpcb_rmtcallres (v4: BCAST)
	RpcbProcGetTime     = 6  // void -> uint32 seconds since 1970
	RpcbProcUaddr2Taddr = 7  // string -> netbuf
	RpcbProcTaddr2Uaddr = 8  // netbuf -> string
	RpcbProcGetVersAddr = 9  // v4: rpcb -> string, exact version only
	RpcbProcIndirect    = 10 // v4: rpcb_rmtcallargs -> rpcb_rmtcallres
	RpcbProcGetAddrList = 11 // v4: rpcb -> rpcb_entry_list
	RpcbProcGetStat     = 12 // v4: void -> rpcb_stat_byvers
)

// IP protocol numbers used in pmap.prot.
const (
	IPProtoTCP = 6
	IPProtoUDP = 17
)

// Network identifiers (netids, RFC 5665) for the transports mailnfs serves.
const (
	NetidTCP  = "tcp"
	NetidUDP  = "udp"
	NetidTCP6 = "tcp6"
	NetidUDP6 = "udp6"
)

// Transport semantics of rpcb_entry.r_nc_semantics (netconfig nc_semantics).
const (
	SemanticsCLTS    = 1 // connectionless: UDP
	SemanticsCOTS    = 2 // connection-oriented
	SemanticsCOTSOrd = 3 // connection-oriented with orderly release: TCP
)

// Bounds applied while decoding. RFC 1833 leaves these strings unbounded;
// real ones are short (the longest uaddr, an IPv4-mapped IPv6 address with a
// port, is 53 bytes).
const (
	MaxNetid     = 255
	MaxUaddr     = 128
	MaxOwner     = 255
	MaxProtoName = 255   // rpcb_entry r_nc_protofmly and r_nc_proto
	MaxTaddr     = 256   // netbuf.buf
	MaxCallArgs  = 65536 // call_args.args, rpcb_rmtcallargs.args and results
	// MaxListEntries bounds pmaplist, rpcblist and rpcb_entry_list. A
	// portmapper holds a few dozen mappings; a longer list is an attack or
	// a bug.
	MaxListEntries = 4096
)

// ErrListTooLong means a linked list had more than MaxListEntries elements.
var ErrListTooLong = errors.New("portmap: list exceeds maximum length")

// Mapping is a portmap v2 pmap: (prog, vers, prot) is served at port.
type Mapping struct {
	Prog, Vers uint32
	Prot       uint32 // IPProtoTCP or IPProtoUDP
	Port       uint32
}

// Encode appends m to e.
func (m Mapping) Encode(e *xdr.Encoder) {
	e.Uint32(m.Prog)
	e.Uint32(m.Vers)
	e.Uint32(m.Prot)
	e.Uint32(m.Port)
}

// DecodeMapping reads a pmap.
func DecodeMapping(d *xdr.Decoder) Mapping {
	return Mapping{Prog: d.Uint32(), Vers: d.Uint32(), Prot: d.Uint32(), Port: d.Uint32()}
}

// EncodeMappingList appends ms as a pmaplist (XDR optional-data list:
// TRUE pmap TRUE pmap ... FALSE).
func EncodeMappingList(e *xdr.Encoder, ms []Mapping) {
	for _, m := range ms {
		e.Bool(true)
		m.Encode(e)
	}
	e.Bool(false)
}

// DecodeMappingList reads a pmaplist of at most MaxListEntries elements.
func DecodeMappingList(d *xdr.Decoder) []Mapping {
	var ms []Mapping
	decodeList(d, func() { ms = append(ms, DecodeMapping(d)) })
	if d.Err() != nil {
		return nil
	}
	return ms
}

// decodeList reads an XDR optional-data list, calling elem for each element
// until the FALSE terminator, an error, or MaxListEntries elements.
func decodeList(d *xdr.Decoder, elem func()) {
	for n := 0; ; n++ {
		if !d.Bool() || d.Err() != nil {
			return
		}
		if n == MaxListEntries {
			d.Fail(ErrListTooLong)
			return
		}
		elem()
	}
}

// CallArgs is portmap v2 call_args, the argument of PMAPPROC_CALLIT.
type CallArgs struct {
	Prog, Vers, Proc uint32
	Args             []byte
}

// Encode appends a to e.
func (a CallArgs) Encode(e *xdr.Encoder) {
	e.Uint32(a.Prog)
	e.Uint32(a.Vers)
	e.Uint32(a.Proc)
	e.Opaque(a.Args)
}

// DecodeCallArgs reads call_args; Args (at most MaxCallArgs bytes) aliases
// the decoder's buffer.
func DecodeCallArgs(d *xdr.Decoder) CallArgs {
	return CallArgs{Prog: d.Uint32(), Vers: d.Uint32(), Proc: d.Uint32(), Args: d.Opaque(MaxCallArgs)}
}

// CallResult is portmap v2 call_result, the result of PMAPPROC_CALLIT.
type CallResult struct {
	Port uint32
	Res  []byte
}

// Encode appends r to e.
func (r CallResult) Encode(e *xdr.Encoder) {
	e.Uint32(r.Port)
	e.Opaque(r.Res)
}

// DecodeCallResult reads call_result; Res aliases the decoder's buffer.
func DecodeCallResult(d *xdr.Decoder) CallResult {
	return CallResult{Port: d.Uint32(), Res: d.Opaque(MaxCallArgs)}
}

// RPCB is rpcbind's rpcb: (prog, vers, netid) is served at the universal
// address Addr, registered by Owner.
type RPCB struct {
	Prog, Vers uint32
	Netid      string
	Addr       string // uaddr, see FormatUaddr
	Owner      string
}

// Encode appends b to e. Strings longer than the decode bounds are written
// as they are; the peer will refuse them.
func (b RPCB) Encode(e *xdr.Encoder) {
	e.Uint32(b.Prog)
	e.Uint32(b.Vers)
	e.String(b.Netid)
	e.String(b.Addr)
	e.String(b.Owner)
}

// DecodeRPCB reads an rpcb.
func DecodeRPCB(d *xdr.Decoder) RPCB {
	return RPCB{
		Prog:  d.Uint32(),
		Vers:  d.Uint32(),
		Netid: d.String(MaxNetid),
		Addr:  d.String(MaxUaddr),
		Owner: d.String(MaxOwner),
	}
}

// EncodeRPCBList appends bs as an rpcblist.
func EncodeRPCBList(e *xdr.Encoder, bs []RPCB) {
	for _, b := range bs {
		e.Bool(true)
		b.Encode(e)
	}
	e.Bool(false)
}

// DecodeRPCBList reads an rpcblist of at most MaxListEntries elements.
func DecodeRPCBList(d *xdr.Decoder) []RPCB {
	var bs []RPCB
	decodeList(d, func() { bs = append(bs, DecodeRPCB(d)) })
	if d.Err() != nil {
		return nil
	}
	return bs
}

// Entry is rpcbind v4's rpcb_entry, one element of the GETADDRLIST result.
type Entry struct {
	MAddr     string // uaddr
	Netid     string
	Semantics uint32 // SemanticsCLTS, SemanticsCOTS, SemanticsCOTSOrd
	ProtoFmly string // "inet" or "inet6"
	Proto     string // "tcp" or "udp"
}

// Encode appends en to e.
func (en Entry) Encode(e *xdr.Encoder) {
	e.String(en.MAddr)
	e.String(en.Netid)
	e.Uint32(en.Semantics)
	e.String(en.ProtoFmly)
	e.String(en.Proto)
}

// DecodeEntry reads an rpcb_entry.
func DecodeEntry(d *xdr.Decoder) Entry {
	return Entry{
		MAddr:     d.String(MaxUaddr),
		Netid:     d.String(MaxNetid),
		Semantics: d.Uint32(),
		ProtoFmly: d.String(MaxProtoName),
		Proto:     d.String(MaxProtoName),
	}
}

// EncodeEntryList appends es as an rpcb_entry_list.
func EncodeEntryList(e *xdr.Encoder, es []Entry) {
	for _, en := range es {
		e.Bool(true)
		en.Encode(e)
	}
	e.Bool(false)
}

// DecodeEntryList reads an rpcb_entry_list of at most MaxListEntries
// elements.
func DecodeEntryList(d *xdr.Decoder) []Entry {
	var es []Entry
	decodeList(d, func() { es = append(es, DecodeEntry(d)) })
	if d.Err() != nil {
		return nil
	}
	return es
}

// RmtCallArgs is rpcbind's rpcb_rmtcallargs (CALLIT, BCAST, INDIRECT). It
// has the same layout as CallArgs.
type RmtCallArgs = CallArgs

// DecodeRmtCallArgs reads rpcb_rmtcallargs.
func DecodeRmtCallArgs(d *xdr.Decoder) RmtCallArgs { return DecodeCallArgs(d) }

// RmtCallRes is rpcbind's rpcb_rmtcallres.
type RmtCallRes struct {
	Addr    string // uaddr of the program that answered
	Results []byte
}

// Encode appends r to e.
func (r RmtCallRes) Encode(e *xdr.Encoder) {
	e.String(r.Addr)
	e.Opaque(r.Results)
}

// DecodeRmtCallRes reads rpcb_rmtcallres; Results aliases the decoder's
// buffer.
func DecodeRmtCallRes(d *xdr.Decoder) RmtCallRes {
	return RmtCallRes{Addr: d.String(MaxUaddr), Results: d.Opaque(MaxCallArgs)}
}

// Netbuf is rpcbind's netbuf, a transport address in the transport's own
// binary form (for inet: a struct sockaddr_in as the C library lays it out).
type Netbuf struct {
	MaxLen uint32
	Buf    []byte
}

// Encode appends n to e.
func (n Netbuf) Encode(e *xdr.Encoder) {
	e.Uint32(n.MaxLen)
	e.Opaque(n.Buf)
}

// DecodeNetbuf reads a netbuf of at most MaxTaddr bytes; Buf aliases the
// decoder's buffer.
func DecodeNetbuf(d *xdr.Decoder) Netbuf {
	return Netbuf{MaxLen: d.Uint32(), Buf: d.Opaque(MaxTaddr)}
}
