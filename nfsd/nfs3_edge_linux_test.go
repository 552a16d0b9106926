package nfsd_test

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestNFS3MknodDeviceNumbers checks MKNOD of devices whose numbers do not
// fit Linux's device number (a 12-bit major, a 20-bit minor): knfsd
// answers NFS3ERR_INVAL; the store must not create another device, such
// as 0:0 for 4096:0 or 1:0 for 1:2^20, and answer NFS3_OK.
func TestNFS3MknodDeviceNumbers(t *testing.T) {
	s, e := edgeServer(t, func(t testing.TB, root string) {})
	for _, tc := range []struct {
		name string
		spec nfs3.SpecData
		want nfs3.Status
	}{
		{"Largest", nfs3.SpecData{Major: 1<<12 - 1, Minor: 1<<20 - 1}, nfs3.StatusOK},
		{"MajorTooLarge", nfs3.SpecData{Major: 1 << 12, Minor: 0}, nfs3.StatusInval},
		{"MinorTooLarge", nfs3.SpecData{Major: 1, Minor: 1 << 20}, nfs3.StatusInval},
		{"BothMax", nfs3.SpecData{Major: 1<<32 - 1, Minor: 1<<32 - 1}, nfs3.StatusInval},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var r nfs3.MknodRes
			e.call(nfsdtest.AuthSys(0, 0), nfs3.ProcMknod, &nfs3.MknodArgs{Where: nfs3.DirOpArgs{Dir: e.root, Name: tc.name}, Type: nfs3.TypeChr, Spec: tc.spec}, &r)
			if r.Status != tc.want {
				t.Fatalf("MKNOD chr %d:%d: %v, want %v", tc.spec.Major, tc.spec.Minor, r.Status, tc.want)
			}
			_, err := os.Lstat(filepath.Join(s.Root, tc.name))
			switch {
			case tc.want != nfs3.StatusOK && err == nil:
				t.Errorf("MKNOD chr %d:%d refused, but the node was made", tc.spec.Major, tc.spec.Minor)
			case tc.want == nfs3.StatusOK && (r.ObjAttr == nil || r.ObjAttr.Rdev != tc.spec):
				t.Errorf("MKNOD chr %d:%d made %+v", tc.spec.Major, tc.spec.Minor, r.ObjAttr)
			}
		})
	}
}
