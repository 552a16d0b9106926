package nfsd

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/logtest"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/maildirfs"
	"golang.org/x/sys/unix"
)

// mountTmpfs mounts a small tmpfs on dir (root only; the test skips where
// mounting is not allowed) and returns a function that detaches it.
func mountTmpfs(t *testing.T, dir string) (unmount func()) {
	t.Helper()
	if err := unix.Mount("tmpfs", dir, "tmpfs", 0, "size=4m,mode=0755"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	done := false
	unmount = func() {
		if !done {
			done = true
			// Detach: an open store still holds the file system.
			exNoErr(t, unix.Unmount(dir, unix.MNT_DETACH))
		}
	}
	t.Cleanup(unmount)
	return unmount
}

// TestExportsMountpoint: an export with Linux mp is served only while its
// directory is a mount point, checked at open and at every reload: the
// bare directory is not served (no store, its handles stale, an error
// logged with the position), a file system mounted there is, and one
// mounted later still gets a store of its own.
func TestExportsMountpoint(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("maildirfs needs root (CAP_DAC_READ_SEARCH); mounting too")
	}
	defer func(g time.Duration) { retireGrace = g }(retireGrace)
	retireGrace = 200 * time.Millisecond
	dir := t.TempDir()
	mp, other, top := filepath.Join(dir, "mp"), filepath.Join(dir, "other"), filepath.Join(dir, "top")
	for _, d := range []string{mp, other, top, filepath.Join(top, "sub")} {
		exNoErr(t, os.Mkdir(d, 0o755))
	}
	text := fmt.Sprintf("# mail\n%s 127.0.0.1(rw,mp)\n%s 127.0.0.1(rw)\n%s/sub 127.0.0.1(rw,mountpoint=%s)\n", mp, other, top, top)
	tab, err := ParseExports("exports", []byte(text), nil)
	exNoErr(t, err)
	exEqual(t, []Warning{
		{Pos: Pos{File: "exports", Line: 2, Col: len(mp) + 15}, Msg: "export " + mp + " is not served: " + mp + " is not a mount point (mp); mount its file system, then reload (SIGHUP)"},
		{Pos: Pos{File: "exports", Line: 4, Col: len(top) + 19}, Msg: "export " + top + "/sub is not served: " + top + " is not a mount point (mountpoint=" + top + "); mount its file system, then reload (SIGHUP)"},
	}, CheckMountpoints(tab))

	var logs logtest.Buffer
	x, err := OpenExports(tab, ExportsOptions{StateDir: filepath.Join(dir, "state"), Logger: slog.New(slog.NewTextHandler(&logs, nil))})
	exNoErr(t, err)
	defer func() { exNoErr(t, x.Close()) }()
	exTrue(t, x.Store(mp) == nil, "the bare directory of an mp export is served")
	exTrue(t, x.Store(top+"/sub") == nil, "an export whose mountpoint= is not mounted is served")
	exTrue(t, x.Store(other) != nil, "an export without mp is not served")
	exTrue(t, strings.Contains(logs.String(), "level=ERROR msg=\"exports: exports:2:"+fmt.Sprint(len(mp)+15)+": export "+mp+" is not served: "+mp+" is not a mount point (mp)"), logs.String())
	le, _ := x.cur.Load().resolve(mp)
	exTrue(t, le == nil, "MNT resolves the unserved export")

	// Mounted: served at the next reload.
	unmount := mountTmpfs(t, mp)
	exEqual(t, 1, len(CheckMountpoints(tab)), "only top is still unmounted")
	exNoErr(t, x.Reload(tab))
	first := x.Store(mp)
	exTrue(t, first != nil, "the mounted mp export is not served")
	h := first.Root()
	req := &Request{Addr: netip.MustParseAddrPort("127.0.0.1:900"), AuthSys: &rpc.AuthSysParms{UID: 0}}
	acc, err := x.Authorize(req, h)
	exNoErr(t, err)
	exTrue(t, acc.Store == first)
	exNoErr(t, x.Reload(tab))
	exTrue(t, x.Store(mp) == first, "a reload keeps the store of a file system still mounted")

	// Unmounted: no longer served, its handles are stale.
	unmount()
	exNoErr(t, x.Reload(tab))
	exTrue(t, x.Store(mp) == nil, "an unmounted mp export is still served")
	_, err = x.Authorize(req, h)
	exTrue(t, errors.Is(err, maildirfs.ErrStale), err)

	// Another file system mounted there: a store of its own, not the
	// first one's (which still holds the detached file system).
	mountTmpfs(t, mp)
	exNoErr(t, x.Reload(tab))
	exTrue(t, x.Store(mp) != nil && x.Store(mp) != first, "the new file system is served by the old store")
	// The first store, replaced, stays open for the calls in flight, then
	// is closed (retireGrace, shortened here).
	retired := func() int {
		x.mu.Lock()
		defer x.mu.Unlock()
		return len(x.mu.retired)
	}
	exEqual(t, 1, retired(), "the replaced store is kept for the calls in flight")
	deadline := time.Now().Add(5 * time.Second)
	for retired() > 0 && time.Now().Before(deadline) {
		time.Sleep(10 * time.Millisecond)
	}
	exEqual(t, 0, retired(), "the replaced store was not closed after its grace")
}
