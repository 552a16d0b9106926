package nfsd_test

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

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

// TestNFS3MountPointBusy: on the storage box a file system can be mounted
// inside the export (a tmpfs, a backup image), or a file bind-mounted
// there. REMOVE, RMDIR and RENAME of such a name fail with EBUSY, which
// knfsd answers NFS3ERR_ACCES for NFSv3 ("name is mounted-on", nfsd_unlink).
// It is the client's doing, not a server fault: no NFS3ERR_SERVERFAULT
// (EREMOTEIO on Linux clients) and no store error logged. Nothing moves.
func TestNFS3MountPointBusy(t *testing.T) {
	var dir, file string
	s, e := edgeServer(t, func(t testing.TB, root string) {
		dir, file = filepath.Join(root, "mnt"), filepath.Join(root, "fmnt")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for _, f := range []string{file, filepath.Join(root, "plain"), filepath.Join(filepath.Dir(root), "outside")} {
			if err := os.WriteFile(f, []byte(f), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	})
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(dir, unix.MNT_DETACH) })
	if err := unix.Mount(filepath.Join(filepath.Dir(s.Root), "outside"), file, "", unix.MS_BIND, ""); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Unmount(file, unix.MNT_DETACH) })
	root := nfsdtest.AuthSys(0, 0)
	var w nfs3.WccRes
	e.call(root, nfs3.ProcRmdir, &nfs3.RmdirArgs{Dir: e.root, Name: "mnt"}, &w)
	if w.Status != nfs3.StatusAcces {
		t.Errorf("RMDIR of a mount point: %v, want NFS3ERR_ACCES", w.Status)
	}
	w = nfs3.WccRes{}
	e.call(root, nfs3.ProcRemove, &nfs3.RemoveArgs{Dir: e.root, Name: "fmnt"}, &w)
	if w.Status != nfs3.StatusAcces {
		t.Errorf("REMOVE of a file mount point: %v, want NFS3ERR_ACCES", w.Status)
	}
	for _, names := range [][2]string{{"mnt", "moved"}, {"plain", "fmnt"}} {
		var r nfs3.RenameRes
		e.call(root, nfs3.ProcRename, &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: e.root, Name: names[0]}, To: nfs3.DirOpArgs{Dir: e.root, Name: names[1]}}, &r)
		if r.Status != nfs3.StatusAcces {
			t.Errorf("RENAME %s to %s: %v, want NFS3ERR_ACCES", names[0], names[1], r.Status)
		}
	}
	for _, name := range []string{"mnt", "fmnt", "plain"} {
		if _, err := os.Lstat(filepath.Join(s.Root, name)); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}
