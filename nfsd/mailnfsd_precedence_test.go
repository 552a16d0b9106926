package nfsd_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestLinuxSlash32IsANetwork: on a Linux line an address written with a
// prefix length (127.0.0.1/32) is a network to nfs-utils (client_gettype
// types every client with a "/" MCL_SUBNETWORK), so among the networks the
// first written wins: with "127.0.0.0/8(ro) 127.0.0.1/32(rw)" 127.0.0.1
// gets ro, as on Linux, and -check-config warns that the /32 never
// applies. mailnfsd ranked the /32 as a host and granted rw.
func TestLinuxSlash32IsANetwork(t *testing.T) {
	exports := func(root string) string {
		return fmt.Sprintf("%s 127.0.0.0/8(ro,no_root_squash) 127.0.0.1/32(rw,no_root_squash)\n", root)
	}
	tab, err := nfsd.ParseExports("exports", []byte(exports("/srv")), nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(tab.Warnings) != 1 || !strings.Contains(tab.Warnings[0].Msg, "127.0.0.1/32 never applies") {
		t.Errorf("warnings %v, want one that 127.0.0.1/32 never applies", tab.Warnings)
	}
	if f := tab.Format(); !strings.Contains(f, " 127.0.0.1/32(") {
		t.Errorf("Format lost the /32:\n%s", f)
	}

	s := nfsdtest.StartServer(t, nfsdtest.WithExports(exports))
	c := nfsdtest.Dial(t, "tcp", s.NFSAddr)
	d, err := c.Call(nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcMnt), nfsdtest.AuthSys(0, 0), (&nfs3.DirPath{Path: s.Root}).Encode)
	if err != nil {
		t.Fatal(err)
	}
	var m nfs3.MountRes3
	m.Decode(d)
	if m.Status != nfs3.MountOK {
		t.Fatalf("MNT: %v", m.Status)
	}
	d, err = c.Call(nfs3.Program, nfs3.Version, uint32(nfs3.ProcCreate), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
		(&nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: m.Handle, Name: "f"}, Mode: nfs3.Guarded}).Encode(e)
	})
	if err != nil {
		t.Fatal(err)
	}
	var r nfs3.CreateRes
	r.Decode(d)
	if r.Status != nfs3.StatusROFS {
		t.Errorf("CREATE from 127.0.0.1 under 127.0.0.0/8(ro) 127.0.0.1/32(rw): %v, want NFS3ERR_ROFS (the first network wins)", r.Status)
	}
}
