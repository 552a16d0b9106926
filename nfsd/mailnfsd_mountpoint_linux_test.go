package nfsd_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/logtest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
	"golang.org/x/sys/unix"
)

// TestDaemonMountpoint: on a real server, an export with mp whose
// directory is not a mount point is not served (MNT3ERR_ACCES as for a
// path not exported, left out of EXPORT) and the start logs an error with
// its position; after a file system is mounted there, SIGHUP's Reload
// serves it. The start also logs the exports file's warnings.
func TestDaemonMountpoint(t *testing.T) {
	nfsdtest.RequireRoot(t)
	dir := t.TempDir()
	mp, plain := filepath.Join(dir, "mp"), filepath.Join(dir, "plain")
	for _, d := range []string{mp, plain} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exports := filepath.Join(dir, "exports")
	text := fmt.Sprintf("%s 127.0.0.1(rw,no_root_squash,mp)\n%s 127.0.0.1\n", mp, plain)
	if err := os.WriteFile(exports, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
	var logs logtest.Buffer
	d, err := nfsd.Start(context.Background(), nfsd.Config{
		ExportsFile: exports, Listen: "127.0.0.1", StateDir: filepath.Join(dir, "state"),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)),
	})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := d.Shutdown(ctx); err != nil {
			t.Error(err)
		}
	}()
	for _, want := range []string{
		fmt.Sprintf("level=ERROR msg=\"exports: %s:1:%d: export %s is not served: %s is not a mount point (mp)", exports, len(mp)+30, mp, mp),
		fmt.Sprintf("level=WARN msg=\"exports: %s:2:1: read as FreeBSD exports(5): %s is read-write for 127.0.0.1", exports, plain),
	} {
		if !strings.Contains(logs.String(), want) {
			t.Errorf("start log lacks %q:\n%s", want, logs.String())
		}
	}

	c := nfsdtest.Dial(t, "tcp", d.MountAddr())
	mnt := func(path string) nfs3.MountStat {
		t.Helper()
		res, err := c.Call(nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcMnt), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
			(&nfs3.DirPath{Path: path}).Encode(e)
		})
		if err != nil {
			t.Fatalf("MNT %s: %v", path, err)
		}
		var r nfs3.MountRes3
		r.Decode(res)
		return r.Status
	}
	exported := func() []string {
		t.Helper()
		res, err := c.Call(nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcExport), nfsdtest.AuthNone, nil)
		if err != nil {
			t.Fatalf("EXPORT: %v", err)
		}
		var l nfs3.Exports
		l.Decode(res)
		var dirs []string
		for _, e := range l {
			dirs = append(dirs, e.Dir)
		}
		return dirs
	}
	if st := mnt(mp); st != nfs3.MountAcces {
		t.Fatalf("MNT of an mp export on a bare directory: %v, want MNT3ERR_ACCES", st)
	}
	if st := mnt(plain); st != nfs3.MountOK {
		t.Fatalf("MNT of the export without mp: %v", st)
	}
	if got := exported(); len(got) != 1 || got[0] != plain {
		t.Fatalf("EXPORT lists %q, want only %s", got, plain)
	}

	if err := unix.Mount("tmpfs", mp, "tmpfs", 0, "size=4m,mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	defer unix.Unmount(mp, unix.MNT_DETACH)
	if err := d.Reload(); err != nil {
		t.Fatal(err)
	}
	if st := mnt(mp); st != nfs3.MountOK {
		t.Fatalf("MNT of the mp export once mounted: %v", st)
	}
	if got := exported(); len(got) != 2 {
		t.Fatalf("EXPORT lists %q, want both exports", got)
	}
}
