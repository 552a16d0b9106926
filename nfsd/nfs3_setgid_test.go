package nfsd

import (
	"os"
	"path/filepath"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
)

// TestNFS3CreateSetgidNonMember: CREATE and MKNOD of a setgid,
// group-executable object in a setgid directory by a caller outside the
// directory's group answer (and store) it without S_ISGID, as Linux does
// for a local caller without CAP_FSETID; a member keeps it.
func TestNFS3CreateSetgidNonMember(t *testing.T) {
	e := newN3Env(t)
	p := filepath.Join(e.st.Dir, "shared")
	if err := os.Mkdir(p, 0o777); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(p, 0, 4242); err != nil {
		t.Fatal(err)
	}
	if err := unix.Chmod(p, 0o2777); err != nil {
		t.Fatal(err)
	}
	dir := e.mustLookup(e.root, "shared")
	defer func() { e.cred = &rpc.AuthSysParms{} }()
	for _, tc := range []struct {
		name   string
		groups []uint32
		want   uint32
	}{
		{"outsider", nil, 0o755},
		{"member", []uint32{4242}, 0o2755},
	} {
		e.cred = &rpc.AuthSysParms{MachineName: "test", UID: 1000, GID: 1000, GIDs: tc.groups}
		r := e.create(dir, tc.name+"-file", nfs3.Guarded, nfs3.SetAttr{Mode: ptr[uint32](0o2755)}, [8]byte{})
		e.wantStatus("CREATE", r.Status, nfs3.StatusOK)
		var m nfs3.MknodRes
		e.call(nfs3.ProcMknod, &nfs3.MknodArgs{Where: nfs3.DirOpArgs{Dir: dir, Name: tc.name + "-fifo"}, Type: nfs3.TypeFifo, Attr: nfs3.SetAttr{Mode: ptr[uint32](0o2755)}}, &m)
		e.wantStatus("MKNOD", m.Status, nfs3.StatusOK)
		for _, a := range []*nfs3.Fattr{r.ObjAttr, m.ObjAttr} {
			if a == nil || a.Mode != tc.want || a.GID != 4242 {
				t.Errorf("%s: attributes %+v, want mode %o group 4242", tc.name, a, tc.want)
			}
		}
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(p, tc.name+"-file"), &st); err != nil || uint32(st.Mode)&0o7777 != tc.want {
			t.Errorf("%s: on disk mode %o (%v), want %o", tc.name, st.Mode&0o7777, err, tc.want)
		}
	}
}
