package interop

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
)

// acSubnet is the third octet of this test's networks: front ends and the
// storage host on 10.77.12.0/24, the outsider on 10.78.12.0/24, both on one
// private bridge inside namespaces this test creates.
const acSubnet = 12

// mkOwned makes dir (and missing parents, owned by root) and gives it to
// uid:gid with mode.
func mkOwned(t *testing.T, dir string, uid, gid int, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chown(dir, uid, gid); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, mode); err != nil {
		t.Fatal(err)
	}
}

// owner returns the uid and gid of p.
func owner(t *testing.T, p string) (uint32, uint32) {
	t.Helper()
	fi, err := os.Lstat(p)
	if err != nil {
		t.Fatal(err)
	}
	st := fi.Sys().(*syscall.Stat_t)
	return st.Uid, st.Gid
}

// isAuthTooWeak reports whether err is an RPC AUTH_ERROR/AUTH_TOOWEAK reply.
func isAuthTooWeak(err error) bool {
	var re *rpc.ReplyError
	return errors.As(err, &re) && re.Denied && re.Auth == rpc.AuthTooWeak
}

// TestAccessControl is the access-control acceptance test: a storage host
// with two addresses on one private bridge, two front ends in the allowed
// subnet and an outsider in another subnet, configured the way the seed's
// FreeBSD storage box is (exports -network/-mask, hosts.allow with
// ": allow"/": deny"), exercised with real peers (libnfs, rpcinfo,
// showmount) and raw RPC from inside the namespaces.
func TestAccessControl(t *testing.T) {
	nfsCat := netnstest.RequireTool(t, "nfs-cat")
	nfsCp := netnstest.RequireTool(t, "nfs-cp")
	nfsLs := netnstest.RequireTool(t, "nfs-ls")
	rpcinfo := netnstest.RequireTool(t, "rpcinfo")
	showmount := netnstest.RequireTool(t, "showmount")
	netnstest.RequireRoot(t)

	br := netnstest.NewBridge(t, acSubnet)
	srvNS, srvAddr := br.Host("store", 1)
	front1, f1Addr := br.Host("front1", 2)
	front2, _ := br.Host("front2", 3)
	// The outsider sits on the same wire but in 10.78.12.0/24; the storage
	// host answers there on a second address of its interface.
	outNS := netnstest.New(t, "outsider")
	tmp := br.Attach(outNS, "eth0", 200)
	outNS.IP("addr", "del", netip.PrefixFrom(tmp, 24).String(), "dev", "eth0")
	outNS.IP("addr", "add", fmt.Sprintf("10.78.%d.3/24", acSubnet), "dev", "eth0")
	srvOut := fmt.Sprintf("10.78.%d.1", acSubnet)
	srvNS.IP("addr", "add", srvOut+"/24", "dev", "eth0")
	srv := srvAddr.String()
	allowedNet := fmt.Sprintf("10.77.%d.0", acSubnet)

	var roDir string
	exportsFor := func(root, clients string) string {
		return fmt.Sprintf("# the seed's storage box, on a private network\n%s -alldirs %s\n%s -ro %s\n", root, clients, roDir, clients)
	}
	hostsFor := func(allowed string) string {
		return "ALL : localhost : allow\n" +
			"rpcbind mountd : " + allowed + " : allow\n" +
			"rpcbind mountd : ALL : deny\n" +
			"ALL : ALL : allow\n"
	}
	s := startServer(t, serverOpts{
		ns:     srvNS,
		listen: "0.0.0.0",
		setup: func(t *testing.T, root string) {
			roDir = filepath.Join(filepath.Dir(root), "ro")
			mkOwned(t, roDir, 0, 0, 0o755)
			writeOwned(t, filepath.Join(roDir, "motd"), "read only\n")
			mkOwned(t, filepath.Join(root, "12", "34-tevie"), 2001, 2001, 0o700)
			mkOwned(t, filepath.Join(root, "56", "78-other"), 2002, 2002, 0o700)
			mkOwned(t, filepath.Join(root, "12"), 0, 0, 0o755)
			mkOwned(t, filepath.Join(root, "56"), 0, 0, 0o755)
			mkOwned(t, filepath.Join(root, "shared"), 0, 3000, 0o770)
			mkOwned(t, filepath.Join(root, "drop"), 0, 0, 0o777)
		},
		exports: func(root string) string {
			return exportsFor(root, "-network "+allowedNet+" -mask 255.255.255.0")
		},
		hostsAllow: func(string) string { return hostsFor(allowedNet + "/255.255.255.0") },
	})
	url := func(rel string, uid, gid int) string {
		return fmt.Sprintf("nfs://%s%s?version=3&uid=%d&gid=%d", srv, s.path(rel), uid, gid)
	}
	local := func(content string) string {
		p := filepath.Join(t.TempDir(), "msg")
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if strings.Contains(s.proc.Log(), "private network guard") {
		t.Errorf("private network guard warned about an all-private setup:\n%s", s.proc.Log())
	}

	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	t.Run("FrontEndsMountWriteRead", func(t *testing.T) {
		for i, fe := range []*netnstest.NS{front1, front2} {
			name := fmt.Sprintf("12/34-tevie/msg%d", i+1)
			body := fmt.Sprintf("from front end %d\n", i+1)
			if out, errOut, err := execIn(fe, nfsCp, local(body), url(name, 2001, 2001)); err != nil {
				t.Fatalf("nfs-cp from front end %d: %v\n%s%s", i+1, err, out, errOut)
			}
			out, errOut, err := execIn(fe, nfsCat, url(name, 2001, 2001))
			if err != nil || out != body {
				t.Fatalf("nfs-cat from front end %d: %q %v\n%s", i+1, out, err, errOut)
			}
			if out, errOut, err := execIn(fe, nfsLs, url("12/34-tevie", 2001, 2001)); err != nil || !strings.Contains(out, "msg1") {
				t.Fatalf("nfs-ls from front end %d: %v\n%s%s", i+1, err, out, errOut)
			}
		}
		if out, errOut, err := execIn(front1, rpcinfo, "-p", srv); err != nil || !strings.Contains(out, "100005") {
			t.Fatalf("rpcinfo -p from a front end: %v\n%s%s", err, out, errOut)
		}
		if out, errOut, err := execIn(front1, showmount, "-e", srv); err != nil || !strings.Contains(out, s.root) {
			t.Fatalf("showmount -e from a front end: %v\n%s%s", err, out, errOut)
		}
	})

	t.Run("Ownership", func(t *testing.T) {
		// uid 2001 owns what it creates in its own Maildir.
		uid, gid := owner(t, filepath.Join(s.root, "12", "34-tevie", "msg1"))
		if uid != 2001 || gid != 2001 {
			t.Errorf("file created by uid 2001 is owned by %d:%d, want 2001:2001", uid, gid)
		}
		// ... and cannot write into uid 2002's.
		if out, errOut, err := execIn(front1, nfsCp, local("intrusion\n"), url("56/78-other/x", 2001, 2001)); err == nil {
			t.Errorf("uid 2001 wrote into uid 2002's Maildir: %s%s", out, errOut)
		}
		if _, err := os.Lstat(filepath.Join(s.root, "56", "78-other", "x")); !os.IsNotExist(err) {
			t.Errorf("file appeared in uid 2002's Maildir: %v", err)
		}
		// Root from a front end is squashed to 65534.
		if out, errOut, err := execIn(front1, nfsCp, local("as root\n"), url("drop/byroot", 0, 0)); err != nil {
			t.Fatalf("nfs-cp as root: %v\n%s%s", err, out, errOut)
		}
		if uid, gid := owner(t, filepath.Join(s.root, "drop", "byroot")); uid != 65534 || gid != 65534 {
			t.Errorf("file created by root is owned by %d:%d, want 65534:65534", uid, gid)
		}
		// Root cannot reach into tevie's 0700 Maildir either.
		if out, errOut, err := execIn(front1, nfsCp, local("as root\n"), url("12/34-tevie/byroot", 0, 0)); err == nil {
			t.Errorf("squashed root wrote into a 0700 Maildir: %s%s", out, errOut)
		}
	})

	// A raw connection from front 1: handles for the NFS checks below.
	f1, err := dialRaw(ctx, front1, mountPort, 2001, 2001, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer f1.Close()
	root, err := f1.mnt(s.root)
	if err != nil {
		t.Fatalf("MNT from front end 1: %v", err)
	}

	t.Run("SupplementaryGroups", func(t *testing.T) {
		c, err := dialRaw(ctx, front1, nfsPort, 2001, 2001, srv)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		shared, err := c.lookup(root, "shared")
		if err != nil {
			t.Fatal(err)
		}
		// Without group 3000 in the credential: no access, and ACCESS says so.
		if _, err := c.create(shared, "nogroup"); !errors.Is(err, nfs3.StatusAcces) {
			t.Errorf("CREATE in a 0770 root:3000 directory without group 3000: %v, want NFS3ERR_ACCES", err)
		}
		if got := accessBits(t, c, shared); got&nfs3.AccessModify != 0 {
			t.Errorf("ACCESS without group 3000 grants modify: %#x", got)
		}
		c.cred = rpc.AuthSysParms{MachineName: "front1", UID: 2001, GID: 2001, GIDs: []uint32{2001, 3000}}.Credential()
		if got := accessBits(t, c, shared); got&(nfs3.AccessModify|nfs3.AccessExtend|nfs3.AccessLookup) != nfs3.AccessModify|nfs3.AccessExtend|nfs3.AccessLookup {
			t.Errorf("ACCESS with supplementary group 3000: %#x, want modify|extend|lookup", got)
		}
		if _, err := c.create(shared, "bygroup"); err != nil {
			t.Fatalf("CREATE with supplementary group 3000: %v", err)
		}
		if uid, gid := owner(t, filepath.Join(s.root, "shared", "bygroup")); uid != 2001 || gid != 2001 {
			t.Errorf("file created with gids 2001,3000 is owned by %d:%d, want 2001:2001", uid, gid)
		}
	})

	t.Run("ReadOnlyExport", func(t *testing.T) {
		if out, errOut, err := execIn(front1, nfsCat, fmt.Sprintf("nfs://%s%s/motd?version=3&uid=2001&gid=2001", srv, roDir)); err != nil || out != "read only\n" {
			t.Fatalf("nfs-cat from the -ro export: %q %v %s", out, err, errOut)
		}
		if out, errOut, err := execIn(front1, nfsCp, local("x\n"), fmt.Sprintf("nfs://%s%s/x?version=3&uid=0&gid=0", srv, roDir)); err == nil {
			t.Errorf("nfs-cp into the -ro export succeeded: %s%s", out, errOut)
		}
		m, err := dialRaw(ctx, front1, mountPort, 0, 0, srv)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		roRoot, err := m.mnt(roDir)
		if err != nil {
			t.Fatalf("MNT of the -ro export: %v", err)
		}
		c, err := dialRaw(ctx, front1, nfsPort, 0, 0, srv)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.create(roRoot, "x"); !errors.Is(err, nfs3.StatusROFS) {
			t.Errorf("CREATE in the -ro export: %v, want NFS3ERR_ROFS", err)
		}
		if _, err := os.Lstat(filepath.Join(roDir, "x")); !os.IsNotExist(err) {
			t.Errorf("file appeared in the -ro export: %v", err)
		}
	})

	// outsiderRefused checks every way in from the outsider.
	outsiderRefused := func(t *testing.T) {
		t.Helper()
		if out, errOut, err := execIn(outNS, rpcinfo, "-p", srvOut); err == nil {
			t.Errorf("rpcinfo -p from the outsider succeeded:\n%s%s", out, errOut)
		}
		if out, errOut, err := execIn(outNS, showmount, "-e", srvOut); err == nil {
			t.Errorf("showmount -e from the outsider succeeded:\n%s%s", out, errOut)
		}
		lsURL := fmt.Sprintf("nfs://%s%s?version=3&uid=2001&gid=2001&nfsport=%d&mountport=%d", srvOut, s.root, nfsPort, mountPort)
		if out, errOut, err := execIn(outNS, nfsLs, lsURL); err == nil {
			t.Errorf("nfs-ls from the outsider (ports given, no portmapper needed) succeeded:\n%s%s", out, errOut)
		}
		m, err := dialRaw(ctx, outNS, mountPort, 2001, 2001, srvOut)
		if err != nil {
			t.Fatal(err)
		}
		defer m.Close()
		if _, err := m.mnt(s.root); !isAuthTooWeak(err) {
			t.Errorf("MNT from the outsider: %v, want AUTH_TOOWEAK (hosts.allow mountd)", err)
		}
		c, err := dialRaw(ctx, outNS, nfsPort, 2001, 2001, srvOut)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.getattr(root); !errors.Is(err, nfs3.StatusAcces) {
			t.Errorf("GETATTR with a front end's handle from the outsider: %v, want NFS3ERR_ACCES", err)
		}
		if _, err := c.create(root, "intruder"); !errors.Is(err, nfs3.StatusAcces) {
			t.Errorf("CREATE with a front end's handle from the outsider: %v, want NFS3ERR_ACCES", err)
		}
		if _, err := os.Lstat(filepath.Join(s.root, "intruder")); !os.IsNotExist(err) {
			t.Errorf("outsider created a file: %v", err)
		}
	}
	t.Run("OutsiderRefused", func(t *testing.T) {
		outsiderRefused(t)
		if !strings.Contains(s.proc.Log(), "request from unauthorized host") || !strings.Contains(s.proc.Log(), "10.78.") {
			t.Errorf("no hosts_access denial logged for the outsider:\n%s", s.proc.Log())
		}
		// rpcinfo, showmount and the raw MNT sent several denied calls
		// each: the denial is logged once a minute per host.
		if n := strings.Count(s.proc.Log(), "request from unauthorized host"); n != 1 {
			t.Errorf("outsider's denials logged %d times, want once", n)
		}
	})

	// Front end 2 keeps a connection open across the reload.
	f2, err := dialRaw(ctx, front2, nfsPort, 2001, 2001, srv)
	if err != nil {
		t.Fatal(err)
	}
	defer f2.Close()
	if _, err := f2.getattr(root); err != nil {
		t.Fatalf("GETATTR from front end 2 before the reload: %v", err)
	}
	reloads := func() int { return strings.Count(s.proc.Log(), "exports and hosts_access reloaded") }
	failures := func() int { return strings.Count(s.proc.Log(), "reload failed") }
	hup := func(t *testing.T, done func() bool) {
		t.Helper()
		if err := s.proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
		deadline := time.Now().Add(15 * time.Second)
		for !done() {
			if time.Now().After(deadline) {
				t.Fatalf("SIGHUP not handled after 15 s:\n%s", s.proc.Log())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}

	t.Run("SIGHUPCutsOffFrontEnd", func(t *testing.T) {
		// Only front end 1 stays: its single address in both files.
		s.writeExports(exportsFor(s.root, f1Addr.String()))
		s.writeHosts(hostsFor(f1Addr.String()))
		n := reloads()
		hup(t, func() bool { return reloads() > n })
		if _, err := f2.getattr(root); !errors.Is(err, nfs3.StatusAcces) {
			t.Errorf("front end 2's open connection after the reload: %v, want NFS3ERR_ACCES", err)
		}
		if out, errOut, err := execIn(front2, nfsCat, url("12/34-tevie/msg1", 2001, 2001)); err == nil {
			t.Errorf("nfs-cat from front end 2 after the reload succeeded: %q %s", out, errOut)
		}
		if out, errOut, err := execIn(front2, rpcinfo, "-p", srv); err == nil {
			t.Errorf("rpcinfo -p from front end 2 after the reload succeeded:\n%s%s", out, errOut)
		}
		if _, err := f1.mnt(s.root); err != nil {
			t.Errorf("MNT from front end 1 after the reload: %v", err)
		}
		if out, errOut, err := execIn(front1, nfsCat, url("12/34-tevie/msg1", 2001, 2001)); err != nil || out != "from front end 1\n" {
			t.Errorf("nfs-cat from front end 1 after the reload: %q %v %s", out, err, errOut)
		}
	})

	t.Run("SIGHUPBrokenFileChangesNothing", func(t *testing.T) {
		// The exports would let everyone in, but hosts.allow is broken:
		// neither file takes effect.
		s.writeExports(exportsFor(s.root, "-network 10.0.0.0/8"))
		s.writeHosts("rpcbind mountd : 10.77.0.0/33 : allow\n")
		n := failures()
		hup(t, func() bool { return failures() > n })
		if !strings.Contains(s.proc.Log(), "hosts.allow:1:") {
			t.Errorf("the failed reload does not name the broken line:\n%s", s.proc.Log())
		}
		if _, err := f2.getattr(root); !errors.Is(err, nfs3.StatusAcces) {
			t.Errorf("front end 2 after a broken reload: %v, want NFS3ERR_ACCES (old rules)", err)
		}
		if out, errOut, err := execIn(front1, nfsCat, url("12/34-tevie/msg1", 2001, 2001)); err != nil || out != "from front end 1\n" {
			t.Errorf("nfs-cat from front end 1 after a broken reload: %q %v %s", out, err, errOut)
		}
		outsiderRefused(t)
	})
}

// accessBits asks ACCESS for every bit on fh and returns what is granted.
func accessBits(t *testing.T, c *rawConn, fh []byte) uint32 {
	t.Helper()
	var res nfs3.AccessRes
	if err := c.nfs(nfs3.ProcAccess, &nfs3.AccessArgs{Object: fh, Access: 0x3f}, &res); err != nil {
		t.Fatal(err)
	}
	if res.Status != nfs3.StatusOK {
		t.Fatalf("ACCESS: %v", res.Status)
	}
	return res.Access
}
