package nfs3

import "github.com/mailnfs/mailnfs/internal/xdr"

// decodeStatus reads nfsstat3. Any value is accepted: an unknown error
// status selects the resfail arm.
func decodeStatus(d *xdr.Decoder) Status { return Status(d.Uint32()) }

// GetattrRes is GETATTR3res; Attr is meaningful only on StatusOK.
type GetattrRes struct {
	Status Status
	Attr   Fattr
}

// Encode appends r.
func (r *GetattrRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	if r.Status == StatusOK {
		r.Attr.Encode(e)
	}
}

// Decode reads r.
func (r *GetattrRes) Decode(d *xdr.Decoder) {
	r.Status = decodeStatus(d)
	r.Attr = Fattr{}
	if r.Status == StatusOK {
		r.Attr.Decode(d)
	}
}

// WccRes is the result of procedures whose both arms are one wcc_data:
// SETATTR, REMOVE and RMDIR.
type WccRes struct {
	Status Status
	Wcc    WccData
}

// Results that are a status and one wcc_data.
type (
	SetattrRes = WccRes // SETATTR3res
	RemoveRes  = WccRes // REMOVE3res (Wcc is the directory's)
	RmdirRes   = WccRes // RMDIR3res (Wcc is the directory's)
)

// Encode appends r.
func (r *WccRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	r.Wcc.Encode(e)
}

// Decode reads r.
func (r *WccRes) Decode(d *xdr.Decoder) {
	r.Status = decodeStatus(d)
	r.Wcc.Decode(d)
}

// LookupRes is LOOKUP3res. On failure only DirAttr is sent.
type LookupRes struct {
	Status  Status
	Object  []byte
	ObjAttr *Fattr
	DirAttr *Fattr
}

// Encode appends r.
func (r *LookupRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	if r.Status == StatusOK {
		e.Opaque(r.Object)
		EncodePostOpAttr(e, r.ObjAttr)
	}
	EncodePostOpAttr(e, r.DirAttr)
}

// Decode reads r.
func (r *LookupRes) Decode(d *xdr.Decoder) {
	r.Status = decodeStatus(d)
	r.Object, r.ObjAttr = nil, nil
	if r.Status == StatusOK {
		r.Object = DecodeFH(d)
		r.ObjAttr = DecodePostOpAttr(d)
	}
	r.DirAttr = DecodePostOpAttr(d)
}

// AccessRes is ACCESS3res. On failure only ObjAttr is sent.
type AccessRes struct {
	Status  Status
	ObjAttr *Fattr
	Access  uint32
}

// Encode appends r.
func (r *AccessRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	EncodePostOpAttr(e, r.ObjAttr)
	if r.Status == StatusOK {
		e.Uint32(r.Access)
	}
}

// Decode reads r.
func (r *AccessRes) Decode(d *xdr.Decoder) {
	r.Status = decodeStatus(d)
	r.ObjAttr = DecodePostOpAttr(d)
	r.Access = 0
	if r.Status == StatusOK {
		r.Access = d.Uint32()
	}
}

// ReadlinkRes is READLINK3res. On failure only Attr is sent.
type ReadlinkRes struct {
	Status Status
	Attr   *Fattr
	Target string
}

// Encode appends r.
func (r *ReadlinkRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	EncodePostOpAttr(e, r.Attr)
	if r.Status == StatusOK {
		e.String(r.Target)
	}
}

// Decode reads r; the target is at most MaxPathDecode bytes.
func (r *ReadlinkRes) Decode(d *xdr.Decoder) {
	r.Status = decodeStatus(d)
	r.Attr = DecodePostOpAttr(d)
	r.Target = ""
	if r.Status == StatusOK {
		r.Target = d.String(MaxPathDecode)
	}
}

// ReadRes is READ3res. On failure only Attr is sent. Count should equal
// len(Data); Data aliases the decoder's buffer.
type ReadRes struct {
	Status Status
	Attr   *Fattr
	Count  uint32
	EOF    bool
	Data   []byte
}

// Encode appends r.
func (r *ReadRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	EncodePostOpAttr(e, r.Attr)
	if r.Status == StatusOK {
		e.Uint32(r.Count)
		e.Bool(r.EOF)
		e.Opaque(r.Data)
	}
}

// Decode reads r; data up to MaxData bytes.
func (r *ReadRes) Decode(d *xdr.Decoder) {
	r.Status = decodeStatus(d)
	r.Attr = DecodePostOpAttr(d)
	r.Count, r.EOF, r.Data = 0, false, nil
	if r.Status == StatusOK {
		r.Count = d.Uint32()
		r.EOF = d.Bool()
		r.Data = d.Opaque(MaxData)
	}
}

// WriteRes is WRITE3res. On failure only Wcc is sent.
type WriteRes struct {
	Status    Status
	Wcc       WccData
	Count     uint32
	Committed StableHow
	Verf      [VerfSize]byte
}

// Encode appends r.
func (r *WriteRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	r.Wcc.Encode(e)
	if r.Status == StatusOK {
		e.Uint32(r.Count)
		e.Uint32(uint32(r.Committed))
		e.FixedOpaque(r.Verf[:])
	}
}

// Decode reads r.
func (r *WriteRes) Decode(d *xdr.Decoder) {
	r.Status = decodeStatus(d)
	r.Wcc.Decode(d)
	r.Count, r.Committed, r.Verf = 0, 0, [VerfSize]byte{}
	if r.Status == StatusOK {
		r.Count = d.Uint32()
		r.Committed = StableHow(d.Uint32())
		if r.Committed > FileSync {
			d.Fail(ErrEnum)
		}
		copy(r.Verf[:], d.FixedOpaque(VerfSize))
	}
}

// CreateRes is the result of the procedures that create an object: CREATE,
// MKDIR, SYMLINK and MKNOD. On failure only DirWcc is sent. Object is nil
// when the server sends no handle (post_op_fh3 FALSE).
type CreateRes struct {
	Status  Status
	Object  []byte
	ObjAttr *Fattr
	DirWcc  WccData
}

// Results of the creating procedures.
type (
	MkdirRes   = CreateRes // MKDIR3res
	SymlinkRes = CreateRes // SYMLINK3res
	MknodRes   = CreateRes // MKNOD3res
)

// Encode appends r.
func (r *CreateRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	if r.Status == StatusOK {
		EncodePostOpFH(e, r.Object)
		EncodePostOpAttr(e, r.ObjAttr)
	}
	r.DirWcc.Encode(e)
}

// Decode reads r.
func (r *CreateRes) Decode(d *xdr.Decoder) {
	r.Status = decodeStatus(d)
	r.Object, r.ObjAttr = nil, nil
	if r.Status == StatusOK {
		r.Object = DecodePostOpFH(d)
		r.ObjAttr = DecodePostOpAttr(d)
	}
	r.DirWcc.Decode(d)
}

// RenameRes is RENAME3res; both arms carry both directories' wcc_data.
type RenameRes struct {
	Status  Status
	FromWcc WccData
	ToWcc   WccData
}

// Encode appends r.
func (r *RenameRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	r.FromWcc.Encode(e)
	r.ToWcc.Encode(e)
}

// Decode reads r.
func (r *RenameRes) Decode(d *xdr.Decoder) {
	r.Status = decodeStatus(d)
	r.FromWcc.Decode(d)
	r.ToWcc.Decode(d)
}

// LinkRes is LINK3res; both arms carry the file's post-op attributes and
// the link directory's wcc_data.
type LinkRes struct {
	Status   Status
	FileAttr *Fattr
	DirWcc   WccData
}

// Encode appends r.
func (r *LinkRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	EncodePostOpAttr(e, r.FileAttr)
	r.DirWcc.Encode(e)
}

// Decode reads r.
func (r *LinkRes) Decode(d *xdr.Decoder) {
	r.Status = decodeStatus(d)
	r.FileAttr = DecodePostOpAttr(d)
	r.DirWcc.Decode(d)
}

// Entry is entry3.
type Entry struct {
	FileID uint64
	Name   string
	Cookie uint64
}

// EntryPlus is entryplus3. Attr and Handle are nil when not sent.
type EntryPlus struct {
	FileID uint64
	Name   string
	Cookie uint64
	Attr   *Fattr
	Handle []byte
}

// ReaddirRes is READDIR3res. On failure only DirAttr is sent.
type ReaddirRes struct {
	Status  Status
	DirAttr *Fattr
	Verf    [VerfSize]byte
	Entries []Entry
	EOF     bool
}

// Encode appends r.
func (r *ReaddirRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	EncodePostOpAttr(e, r.DirAttr)
	if r.Status != StatusOK {
		return
	}
	e.FixedOpaque(r.Verf[:])
	for i := range r.Entries {
		en := &r.Entries[i]
		e.Bool(true)
		e.Uint64(en.FileID)
		e.String(en.Name)
		e.Uint64(en.Cookie)
	}
	e.Bool(false)
	e.Bool(r.EOF)
}

// Decode reads r. Entries are appended only as they decode, so their
// number is bounded by the input size.
func (r *ReaddirRes) Decode(d *xdr.Decoder) {
	r.Status = decodeStatus(d)
	r.DirAttr = DecodePostOpAttr(d)
	r.Verf, r.Entries, r.EOF = [VerfSize]byte{}, nil, false
	if r.Status != StatusOK {
		return
	}
	copy(r.Verf[:], d.FixedOpaque(VerfSize))
	for d.Bool() {
		var en Entry
		en.FileID = d.Uint64()
		en.Name = d.String(MaxNameDecode)
		en.Cookie = d.Uint64()
		if d.Err() != nil {
			return
		}
		r.Entries = append(r.Entries, en)
	}
	r.EOF = d.Bool()
}

// ReaddirplusRes is READDIRPLUS3res. On failure only DirAttr is sent.
type ReaddirplusRes struct {
	Status  Status
	DirAttr *Fattr
	Verf    [VerfSize]byte
	Entries []EntryPlus
	EOF     bool
}

// Encode appends r.
func (r *ReaddirplusRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	EncodePostOpAttr(e, r.DirAttr)
	if r.Status != StatusOK {
		return
	}
	e.FixedOpaque(r.Verf[:])
	for i := range r.Entries {
		r.Entries[i].Encode(e)
	}
	e.Bool(false)
	e.Bool(r.EOF)
}

// Encode appends one entryplus3 preceded by its TRUE "value follows", as
// it appears inside dirlistplus3 (EntryPlusSize bytes).
func (en *EntryPlus) Encode(e *xdr.Encoder) {
	e.Bool(true)
	e.Uint64(en.FileID)
	e.String(en.Name)
	e.Uint64(en.Cookie)
	EncodePostOpAttr(e, en.Attr)
	EncodePostOpFH(e, en.Handle)
}

// Decode reads r. Entries are appended only as they decode.
func (r *ReaddirplusRes) Decode(d *xdr.Decoder) {
	r.Status = decodeStatus(d)
	r.DirAttr = DecodePostOpAttr(d)
	r.Verf, r.Entries, r.EOF = [VerfSize]byte{}, nil, false
	if r.Status != StatusOK {
		return
	}
	copy(r.Verf[:], d.FixedOpaque(VerfSize))
	for d.Bool() {
		var en EntryPlus
		en.FileID = d.Uint64()
		en.Name = d.String(MaxNameDecode)
		en.Cookie = d.Uint64()
		en.Attr = DecodePostOpAttr(d)
		en.Handle = DecodePostOpFH(d)
		if d.Err() != nil {
			return
		}
		r.Entries = append(r.Entries, en)
	}
	r.EOF = d.Bool()
}

// FsstatRes is FSSTAT3res. On failure only Attr is sent.
type FsstatRes struct {
	Status                 Status
	Attr                   *Fattr
	TBytes, FBytes, ABytes uint64
	TFiles, FFiles, AFiles uint64
	Invarsec               uint32
}

// Encode appends r.
func (r *FsstatRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	EncodePostOpAttr(e, r.Attr)
	if r.Status == StatusOK {
		for _, v := range [...]uint64{r.TBytes, r.FBytes, r.ABytes, r.TFiles, r.FFiles, r.AFiles} {
			e.Uint64(v)
		}
		e.Uint32(r.Invarsec)
	}
}

// Decode reads r.
func (r *FsstatRes) Decode(d *xdr.Decoder) {
	st, attr := decodeStatus(d), DecodePostOpAttr(d)
	*r = FsstatRes{Status: st, Attr: attr}
	if st == StatusOK {
		r.TBytes, r.FBytes, r.ABytes = d.Uint64(), d.Uint64(), d.Uint64()
		r.TFiles, r.FFiles, r.AFiles = d.Uint64(), d.Uint64(), d.Uint64()
		r.Invarsec = d.Uint32()
	}
}

// FsinfoRes is FSINFO3res. On failure only Attr is sent.
type FsinfoRes struct {
	Status                Status
	Attr                  *Fattr
	Rtmax, Rtpref, Rtmult uint32
	Wtmax, Wtpref, Wtmult uint32
	Dtpref                uint32
	MaxFileSize           uint64
	TimeDelta             Time
	Properties            uint32
}

// Encode appends r.
func (r *FsinfoRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	EncodePostOpAttr(e, r.Attr)
	if r.Status == StatusOK {
		for _, v := range [...]uint32{r.Rtmax, r.Rtpref, r.Rtmult, r.Wtmax, r.Wtpref, r.Wtmult, r.Dtpref} {
			e.Uint32(v)
		}
		e.Uint64(r.MaxFileSize)
		r.TimeDelta.Encode(e)
		e.Uint32(r.Properties)
	}
}

// Decode reads r.
func (r *FsinfoRes) Decode(d *xdr.Decoder) {
	st, attr := decodeStatus(d), DecodePostOpAttr(d)
	*r = FsinfoRes{Status: st, Attr: attr}
	if st == StatusOK {
		r.Rtmax, r.Rtpref, r.Rtmult = d.Uint32(), d.Uint32(), d.Uint32()
		r.Wtmax, r.Wtpref, r.Wtmult = d.Uint32(), d.Uint32(), d.Uint32()
		r.Dtpref = d.Uint32()
		r.MaxFileSize = d.Uint64()
		r.TimeDelta.Decode(d)
		r.Properties = d.Uint32()
	}
}

// PathconfRes is PATHCONF3res. On failure only Attr is sent.
type PathconfRes struct {
	Status          Status
	Attr            *Fattr
	Linkmax         uint32
	NameMax         uint32
	NoTrunc         bool
	ChownRestricted bool
	CaseInsensitive bool
	CasePreserving  bool
}

// Encode appends r.
func (r *PathconfRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	EncodePostOpAttr(e, r.Attr)
	if r.Status == StatusOK {
		e.Uint32(r.Linkmax)
		e.Uint32(r.NameMax)
		e.Bool(r.NoTrunc)
		e.Bool(r.ChownRestricted)
		e.Bool(r.CaseInsensitive)
		e.Bool(r.CasePreserving)
	}
}

// Decode reads r.
func (r *PathconfRes) Decode(d *xdr.Decoder) {
	st, attr := decodeStatus(d), DecodePostOpAttr(d)
	*r = PathconfRes{Status: st, Attr: attr}
	if st == StatusOK {
		r.Linkmax = d.Uint32()
		r.NameMax = d.Uint32()
		r.NoTrunc = d.Bool()
		r.ChownRestricted = d.Bool()
		r.CaseInsensitive = d.Bool()
		r.CasePreserving = d.Bool()
	}
}

// CommitRes is COMMIT3res. On failure only Wcc is sent.
type CommitRes struct {
	Status Status
	Wcc    WccData
	Verf   [VerfSize]byte
}

// Encode appends r.
func (r *CommitRes) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	r.Wcc.Encode(e)
	if r.Status == StatusOK {
		e.FixedOpaque(r.Verf[:])
	}
}

// Decode reads r.
func (r *CommitRes) Decode(d *xdr.Decoder) {
	r.Status = decodeStatus(d)
	r.Wcc.Decode(d)
	r.Verf = [VerfSize]byte{}
	if r.Status == StatusOK {
		copy(r.Verf[:], d.FixedOpaque(VerfSize))
	}
}
