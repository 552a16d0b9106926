package nfsd_test

import (
	"bufio"
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/internal/loopfstest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
	"golang.org/x/sys/unix"
)

// TestNFS3SetattrGuardOutOfRangeCtime: a file whose ctime nfstime3
// cannot carry (before 1970 or after 2106: an ext4 inode holds both) is
// reported with a ctime the server chose for it, and a SETATTR guarded
// with exactly that ctime, the client's only view of it, must pass.
func TestNFS3SetattrGuardOutOfRangeCtime(t *testing.T) {
	if _, err := exec.LookPath("debugfs"); err != nil {
		t.Skipf("needs debugfs: %v", err)
	}
	fs := loopfstest.Ext4(t, 16<<20, false)
	export := filepath.Join(fs, "export")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"past", "future"} {
		if err := os.WriteFile(filepath.Join(export, name), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Unmount, set the ctimes with debugfs, mount again.
	dev := mountSource(t, fs)
	if err := unix.Unmount(fs, 0); err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{
		"set_inode_field /export/past ctime 19600101000000",
		"set_inode_field /export/future ctime 22000101000000",
	} {
		if out, err := exec.Command("debugfs", "-w", "-R", c, dev).CombinedOutput(); err != nil {
			t.Fatalf("debugfs %s: %v: %s", c, err, out)
		}
	}
	if err := unix.Mount(dev, fs, "ext4", unix.MS_NOATIME, ""); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"past", "future"} {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(export, name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Ctim.Sec >= 0 && st.Ctim.Sec <= math.MaxUint32 {
			t.Fatalf("%s: ctime %d, debugfs did not set it", name, st.Ctim.Sec)
		}
	}

	s := nfsdtest.StartServer(t, nfsdtest.WithExports(func(string) string { return nfsdtest.DefaultExports(export) }))
	r, _ := mnt(t, nfsdtest.Dial(t, "tcp", s.MountAddr), nfs3.MountV3, export)
	if r.Status != nfs3.MountOK {
		t.Fatalf("MNT: %v", r.Status)
	}
	e := &edgeClient{t: t, c: nfsdtest.Dial(t, "tcp", s.NFSAddr), root: r.Handle}
	for _, name := range []string{"past", "future"} {
		t.Run(name, func(t *testing.T) {
			h := e.lookup(e.root, name)
			var g nfs3.GetattrRes
			e.call(nfsdtest.AuthSys(0, 0), nfs3.ProcGetattr, &nfs3.GetattrArgs{Object: h}, &g)
			if g.Status != nfs3.StatusOK {
				t.Fatalf("GETATTR: %v", g.Status)
			}
			mode := uint32(0o600)
			var sr nfs3.SetattrRes
			e.call(nfsdtest.AuthSys(0, 0), nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: h, NewAttr: nfs3.SetAttr{Mode: &mode},
				Guard: nfs3.Guard{Check: true, Ctime: g.Attr.Ctime}}, &sr)
			if sr.Status != nfs3.StatusOK {
				t.Fatalf("SETATTR guarded with the ctime GETATTR gave (%+v): %v", g.Attr.Ctime, sr.Status)
			}
			// And a guard that is not that ctime still fails.
			stale := sr.Wcc.After.Ctime
			stale.Seconds--
			e.call(nfsdtest.AuthSys(0, 0), nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: h, NewAttr: nfs3.SetAttr{Mode: &mode},
				Guard: nfs3.Guard{Check: true, Ctime: stale}}, &sr)
			if sr.Status != nfs3.StatusNotSync {
				t.Fatalf("SETATTR with a stale guard: %v", sr.Status)
			}
		})
	}
}

// mountSource returns the device mounted on dir.
func mountSource(t *testing.T, dir string) string {
	t.Helper()
	f, err := os.Open("/proc/self/mounts")
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if fl := strings.Fields(sc.Text()); len(fl) > 1 && fl[1] == dir {
			return fl[0]
		}
	}
	t.Fatalf("%s is not a mount point", dir)
	return ""
}
