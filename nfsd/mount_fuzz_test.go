package nfsd

import (
	"bytes"
	"context"
	"net/netip"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/maildirfs"
)

// pathStore is a Store that knows only its root and one subdirectory,
// enough for MOUNT, and needs no root privileges. Other methods are not
// called by MOUNT (the nil embedded interface would panic).
type pathStore struct {
	Store
	root, sub maildirfs.Handle
}

func (s *pathStore) Root() maildirfs.Handle { return s.root }
func (s *pathStore) Close() error           { return nil }
func (s *pathStore) LookupPath(c maildirfs.Cred, rel string) (maildirfs.Handle, error) {
	if rel == "sub" {
		return s.sub, nil
	}
	return nil, syscall.ENOENT
}

// fakeMount is a Mount over pathStores, for tests without root.
func fakeMount(t testing.TB, text string, maxMounts int) *Mount {
	tab, err := ParseExports("exports", []byte(text), nil)
	exNoErr(t, err)
	x, err := OpenExports(tab, ExportsOptions{
		StateDir: t.TempDir(),
		OpenStore: func(root string, o maildirfs.Options) (Store, error) {
			return &pathStore{root: []byte("root:" + root), sub: []byte("sub:" + root)}, nil
		},
	})
	exNoErr(t, err)
	t.Cleanup(func() { x.Close() })
	return &Mount{Exports: x, MaxMounts: maxMounts}
}

func TestMountListBounded(t *testing.T) {
	m := fakeMount(t, "/a -alldirs\n/b\n", 3)
	for i := range 10 {
		addr := netip.AddrFrom4([4]byte{10, 0, 0, byte(i)})
		var e xdr.Encoder
		(&nfs3.DirPath{Path: "/a"}).Encode(&e)
		var res xdr.Encoder
		req := &Request{Vers: 3, Proc: uint32(nfs3.MountProcMnt), Addr: netip.AddrPortFrom(addr, 700), Args: xdr.NewDecoder(e.Bytes())}
		exEqual(t, StatusOK, m.Serve(context.Background(), req, &res))
	}
	want := []nfs3.MountEntry{{Hostname: "10.0.0.7", Directory: "/a"}, {Hostname: "10.0.0.8", Directory: "/a"}, {Hostname: "10.0.0.9", Directory: "/a"}}
	exEqual(t, want, m.Mounts())
}

func FuzzMountServe(f *testing.F) {
	path := func(p string) []byte {
		var e xdr.Encoder
		(&nfs3.DirPath{Path: p}).Encode(&e)
		return e.Bytes()
	}
	for _, s := range []struct {
		vers, proc uint32
		args       []byte
	}{
		{3, 0, nil}, {3, 1, path("/a")}, {3, 1, path("/a/sub")}, {3, 1, path("/b/sub")},
		{3, 1, path("/a/../b")}, {1, 1, path("/a")}, {3, 2, nil}, {3, 3, path("/a")},
		{3, 4, nil}, {3, 5, nil}, {1, 6, nil}, {3, 6, nil}, {2, 5, nil}, {3, 1, []byte{0, 0, 4, 1}},
	} {
		f.Add(s.vers, s.proc, s.args, byte(1))
	}
	m := fakeMount(f, "/a -alldirs 127.0.0.1 10.0.0.0/8\n/b -ro\n/c -network 192.168.0.0/16\n", 4)
	f.Fuzz(func(t *testing.T, vers, proc uint32, args []byte, host byte) {
		vers = 1 + vers%3
		addr := netip.AddrFrom4([4]byte{127, 0, 0, host})
		req := &Request{Vers: vers, Proc: proc, Addr: netip.AddrPortFrom(addr, 1000), Args: xdr.NewDecoder(args),
			AuthSys: &rpc.AuthSysParms{UID: 0}}
		var res xdr.Encoder
		st := m.Serve(context.Background(), req, &res)
		exTrue(t, len(m.Mounts()) <= 4, "mount list exceeds its bound")
		if st != StatusOK {
			exTrue(t, st == StatusGarbage || st == StatusProcUnavail, "status", st)
			return
		}
		// Whatever was answered decodes exactly as its result type.
		d := xdr.NewDecoder(res.Bytes())
		switch nfs3.MountProc(proc) {
		case nfs3.MountProcMnt:
			if vers == 3 {
				var r nfs3.MountRes3
				r.Decode(d)
				if r.Status == nfs3.MountOK {
					exTrue(t, bytes.HasPrefix(r.Handle, []byte("root:")) || bytes.HasPrefix(r.Handle, []byte("sub:/a")), "handle", r.Handle)
				}
			} else {
				var r nfs3.FHStatus
				r.Decode(d)
				exTrue(t, r.Status != nfs3.MountOK, "v1 MNT never succeeds")
			}
		case nfs3.MountProcDump:
			var l nfs3.MountList
			l.Decode(d)
		case nfs3.MountProcExport, nfs3.MountProcExportAll:
			var x nfs3.Exports
			x.Decode(d)
			exEqual(t, 3, len(x))
		}
		exNoErr(t, d.Done())
	})
}
