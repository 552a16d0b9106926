package nfsd

import (
	"context"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// secureMount is the MOUNT program with the source port check of Linux
// "secure" (Rule.Secure) in front of MNT: a MNT from port 1024 or above
// for a path whose rule for the client says secure is answered
// MNT3ERR_ACCES, as Linux mountd answers it ("illegal port"). Every other
// call, and every MNT the check lets through, goes to the wrapped Mount
// unchanged; NFS calls are checked by Exports.Authorize.
//
// The check resolves the path as Mount does, on the table in force when
// the call arrives; a reload between the check and Mount's own lookup can
// let one MNT through, and the NFS calls with its handle are still
// refused.
type secureMount struct {
	*Mount
}

var _ Program = secureMount{}

// Serve checks a MNT's source port, then runs the call on Mount.
func (s secureMount) Serve(ctx context.Context, req *Request, res *xdr.Encoder) Status {
	if nfs3.MountProc(req.Proc) != nfs3.MountProcMnt || req.Addr.Port() < reservedPorts {
		return s.Mount.Serve(ctx, req, res)
	}
	// Decode a copy: Mount decodes the arguments again from the start.
	args := *req.Args
	var a nfs3.DirPath
	a.Decode(&args)
	if args.Done() != nil {
		return s.Mount.Serve(ctx, req, res)
	}
	path, st := cleanMountPath(a.Path)
	if st != nfs3.MountOK {
		return s.Mount.Serve(ctx, req, res)
	}
	le, _ := s.Exports.cur.Load().resolve(path)
	if le == nil {
		return s.Mount.Serve(ctx, req, res)
	}
	r := le.Match(req.Addr.Addr())
	if r == nil || s.Exports.portAllowed(req, le.Export, r, "mount") {
		return s.Mount.Serve(ctx, req, res)
	}
	reqLog(req).Info("mount: refused: unreserved source port for a secure export", "client", clientName(req), "port", req.Addr.Port(), "path", path, "export", le.Path)
	if req.Vers == nfs3.MountV3 {
		r := nfs3.MountRes3{Status: nfs3.MountAcces}
		r.Encode(res)
	} else {
		r := nfs3.FHStatus{Status: nfs3.MountAcces}
		r.Encode(res)
	}
	return StatusOK
}
