package client

import (
	"context"
	"fmt"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// Export is one entry of a MOUNT EXPORT reply: a directory and the client
// names or netgroups allowed to mount it (empty: everyone).
type Export = nfs3.Export

// MountResult is the reply to MNT: the export's root handle and the auth
// flavors the server accepts, preferred first.
type MountResult struct {
	Handle      []byte
	AuthFlavors []uint32
}

// Mnt calls MOUNT v3 MNT for dirpath on the MOUNT server at addr
// ("host:port") over TCP.
func Mnt(ctx context.Context, addr string, auth Auth, dirpath string) (MountResult, error) {
	res, err := oneShotTCP(ctx, addr, nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcMnt), auth,
		func(e *xdr.Encoder) { (&nfs3.DirPath{Path: dirpath}).Encode(e) })
	if err != nil {
		return MountResult{}, mountErr(err, "MNT", dirpath)
	}
	var r nfs3.MountRes3
	d := xdr.NewDecoder(res)
	r.Decode(d)
	if err := d.Done(); err != nil {
		return MountResult{}, fmt.Errorf("client: MNT %s: reply: %w", dirpath, err)
	}
	if r.Status != nfs3.MountOK {
		return MountResult{}, &Error{Prog: rpc.ProgMount, Proc: uint32(nfs3.MountProcMnt), Op: "MNT", Path: dirpath, Status: Status(r.Status)}
	}
	return MountResult{Handle: r.Handle, AuthFlavors: r.AuthFlavors}, nil
}

// Umnt calls MOUNT v3 UMNT for dirpath. The server only forgets the entry
// in its mount list; handles stay valid.
func Umnt(ctx context.Context, addr string, auth Auth, dirpath string) error {
	_, err := oneShotTCP(ctx, addr, nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcUmnt), auth,
		func(e *xdr.Encoder) { (&nfs3.DirPath{Path: dirpath}).Encode(e) })
	return mountErr(err, "UMNT", dirpath)
}

// Exports calls MOUNT v3 EXPORT: the server's export list.
func Exports(ctx context.Context, addr string, auth Auth) ([]Export, error) {
	res, err := oneShotTCP(ctx, addr, nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcExport), auth, nil)
	if err != nil {
		return nil, mountErr(err, "EXPORT", "")
	}
	var x nfs3.Exports
	d := xdr.NewDecoder(res)
	x.Decode(d)
	if err := d.Done(); err != nil {
		return nil, fmt.Errorf("client: EXPORT reply: %w", err)
	}
	return x, nil
}

func mountErr(err error, op, path string) error {
	if err == nil {
		return nil
	}
	if e, ok := err.(*Error); ok {
		e.Op, e.Path = op, path
		return e
	}
	return fmt.Errorf("client: %s %s: %w", op, path, err)
}
