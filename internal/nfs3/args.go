package nfs3

import "github.com/mailnfs/mailnfs/internal/xdr"

// HandleArgs are the arguments of the procedures that take only a file
// handle: GETATTR, READLINK, FSSTAT, FSINFO and PATHCONF.
type HandleArgs struct {
	Object []byte
}

// Argument types that are a single handle.
type (
	GetattrArgs  = HandleArgs // GETATTR3args
	ReadlinkArgs = HandleArgs // READLINK3args
	FsstatArgs   = HandleArgs // FSSTAT3args
	FsinfoArgs   = HandleArgs // FSINFO3args
	PathconfArgs = HandleArgs // PATHCONF3args
)

// Encode appends a.
func (a *HandleArgs) Encode(e *xdr.Encoder) { e.Opaque(a.Object) }

// Decode reads a.
func (a *HandleArgs) Decode(d *xdr.Decoder) { a.Object = DecodeFH(d) }

// SetattrArgs is SETATTR3args.
type SetattrArgs struct {
	Object  []byte
	NewAttr SetAttr
	Guard   Guard
}

// Encode appends a.
func (a *SetattrArgs) Encode(e *xdr.Encoder) {
	e.Opaque(a.Object)
	a.NewAttr.Encode(e)
	a.Guard.Encode(e)
}

// Decode reads a.
func (a *SetattrArgs) Decode(d *xdr.Decoder) {
	a.Object = DecodeFH(d)
	a.NewAttr.Decode(d)
	a.Guard.Decode(d)
}

// DirOpArgs-only argument types.
type (
	LookupArgs = DirOpArgs // LOOKUP3args
	RemoveArgs = DirOpArgs // REMOVE3args
	RmdirArgs  = DirOpArgs // RMDIR3args
)

// AccessArgs is ACCESS3args.
type AccessArgs struct {
	Object []byte
	Access uint32
}

// Encode appends a.
func (a *AccessArgs) Encode(e *xdr.Encoder) {
	e.Opaque(a.Object)
	e.Uint32(a.Access)
}

// Decode reads a.
func (a *AccessArgs) Decode(d *xdr.Decoder) {
	a.Object = DecodeFH(d)
	a.Access = d.Uint32()
}

// ReadArgs is READ3args.
type ReadArgs struct {
	File   []byte
	Offset uint64
	Count  uint32
}

// Encode appends a.
func (a *ReadArgs) Encode(e *xdr.Encoder) {
	e.Opaque(a.File)
	e.Uint64(a.Offset)
	e.Uint32(a.Count)
}

// Decode reads a.
func (a *ReadArgs) Decode(d *xdr.Decoder) {
	a.File = DecodeFH(d)
	a.Offset = d.Uint64()
	a.Count = d.Uint32()
}

// CommitArgs is COMMIT3args (same layout as READ3args).
type CommitArgs = ReadArgs

// WriteArgs is WRITE3args. Data aliases the decoder's buffer.
type WriteArgs struct {
	File   []byte
	Offset uint64
	Count  uint32
	Stable StableHow
	Data   []byte
}

// Encode appends a.
func (a *WriteArgs) Encode(e *xdr.Encoder) {
	e.Opaque(a.File)
	e.Uint64(a.Offset)
	e.Uint32(a.Count)
	e.Uint32(uint32(a.Stable))
	e.Opaque(a.Data)
}

// Decode reads a; data up to MaxData bytes. Count must equal the data's
// length (as Linux knfsd requires), else ErrWriteCount.
func (a *WriteArgs) Decode(d *xdr.Decoder) {
	a.File = DecodeFH(d)
	a.Offset = d.Uint64()
	a.Count = d.Uint32()
	a.Stable = StableHow(d.Uint32())
	if a.Stable > FileSync {
		d.Fail(ErrEnum)
	}
	a.Data = d.Opaque(MaxData)
	if d.Err() == nil && int64(a.Count) != int64(len(a.Data)) {
		d.Fail(ErrWriteCount)
	}
}

// CreateArgs is CREATE3args. Attr is used with Unchecked and Guarded, Verf
// with Exclusive.
type CreateArgs struct {
	Where DirOpArgs
	Mode  CreateMode
	Attr  SetAttr
	Verf  [VerfSize]byte
}

// Encode appends a.
func (a *CreateArgs) Encode(e *xdr.Encoder) {
	a.Where.Encode(e)
	e.Uint32(uint32(a.Mode))
	switch a.Mode {
	case Exclusive:
		e.FixedOpaque(a.Verf[:])
	default:
		a.Attr.Encode(e)
	}
}

// Decode reads a.
func (a *CreateArgs) Decode(d *xdr.Decoder) {
	a.Where.Decode(d)
	a.Mode = CreateMode(d.Uint32())
	a.Attr = SetAttr{}
	a.Verf = [VerfSize]byte{}
	switch a.Mode {
	case Unchecked, Guarded:
		a.Attr.Decode(d)
	case Exclusive:
		copy(a.Verf[:], d.FixedOpaque(VerfSize))
	default:
		d.Fail(ErrEnum)
	}
}

// MkdirArgs is MKDIR3args.
type MkdirArgs struct {
	Where DirOpArgs
	Attr  SetAttr
}

// Encode appends a.
func (a *MkdirArgs) Encode(e *xdr.Encoder) {
	a.Where.Encode(e)
	a.Attr.Encode(e)
}

// Decode reads a.
func (a *MkdirArgs) Decode(d *xdr.Decoder) {
	a.Where.Decode(d)
	a.Attr.Decode(d)
}

// SymlinkArgs is SYMLINK3args.
type SymlinkArgs struct {
	Where  DirOpArgs
	Attr   SetAttr
	Target string
}

// Encode appends a.
func (a *SymlinkArgs) Encode(e *xdr.Encoder) {
	a.Where.Encode(e)
	a.Attr.Encode(e)
	e.String(a.Target)
}

// Decode reads a; the target is at most MaxPathDecode bytes.
func (a *SymlinkArgs) Decode(d *xdr.Decoder) {
	a.Where.Decode(d)
	a.Attr.Decode(d)
	a.Target = d.String(MaxPathDecode)
}

// MknodArgs is MKNOD3args. Attr is used for character and block devices,
// sockets and FIFOs; Spec for devices only. Other types carry no data (the
// server answers NFS3ERR_BADTYPE).
type MknodArgs struct {
	Where DirOpArgs
	Type  FileType
	Attr  SetAttr
	Spec  SpecData
}

// Encode appends a.
func (a *MknodArgs) Encode(e *xdr.Encoder) {
	a.Where.Encode(e)
	e.Uint32(uint32(a.Type))
	switch a.Type {
	case TypeChr, TypeBlk:
		a.Attr.Encode(e)
		e.Uint32(a.Spec.Major)
		e.Uint32(a.Spec.Minor)
	case TypeSock, TypeFifo:
		a.Attr.Encode(e)
	}
}

// Decode reads a.
func (a *MknodArgs) Decode(d *xdr.Decoder) {
	a.Where.Decode(d)
	a.Type = FileType(d.Uint32())
	a.Attr = SetAttr{}
	a.Spec = SpecData{}
	switch a.Type {
	case TypeChr, TypeBlk:
		a.Attr.Decode(d)
		a.Spec.Major = d.Uint32()
		a.Spec.Minor = d.Uint32()
	case TypeSock, TypeFifo:
		a.Attr.Decode(d)
	}
}

// RenameArgs is RENAME3args.
type RenameArgs struct {
	From, To DirOpArgs
}

// Encode appends a.
func (a *RenameArgs) Encode(e *xdr.Encoder) {
	a.From.Encode(e)
	a.To.Encode(e)
}

// Decode reads a.
func (a *RenameArgs) Decode(d *xdr.Decoder) {
	a.From.Decode(d)
	a.To.Decode(d)
}

// LinkArgs is LINK3args.
type LinkArgs struct {
	File []byte
	Link DirOpArgs
}

// Encode appends a.
func (a *LinkArgs) Encode(e *xdr.Encoder) {
	e.Opaque(a.File)
	a.Link.Encode(e)
}

// Decode reads a.
func (a *LinkArgs) Decode(d *xdr.Decoder) {
	a.File = DecodeFH(d)
	a.Link.Decode(d)
}

// ReaddirArgs is READDIR3args.
type ReaddirArgs struct {
	Dir    []byte
	Cookie uint64
	Verf   [VerfSize]byte
	Count  uint32
}

// Encode appends a.
func (a *ReaddirArgs) Encode(e *xdr.Encoder) {
	e.Opaque(a.Dir)
	e.Uint64(a.Cookie)
	e.FixedOpaque(a.Verf[:])
	e.Uint32(a.Count)
}

// Decode reads a.
func (a *ReaddirArgs) Decode(d *xdr.Decoder) {
	a.Dir = DecodeFH(d)
	a.Cookie = d.Uint64()
	a.Verf = [VerfSize]byte{}
	copy(a.Verf[:], d.FixedOpaque(VerfSize))
	a.Count = d.Uint32()
}

// ReaddirplusArgs is READDIRPLUS3args.
type ReaddirplusArgs struct {
	Dir      []byte
	Cookie   uint64
	Verf     [VerfSize]byte
	DirCount uint32
	MaxCount uint32
}

// Encode appends a.
func (a *ReaddirplusArgs) Encode(e *xdr.Encoder) {
	e.Opaque(a.Dir)
	e.Uint64(a.Cookie)
	e.FixedOpaque(a.Verf[:])
	e.Uint32(a.DirCount)
	e.Uint32(a.MaxCount)
}

// Decode reads a.
func (a *ReaddirplusArgs) Decode(d *xdr.Decoder) {
	a.Dir = DecodeFH(d)
	a.Cookie = d.Uint64()
	a.Verf = [VerfSize]byte{}
	copy(a.Verf[:], d.FixedOpaque(VerfSize))
	a.DirCount = d.Uint32()
	a.MaxCount = d.Uint32()
}
