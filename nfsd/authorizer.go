package nfsd

import "github.com/mailnfs/mailnfs/maildirfs"

// This file holds the Authorizer contract from docs/design.md, which the
// NFSv3 program consumes; Exports (access.go) implements it.

// Access is what one NFS call may do.
type Access struct {
	Store    Store          // the export's store
	Cred     maildirfs.Cred // credential after squashing/mapping
	ReadOnly bool           // export is -ro for this client
	Export   string         // export path, for logs
}

// Authorizer checks every NFS call against the exports, not only MNT.
type Authorizer interface {
	// Authorize finds the export that handle h belongs to and checks that req's
	// client may use it. Errors: maildirfs.ErrBadHandle / ErrStale (no such export),
	// nfsd.ErrAccess (host not allowed: NFS3ERR_ACCES), nfsd.ErrInsecurePort
	// (a secure export called from an unreserved port: NFS3ERR_PERM).
	Authorize(req *Request, h []byte) (Access, error)
}
