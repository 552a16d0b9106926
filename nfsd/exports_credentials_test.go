package nfsd

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
)

// credEnv serves NFSv3 over a real Exports table (squashing as parsed) and
// real directories, calling NFS3.Serve as a client at a given address with
// a given AUTH_SYS credential.
type credEnv struct {
	t    *testing.T
	dir  string
	n    *NFS3
	root []byte
}

func newCredEnv(t *testing.T, noChown bool) *credEnv {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (chown, CAP_DAC_READ_SEARCH)")
	}
	base := t.TempDir()
	dir := filepath.Join(base, "mail")
	mk := func(p string, uid, gid int, mode os.FileMode) {
		exNoErr(t, os.MkdirAll(p, 0o755))
		exNoErr(t, os.Chown(p, uid, gid))
		exNoErr(t, os.Chmod(p, mode))
	}
	mk(dir, 0, 0, 0o777)
	mk(filepath.Join(dir, "12"), 0, 0, 0o755)
	mk(filepath.Join(dir, "12", "34-tevie"), 2001, 2001, 0o700)
	mk(filepath.Join(dir, "shared"), 0, 3000, 0o770)
	text := fmt.Sprintf(`%[1]s -mapall=3000:3000 10.0.0.1
%[1]s -maproot=0:0 10.0.0.2
%[1]s 10.0.0.3(rw,no_root_squash) 10.0.0.4(rw,all_squash,anonuid=4000,anongid=4001)
%[1]s -network 10.0.1.0 -mask 255.255.255.0
`, dir)
	tab, err := ParseExports("exports", []byte(text), nil)
	exNoErr(t, err)
	x, err := OpenExports(tab, ExportsOptions{StateDir: filepath.Join(base, "state"), NoChown: noChown})
	exNoErr(t, err)
	t.Cleanup(func() { exNoErr(t, x.Close()) })
	return &credEnv{t: t, dir: dir, n: &NFS3{Auth: x}, root: x.Store(dir).Root()}
}

func (e *credEnv) call(client string, sys *rpc.AuthSysParms, proc nfs3.Proc, args interface{ Encode(*xdr.Encoder) }, res interface{ Decode(*xdr.Decoder) }) {
	e.t.Helper()
	enc := xdr.NewEncoder(nil)
	args.Encode(enc)
	req := &Request{
		XID: 1, Prog: nfs3.Program, Vers: nfs3.Version, Proc: uint32(proc),
		AuthSys: sys, Cred: rpc.OpaqueAuth{Flavor: rpc.AuthSys},
		Addr: netip.AddrPortFrom(netip.MustParseAddr(client), 700), Net: "tcp",
		Local: netip.MustParseAddrPort("10.0.0.254:2049"), Args: xdr.NewDecoder(enc.Bytes()),
	}
	out := xdr.NewEncoder(nil)
	if st := e.n.Serve(context.Background(), req, out); st != StatusOK {
		e.t.Fatalf("%v from %s: rpc status %+v", proc, client, st)
	}
	d := xdr.NewDecoder(out.Bytes())
	res.Decode(d)
	exNoErr(e.t, d.Done())
}

func (e *credEnv) lookup(client string, sys *rpc.AuthSysParms, dir []byte, name string) []byte {
	e.t.Helper()
	var r nfs3.LookupRes
	e.call(client, sys, nfs3.ProcLookup, &nfs3.LookupArgs{Dir: dir, Name: name}, &r)
	if r.Status != nfs3.StatusOK {
		e.t.Fatalf("LOOKUP %s from %s: %v", name, client, r.Status)
	}
	return r.Object
}

func (e *credEnv) create(client string, sys *rpc.AuthSysParms, dir []byte, name string) nfs3.Status {
	e.t.Helper()
	var r nfs3.CreateRes
	e.call(client, sys, nfs3.ProcCreate, &nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: dir, Name: name}, Mode: nfs3.Guarded,
		Attr: nfs3.SetAttr{Mode: ptr[uint32](0o644)}}, &r)
	return r.Status
}

func (e *credEnv) mkdir(client string, sys *rpc.AuthSysParms, dir []byte, name string) nfs3.Status {
	e.t.Helper()
	var r nfs3.MkdirRes
	e.call(client, sys, nfs3.ProcMkdir, &nfs3.MkdirArgs{Where: nfs3.DirOpArgs{Dir: dir, Name: name}, Attr: nfs3.SetAttr{Mode: ptr[uint32](0o755)}}, &r)
	return r.Status
}

func (e *credEnv) access(client string, sys *rpc.AuthSysParms, fh []byte) uint32 {
	e.t.Helper()
	var r nfs3.AccessRes
	e.call(client, sys, nfs3.ProcAccess, &nfs3.AccessArgs{Object: fh, Access: 0x3f}, &r)
	if r.Status != nfs3.StatusOK {
		e.t.Fatalf("ACCESS from %s: %v", client, r.Status)
	}
	return r.Access
}

func (e *credEnv) owner(rel string) string {
	e.t.Helper()
	fi, err := os.Lstat(filepath.Join(e.dir, rel))
	exNoErr(e.t, err)
	st := fi.Sys().(*syscall.Stat_t)
	return fmt.Sprintf("%d:%d", st.Uid, st.Gid)
}

func sys(uid, gid uint32, gids ...uint32) *rpc.AuthSysParms {
	return &rpc.AuthSysParms{MachineName: "fe", UID: uid, GID: gid, GIDs: gids}
}

// TestCredentialsOwnership: files and directories created over NFS belong
// to the caller's credential after the export's mapping: -mapall and
// all_squash map everyone, -maproot=0:0 and no_root_squash keep root, and
// the default squashes root to 65534.
func TestCredentialsOwnership(t *testing.T) {
	e := newCredEnv(t, false)
	for _, c := range []struct {
		name, client string
		sys          *rpc.AuthSysParms
		want         string
	}{
		{"mapall", "10.0.0.1", sys(2001, 2001), "3000:3000"},
		{"mapall-root", "10.0.0.1", sys(0, 0), "3000:3000"},
		{"maproot0", "10.0.0.2", sys(0, 0), "0:0"},
		{"no_root_squash", "10.0.0.3", sys(0, 0), "0:0"},
		{"all_squash", "10.0.0.4", sys(2001, 2001), "4000:4001"},
		{"default-root", "10.0.1.5", sys(0, 0, 0, 5), "65534:65534"},
		{"default-user", "10.0.1.5", sys(2001, 2001), "2001:2001"},
		{"default-user-other-gid", "10.0.1.5", sys(2001, 12, 2001), "2001:12"},
	} {
		t.Run(c.name, func(t *testing.T) {
			if st := e.create(c.client, c.sys, e.root, c.name); st != nfs3.StatusOK {
				t.Fatalf("CREATE: %v", st)
			}
			if got := e.owner(c.name); got != c.want {
				t.Errorf("file owned by %s, want %s", got, c.want)
			}
			if st := e.mkdir(c.client, c.sys, e.root, c.name+".d"); st != nfs3.StatusOK {
				t.Fatalf("MKDIR: %v", st)
			}
			if got := e.owner(c.name + ".d"); got != c.want {
				t.Errorf("directory owned by %s, want %s", got, c.want)
			}
		})
	}
}

// TestCredentialsPermissions: Unix owner/group/other checks with the
// mapped credential, supplementary gids included, and ACCESS agreeing with
// what the modifying calls do.
func TestCredentialsPermissions(t *testing.T) {
	e := newCredEnv(t, false)
	const fe = "10.0.1.5"
	tevie := sys(2001, 2001, 2001)
	other := sys(2002, 2002, 2002)
	twelve := e.lookup(fe, tevie, e.root, "12")
	md := e.lookup(fe, tevie, twelve, "34-tevie")

	const rw = nfs3.AccessModify | nfs3.AccessExtend | nfs3.AccessLookup
	if got := e.access(fe, tevie, md); got&rw != rw {
		t.Errorf("ACCESS of tevie's Maildir for uid 2001: %#x, want modify|extend|lookup", got)
	}
	if st := e.create(fe, tevie, md, "msg"); st != nfs3.StatusOK {
		t.Errorf("uid 2001 CREATE in its 2001-owned Maildir: %v", st)
	}
	if got := e.owner("12/34-tevie/msg"); got != "2001:2001" {
		t.Errorf("owner %s", got)
	}
	if got := e.access(fe, other, md); got&rw != 0 {
		t.Errorf("ACCESS of tevie's 0700 Maildir for uid 2002: %#x, want none of modify|extend|lookup", got)
	}
	if st := e.create(fe, other, md, "intruder"); st != nfs3.StatusAcces {
		t.Errorf("uid 2002 CREATE in uid 2001's Maildir: %v, want NFS3ERR_ACCES", st)
	}
	if st := e.mkdir(fe, other, md, "intruder.d"); st != nfs3.StatusAcces {
		t.Errorf("uid 2002 MKDIR in uid 2001's Maildir: %v, want NFS3ERR_ACCES", st)
	}
	// Squashed root is "other" too.
	if st := e.create(fe, sys(0, 0), md, "byroot"); st != nfs3.StatusAcces {
		t.Errorf("squashed root CREATE in a 0700 Maildir: %v, want NFS3ERR_ACCES", st)
	}

	// Group permission through an AUTH_SYS supplementary gid.
	shared := e.lookup(fe, tevie, e.root, "shared")
	if got := e.access(fe, tevie, shared); got&rw != 0 {
		t.Errorf("ACCESS of root:3000 0770 without gid 3000: %#x", got)
	}
	if st := e.create(fe, tevie, shared, "nogroup"); st != nfs3.StatusAcces {
		t.Errorf("CREATE without gid 3000: %v, want NFS3ERR_ACCES", st)
	}
	withGroup := sys(2001, 2001, 2001, 3000)
	if got := e.access(fe, withGroup, shared); got&rw != rw {
		t.Errorf("ACCESS with supplementary gid 3000: %#x, want modify|extend|lookup", got)
	}
	if st := e.create(fe, withGroup, shared, "bygroup"); st != nfs3.StatusOK {
		t.Errorf("CREATE with supplementary gid 3000: %v", st)
	}
	// Primary gid 3000 works as well.
	if st := e.create(fe, sys(2001, 3000), shared, "byprimary"); st != nfs3.StatusOK {
		t.Errorf("CREATE with primary gid 3000: %v", st)
	}
}

// TestCredentialsNoChown: a server that cannot chown (not root) leaves
// created objects with its own uid, whatever the caller's credential.
func TestCredentialsNoChown(t *testing.T) {
	e := newCredEnv(t, true)
	if st := e.create("10.0.1.5", sys(2001, 2001), e.root, "f"); st != nfs3.StatusOK {
		t.Fatalf("CREATE: %v", st)
	}
	want := fmt.Sprintf("%d:", os.Geteuid())
	if got := e.owner("f"); got[:len(want)] != want {
		t.Errorf("with NoChown the file is owned by %s, want the server's uid %s", got, want)
	}
}
