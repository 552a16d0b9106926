package nfs3

import (
	"fmt"

	"github.com/mailnfs/mailnfs/internal/xdr"
)

// MountProc is a MOUNT procedure number.
type MountProc uint32

// MOUNT procedures (RFC 1813 Appendix I; EXPORTALL is v1 only).
const (
	MountProcNull      MountProc = 0
	MountProcMnt       MountProc = 1
	MountProcDump      MountProc = 2
	MountProcUmnt      MountProc = 3
	MountProcUmntAll   MountProc = 4
	MountProcExport    MountProc = 5
	MountProcExportAll MountProc = 6
)

// String returns the procedure's name, e.g. "MNT".
func (p MountProc) String() string {
	names := [...]string{"NULL", "MNT", "DUMP", "UMNT", "UMNTALL", "EXPORT", "EXPORTALL"}
	if int(p) < len(names) {
		return names[p]
	}
	return fmt.Sprintf("MOUNTPROC_%d", uint32(p))
}

// MountStat is mountstat3 (and the v1 fhstatus status, an errno).
type MountStat uint32

// mountstat3 values.
const (
	MountOK          MountStat = 0
	MountPerm        MountStat = 1
	MountNoEnt       MountStat = 2
	MountIO          MountStat = 5
	MountAcces       MountStat = 13
	MountNotDir      MountStat = 20
	MountInval       MountStat = 22
	MountNameTooLong MountStat = 63
	MountNotSupp     MountStat = 10004
	MountServerFault MountStat = 10006
)

// String returns the RFC name, e.g. "MNT3ERR_ACCES".
func (s MountStat) String() string {
	switch s {
	case MountOK:
		return "MNT3_OK"
	case MountPerm:
		return "MNT3ERR_PERM"
	case MountNoEnt:
		return "MNT3ERR_NOENT"
	case MountIO:
		return "MNT3ERR_IO"
	case MountAcces:
		return "MNT3ERR_ACCES"
	case MountNotDir:
		return "MNT3ERR_NOTDIR"
	case MountInval:
		return "MNT3ERR_INVAL"
	case MountNameTooLong:
		return "MNT3ERR_NAMETOOLONG"
	case MountNotSupp:
		return "MNT3ERR_NOTSUPP"
	case MountServerFault:
		return "MNT3ERR_SERVERFAULT"
	}
	return fmt.Sprintf("MNT3ERR_%d", uint32(s))
}

// Error implements error (for clients).
func (s MountStat) Error() string { return "mount: " + s.String() }

// DirPath is the dirpath argument of MNT and UMNT.
type DirPath struct {
	Path string
}

// Encode appends p.
func (p *DirPath) Encode(e *xdr.Encoder) { e.String(p.Path) }

// Decode reads p (at most MNTPathLen bytes).
func (p *DirPath) Decode(d *xdr.Decoder) { p.Path = d.String(MNTPathLen) }

// MountRes3 is mountres3 (MNT v3). Handle and AuthFlavors are sent only on
// MountOK.
type MountRes3 struct {
	Status      MountStat
	Handle      []byte
	AuthFlavors []uint32
}

// Encode appends r.
func (r *MountRes3) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	if r.Status != MountOK {
		return
	}
	e.Opaque(r.Handle)
	e.Uint32(uint32(len(r.AuthFlavors)))
	for _, f := range r.AuthFlavors {
		e.Uint32(f)
	}
}

// Decode reads r (at most MaxAuthFlavors flavors).
func (r *MountRes3) Decode(d *xdr.Decoder) {
	r.Status = MountStat(d.Uint32())
	r.Handle, r.AuthFlavors = nil, nil
	if r.Status != MountOK {
		return
	}
	r.Handle = DecodeFH(d)
	n := d.Count(MaxAuthFlavors, 4)
	r.AuthFlavors = make([]uint32, n)
	for i := range r.AuthFlavors {
		r.AuthFlavors[i] = d.Uint32()
	}
}

// FHStatus is fhstatus (MNT v1): a status and, on success, a fixed 32-byte
// handle.
type FHStatus struct {
	Status MountStat
	Handle [FHSizeV1]byte
}

// Encode appends r.
func (r *FHStatus) Encode(e *xdr.Encoder) {
	e.Uint32(uint32(r.Status))
	if r.Status == MountOK {
		e.FixedOpaque(r.Handle[:])
	}
}

// Decode reads r.
func (r *FHStatus) Decode(d *xdr.Decoder) {
	r.Status = MountStat(d.Uint32())
	r.Handle = [FHSizeV1]byte{}
	if r.Status == MountOK {
		copy(r.Handle[:], d.FixedOpaque(FHSizeV1))
	}
}

// MountEntry is one mountbody of a DUMP reply.
type MountEntry struct {
	Hostname  string
	Directory string
}

// MountList is the DUMP result (mountlist).
type MountList []MountEntry

// Encode appends l.
func (l MountList) Encode(e *xdr.Encoder) {
	for _, m := range l {
		e.Bool(true)
		e.String(m.Hostname)
		e.String(m.Directory)
	}
	e.Bool(false)
}

// Decode reads l; entries grow only as they decode.
func (l *MountList) Decode(d *xdr.Decoder) {
	*l = nil
	for d.Bool() {
		m := MountEntry{Hostname: d.String(MNTNameLen), Directory: d.String(MNTPathLen)}
		if d.Err() != nil {
			return
		}
		*l = append(*l, m)
	}
}

// Export is one exportnode of an EXPORT reply. An empty Groups list means
// everyone may mount it.
type Export struct {
	Dir    string
	Groups []string
}

// Exports is the EXPORT (and v1 EXPORTALL) result.
type Exports []Export

// Encode appends x.
func (x Exports) Encode(e *xdr.Encoder) {
	for _, ex := range x {
		e.Bool(true)
		e.String(ex.Dir)
		for _, g := range ex.Groups {
			e.Bool(true)
			e.String(g)
		}
		e.Bool(false)
	}
	e.Bool(false)
}

// Decode reads x; entries grow only as they decode.
func (x *Exports) Decode(d *xdr.Decoder) {
	*x = nil
	for d.Bool() {
		ex := Export{Dir: d.String(MNTPathLen)}
		for d.Bool() {
			g := d.String(MNTNameLen)
			if d.Err() != nil {
				return
			}
			ex.Groups = append(ex.Groups, g)
		}
		if d.Err() != nil {
			return
		}
		*x = append(*x, ex)
	}
}
