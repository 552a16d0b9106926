package maildirfs

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"golang.org/x/sys/unix"
)

// loopExt4 makes a 64 MiB ext4 file system (with or without a journal) on
// a loop device, mounts it and returns the mount point. It skips when not root or when loop devices are missing.
func loopExt4(t *testing.T, journal bool) (mnt string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root (loop device, mount)")
	}
	for _, tool := range []string{"mkfs.ext4", "losetup"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("needs %s: %v", tool, err)
		}
	}
	base := t.TempDir()
	img := filepath.Join(base, "fs.img")
	if err := os.WriteFile(img, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(img, 64<<20); err != nil {
		t.Fatal(err)
	}
	args := []string{"-q", "-F"}
	if !journal {
		args = append(args, "-O", "^has_journal")
	}
	if out, err := exec.Command("mkfs.ext4", append(args, img)...).CombinedOutput(); err != nil {
		t.Fatalf("mkfs.ext4: %v: %s", err, out)
	}
	out, err := exec.Command("losetup", "-f", "--show", img).CombinedOutput()
	if err != nil {
		t.Skipf("no loop device here: losetup: %v: %s", err, out)
	}
	loop := strings.TrimSpace(string(out))
	t.Cleanup(func() { exec.Command("losetup", "-d", loop).Run() })
	mnt = filepath.Join(base, "mnt")
	if err := os.Mkdir(mnt, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := unix.Mount(loop, mnt, "ext4", unix.MS_NOATIME, ""); err != nil {
		t.Fatalf("mount %s: %v", loop, err)
	}
	t.Cleanup(func() { unix.Unmount(mnt, 0) })
	return mnt
}

// TestCommitModelExt4 runs a Maildir delivery (CREATE in tmp/, RENAME into
// new/), a MKDIR and a SYMLINK on ext4 with and without a journal and counts the
// syncs each costs under the commit model: with a journal one each (the
// operation is one jbd2 transaction); without, CREATE and MKDIR sync the
// new inode and the parent, RENAME new/ then tmp/.
func TestCommitModelExt4(t *testing.T) {
	for _, journal := range []bool{true, false} {
		name := "journal"
		if !journal {
			name = "nojournal"
		}
		t.Run(name, func(t *testing.T) {
			mnt := loopExt4(t, journal)
			export := filepath.Join(mnt, "export")
			for _, d := range []string{"tmp", "new", "cur"} {
				require.NoError(t, os.MkdirAll(filepath.Join(export, "box", d), 0o700))
			}
			model := checkCommitModel(t, export, filepath.Join(mnt, "state"))
			require.Equal(t, journal, model.oneSync, "one sync per operation on ext4 with journal=%v", journal)
			f, err := Open(export, Options{StateDir: filepath.Join(mnt, "state")})
			require.NoError(t, err)
			defer f.Close()
			root := Cred{}
			tmp, err := f.LookupPath(root, "box/tmp")
			require.NoError(t, err)
			nw, err := f.LookupPath(root, "box/new")
			require.NoError(t, err)
			syncs := func() uint64 { s := f.Stats(); return s.FileSyncs + s.DirSyncs }
			want := uint64(2)
			if journal {
				want = 1
			}
			mode := uint32(0o600)
			before := syncs()
			_, _, _, err = f.Create(tmp, root, "m1", Guarded, SetAttr{Mode: &mode}, [8]byte{})
			require.NoError(t, err)
			assert.Equal(t, want, syncs()-before, "syncs of CREATE")
			before = syncs()
			_, _, err = f.Rename(tmp, "m1", nw, "m1", root)
			require.NoError(t, err)
			assert.Equal(t, want, syncs()-before, "syncs of RENAME")
			before = syncs()
			_, _, _, err = f.Mkdir(f.Root(), root, "sub", SetAttr{})
			require.NoError(t, err)
			assert.Equal(t, want, syncs()-before, "syncs of MKDIR")
			before = syncs()
			_, _, _, err = f.Symlink(f.Root(), root, "link", "sub", SetAttr{})
			require.NoError(t, err)
			assert.Equal(t, want, syncs()-before, "syncs of SYMLINK (the new inode, chowned after the create, and with no journal the parent)")
			// What reaches the disk is checked by the crash models of
			// the store (crashfs) and the file systems' own guarantees;
			// here the same store on a journal is not allowed to pay
			// for what the journal already commits.
		})
	}
}
