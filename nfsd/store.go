package nfsd

import (
	"time"

	"github.com/mailnfs/mailnfs/maildirfs"
)

// Store is the storage one export serves: the method set of *maildirfs.FS
// (docs/design.md), owned here by its consumer so tests can wrap it with
// fault injection. Handles are opaque; errors are maildirfs sentinels or
// carry a syscall.Errno, and statusFromError maps them to nfsstat3.
type Store interface {
	Close() error
	Root() maildirfs.Handle
	FSID() uint64
	WriteVerifier() [8]byte
	Stats() maildirfs.Stats
	LookupPath(c maildirfs.Cred, rel string) (maildirfs.Handle, error)
	Getattr(h maildirfs.Handle) (maildirfs.Attr, error)
	SetAttr(h maildirfs.Handle, c maildirfs.Cred, s maildirfs.SetAttr, guard func(ctime time.Time) bool) (maildirfs.Wcc, error)
	Lookup(dir maildirfs.Handle, c maildirfs.Cred, name string) (maildirfs.Handle, maildirfs.Attr, *maildirfs.Attr, error)
	Access(h maildirfs.Handle, c maildirfs.Cred, want uint32) (granted uint32, post *maildirfs.Attr, err error)
	Readlink(h maildirfs.Handle, c maildirfs.Cred) (string, *maildirfs.Attr, error)
	Read(h maildirfs.Handle, c maildirfs.Cred, off uint64, buf []byte) (n int, eof bool, post *maildirfs.Attr, err error)
	Write(h maildirfs.Handle, c maildirfs.Cred, off uint64, data []byte, stable maildirfs.StableHow) (n int, committed maildirfs.StableHow, verf [8]byte, wcc maildirfs.Wcc, err error)
	Commit(h maildirfs.Handle, c maildirfs.Cred, off uint64, count uint32) (verf [8]byte, wcc maildirfs.Wcc, err error)
	Create(dir maildirfs.Handle, c maildirfs.Cred, name string, how maildirfs.CreateMode, attr maildirfs.SetAttr, verf [8]byte) (maildirfs.Handle, *maildirfs.Attr, maildirfs.Wcc, error)
	FinishCreate(dir maildirfs.Handle, c maildirfs.Cred, name string, how maildirfs.CreateMode, attr maildirfs.SetAttr, verf [8]byte) (maildirfs.Handle, *maildirfs.Attr, maildirfs.Wcc, error)
	Mkdir(dir maildirfs.Handle, c maildirfs.Cred, name string, attr maildirfs.SetAttr) (maildirfs.Handle, *maildirfs.Attr, maildirfs.Wcc, error)
	Symlink(dir maildirfs.Handle, c maildirfs.Cred, name, target string, attr maildirfs.SetAttr) (maildirfs.Handle, *maildirfs.Attr, maildirfs.Wcc, error)
	FinishMkdir(dir maildirfs.Handle, c maildirfs.Cred, name string, attr maildirfs.SetAttr) (maildirfs.Handle, *maildirfs.Attr, maildirfs.Wcc, error)
	FinishSymlink(dir maildirfs.Handle, c maildirfs.Cred, name, target string, attr maildirfs.SetAttr) (maildirfs.Handle, *maildirfs.Attr, maildirfs.Wcc, error)
	Mknod(dir maildirfs.Handle, c maildirfs.Cred, name string, typ maildirfs.FileType, attr maildirfs.SetAttr, major, minor uint32) (maildirfs.Handle, *maildirfs.Attr, maildirfs.Wcc, error)
	Remove(dir maildirfs.Handle, c maildirfs.Cred, name string) (maildirfs.Wcc, error)
	Rmdir(dir maildirfs.Handle, c maildirfs.Cred, name string) (maildirfs.Wcc, error)
	Rename(fromDir maildirfs.Handle, fromName string, toDir maildirfs.Handle, toName string, c maildirfs.Cred) (from, to maildirfs.Wcc, err error)
	Link(file maildirfs.Handle, dir maildirfs.Handle, name string, c maildirfs.Cred) (*maildirfs.Attr, maildirfs.Wcc, error)
	// ReadDir calls emit for each entry from cookie on until emit returns
	// false (that entry is not consumed) or the directory ends (eof).
	ReadDir(dir maildirfs.Handle, c maildirfs.Cred, cookie uint64, plus bool, emit func(e *maildirfs.DirEntry) bool) (eof bool, dirAttr *maildirfs.Attr, err error)
	FSStat(h maildirfs.Handle) (maildirfs.FSStat, *maildirfs.Attr, error)
	Sync(h maildirfs.Handle) error
}

// LinkMaxer is optionally implemented by a Store that knows its file
// system's hard link limit (PATHCONF linkmax).
type LinkMaxer interface {
	LinkMax() uint32
}

// MaxFileSizer is optionally implemented by a Store that knows its file
// system's largest file size (FSINFO maxfilesize); without it FSINFO
// says 2^63-1.
type MaxFileSizer interface {
	MaxFileSize() uint64
}

var _ Store = (*maildirfs.FS)(nil)
