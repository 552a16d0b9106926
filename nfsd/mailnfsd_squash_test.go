package nfsd_test

import (
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestSquashInvalidID: AUTH_SYS id 4294967295 is chown(2)'s "leave it
// unchanged", so a file the server creates (as root) and then gives to
// such a caller stayed root's. A client, root squashed or not root at
// all, claiming uid or gid 4294967295 made setuid and setgid files owned
// by root or group 0. The id is mapped as Linux knfsd maps its invalid
// id: to the rule's anonymous uid or gid (Linux lines), to 65534 on
// FreeBSD lines; a supplementary 4294967295 is dropped.
func TestSquashInvalidID(t *testing.T) {
	const invalid = 1<<32 - 1
	s := nfsdtest.StartServer(t, nfsdtest.WithExports(func(root string) string {
		return fmt.Sprintf("%s -alldirs 127.0.0.1\n%s/linux 127.0.0.1(rw,root_squash,anonuid=4000,anongid=4001)\n", root, root)
	}), nfsdtest.WithSetup(func(t testing.TB, root string) {
		if err := os.Chmod(root, 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(root, "linux"), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(root, "linux"), 0o777); err != nil {
			t.Fatal(err)
		}
	}))
	c := nfsdtest.Dial(t, "tcp", s.NFSAddr)
	mnt := func(path string) []byte {
		t.Helper()
		d, err := c.Call(nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcMnt), nfsdtest.AuthSys(0, 0), (&nfs3.DirPath{Path: path}).Encode)
		if err != nil {
			t.Fatalf("MNT %s: %v", path, err)
		}
		var r nfs3.MountRes3
		r.Decode(d)
		if r.Status != nfs3.MountOK {
			t.Fatalf("MNT %s: %v", path, r.Status)
		}
		return r.Handle
	}
	create := func(dir []byte, cred rpc.OpaqueAuth, name string, gid *uint32) {
		t.Helper()
		d, err := c.Call(nfs3.Program, nfs3.Version, uint32(nfs3.ProcCreate), cred, func(e *xdr.Encoder) {
			(&nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: dir, Name: name}, Mode: nfs3.Guarded,
				Attr: nfs3.SetAttr{Mode: new(uint32(0o6755)), GID: gid}}).Encode(e)
		})
		if err != nil {
			t.Fatalf("CREATE %s: %v", name, err)
		}
		var r nfs3.CreateRes
		r.Decode(d)
		if r.Status != nfs3.StatusOK {
			t.Fatalf("CREATE %s: %v", name, r.Status)
		}
	}
	owner := func(rel string) string {
		t.Helper()
		fi, err := os.Lstat(filepath.Join(s.Root, rel))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
	}
	bsd, linux := mnt(s.Root), mnt(s.Root+"/linux")
	for _, tc := range []struct {
		name string
		dir  []byte
		rel  string
		cred rpc.OpaqueAuth
		gid  *uint32
		want string
	}{
		{"FreeBSDUID", bsd, "", nfsdtest.AuthSys(invalid, 2001), nil, "65534:2001"},
		{"FreeBSDGID", bsd, "", nfsdtest.AuthSys(2001, invalid), nil, "2001:65534"},
		{"FreeBSDAuxGID", bsd, "", nfsdtest.AuthSys(2001, 2001, invalid), new(uint32(invalid)), "2001:2001"},
		{"LinuxUID", linux, "linux", nfsdtest.AuthSys(invalid, 2001), nil, "4000:2001"},
		{"LinuxGID", linux, "linux", nfsdtest.AuthSys(2001, invalid), nil, "2001:4001"},
		{"LinuxAuxGID", linux, "linux", nfsdtest.AuthSys(2001, 2001, invalid), new(uint32(invalid)), "2001:2001"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			create(tc.dir, tc.cred, tc.name, tc.gid)
			if got := owner(filepath.Join(tc.rel, tc.name)); got != tc.want {
				t.Errorf("file made by a caller with id %d is owned by %s, want %s", uint32(invalid), got, tc.want)
			}
		})
	}
}
