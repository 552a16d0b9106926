package interop

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
)

// execIn runs a peer tool inside ns and returns stdout, stderr and the error.
func execIn(ns *netnstest.NS, argv ...string) (string, string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	o, e, err := ns.Exec(ctx, argv...)
	return string(o), string(e), err
}

// TestExportAccessAcrossHosts puts the server and two clients on a private
// bridge (10.77.5.0/24). The export is open to 10.77.5.2 only: that host
// reads and writes through libnfs (and root is squashed); 10.77.5.3 sees the
// export list but cannot mount, and a handle obtained by the allowed host
// does not work from it either: every NFS call is checked, not only MNT.
func TestExportAccessAcrossHosts(t *testing.T) {
	nfsCat := netnstest.RequireTool(t, "nfs-cat")
	nfsCp := netnstest.RequireTool(t, "nfs-cp")
	showmount := netnstest.RequireTool(t, "showmount")
	netnstest.RequireRoot(t)

	br := netnstest.NewBridge(t, 5)
	srvNS, srvAddr := br.Host("srv", 1)
	okNS, _ := br.Host("allowed", 2)
	denyNS, _ := br.Host("denied", 3)
	s := startServer(t, serverOpts{
		ns:     srvNS,
		listen: srvAddr.String(),
		setup: func(t *testing.T, root string) {
			writeOwned(t, filepath.Join(root, "hello"), "hello, allowed host\n")
			drop := filepath.Join(root, "drop")
			if err := os.Mkdir(drop, 0o777); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(drop, 0o777); err != nil {
				t.Fatal(err)
			}
		},
		exports: func(root string) string { return root + " 10.77.5.2(rw)\n" },
	})

	t.Run("AllowedReads", func(t *testing.T) {
		out, errOut, err := execIn(okNS, nfsCat, s.url("hello"))
		if err != nil || out != "hello, allowed host\n" {
			t.Fatalf("nfs-cat from 10.77.5.2: %q, %v\n%s", out, err, errOut)
		}
	})

	t.Run("AllowedRootSquashed", func(t *testing.T) {
		local := filepath.Join(t.TempDir(), "byroot")
		if err := os.WriteFile(local, []byte("written as uid 0\n"), 0o644); err != nil {
			t.Fatal(err)
		}
		url := fmt.Sprintf("nfs://%s%s?version=3&uid=0&gid=0", s.listen, s.path("drop/byroot"))
		if out, errOut, err := execIn(okNS, nfsCp, local, url); err != nil {
			t.Fatalf("nfs-cp as root: %v\n%s%s", err, out, errOut)
		}
		fi, err := os.Stat(filepath.Join(s.root, "drop", "byroot"))
		if err != nil {
			t.Fatal(err)
		}
		st := fi.Sys().(*syscall.Stat_t)
		if st.Uid != 65534 || st.Gid != 65534 {
			t.Fatalf("file written by squashed root is owned by %d:%d, want 65534:65534", st.Uid, st.Gid)
		}
	})

	t.Run("DeniedCannotRead", func(t *testing.T) {
		out, errOut, err := execIn(denyNS, nfsCat, s.url("hello"))
		if err == nil || strings.Contains(out, "hello") {
			t.Fatalf("nfs-cat from 10.77.5.3 succeeded: %q %s", out, errOut)
		}
	})

	t.Run("DeniedSeesExportList", func(t *testing.T) {
		out, errOut, err := execIn(denyNS, showmount, "-e", s.listen)
		if err != nil {
			t.Fatalf("showmount -e from 10.77.5.3: %v\n%s", err, errOut)
		}
		if !strings.Contains(out, s.root) || !strings.Contains(out, "10.77.5.2") {
			t.Fatalf("showmount -e from 10.77.5.3:\n%s", out)
		}
	})

	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	// The allowed host mounts and keeps the root handle.
	okMount, err := dialRaw(ctx, okNS, mountPort, testUID, testGID, s.listen)
	if err != nil {
		t.Fatal(err)
	}
	defer okMount.Close()
	root, err := okMount.mnt(s.root)
	if err != nil {
		t.Fatalf("MNT from 10.77.5.2: %v", err)
	}

	t.Run("DeniedMNT", func(t *testing.T) {
		c, err := dialRaw(ctx, denyNS, mountPort, testUID, testGID, s.listen)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		_, err = c.mnt(s.root)
		var ms nfs3.MountStat
		if !errors.As(err, &ms) || ms != nfs3.MountAcces {
			t.Fatalf("MNT from 10.77.5.3: %v, want MNT3ERR_ACCES", err)
		}
	})

	t.Run("DeniedHandleUse", func(t *testing.T) {
		c, err := dialRaw(ctx, denyNS, nfsPort, testUID, testGID, s.listen)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.getattr(root); !errors.Is(err, nfs3.StatusAcces) {
			t.Errorf("GETATTR of the root handle from 10.77.5.3: %v, want NFS3ERR_ACCES", err)
		}
		if _, err := c.lookup(root, "hello"); !errors.Is(err, nfs3.StatusAcces) {
			t.Errorf("LOOKUP from 10.77.5.3: %v, want NFS3ERR_ACCES", err)
		}
		if _, err := c.create(root, "intruder"); !errors.Is(err, nfs3.StatusAcces) {
			t.Errorf("CREATE from 10.77.5.3: %v, want NFS3ERR_ACCES", err)
		}
		if _, err := os.Lstat(filepath.Join(s.root, "intruder")); !os.IsNotExist(err) {
			t.Errorf("denied host created a file: %v", err)
		}
	})

	t.Run("AllowedHandleUse", func(t *testing.T) {
		c, err := dialRaw(ctx, okNS, nfsPort, testUID, testGID, s.listen)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		if _, err := c.getattr(root); err != nil {
			t.Fatalf("GETATTR from 10.77.5.2: %v", err)
		}
	})
}
