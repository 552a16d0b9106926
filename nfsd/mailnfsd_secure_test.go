package nfsd_test

import (
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestSecureExport: an explicit Linux "secure" refuses MNT (MNT3ERR_ACCES,
// as Linux mountd) and every NFS call (NFS3ERR_PERM, as knfsd) from a
// source port of 1024 or above, over TCP and UDP, on a real server; the
// same client from a reserved port is served, and so is an unprivileged
// port on an export without "secure".
func TestSecureExport(t *testing.T) {
	s := nfsdtest.StartServer(t, nfsdtest.WithExports(func(root string) string {
		return fmt.Sprintf("%s 127.0.0.1(rw,no_root_squash,secure)\n%s/open 127.0.0.1(rw,no_root_squash)\n", root, root)
	}), nfsdtest.WithSetup(func(t testing.TB, root string) {
		if err := os.Mkdir(filepath.Join(root, "open"), 0o755); err != nil {
			t.Fatal(err)
		}
	}))
	getattr := func(t *testing.T, c *nfsdtest.Caller, fh []byte) nfs3.Status {
		t.Helper()
		d, err := c.Call(nfs3.Program, nfs3.Version, uint32(nfs3.ProcGetattr), nfsdtest.AuthSys(0, 0), (&nfs3.GetattrArgs{Object: fh}).Encode)
		if err != nil {
			t.Fatalf("GETATTR: %v", err)
		}
		var r nfs3.GetattrRes
		r.Decode(d)
		return r.Status
	}
	mnt := func(t *testing.T, c *nfsdtest.Caller, path string) nfs3.MountRes3 {
		t.Helper()
		d, err := c.Call(nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcMnt), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
			(&nfs3.DirPath{Path: path}).Encode(e)
		})
		if err != nil {
			t.Fatalf("MNT %s: %v", path, err)
		}
		var r nfs3.MountRes3
		r.Decode(d)
		if err := d.Done(); err != nil {
			t.Fatalf("MNT reply: %v", err)
		}
		return r
	}
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			resv := nfsdtest.DialReserved(t, network, s.MountAddr)
			high := nfsdtest.Dial(t, network, s.MountAddr)
			if r := mnt(t, high, s.Root); r.Status != nfs3.MountAcces {
				t.Fatalf("MNT of a secure export from an unreserved port: %v, want MNT3ERR_ACCES", r.Status)
			}
			r := mnt(t, resv, s.Root)
			if r.Status != nfs3.MountOK {
				t.Fatalf("MNT of a secure export from a reserved port: %v", r.Status)
			}
			if r := mnt(t, high, s.Root+"/open"); r.Status != nfs3.MountOK {
				t.Fatalf("MNT of the export without secure from an unreserved port: %v", r.Status)
			}

			nfsResv := nfsdtest.DialReserved(t, network, s.NFSAddr)
			nfsHigh := nfsdtest.Dial(t, network, s.NFSAddr)
			if st := getattr(t, nfsHigh, r.Handle); st != nfs3.StatusPerm {
				t.Fatalf("GETATTR on a secure export from an unreserved port: %v, want NFS3ERR_PERM", st)
			}
			if st := getattr(t, nfsResv, r.Handle); st != nfs3.StatusOK {
				t.Fatalf("GETATTR on a secure export from a reserved port: %v", st)
			}
			open := []byte(s.Daemon.Exports.Store(s.Root + "/open").Root())
			if st := getattr(t, nfsHigh, open); st != nfs3.StatusOK {
				t.Fatalf("GETATTR on an export without secure from an unreserved port: %v", st)
			}
		})
	}
}
