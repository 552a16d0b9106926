package nfs3

// Result is implemented by every NFSv3 result type: Stat returns the
// nfsstat3 that selects its union arm (for counters and logs that handle
// all procedures alike).
type Result interface {
	Stat() Status
}

// Compile-time checks that every result type is a Result.
var (
	_ Result = (*GetattrRes)(nil)
	_ Result = (*WccRes)(nil)
	_ Result = (*LookupRes)(nil)
	_ Result = (*AccessRes)(nil)
	_ Result = (*ReadlinkRes)(nil)
	_ Result = (*ReadRes)(nil)
	_ Result = (*WriteRes)(nil)
	_ Result = (*CreateRes)(nil)
	_ Result = (*RenameRes)(nil)
	_ Result = (*LinkRes)(nil)
	_ Result = (*ReaddirRes)(nil)
	_ Result = (*ReaddirplusRes)(nil)
	_ Result = (*FsstatRes)(nil)
	_ Result = (*FsinfoRes)(nil)
	_ Result = (*PathconfRes)(nil)
	_ Result = (*CommitRes)(nil)
)

// Stat returns r.Status.
func (r *GetattrRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *WccRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *LookupRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *AccessRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *ReadlinkRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *ReadRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *WriteRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *CreateRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *RenameRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *LinkRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *ReaddirRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *ReaddirplusRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *FsstatRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *FsinfoRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *PathconfRes) Stat() Status { return r.Status }

// Stat returns r.Status.
func (r *CommitRes) Stat() Status { return r.Status }
