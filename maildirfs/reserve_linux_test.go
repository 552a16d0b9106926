package maildirfs

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mailnfs/mailnfs/internal/loopfstest"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// TestWriteKeepsRootReserve fills an ext4 file system through the store as
// a user (uid 2001), four writers at once, until the writes fail: they
// must fail with ENOSPC while the blocks ext4 keeps back for root are
// still free (the store writes as root, which could use them, but does a
// user's writes with the user's file system uid, and without
// CAP_SYS_RESOURCE where it has it). Root's own writes may still use the
// reserve. After it, every thread of the process has its own credentials
// back (a thread left with the user's fsuid also fails the statfs and
// cleanup that follow: checked by breaking the restore).
// reserveExport makes a 64 MiB ext4 that keeps blocks back for root, an
// export on it with dir (each directory below the export owned by uid
// 2001), and opens it with opts (StateDir: on the file system unless
// given). It returns the mount point, the store, dir's handle as uid 2001
// and the file system's statfs before any write.
func reserveExport(t *testing.T, dir string, opts Options) (string, *FS, Handle, unix.Statfs_t) {
	t.Helper()
	mnt := loopfstest.Ext4(t, 64<<20, true)
	export := filepath.Join(mnt, "export")
	require.NoError(t, os.MkdirAll(filepath.Join(export, dir), 0o755))
	for d := dir; d != "."; d = filepath.Dir(d) {
		require.NoError(t, os.Chown(filepath.Join(export, d), 2001, 2001))
	}
	if opts.StateDir == "" {
		opts.StateDir = filepath.Join(mnt, "state")
	}
	f, err := Open(export, opts)
	require.NoError(t, err)
	t.Cleanup(func() { f.Close() })
	h, err := f.LookupPath(Cred{UID: 2001, GID: 2001}, dir)
	require.NoError(t, err)
	var st unix.Statfs_t
	require.NoError(t, unix.Statfs(mnt, &st))
	require.NotZero(t, st.Bfree-st.Bavail, "mkfs kept no reserved blocks")
	return mnt, f, h, st
}

func TestWriteKeepsRootReserve(t *testing.T) {
	mnt, f, box, before := reserveExport(t, "box", Options{})
	reserved := before.Bfree - before.Bavail // root's reserve and ext4's own
	user := Cred{UID: 2001, GID: 2001}
	capsBefore := threadCreds(t)

	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = byte(i*7 + i>>8)
	}
	fill := func(c Cred, name string) error {
		mode := uint32(0o600)
		h, _, _, err := f.Create(box, c, name, Guarded, SetAttr{Mode: &mode}, [8]byte{})
		if err != nil {
			return err
		}
		for off := uint64(0); ; off += uint64(len(chunk)) {
			if _, _, _, _, err := f.Write(h, c, off, chunk, FileSync); err != nil {
				return err
			}
		}
	}
	var wg sync.WaitGroup
	errs := make([]error, 4)
	for i := range errs {
		wg.Go(func() { errs[i] = fill(user, fmt.Sprintf("user.%d", i)) })
	}
	wg.Wait()
	for i, err := range errs {
		if !errors.Is(err, unix.ENOSPC) {
			t.Errorf("writer %d stopped with %v, want ENOSPC", i, err)
		}
	}
	var full unix.Statfs_t
	require.NoError(t, unix.Statfs(mnt, &full))
	t.Logf("free blocks of %d bytes: %d (%d for users) before, %d (%d) when the users' writes failed", before.Bsize, before.Bfree, before.Bavail, full.Bfree, full.Bavail)
	if full.Bfree < reserved*9/10 {
		t.Errorf("the users' writes left %d blocks free; the reserve was %d: they used it", full.Bfree, reserved)
	}

	// Root may use the reserve: a root write of the same size still fits.
	mode := uint32(0o600)
	h, _, _, err := f.Create(box, Cred{}, "root", Guarded, SetAttr{Mode: &mode}, [8]byte{})
	require.NoError(t, err)
	_, _, _, _, err = f.Write(h, Cred{}, 0, chunk, FileSync)
	require.NoError(t, err, "root's write on a disk full for users")

	if got := threadCreds(t); got != capsBefore {
		t.Errorf("threads' credentials after the writes:\n%s\nwant each as before:\n%s", got, capsBefore)
	}
}

// threadCreds lists the distinct "Uid", "Gid" and "CapEff" lines of the
// process's threads.
func threadCreds(t *testing.T) string {
	t.Helper()
	tasks, err := os.ReadDir("/proc/self/task")
	require.NoError(t, err)
	seen := map[string]bool{}
	for _, task := range tasks {
		fh, err := os.Open(filepath.Join("/proc/self/task", task.Name(), "status"))
		if err != nil {
			continue // the thread ended
		}
		var lines []string
		sc := bufio.NewScanner(fh)
		for sc.Scan() {
			if k, _, _ := strings.Cut(sc.Text(), ":"); k == "Uid" || k == "Gid" || k == "CapEff" {
				lines = append(lines, sc.Text())
			}
		}
		fh.Close()
		seen[strings.Join(lines, "; ")] = true
	}
	var out []string
	for s := range seen {
		out = append(out, s)
	}
	return strings.Join(out, "\n")
}

// TestUserWriteLimits: as root with CAP_SETUID (the test machine), users'
// writes are held to users' limits.
func TestUserWriteLimits(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("needs root")
	}
	if ok, why := UserWriteLimits(); !ok {
		t.Errorf("UserWriteLimits: false (%s)", why)
	}
}

// TestNamespaceKeepsRootReserve: once a user's writes are refused for want
// of space, the same user's SYMLINK (a long target takes a block) and
// MKDIR (a directory takes one) must not go on into the blocks ext4 keeps
// for root: the store makes them as root.
func TestNamespaceKeepsRootReserve(t *testing.T) {
	mnt, f, box, before := reserveExport(t, "box", Options{})
	reserved := before.Bfree - before.Bavail // root's reserve and ext4's own
	user := Cred{UID: 2001, GID: 2001}

	mode := uint32(0o600)
	h, _, _, err := f.Create(box, user, "fill", Guarded, SetAttr{Mode: &mode}, [8]byte{})
	require.NoError(t, err)
	chunk := make([]byte, 64<<10)
	for off := uint64(0); ; off += uint64(len(chunk)) {
		if _, _, _, _, err = f.Write(h, user, off, chunk, Unstable); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, unix.ENOSPC)
	target := strings.Repeat("t", 1000) // 1 KiB blocks: at most 1023 bytes
	made := 0
	for i := range 4 * int(reserved) {
		if _, _, _, err = f.Symlink(box, user, fmt.Sprintf("l%d", i), target, SetAttr{}); err != nil {
			break
		}
		made++
	}
	t.Logf("symlinks after the writes failed: %d (%v)", made, err)
	if !errors.Is(err, unix.ENOSPC) {
		t.Errorf("SYMLINK on a full disk: %v, want ENOSPC", err)
	}
	for i := range 4 * int(reserved) {
		if _, _, _, err = f.Mkdir(box, user, fmt.Sprintf("d%d", i), SetAttr{}); err != nil {
			break
		}
	}
	t.Logf("and directories: %v", err)
	var full unix.Statfs_t
	require.NoError(t, unix.Statfs(mnt, &full))
	t.Logf("free blocks: %d of which %d reserved before, %d after", before.Bfree, reserved, full.Bfree)
	if full.Bfree < reserved*9/10 {
		t.Errorf("a user's SYMLINKs and MKDIRs left %d blocks free; the reserve was %d: they used it", full.Bfree, reserved)
	}
	if !errors.Is(err, unix.ENOSPC) {
		t.Errorf("MKDIR on a full disk: %v, want ENOSPC", err)
	}
	// A name that is there is still EEXIST, as for mkdir(2).
	if _, _, _, err = f.Mkdir(box, user, "l0", SetAttr{}); !errors.Is(err, unix.EEXIST) {
		t.Errorf("MKDIR of an existing name on a full disk: %v, want EEXIST", err)
	}
}

// TestExpandKeepsRootReserve: a user's WRITE into a compressed file first
// expands it, which the store does as root. A user who let the worker
// compress files of zeros (a few KiB each on disk), then filled the disk
// to its limit for users, must not get the expansions out of the reserve
// kept for root: the WRITE is refused ENOSPC.
func TestExpandKeepsRootReserve(t *testing.T) {
	mnt, f, box, before := reserveExport(t, "box/cur", Options{StateDir: t.TempDir(), Compress: "zstd"})
	reserved := before.Bfree - before.Bavail // root's reserve and ext4's own
	f.PauseCompression()
	user := Cred{UID: 2001, GID: 2001}

	hs := compressedFiles(t, f, box, user, 8, 4<<20)
	_, err := fillAsUser(t, f, box, user)
	for i, h := range hs {
		if _, _, _, _, err = f.Write(h, user, 0, []byte("x"), FileSync); err == nil {
			t.Logf("file %d expanded", i)
		}
	}
	var full unix.Statfs_t
	require.NoError(t, unix.Statfs(mnt, &full))
	t.Logf("free blocks: %d of which %d reserved before, %d after", before.Bfree, reserved, full.Bfree)
	if full.Bfree < reserved*9/10 {
		t.Errorf("a user's WRITEs into compressed files left %d blocks free; the reserve was %d: the expansions used it", full.Bfree, reserved)
	}
	if !errors.Is(err, unix.ENOSPC) {
		t.Errorf("WRITE into a compressed file on a full disk: %v, want ENOSPC", err)
	}
}

// TestTruncateCompressedOnFullDisk: once a user's writes are refused for
// want of space, the same user's truncation of a compressed file (SETATTR
// of the size, an UNCHECKED CREATE with size 0) frees space as on a plain
// file: the expansion it needs first is given back by the truncation, so
// it takes nothing kept for root and is not refused with ENOSPC.
func TestTruncateCompressedOnFullDisk(t *testing.T) {
	mnt, f, box, before := reserveExport(t, "box/cur", Options{StateDir: t.TempDir(), Compress: "zstd"})
	reserved := before.Bfree - before.Bavail
	f.PauseCompression()
	user := Cred{UID: 2001, GID: 2001}

	hs := compressedFiles(t, f, box, user, 3, 1<<20)
	h, _ := fillAsUser(t, f, box, user)
	// The last blocks for users too (a short chunk may have left some).
	for off, one := uint64(0), make([]byte, 1024); ; off += uint64(len(one)) {
		if _, _, _, _, err := f.Write(h, user, 1<<30+off, one, Unstable); err != nil {
			break
		}
	}
	var st unix.Statfs_t
	require.NoError(t, unix.Statfs(mnt, &st))
	require.Zero(t, st.Bavail, "blocks left for users")

	zero, half := uint64(0), uint64(1000)
	_, err := f.SetAttr(hs[0], user, SetAttr{Size: &zero}, nil)
	require.NoError(t, err, "truncating a compressed file to 0 on a disk full for users")
	_, err = f.SetAttr(hs[1], user, SetAttr{Size: &half}, nil)
	require.NoError(t, err, "truncating a compressed file to 1000 bytes on a disk full for users")
	_, _, _, err = f.Create(box, user, "z2", Unchecked, SetAttr{Size: &zero}, [8]byte{})
	require.NoError(t, err, "UNCHECKED CREATE with size 0 over a compressed file on a disk full for users")
	for i, want := range []uint64{0, 1000, 0} {
		a, err := f.Getattr(hs[i])
		require.NoError(t, err)
		require.Equal(t, want, a.Size, "file %d", i)
	}
	var full unix.Statfs_t
	require.NoError(t, unix.Statfs(mnt, &full))
	if full.Bfree < reserved*9/10 {
		t.Errorf("the truncations left %d blocks free; the reserve was %d: they used it", full.Bfree, reserved)
	}
}

// compressedFiles makes n files of size zero bytes in box as user and
// compresses them (the worker paused), returning their handles.
func compressedFiles(t *testing.T, f *FS, box Handle, user Cred, n, size int) []Handle {
	t.Helper()
	mode := uint32(0o600)
	zeros := make([]byte, size)
	var hs []Handle
	for i := range n {
		h, _, _, err := f.Create(box, user, fmt.Sprintf("z%d", i), Guarded, SetAttr{Mode: &mode}, [8]byte{})
		require.NoError(t, err)
		_, _, _, _, err = f.Write(h, user, 0, zeros, FileSync)
		require.NoError(t, err)
		hs = append(hs, h)
	}
	k, err := f.zcompress(hs)
	require.NoError(t, err)
	require.Equal(t, len(hs), k, "files compressed")
	return hs
}

// fillAsUser writes a file "fill" in box as user, 64 KiB at a time, until
// the file system refuses the user with ENOSPC, and returns the file and
// that error.
func fillAsUser(t *testing.T, f *FS, box Handle, user Cred) (Handle, error) {
	t.Helper()
	mode := uint32(0o600)
	h, _, _, err := f.Create(box, user, "fill", Guarded, SetAttr{Mode: &mode}, [8]byte{})
	require.NoError(t, err)
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = byte(i*7 + i>>8)
	}
	for off := uint64(0); ; off += uint64(len(chunk)) {
		if _, _, _, _, err = f.Write(h, user, off, chunk, Unstable); err != nil {
			break
		}
	}
	require.ErrorIs(t, err, unix.ENOSPC)
	return h, err
}
