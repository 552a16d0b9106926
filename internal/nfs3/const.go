package nfs3

import (
	"errors"
	"fmt"
)

// Program numbers and versions.
const (
	Program      = 100003 // NFS
	Version      = 3      // NFSv3
	MountProgram = 100005 // MOUNT
	MountV1      = 1
	MountV3      = 3
)

// Sizes and limits (RFC 1813 §2.4, Appendix I).
const (
	// FHSize is NFS3_FHSIZE, the largest NFSv3 file handle.
	FHSize = 64
	// FHSizeV1 is FHSIZE of MOUNT v1: a fixed 32-byte handle.
	FHSizeV1 = 32
	// VerfSize is the size of cookie, create and write verifiers.
	VerfSize = 8
	// MaxName is the longest file name the server accepts (NAME_MAX);
	// longer ones get NFS3ERR_NAMETOOLONG.
	MaxName = 255
	// MaxNameDecode bounds filename3 while decoding; filename3 is unbounded
	// on the wire, so anything up to this decodes and the server answers
	// NAMETOOLONG for names over MaxName.
	MaxNameDecode = 4096
	// MaxPathDecode bounds nfspath3 (symlink targets) while decoding.
	MaxPathDecode = 4096
	// MNTPathLen bounds a MOUNT dirpath.
	MNTPathLen = 1024
	// MNTNameLen bounds a MOUNT name (host names, groups).
	MNTNameLen = 255
	// MaxIO is the rtmax/wtmax this server advertises: 1 MiB.
	MaxIO = 1 << 20
	// MaxData bounds READ and WRITE data while decoding. It is larger than
	// MaxIO so a client that ignores wtmax gets a short write rather than
	// GARBAGE_ARGS; the data is never copied, so the real bound is the
	// record size.
	MaxData = 4 << 20
	// MaxAuthFlavors bounds the flavor list in a MNT reply.
	MaxAuthFlavors = 64
)

// Errors returned (via xdr.Decoder.Err) by decoders.
var (
	// ErrEnum: an enumeration that selects a union arm is out of range.
	ErrEnum = errors.New("nfs3: enumeration value out of range")
	// ErrWriteCount: a WRITE's count differs from the length of its data.
	ErrWriteCount = errors.New("nfs3: WRITE count does not match data length")
)

// Proc is an NFSv3 procedure number.
type Proc uint32

// NFSv3 procedures (RFC 1813 §3.3).
const (
	ProcNull        Proc = 0
	ProcGetattr     Proc = 1
	ProcSetattr     Proc = 2
	ProcLookup      Proc = 3
	ProcAccess      Proc = 4
	ProcReadlink    Proc = 5
	ProcRead        Proc = 6
	ProcWrite       Proc = 7
	ProcCreate      Proc = 8
	ProcMkdir       Proc = 9
	ProcSymlink     Proc = 10
	ProcMknod       Proc = 11
	ProcRemove      Proc = 12
	ProcRmdir       Proc = 13
	ProcRename      Proc = 14
	ProcLink        Proc = 15
	ProcReaddir     Proc = 16
	ProcReaddirplus Proc = 17
	ProcFsstat      Proc = 18
	ProcFsinfo      Proc = 19
	ProcPathconf    Proc = 20
	ProcCommit      Proc = 21
)

var procNames = [...]string{"NULL", "GETATTR", "SETATTR", "LOOKUP", "ACCESS", "READLINK", "READ",
	"WRITE", "CREATE", "MKDIR", "SYMLINK", "MKNOD", "REMOVE", "RMDIR", "RENAME", "LINK", "READDIR",
	"READDIRPLUS", "FSSTAT", "FSINFO", "PATHCONF", "COMMIT"}

// String returns the RFC name of the procedure, e.g. "READDIRPLUS".
func (p Proc) String() string {
	if int(p) < len(procNames) {
		return procNames[p]
	}
	return fmt.Sprintf("PROC_%d", uint32(p))
}

// Status is nfsstat3. It implements error so a client can return it; the
// value StatusOK is not meant to be used as an error.
type Status uint32

// nfsstat3 values (RFC 1813 §2.6).
const (
	StatusOK          Status = 0
	StatusPerm        Status = 1
	StatusNoEnt       Status = 2
	StatusIO          Status = 5
	StatusNXIO        Status = 6
	StatusAcces       Status = 13
	StatusExist       Status = 17
	StatusXDev        Status = 18
	StatusNoDev       Status = 19
	StatusNotDir      Status = 20
	StatusIsDir       Status = 21
	StatusInval       Status = 22
	StatusFBig        Status = 27
	StatusNoSpc       Status = 28
	StatusROFS        Status = 30
	StatusMLink       Status = 31
	StatusNameTooLong Status = 63
	StatusNotEmpty    Status = 66
	StatusDQuot       Status = 69
	StatusStale       Status = 70
	StatusRemote      Status = 71
	StatusBadHandle   Status = 10001
	StatusNotSync     Status = 10002
	StatusBadCookie   Status = 10003
	StatusNotSupp     Status = 10004
	StatusTooSmall    Status = 10005
	StatusServerFault Status = 10006
	StatusBadType     Status = 10007
	StatusJukebox     Status = 10008
)

var statusNames = map[Status]string{
	StatusOK: "NFS3_OK", StatusPerm: "NFS3ERR_PERM", StatusNoEnt: "NFS3ERR_NOENT",
	StatusIO: "NFS3ERR_IO", StatusNXIO: "NFS3ERR_NXIO", StatusAcces: "NFS3ERR_ACCES",
	StatusExist: "NFS3ERR_EXIST", StatusXDev: "NFS3ERR_XDEV", StatusNoDev: "NFS3ERR_NODEV",
	StatusNotDir: "NFS3ERR_NOTDIR", StatusIsDir: "NFS3ERR_ISDIR", StatusInval: "NFS3ERR_INVAL",
	StatusFBig: "NFS3ERR_FBIG", StatusNoSpc: "NFS3ERR_NOSPC", StatusROFS: "NFS3ERR_ROFS",
	StatusMLink: "NFS3ERR_MLINK", StatusNameTooLong: "NFS3ERR_NAMETOOLONG",
	StatusNotEmpty: "NFS3ERR_NOTEMPTY", StatusDQuot: "NFS3ERR_DQUOT", StatusStale: "NFS3ERR_STALE",
	StatusRemote: "NFS3ERR_REMOTE", StatusBadHandle: "NFS3ERR_BADHANDLE",
	StatusNotSync: "NFS3ERR_NOT_SYNC", StatusBadCookie: "NFS3ERR_BAD_COOKIE",
	StatusNotSupp: "NFS3ERR_NOTSUPP", StatusTooSmall: "NFS3ERR_TOOSMALL",
	StatusServerFault: "NFS3ERR_SERVERFAULT", StatusBadType: "NFS3ERR_BADTYPE",
	StatusJukebox: "NFS3ERR_JUKEBOX",
}

// String returns the RFC name, e.g. "NFS3ERR_NOENT".
func (s Status) String() string {
	if n, ok := statusNames[s]; ok {
		return n
	}
	return fmt.Sprintf("NFS3ERR_%d", uint32(s))
}

// Error implements error.
func (s Status) Error() string { return "nfs3: " + s.String() }

// FileType is ftype3.
type FileType uint32

// ftype3 values.
const (
	TypeReg  FileType = 1
	TypeDir  FileType = 2
	TypeBlk  FileType = 3
	TypeChr  FileType = 4
	TypeLnk  FileType = 5
	TypeSock FileType = 6
	TypeFifo FileType = 7
)

// String returns the RFC name, e.g. "NF3REG".
func (t FileType) String() string {
	names := [...]string{"", "NF3REG", "NF3DIR", "NF3BLK", "NF3CHR", "NF3LNK", "NF3SOCK", "NF3FIFO"}
	if t >= 1 && int(t) < len(names) {
		return names[t]
	}
	return fmt.Sprintf("NF3TYPE_%d", uint32(t))
}

// StableHow is stable_how (WRITE).
type StableHow uint32

// stable_how values.
const (
	Unstable StableHow = 0
	DataSync StableHow = 1
	FileSync StableHow = 2
)

// String returns the RFC name, e.g. "FILE_SYNC".
func (s StableHow) String() string {
	switch s {
	case Unstable:
		return "UNSTABLE"
	case DataSync:
		return "DATA_SYNC"
	case FileSync:
		return "FILE_SYNC"
	}
	return fmt.Sprintf("STABLE_%d", uint32(s))
}

// CreateMode is createmode3.
type CreateMode uint32

// createmode3 values.
const (
	Unchecked CreateMode = 0
	Guarded   CreateMode = 1
	Exclusive CreateMode = 2
)

// String returns the RFC name, e.g. "GUARDED".
func (m CreateMode) String() string {
	switch m {
	case Unchecked:
		return "UNCHECKED"
	case Guarded:
		return "GUARDED"
	case Exclusive:
		return "EXCLUSIVE"
	}
	return fmt.Sprintf("CREATEMODE_%d", uint32(m))
}

// TimeHow is time_how (sattr3).
type TimeHow uint32

// time_how values.
const (
	DontChange      TimeHow = 0
	SetToServerTime TimeHow = 1
	SetToClientTime TimeHow = 2
)

// ACCESS3 bits (RFC 1813 §3.3.4).
const (
	AccessRead    = 0x01
	AccessLookup  = 0x02
	AccessModify  = 0x04
	AccessExtend  = 0x08
	AccessDelete  = 0x10
	AccessExecute = 0x20
)

// FSINFO properties bits (RFC 1813 §3.3.19).
const (
	FSFLink        = 0x01
	FSFSymlink     = 0x02
	FSFHomogeneous = 0x08
	FSFCanSetTime  = 0x10
)
