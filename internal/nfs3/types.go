package nfs3

import (
	"bytes"
	"math"
	"time"

	"github.com/mailnfs/mailnfs/internal/xdr"
)

// Time is nfstime3.
type Time struct {
	Seconds  uint32
	Nseconds uint32
}

// TimeOf converts t to nfstime3, clamping to the uint32 seconds range.
func TimeOf(t time.Time) Time {
	s := t.Unix()
	switch {
	case s < 0:
		return Time{}
	case s > math.MaxUint32:
		return Time{Seconds: math.MaxUint32, Nseconds: 999999999}
	}
	return Time{Seconds: uint32(s), Nseconds: uint32(t.Nanosecond())}
}

// Time converts to time.Time (nanoseconds over 1e9 carry into seconds).
func (t Time) Time() time.Time { return time.Unix(int64(t.Seconds), int64(t.Nseconds)) }

// Encode appends t.
func (t Time) Encode(e *xdr.Encoder) {
	e.Uint32(t.Seconds)
	e.Uint32(t.Nseconds)
}

// Decode reads t.
func (t *Time) Decode(d *xdr.Decoder) {
	t.Seconds = d.Uint32()
	t.Nseconds = d.Uint32()
}

// SpecData is specdata3 (device major and minor).
type SpecData struct {
	Major, Minor uint32
}

// Fattr is fattr3: 84 bytes on the wire.
type Fattr struct {
	Type                FileType
	Mode                uint32 // permission bits only
	Nlink               uint32
	UID, GID            uint32
	Size, Used          uint64
	Rdev                SpecData
	FSID                uint64
	FileID              uint64
	Atime, Mtime, Ctime Time
}

// FattrSize is the encoded size of fattr3.
const FattrSize = 84

// Encode appends a.
func (a *Fattr) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(a.Type))
	e.Uint32(a.Mode)
	e.Uint32(a.Nlink)
	e.Uint32(a.UID)
	e.Uint32(a.GID)
	e.Uint64(a.Size)
	e.Uint64(a.Used)
	e.Uint32(a.Rdev.Major)
	e.Uint32(a.Rdev.Minor)
	e.Uint64(a.FSID)
	e.Uint64(a.FileID)
	a.Atime.Encode(e)
	a.Mtime.Encode(e)
	a.Ctime.Encode(e)
}

// Decode reads a.
func (a *Fattr) Decode(d *xdr.Decoder) {
	a.Type = FileType(d.Uint32())
	a.Mode = d.Uint32()
	a.Nlink = d.Uint32()
	a.UID = d.Uint32()
	a.GID = d.Uint32()
	a.Size = d.Uint64()
	a.Used = d.Uint64()
	a.Rdev.Major = d.Uint32()
	a.Rdev.Minor = d.Uint32()
	a.FSID = d.Uint64()
	a.FileID = d.Uint64()
	a.Atime.Decode(d)
	a.Mtime.Decode(d)
	a.Ctime.Decode(d)
}

// WccAttr is wcc_attr: 24 bytes.
type WccAttr struct {
	Size         uint64
	Mtime, Ctime Time
}

// WccData is wcc_data. Before and After are nil when not present.
type WccData struct {
	Before *WccAttr
	After  *Fattr
}

// Encode appends w.
func (w *WccData) Encode(e *xdr.Encoder) {
	e.Bool(w.Before != nil)
	if w.Before != nil {
		e.Uint64(w.Before.Size)
		w.Before.Mtime.Encode(e)
		w.Before.Ctime.Encode(e)
	}
	EncodePostOpAttr(e, w.After)
}

// Decode reads w.
func (w *WccData) Decode(d *xdr.Decoder) {
	w.Before = nil
	if d.Bool() {
		b := new(WccAttr)
		b.Size = d.Uint64()
		b.Mtime.Decode(d)
		b.Ctime.Decode(d)
		if d.Err() == nil {
			w.Before = b
		}
	}
	w.After = DecodePostOpAttr(d)
}

// EncodePostOpAttr appends post_op_attr: FALSE for nil.
func EncodePostOpAttr(e *xdr.Encoder, a *Fattr) {
	e.Bool(a != nil)
	if a != nil {
		a.Encode(e)
	}
}

// DecodePostOpAttr reads post_op_attr; nil when absent or on error.
func DecodePostOpAttr(d *xdr.Decoder) *Fattr {
	if !d.Bool() {
		return nil
	}
	a := new(Fattr)
	a.Decode(d)
	if d.Err() != nil {
		return nil
	}
	return a
}

// EncodePostOpFH appends post_op_fh3: FALSE for a nil handle.
func EncodePostOpFH(e *xdr.Encoder, fh []byte) {
	e.Bool(fh != nil)
	if fh != nil {
		e.Opaque(fh)
	}
}

// DecodePostOpFH reads post_op_fh3; nil when absent.
func DecodePostOpFH(d *xdr.Decoder) []byte {
	if !d.Bool() {
		return nil
	}
	return DecodeFH(d)
}

// DecodeFH reads nfs_fh3 (at most FHSize bytes) and returns a copy. A
// zero-length handle decodes as a non-nil empty slice.
func DecodeFH(d *xdr.Decoder) []byte {
	b := d.Opaque(FHSize)
	if d.Err() != nil {
		return nil
	}
	return bytes.Clone(b)
}

// SetAttr is sattr3. Nil pointers are "don't set". AtimeVal and MtimeVal
// are used only with SetToClientTime.
type SetAttr struct {
	Mode     *uint32
	UID, GID *uint32
	Size     *uint64
	Atime    TimeHow
	AtimeVal Time
	Mtime    TimeHow
	MtimeVal Time
}

func encodeOptU32(e *xdr.Encoder, v *uint32) {
	e.Bool(v != nil)
	if v != nil {
		e.Uint32(*v)
	}
}

func decodeOptU32(d *xdr.Decoder) *uint32 {
	if !d.Bool() {
		return nil
	}
	v := d.Uint32()
	return &v
}

func encodeSetTime(e *xdr.Encoder, how TimeHow, t Time) {
	e.Uint32(uint32(how))
	if how == SetToClientTime {
		t.Encode(e)
	}
}

func decodeSetTime(d *xdr.Decoder) (TimeHow, Time) {
	how := TimeHow(d.Uint32())
	var t Time
	switch how {
	case DontChange, SetToServerTime:
	case SetToClientTime:
		t.Decode(d)
	default:
		d.Fail(ErrEnum)
	}
	return how, t
}

// Encode appends s.
func (s *SetAttr) Encode(e *xdr.Encoder) {
	encodeOptU32(e, s.Mode)
	encodeOptU32(e, s.UID)
	encodeOptU32(e, s.GID)
	e.Bool(s.Size != nil)
	if s.Size != nil {
		e.Uint64(*s.Size)
	}
	encodeSetTime(e, s.Atime, s.AtimeVal)
	encodeSetTime(e, s.Mtime, s.MtimeVal)
}

// Decode reads s.
func (s *SetAttr) Decode(d *xdr.Decoder) {
	s.Mode = decodeOptU32(d)
	s.UID = decodeOptU32(d)
	s.GID = decodeOptU32(d)
	s.Size = nil
	if d.Bool() {
		v := d.Uint64()
		s.Size = &v
	}
	s.Atime, s.AtimeVal = decodeSetTime(d)
	s.Mtime, s.MtimeVal = decodeSetTime(d)
}

// Guard is sattrguard3: when Check is set, SETATTR fails with
// NFS3ERR_NOT_SYNC unless the object's ctime equals Ctime.
type Guard struct {
	Check bool
	Ctime Time
}

// Encode appends g.
func (g *Guard) Encode(e *xdr.Encoder) {
	e.Bool(g.Check)
	if g.Check {
		g.Ctime.Encode(e)
	}
}

// Decode reads g.
func (g *Guard) Decode(d *xdr.Decoder) {
	g.Check = d.Bool()
	g.Ctime = Time{}
	if g.Check {
		g.Ctime.Decode(d)
	}
}

// DirOpArgs is diropargs3: a directory handle and a name in it.
type DirOpArgs struct {
	Dir  []byte
	Name string
}

// Encode appends a.
func (a *DirOpArgs) Encode(e *xdr.Encoder) {
	e.Opaque(a.Dir)
	e.String(a.Name)
}

// Decode reads a (name up to MaxNameDecode bytes).
func (a *DirOpArgs) Decode(d *xdr.Decoder) {
	a.Dir = DecodeFH(d)
	a.Name = d.String(MaxNameDecode)
}
