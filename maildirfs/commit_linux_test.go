package maildirfs

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/mailnfs/mailnfs/internal/loopfstest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
			mnt := loopfstest.Ext4(t, 64<<20, journal)
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
