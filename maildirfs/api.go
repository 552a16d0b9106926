package maildirfs

// This file is the contract between maildirfs and its consumer nfsd. The
// store helper fills in the bodies (in other files); signatures change only
// with care, since nfsd codes against them.

import (
	"errors"
	"log/slog"
	"time"
)

// Sentinel errors. Every other error from FS carries a syscall.Errno
// (errors.As / errors.Is work) so nfsd derives the NFS status from the errno.
var (
	// ErrBadHandle: the handle is malformed, fails its MAC, or belongs to
	// another export or another server key (NFS3ERR_BADHANDLE).
	ErrBadHandle = errors.New("maildirfs: bad file handle")
	// ErrStale: the handle was valid but its object is gone (NFS3ERR_STALE).
	ErrStale = errors.New("maildirfs: stale file handle")
	// ErrNotSync: a SETATTR guard's ctime did not match (NFS3ERR_NOT_SYNC).
	ErrNotSync = errors.New("maildirfs: ctime guard mismatch")
	// ErrBadCookie: a READDIR cookie cannot be resumed (NFS3ERR_BAD_COOKIE).
	ErrBadCookie = errors.New("maildirfs: bad readdir cookie")
	// ErrCorrupt: on-disk state that cannot be parsed.
	ErrCorrupt = errors.New("maildirfs: corrupt state")
)

// MaxHandle is the largest handle FS produces (RFC 1813 NFS3_FHSIZE).
const MaxHandle = 64

// Handle is an opaque file handle of at most MaxHandle bytes. It names the
// file (inode identity), not its path: it survives RENAME and restarts, and it
// is signed with the key in Options.StateDir.
type Handle []byte

// FileType mirrors ftype3.
type FileType uint32

// File types (RFC 1813 ftype3 values).
const (
	TypeReg  FileType = 1
	TypeDir  FileType = 2
	TypeBlk  FileType = 3
	TypeChr  FileType = 4
	TypeLnk  FileType = 5
	TypeSock FileType = 6
	TypeFifo FileType = 7
)

// Attr mirrors fattr3, built from a real stat.
type Attr struct {
	Type         FileType
	Mode         uint32 // permission bits only, & 07777
	Nlink        uint32
	UID, GID     uint32
	Size, Used   uint64
	RdevMajor    uint32
	RdevMinor    uint32
	FSID         uint64 // constant per export
	FileID       uint64 // inode number
	Atime, Mtime time.Time
	Ctime        time.Time
}

// WccAttr mirrors wcc_attr: the attributes a client compares to its cache.
type WccAttr struct {
	Size         uint64
	Mtime, Ctime time.Time
}

// Wcc is weak cache consistency data for one object: attributes before and
// after an operation. Before is nil when it could not be taken (legal).
type Wcc struct {
	Before *WccAttr
	After  *Attr
}

// Cred is the caller's credential after export mapping (squashing). UID 0 is
// a superuser and bypasses permission checks, as root does locally.
type Cred struct {
	UID, GID uint32
	GIDs     []uint32
}

// TimeHow says how SetAttr sets a time (RFC 1813 time_how).
type TimeHow uint32

// time_how values.
const (
	DontChange TimeHow = 0
	ServerTime TimeHow = 1
	ClientTime TimeHow = 2
)

// SetAttr mirrors sattr3: nil pointer = leave alone.
type SetAttr struct {
	Mode     *uint32
	UID, GID *uint32
	Size     *uint64
	Atime    TimeHow
	AtimeVal time.Time
	Mtime    TimeHow
	MtimeVal time.Time
}

// CreateMode mirrors createmode3.
type CreateMode uint32

// Create modes.
const (
	Unchecked CreateMode = 0
	Guarded   CreateMode = 1
	Exclusive CreateMode = 2
)

// StableHow mirrors stable_how.
type StableHow uint32

// Stability levels.
const (
	Unstable StableHow = 0
	DataSync StableHow = 1
	FileSync StableHow = 2
)

// DirEntry is one directory entry returned by ReadDir.
type DirEntry struct {
	Name   string
	FileID uint64
	Cookie uint64 // resume point after this entry
	// Attr and Handle are filled only when ReadDir is asked for them
	// (READDIRPLUS); an entry that vanished mid-listing has them nil.
	Attr   *Attr
	Handle Handle
}

// FSStat mirrors FSSTAT3resok.
type FSStat struct {
	TotalBytes, FreeBytes, AvailBytes uint64
	TotalFiles, FreeFiles, AvailFiles uint64
}

// Options configure Open. The zero value is usable except StateDir.
type Options struct {
	// StateDir holds the server key that signs handles (created 0600 if
	// missing). Required: handles must verify after a restart.
	StateDir string
	// ExportID distinguishes exports in handles; a handle presented to an FS
	// with another ExportID is ErrBadHandle. Zero is a valid ID.
	ExportID uint32
	// ReadOnly refuses every modification with EROFS.
	ReadOnly bool
	// NoChown skips chown of created objects (a server not running as root);
	// objects are then owned by the server's uid.
	NoChown bool
	// HandleSearch lets Open succeed where open_by_handle_at is not
	// permitted (a server not running as root, without
	// CAP_DAC_READ_SEARCH): a handle whose object is not cached is then
	// found by searching the export, slow for big trees (search.go). For
	// demos; without it such an Open fails with an error that says what
	// is missing. Compression at rest is refused with it.
	HandleSearch bool
	// SyncWindow is how long a group commit waits to gather more syncs;
	// zero means sync at once, batching only syncs that arrive while one
	// is running.
	SyncWindow time.Duration
	// Logger receives store-level warnings. Nil means slog.Default().
	Logger *slog.Logger
	// Inject, when set, is called before each injectable step (tests only,
	// see maildirfs/mdtest). A non-nil result fails that step with the
	// returned error instead of running the system call. Nil: no faults.
	Inject func(op FaultOp) error
	// MaxOpenNodes bounds the cache of open fds keyed by handle. Zero
	// means 1024.
	MaxOpenNodes int
	// Compress selects compression at rest: "" (none) or "zstd". With
	// "zstd", regular files renamed from a directory named tmp into one
	// named new or cur are compressed in place by a background worker; the
	// export root is marked (xattr user.mailnfs.z), and a marked tree is
	// always decoded, whatever Compress says. See doc.go, "Compression".
	Compress string
}

// Stats is a snapshot of store counters (see FS.Stats). Sync counters let
// tests prove that a sync happened before a reply: every sync an operation
// asks for adds one to FileSyncCalls (anything but a directory) or
// DirSyncCalls (a directory), and the group commit turns several calls into
// one actual sync (FileSyncs, DirSyncs). Which objects a namespace
// operation syncs depends on the commit model (FS.CommitModel; doc.go,
// "Durability"): with OneSync one per operation, else every object it
// changed.
type Stats struct {
	// FileSyncCalls counts requests for a sync of anything but a directory:
	// stable WRITE, COMMIT, SETATTR, and the new object of CREATE (every
	// mode), SYMLINK and MKNOD; LINK's inode without OneSync.
	FileSyncCalls uint64
	// DirSyncCalls counts requests for a directory sync: MKDIR's new
	// directory, SETATTR of a directory, and the directories a namespace
	// operation changed (with OneSync only RENAME's target and the parent
	// in LINK, REMOVE and RMDIR).
	DirSyncCalls uint64
	// SyncCalls is FileSyncCalls + DirSyncCalls.
	SyncCalls uint64
	// FileSyncs counts fsync/fdatasync system calls on files, and the
	// syncs that stand for a symlink's or device node's (a syncfs on
	// Linux; nothing to call on FreeBSD).
	FileSyncs uint64
	// DirSyncs counts fsync system calls on directories.
	DirSyncs uint64
	// SyncBatches is FileSyncs + DirSyncs: actual syncs after coalescing.
	SyncBatches uint64
	// SyncErrors counts failed syncs (each rotates the write verifier).
	SyncErrors uint64
	// OpenNodes is the number of objects with an open fd in the handle cache.
	OpenNodes int
	// CacheHits and CacheMisses count handle resolutions served from the
	// open-fd cache and those that needed open_by_handle_at.
	CacheHits, CacheMisses uint64
	// Compressed counts files compressed in place; Expanded those rewritten
	// plain before a modification; CompressDropped deliveries not queued
	// for compression (queue full: their directory is swept later);
	// CompressFailed failed rewrites.
	Compressed, Expanded, CompressDropped, CompressFailed uint64
	// CompressPending is the number of delivered files queued for (or
	// being given to) the background compressor; CompressBacklog the
	// directories waiting for (or in) a sweep after the queue was full.
	CompressPending, CompressBacklog int
	// CompressPlainBytes and CompressStoredBytes sum the sizes of the
	// compressed files before and after.
	CompressPlainBytes, CompressStoredBytes uint64
	// CompressDict is the ID of the trained dictionary new messages are
	// compressed with (0: the built-in one); CompressDicts the number of
	// trained dictionaries the store has; CompressTrainings the ones this
	// process trained and adopted.
	CompressDict      uint32
	CompressDicts     int
	CompressTrainings uint64
}

// FaultOp names a storage step that Options.Inject may fail.
type FaultOp string

// Injectable steps.
const (
	FaultFsync  FaultOp = "fsync"  // fsync/fdatasync of a file or directory
	FaultRename FaultOp = "rename" // renameat
	FaultLink   FaultOp = "link"   // linkat
	FaultWrite  FaultOp = "write"  // pwrite
	FaultCreate FaultOp = "create" // openat(O_CREAT), mkdirat, symlinkat, mknodat
	FaultUnlink FaultOp = "unlink" // unlinkat
)
