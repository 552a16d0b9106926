package crashfs_test

import (
	"bytes"
	"errors"
	"flag"
	"fmt"
	mrand "math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/crashfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// source picks the next choice of a random operation sequence.
type source interface{ IntN(n int) int }

// byteSource draws choices from fuzz input; it runs dry with zeros.
type byteSource struct{ b []byte }

func (s *byteSource) IntN(n int) int {
	if n <= 1 {
		return 0
	}
	if len(s.b) == 0 {
		return 0
	}
	v := int(s.b[0])
	s.b = s.b[1:]
	if n > 256 && len(s.b) > 0 {
		v = v<<8 | int(s.b[0])
		s.b = s.b[1:]
	}
	return v % n
}

type folder struct {
	name                string // path below the export
	root, tmp, new, cur maildirfs.Handle
}

type tmpFile struct {
	name string
	fh   maildirfs.Handle
	want []byte // the message this file is meant to hold
}

// run drives ops random store operations through the model: Maildir
// deliveries (EXCLUSIVE/GUARDED CREATE in tmp/, FILE_SYNC or UNSTABLE
// WRITEs and COMMIT, RENAME into new/), moves to cur/ with flags, deletions,
// hard links across folders, new folders, truncations, unsynced writes to
// files still in tmp/, and injected fsync failures. Every few operations it
// takes a crash clone and checks that each acknowledged delivery is in it,
// whole. It returns the number of operations acknowledged.
func run(t *testing.T, src source, ops int) (acked, syncs, syncFailed, clones int) {
	s := mdtest.New(t)
	m, err := crashfs.Wrap(s.FS, s.Dir)
	if err != nil {
		t.Fatal(err)
	}
	root := maildirfs.Cred{}
	lookup := func(dir maildirfs.Handle, name string) maildirfs.Handle {
		h, _, _, err := s.Lookup(dir, root, name)
		if err != nil {
			t.Fatalf("lookup %s: %v", name, err)
		}
		return h
	}
	md := lookup(s.Root(), "Maildir")
	folders := []folder{{"Maildir", md, lookup(md, "tmp"), lookup(md, "new"), lookup(md, "cur")}}
	mkdirs := 0
	var tmps [][]tmpFile             // per folder
	delivered := map[string][]byte{} // "folder/dir/name" -> content, acknowledged
	type msg struct {
		folder    int
		dir, name string
	}
	var msgs []msg
	tmps = append(tmps, nil)
	seq := 0
	unackedMove := map[string]bool{} // unique names of unacknowledged new/ -> cur/ moves
	dupUnacked := 0
	hist := map[string][]string{} // unique name -> what happened to it
	note := func(name, what string, err error) {
		hist[uniq(name)] = append(hist[uniq(name)], fmt.Sprintf("%s: %v", what, err))
	}
	key := func(f int, dir, name string) string { return fmt.Sprintf("%d/%s/%s", f, dir, name) }
	folderPath := func(f int) string { return folders[f].name }

	check := func(label string) {
		clones++
		dir := filepath.Join(t.TempDir(), "clone")
		if err := m.CrashClone(dir); err != nil {
			t.Fatalf("%s: crash clone: %v", label, err)
		}
		for k, want := range delivered {
			var f int
			var d, n string
			fmt.Sscanf(strings.ReplaceAll(k, "/", " "), "%d %s %s", &f, &d, &n)
			got, err := os.ReadFile(filepath.Join(dir, folderPath(f), d, n))
			if err != nil {
				t.Errorf("%s: acknowledged message %s is lost in the crash clone: %v", label, k, err)
			} else if !bytes.Equal(got, want) {
				t.Errorf("%s: acknowledged message %s is damaged in the crash clone (%d bytes, want %d)", label, k, len(got), len(want))
			}
		}
		probs, err := maildirfs.Check(dir, maildirfs.CheckOptions{TmpGrace: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range probs {
			if p.Kind == "duplicate" && unackedMove[uniq(filepath.Base(p.Path))] {
				// A RENAME new/ -> cur/ that was NOT acknowledged (its
				// second directory sync failed): in a per-directory
				// model the name may survive in both. Allowed; see the
				// package comment.
				dupUnacked++
				continue
			}
			t.Errorf("%s: crash clone breaks a Maildir invariant: %s (history: %v)", label, p, hist[uniq(filepath.Base(p.Path))])
		}
	}

	for i := range ops {
		f := src.IntN(len(folders))
		fo := folders[f]
		switch op := src.IntN(12); {
		case op <= 2: // a whole delivery, as package client does it
			seq++
			name := fmt.Sprintf("17000%05d.M%dP1Q%d.crash", seq, i, seq)
			body := bytes.Repeat([]byte{byte('a' + seq%26)}, 1+src.IntN(20000))
			body = append([]byte(fmt.Sprintf("Subject: %d\r\n\r\n", seq)), body...)
			how := maildirfs.Exclusive
			if src.IntN(4) == 0 {
				how = maildirfs.Guarded
			}
			fh, err := m.Create(fo.tmp, root, name, how, maildirfs.SetAttr{}, [8]byte{byte(seq), byte(seq >> 8), 1})
			if err != nil {
				// An injected fsync failure: the file may exist; it
				// is a tmp/ leftover for the cleanup.
				if !isFault(err) {
					t.Fatalf("create: %v", err)
				}
				if h, _, _, lerr := s.Lookup(fo.tmp, root, name); lerr == nil {
					tmps[f] = append(tmps[f], tmpFile{name, h, body})
				}
				continue
			}
			ok := true
			if src.IntN(2) == 0 {
				n, c, _, err := m.Write(fh, root, 0, body, maildirfs.FileSync)
				ok = err == nil && n == len(body) && c == maildirfs.FileSync
			} else {
				for off := 0; off < len(body) && ok; off += 4096 {
					n, _, _, err := m.Write(fh, root, uint64(off), body[off:min(off+4096, len(body))], maildirfs.Unstable)
					ok = err == nil && n == min(4096, len(body)-off)
				}
				if ok {
					_, err := m.Commit(fh, root)
					ok = err == nil
				}
			}
			if !ok {
				tmps[f] = append(tmps[f], tmpFile{name, fh, body})
				continue
			}
			err = m.Rename(fo.tmp, name, fo.new, name, root)
			note(name, fmt.Sprintf("tmp->new in %d", f), err)
			if err != nil {
				tmps[f] = append(tmps[f], tmpFile{name, fh, body})
				continue
			}
			delivered[key(f, "new", name)] = body
			msgs = append(msgs, msg{f, "new", name})
		case op == 3 && len(msgs) > 0: // read and flag: new/ -> cur/
			j := src.IntN(len(msgs))
			mg := msgs[j]
			if mg.dir != "new" {
				continue
			}
			to := mg.name + ":2,S"
			fo := folders[mg.folder]
			err := m.Rename(fo.new, mg.name, fo.cur, to, root)
			note(mg.name, "new->cur", err)
			switch {
			case err == nil:
				delivered[key(mg.folder, "cur", to)] = delivered[key(mg.folder, "new", mg.name)]
				delete(delivered, key(mg.folder, "new", mg.name))
				msgs[j] = msg{mg.folder, "cur", to}
			case isFault(err):
				// Not acknowledged: the move happened but need not
				// survive a crash. Follow the file, stop requiring it.
				delete(delivered, key(mg.folder, "new", mg.name))
				unackedMove[uniq(mg.name)] = true
				if _, _, _, lerr := s.Lookup(fo.cur, root, to); lerr == nil {
					msgs[j] = msg{mg.folder, "cur", to}
				}
			default:
				t.Fatalf("rename to cur: %v", err)
			}
		case op == 4 && len(msgs) > 0: // delete a message
			j := src.IntN(len(msgs))
			mg := msgs[j]
			fo := folders[mg.folder]
			dir := fo.new
			if mg.dir == "cur" {
				dir = fo.cur
			}
			err := m.Remove(dir, root, mg.name, false)
			note(mg.name, "remove "+mg.dir, err)
			if err == nil || isFault(err) || errors.Is(err, syscall.ENOENT) {
				// A failed REMOVE still removed the name (the sync
				// failed after the unlink).
				delete(delivered, key(mg.folder, mg.dir, mg.name))
				msgs = append(msgs[:j], msgs[j+1:]...)
			} else {
				t.Fatalf("remove: %v", err)
			}
		case op == 5 && len(folders) < 4: // a new folder
			mkdirs++
			name := fmt.Sprintf(".F%d", mkdirs)
			h, err := m.Mkdir(md, root, name, maildirfs.SetAttr{})
			if err != nil {
				if !isFault(err) {
					t.Fatalf("mkdir: %v", err)
				}
				// Whatever is there, remove it later as a stray.
				continue
			}
			nf := folder{name: "Maildir/" + name, root: h}
			okAll := true
			for _, sub := range []struct {
				n string
				p *maildirfs.Handle
			}{{"tmp", &nf.tmp}, {"new", &nf.new}, {"cur", &nf.cur}} {
				*sub.p, err = m.Mkdir(h, root, sub.n, maildirfs.SetAttr{})
				if err != nil {
					okAll = false
					break
				}
			}
			if okAll {
				folders = append(folders, nf)
				tmps = append(tmps, nil)
			}
		case op == 6 && len(msgs) > 0 && len(folders) > 1: // copy to another folder by hard link
			j := src.IntN(len(msgs))
			mg := msgs[j]
			if mg.dir != "cur" {
				continue
			}
			to := (mg.folder + 1) % len(folders)
			fh := lookup(folders[mg.folder].cur, mg.name)
			name := fmt.Sprintf("17000%05d.M%dP1Q%d.copy:2,S", seq, i, seq)
			seq++
			err := m.Link(fh, folders[to].cur, name, root)
			switch {
			case err == nil:
				if b, ok := delivered[key(mg.folder, "cur", mg.name)]; ok {
					delivered[key(to, "cur", name)] = b
				}
				msgs = append(msgs, msg{to, "cur", name})
			case isFault(err):
				// The link may exist, unacknowledged: track, not require.
				if _, _, _, lerr := s.Lookup(folders[to].cur, root, name); lerr == nil {
					msgs = append(msgs, msg{to, "cur", name})
				}
			default:
				t.Fatalf("link: %v", err)
			}
		case op == 7 && len(tmps[f]) > 0: // unsynced scribble on a tmp file
			tf := tmps[f][src.IntN(len(tmps[f]))]
			_, _, _, _ = m.Write(tf.fh, root, uint64(src.IntN(8192)), []byte("scribble"), maildirfs.StableHow(src.IntN(3)))
		case op == 8 && len(tmps[f]) > 0: // truncate a tmp file
			tf := tmps[f][src.IntN(len(tmps[f]))]
			_ = m.Truncate(tf.fh, root, uint64(src.IntN(100)))
		case op == 9 && len(tmps[f]) > 0: // clean a tmp leftover
			j := src.IntN(len(tmps[f]))
			if err := m.Remove(fo.tmp, root, tmps[f][j].name, false); err == nil || errors.Is(err, syscall.ENOENT) {
				tmps[f] = append(tmps[f][:j], tmps[f][j+1:]...)
			}
		case op == 10: // the disk starts failing syncs
			s.Faults.FailNth(maildirfs.FaultFsync, 1+src.IntN(4), syscall.EIO)
		case op == 11:
			check(fmt.Sprintf("after op %d", i))
		}
	}
	s.Faults.Clear()
	for f := range tmps {
		for _, tf := range tmps[f] {
			if err := m.Remove(folders[f].tmp, root, tf.name, false); err != nil && !errors.Is(err, syscall.ENOENT) {
				t.Fatalf("clean tmp: %v", err)
			}
		}
	}
	// Folders whose MKDIR failed half-way are not Maildirs; leave them.
	check("at the end")
	for _, v := range m.Violations() {
		t.Errorf("acknowledged but not synced: %s", v)
	}
	if dupUnacked > 0 {
		t.Logf("%d crash clones showed an unacknowledged new/ -> cur/ move in both directories (allowed)", dupUnacked)
	}
	acked, syncs, syncFailed = m.Counts()
	return acked, syncs, syncFailed, clones
}

// uniq is the unique part of a Maildir file name (before ":2,").
func uniq(name string) string {
	u, _, _ := strings.Cut(name, ":")
	return u
}

func isFault(err error) bool { return errors.Is(err, syscall.EIO) }

var seedFlag = flag.Uint64("crashfs.seed", 0, "run TestPowerLossModel with this seed only")

// TestPowerLossModel runs randomized operation sequences through the model
// and checks "acknowledged implies synced" after every operation and the
// crash clone at random points.
func TestPowerLossModel(t *testing.T) {
	mdtest.RequireRoot(t)
	seeds, ops := 3, 400
	if testing.Short() {
		seeds = 2
	}
	base := uint64(time.Now().UnixNano())
	if *seedFlag != 0 {
		base, seeds = *seedFlag, 1
	}
	for i := range seeds {
		seed := base + uint64(i)
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			acked, syncs, failed, clones := run(t, mrand.New(mrand.NewPCG(seed, 7)), ops)
			if acked < ops/4 {
				t.Errorf("only %d operations acknowledged out of %d: the sequence tested little", acked, ops)
			}
			t.Logf("power-loss model: %d operations, %d acknowledged and covered by a sync, %d syncs credited, %d failed with an injected fsync error, %d crash clones checked", ops, acked, syncs, failed, clones)
		})
	}
}

// FuzzPowerLossModel draws the operation sequence from the fuzz input.
func FuzzPowerLossModel(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 0, 0, 11})
	f.Add([]byte{0, 5, 0, 0, 0, 2, 3, 0, 0, 6, 0, 0, 11, 0, 10, 2, 0, 0, 1, 0, 0, 0, 11})
	f.Add(bytes.Repeat([]byte{0, 1, 7, 3, 10, 0, 0, 2, 9, 11, 4, 8, 5}, 20))
	f.Fuzz(func(t *testing.T, b []byte) {
		mdtest.RequireRoot(t)
		if len(b) > 4096 {
			b = b[:4096]
		}
		run(t, &byteSource{b}, len(b)/3+1)
	})
}
