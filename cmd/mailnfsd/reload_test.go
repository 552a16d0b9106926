package main

import (
	"context"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestReloadReplacedExportDir replaces an export's directory while a real
// mailnfsd serves it (moved away, a new one made in its place, as when
// restoring a backup) and reloads: new mounts must get the directory now
// at the path, not the one moved away. A reload while the directory is
// gone is refused, naming it.
func TestReloadReplacedExportDir(t *testing.T) {
	p, export, _, args := stormServerArgs(t)
	pmPort := args[len(args)-1]
	maildir := func(root string) {
		for _, d := range []string{"tmp", "new", "cur"} {
			if err := os.MkdirAll(filepath.Join(root, "Maildir", d), 0o755); err != nil {
				t.Fatal(err)
			}
		}
	}
	deliver := func() string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := client.Dial(ctx, "nfs://127.0.0.1:"+pmPort+export+"?uid=0&gid=0", client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		name, err := c.Deliver(ctx, "Maildir", strings.NewReader("Subject: x\n\nx\n"))
		if err != nil {
			t.Fatal(err)
		}
		return name
	}
	maildir(export)
	first := deliver()
	if _, err := os.Stat(filepath.Join(export, "Maildir/new", first)); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(export, export+".old"); err != nil {
		t.Fatal(err)
	}
	maildir(export)
	p.reload(t)
	second := deliver()
	if _, err := os.Stat(filepath.Join(export, "Maildir/new", second)); err != nil {
		_, oerr := os.Stat(filepath.Join(export+".old", "Maildir/new", second))
		t.Fatalf("after the export directory was replaced and reloaded, a delivery went elsewhere than to the new directory: %v (in the old one: %v)", err, oerr == nil)
	}

	if err := os.RemoveAll(export); err != nil {
		t.Fatal(err)
	}
	p.reload(t)
	if log := p.stderr.String(); !strings.Contains(log, "reload failed") || !strings.Contains(log, "export "+export+":") {
		t.Errorf("a reload with the export directory gone is not refused with its name:\n%s", log)
	}
}

// TestMountGoneExportDir removes an export's directory while a real
// mailnfsd serves it. A MNT of it must be refused (not granted a mount
// whose every call is stale), with one error line a minute that says
// what happened and what to do.
func TestMountGoneExportDir(t *testing.T) {
	p, export, port := stormServer(t)
	mc := nfsdtest.Dial(t, "tcp", netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)))
	mnt := func() nfs3.MountStat {
		d, err := mc.Call(nfs3.MountProgram, 3, uint32(nfs3.MountProcMnt), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
			(&nfs3.DirPath{Path: export}).Encode(e)
		})
		if err != nil {
			t.Fatal(err)
		}
		var r nfs3.MountRes3
		r.Decode(d)
		return r.Status
	}
	if st := mnt(); st != nfs3.MountOK {
		t.Fatalf("MNT: %v", st)
	}
	if err := os.RemoveAll(export); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if st := mnt(); st != nfs3.MountNoEnt {
			t.Errorf("MNT of an export whose directory is gone: %v, want MNT3ERR_NOENT", st)
		}
	}
	if n := p.stopAndCount(t, "the export's directory is gone")[0]; n != 1 {
		t.Errorf("%d lines say the export's directory is gone, want 1", n)
	}
}
