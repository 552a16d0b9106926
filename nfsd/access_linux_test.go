package nfsd

import (
	"bytes"
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

	// Unmounted: no longer served, its handles are stale, and its store
	// (which still holds the detached file system) is retired: kept for
	// the calls in flight, then closed (retireGrace, shortened here).
	retired := func() int {
		x.mu.Lock()
		defer x.mu.Unlock()
		return len(x.mu.retired)
	}
	waitRetired := func(what string) {
		t.Helper()
		deadline := time.Now().Add(5 * time.Second)
		for retired() > 0 && time.Now().Before(deadline) {
			time.Sleep(10 * time.Millisecond)
		}
		exEqual(t, 0, retired(), what+" was not closed after its grace")
	}
	unmount()
	exNoErr(t, x.Reload(tab))
	exTrue(t, x.Store(mp) == nil, "an unmounted mp export is still served")
	_, err = x.Authorize(req, h)
	exTrue(t, errors.Is(err, maildirfs.ErrStale), err)
	exEqual(t, 1, retired(), "the unmounted export's store is not retired")
	waitRetired("the unmounted export's store")

	// Another file system mounted there: a store of its own.
	unmount = mountTmpfs(t, mp)
	exNoErr(t, x.Reload(tab))
	second := x.Store(mp)
	exTrue(t, second != nil && second != first, "the new file system is served by the old store")

	// Remounted between two reloads: the store is replaced; the old one
	// stays open for the calls in flight, then is closed.
	unmount()
	mountTmpfs(t, mp)
	exNoErr(t, x.Reload(tab))
	exTrue(t, x.Store(mp) != nil && x.Store(mp) != second, "the remounted file system is served by the old store")
	exEqual(t, 1, retired(), "the replaced store is kept for the calls in flight")
	waitRetired("the replaced store")
}

// openFds counts the process's open file descriptors.
func openFds(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	exNoErr(t, err)
	return len(ents)
}

// TestExportsReloadRetiresDroppedStores: reloads that each serve another
// path. The store of a path the table no longer serves is retired and
// closed after its grace; before, every path ever served kept its store,
// its fds and its node cache open for the life of the process. A path
// back within the grace gets its store back.
func TestExportsReloadRetiresDroppedStores(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("maildirfs needs root (CAP_DAC_READ_SEARCH)")
	}
	defer func(g time.Duration) { retireGrace = g }(retireGrace)
	retireGrace = 50 * time.Millisecond
	dir := t.TempDir()
	table := func(i int) *ExportTable {
		p := filepath.Join(dir, fmt.Sprint("box", i))
		exNoErr(t, os.MkdirAll(filepath.Join(p, "Maildir", "new"), 0o755))
		tab, err := ParseExports("exports", []byte(p+" 127.0.0.1(rw,no_root_squash)\n"), nil)
		exNoErr(t, err)
		return tab
	}
	x, err := OpenExports(table(0), ExportsOptions{StateDir: filepath.Join(dir, "state")})
	exNoErr(t, err)
	defer func() { exNoErr(t, x.Close()) }()
	req := &Request{Addr: netip.MustParseAddrPort("127.0.0.1:900"), AuthSys: &rpc.AuthSysParms{UID: 0}}
	use := func() {
		// Fill the node cache a little, as clients would.
		acc, err := x.Authorize(req, x.cur.Load().list[0].store.Root())
		exNoErr(t, err)
		_, err = acc.Store.LookupPath(acc.Cred, "Maildir/new")
		exNoErr(t, err)
	}
	use()
	base := openFds(t)
	const reloads = 20
	for i := 1; i <= reloads; i++ {
		exNoErr(t, x.Reload(table(i)))
		use()
	}
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		x.mu.Lock()
		n := len(x.mu.retired)
		x.mu.Unlock()
		if n == 0 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	x.mu.Lock()
	stores := len(x.mu.stores)
	x.mu.Unlock()
	exEqual(t, 1, stores, "stores open after reloads that each served one other path")
	// Each store holds at least three fds: 20 kept would be 60 more.
	if got := openFds(t); got > base+10 {
		t.Errorf("%d fds open after %d reloads, %d before: the dropped exports' stores stay open", got, reloads, base)
	}

	// A path back within the grace gets its store back (a second store
	// of the same tree would run a second compression worker on its
	// journal), and the first retirement's timer leaves it open.
	live := x.cur.Load().list[0].store
	exNoErr(t, x.Reload(table(0)))
	exNoErr(t, x.Reload(table(reloads)))
	exTrue(t, x.cur.Load().list[0].store == live, "a path back within the grace got a new store")
	time.Sleep(4 * retireGrace)
	use() // fails if the revived store was closed
	x.mu.Lock()
	left := len(x.mu.retired)
	x.mu.Unlock()
	exEqual(t, 0, left, "retired stores left after their grace")
}

// TestReloadPausesRetiredCompression: a reload that drops a compressing
// export keeps its store open for calls in flight, but stops its
// compression worker at once (another store may serve the same tree by
// then); a reload that brings the path back within the grace resumes it.
func TestReloadPausesRetiredCompression(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("maildirfs needs root (CAP_DAC_READ_SEARCH)")
	}
	dir := t.TempDir()
	box := filepath.Join(dir, "box")
	exNoErr(t, os.MkdirAll(filepath.Join(box, "Maildir", "tmp"), 0o755))
	exNoErr(t, os.MkdirAll(filepath.Join(box, "Maildir", "new"), 0o755))
	other := filepath.Join(dir, "other")
	exNoErr(t, os.Mkdir(other, 0o755))
	table := func(p string) *ExportTable {
		tab, err := ParseExports("exports", []byte(p+" -compress=zstd 127.0.0.1\n"), nil)
		exNoErr(t, err)
		return tab
	}
	x, err := OpenExports(table(box), ExportsOptions{StateDir: filepath.Join(dir, "state")})
	exNoErr(t, err)
	defer func() { exNoErr(t, x.Close()) }()
	fs := x.cur.Load().list[0].store.(*maildirfs.FS)
	cred := maildirfs.Cred{}
	deliver := func(name string) {
		tmp, err := fs.LookupPath(cred, "Maildir/tmp")
		exNoErr(t, err)
		nw, err := fs.LookupPath(cred, "Maildir/new")
		exNoErr(t, err)
		h, _, _, err := fs.Create(tmp, cred, name, maildirfs.Guarded, maildirfs.SetAttr{}, [8]byte{})
		exNoErr(t, err)
		_, _, _, _, err = fs.Write(h, cred, 0, bytes.Repeat([]byte("lorem ipsum dolor sit amet "), 100), maildirfs.FileSync)
		exNoErr(t, err)
		_, _, err = fs.Rename(tmp, name, nw, name, cred)
		exNoErr(t, err)
	}
	waitFor := func(want uint64) {
		deadline := time.Now().Add(30 * time.Second)
		for fs.Stats().Compressed < want {
			if time.Now().After(deadline) {
				t.Fatalf("compressed %d, want %d", fs.Stats().Compressed, want)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	deliver("m0")
	waitFor(1)

	exNoErr(t, x.Reload(table(other)))
	deliver("m1") // a call in flight on the retired store
	time.Sleep(2 * time.Second)
	if st := fs.Stats(); st.Compressed != 1 || st.CompressPending != 1 {
		t.Fatalf("retired store: compressed %d, pending %d; want 1 and 1 (its worker stopped)", st.Compressed, st.CompressPending)
	}

	exNoErr(t, x.Reload(table(box)))
	if got := x.cur.Load().list[0].store; got != Store(fs) {
		t.Fatal("the path back within the grace did not get its store back")
	}
	waitFor(2)
}
