package maildirfs_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// trainedBox is a compressing store that has trained a dictionary on the
// generated corpus: the first half of msgs was delivered before the
// training, the second half after.
type trainedBox struct {
	s     *mdtest.Store
	msgs  [][]byte
	hs    []maildirfs.Handle
	paths []string
	dict  uint32
}

// deliverAll delivers msgs[from:] through tmp/ into new/ and waits for the
// compressor.
func (b *trainedBox) deliverAll(t *testing.T, from int) {
	t.Helper()
	tmp, nw := lookup(t, b.s, "Maildir", "tmp"), lookup(t, b.s, "Maildir", "new")
	for i := from; i < len(b.msgs); i++ {
		name := fmt.Sprintf("1700000000.M%dP1.learn", i)
		b.hs = append(b.hs, create(t, b.s, tmp, root, name, b.msgs[i]))
		if _, _, err := b.s.Rename(tmp, name, nw, name, root); err != nil {
			t.Fatal(err)
		}
		b.paths = append(b.paths, filepath.Join(b.s.Dir, "Maildir/new", name))
	}
	waitSettled(t, b.s, uint64(len(b.msgs)))
}

// waitSettled waits until the compressor compressed want files and
// finished with them (a training runs after the group that completes it).
func waitSettled(t *testing.T, s *mdtest.Store, want uint64) {
	t.Helper()
	waitCompressed(t, s, want)
	deadline := time.Now().Add(30 * time.Second)
	for st := s.Stats(); st.CompressPending > 0 || st.CompressBacklog > 0; st = s.Stats() {
		if time.Now().After(deadline) {
			t.Fatalf("compressor did not settle: %+v", st)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

// readsBack checks that every message reads back byte for byte.
func (b *trainedBox) readsBack(t *testing.T) {
	t.Helper()
	for i, h := range b.hs {
		if got := readChunks(t, b.s, h, 65536); !bytes.Equal(got, b.msgs[i]) {
			t.Fatalf("message %d reads back %d bytes, not the %d delivered", i, len(got), len(b.msgs[i]))
		}
	}
}

// storedDicts returns the dictionary ID of every stored message.
func (b *trainedBox) storedDicts(t *testing.T) []uint32 {
	t.Helper()
	var ids []uint32
	for _, p := range b.paths {
		c, err := os.ReadFile(p)
		if err != nil {
			t.Fatal(err)
		}
		fi, err := maildirfs.FrameDictIDs(c)
		if err != nil || len(fi) != 1 {
			t.Fatalf("%s: frames %v: %v", p, fi, err)
		}
		ids = append(ids, fi[0])
	}
	return ids
}

// dictFiles returns the dictionary files of the export and of the state.
func dictFiles(t *testing.T, s *mdtest.Store) (export, state []string) {
	t.Helper()
	export, _ = filepath.Glob(filepath.Join(s.Dir, maildirfs.ZDictDir, "*.zdict"))
	state, _ = filepath.Glob(filepath.Join(s.StateDir, maildirfs.ZJournalDir, "*", "dicts", "*.zdict"))
	return export, state
}

// newTrainedBox trains on 100 samples: the training runs after the group
// in which the 100th message was compressed.
func newTrainedBox(t *testing.T, n int) *trainedBox {
	t.Helper()
	t.Cleanup(maildirfs.SetZTrain(100, 64<<20, 1<<30, 0, 0.01))
	b := &trainedBox{s: zstore(t), msgs: mdtest.Corpus(n, mdtest.CorpusOptions{Seed: 77})}
	all := b.msgs
	b.msgs = all[:n/2]
	b.deliverAll(t, 0)
	st := b.s.Stats()
	if st.CompressDict == 0 || st.CompressDicts != 1 || st.CompressTrainings != 1 {
		t.Fatalf("no dictionary trained after %d messages: %+v", n/2, st)
	}
	b.dict = st.CompressDict
	b.msgs = all
	b.deliverAll(t, n/2)
	return b
}

// TestCompressTrainsDictionary: after enough messages, the store trains a
// dictionary on them, keeps it in the export and in the state directory
// before any message uses it, compresses later messages with it (smaller
// than with the built-in one), and every message reads back.
func TestCompressTrainsDictionary(t *testing.T) {
	defer maildirfs.ForgetZDicts()
	b := newTrainedBox(t, 400)
	ids := b.storedDicts(t)
	before, after := map[uint32]int{}, map[uint32]int{}
	for i, id := range ids {
		if i < len(ids)/2 {
			before[id]++
		} else {
			after[id]++
		}
	}
	if after[b.dict] != len(ids)/2 {
		t.Errorf("messages after the training name dictionaries %v, want all %08x", after, b.dict)
	}
	if before[b.dict] == len(ids)/2 {
		t.Errorf("every message before the training names the trained dictionary: %v", before)
	}
	b.readsBack(t)

	export, state := dictFiles(t, b.s)
	if len(export) != 1 || len(state) != 1 {
		t.Fatalf("dictionary files: export %v, state %v", export, state)
	}
	e, _ := os.ReadFile(export[0])
	s, _ := os.ReadFile(state[0])
	if !bytes.Equal(e, s) || filepath.Base(export[0]) != filepath.Base(state[0]) {
		t.Errorf("the two copies differ: %s (%d bytes), %s (%d bytes)", export[0], len(e), state[0], len(s))
	}
	if fi, err := os.Stat(filepath.Dir(export[0])); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("export dictionary directory: %v %v", fi.Mode(), err)
	}

	// The same messages again, now that the dictionary is trained: they
	// are stored smaller than the first time (the built-in dictionary).
	sum := func(paths []string) (n int64) {
		for _, p := range paths {
			fi, err := os.Stat(p)
			if err != nil {
				t.Fatal(err)
			}
			n += fi.Size()
		}
		return n
	}
	first := sum(b.paths[:len(b.paths)/2])
	b2 := &trainedBox{s: b.s, msgs: b.msgs[:len(b.msgs)/2]}
	tmp, nw := lookup(t, b.s, "Maildir", "tmp"), lookup(t, b.s, "Maildir", "new")
	for i, m := range b2.msgs {
		name := fmt.Sprintf("again.%d", i)
		create(t, b.s, tmp, root, name, m)
		if _, _, err := b.s.Rename(tmp, name, nw, name, root); err != nil {
			t.Fatal(err)
		}
		b2.paths = append(b2.paths, filepath.Join(b.s.Dir, "Maildir/new", name))
	}
	waitSettled(t, b.s, uint64(len(b.msgs)+len(b2.msgs)))
	again := sum(b2.paths)
	t.Logf("first half stored in %d bytes with the built-in dictionary, %d with the trained one (%.2fx)", first, again, float64(first)/float64(again))
	if again >= first {
		t.Errorf("the trained dictionary stores the same messages in %d bytes, the built-in one in %d", again, first)
	}
}

// TestCompressDictionaryRestart: after a restart the store decodes what it
// wrote and goes on with the newest dictionary; a dictionary lost from one
// of its two places is copied back from the other; with both copies lost
// its messages fail to read (EIO), the others still read.
func TestCompressDictionaryRestart(t *testing.T) {
	defer maildirfs.ForgetZDicts()
	b := newTrainedBox(t, 300)

	restart := func() {
		maildirfs.ForgetZDicts() // as a new process
		b.s.Reopen(t)
	}
	// A crash while a dictionary was being written left temporary files;
	// the restart removes them and loads the real ones.
	export, state := dictFiles(t, b.s)
	for _, p := range []string{export[0], state[0]} {
		tmp := filepath.Join(filepath.Dir(p), "1795929659000000000-00abcdef.zdict.tmp")
		if err := os.WriteFile(tmp, []byte("half a dictionary"), 0o400); err != nil {
			t.Fatal(err)
		}
	}
	restart()
	if st := b.s.Stats(); st.CompressDict != b.dict || st.CompressDicts != 1 {
		t.Fatalf("after a restart: %+v, want dictionary %08x", st, b.dict)
	}
	for _, p := range []string{export[0], state[0]} {
		if left, _ := filepath.Glob(filepath.Join(filepath.Dir(p), "*.tmp")); len(left) != 0 {
			t.Errorf("temporary files left: %v", left)
		}
	}
	b.readsBack(t)

	for _, lose := range []string{"export", "state"} {
		export, state := dictFiles(t, b.s)
		victim := export[0]
		if lose == "state" {
			victim = state[0]
		}
		if err := os.Remove(victim); err != nil {
			t.Fatal(err)
		}
		restart()
		export, state = dictFiles(t, b.s)
		if len(export) != 1 || len(state) != 1 {
			t.Fatalf("lost the %s copy, after a restart: export %v, state %v", lose, export, state)
		}
		b.readsBack(t)
	}

	// A damaged copy, in either place: the other one is used and the
	// damaged one rewritten from it.
	export, state = dictFiles(t, b.s)
	good, err := os.ReadFile(state[0])
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{export[0], state[0]} {
		os.Chmod(p, 0o600)
		if err := os.WriteFile(p, []byte("not a dictionary"), 0o600); err != nil {
			t.Fatal(err)
		}
		restart()
		if st := b.s.Stats(); st.CompressDict != b.dict || st.CompressDicts != 1 {
			t.Fatalf("with %s damaged: %+v", p, st)
		}
		if got, err := os.ReadFile(p); err != nil || !bytes.Equal(got, good) {
			t.Errorf("%s not repaired: %d bytes, %v", p, len(got), err)
		}
		b.readsBack(t)
	}

	// Both copies lost: the messages that need the dictionary fail, with
	// an error, and the others still read.
	os.Remove(export[0])
	os.Remove(state[0])
	restart()
	if st := b.s.Stats(); st.CompressDict != 0 || st.CompressDicts != 0 {
		t.Errorf("with no dictionary files: %+v", st)
	}
	ids := b.storedDicts(t)
	buf := make([]byte, 1<<20)
	failed := 0
	for i, h := range b.hs {
		_, _, _, err := b.s.Read(h, root, 0, buf)
		if ids[i] == b.dict {
			if err == nil {
				t.Fatalf("message %d, compressed with the lost dictionary, read without error", i)
			}
			failed++
		} else if err != nil {
			t.Fatalf("message %d (dictionary %08x): %v", i, ids[i], err)
		}
	}
	if failed == 0 {
		t.Fatal("no message used the trained dictionary")
	}
}

// TestCompressDictionaryNotTrusted: a dictionary directory in the export
// that the server did not make alone (a symlink out of the export, a
// directory a client can write) is neither written nor read; the
// dictionary is kept in the state directory and messages read back.
func TestCompressDictionaryNotTrusted(t *testing.T) {
	mdtest.RequireRoot(t)
	defer maildirfs.ForgetZDicts()
	for _, kind := range []string{"symlink", "client-dir"} {
		t.Run(kind, func(t *testing.T) {
			defer maildirfs.SetZTrain(100, 64<<20, 1<<30, 0, 0.01)()
			b := &trainedBox{s: zstore(t), msgs: mdtest.Corpus(200, mdtest.CorpusOptions{Seed: 5})}
			outside := t.TempDir()
			p := filepath.Join(b.s.Dir, maildirfs.ZDictDir)
			switch kind {
			case "symlink":
				if err := os.Symlink(outside, p); err != nil {
					t.Fatal(err)
				}
			case "client-dir":
				if err := os.Mkdir(p, 0o777); err != nil {
					t.Fatal(err)
				}
				os.Chmod(p, 0o777)
				os.Chown(p, 2001, 2001)
				// A client's file there, dressed as a dictionary.
				if err := os.WriteFile(filepath.Join(p, "0000000000000000001-00abcdef.zdict"), []byte("junk"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			b.deliverAll(t, 0)
			st := b.s.Stats()
			if st.CompressDict == 0 {
				t.Fatalf("no dictionary trained: %+v", st)
			}
			if ents, _ := os.ReadDir(outside); len(ents) != 0 {
				t.Errorf("written outside the export: %v", ents)
			}
			if export, _ := filepath.Glob(filepath.Join(p, "*.zdict")); len(export) > 1 {
				t.Errorf("written into a directory a client controls: %v", export)
			}
			_, state := dictFiles(t, b.s)
			if len(state) != 1 {
				t.Fatalf("state copies: %v", state)
			}
			maildirfs.ForgetZDicts()
			b.s.Reopen(t)
			if st := b.s.Stats(); st.CompressDicts != 1 {
				t.Errorf("after a restart: %+v", st)
			}
			b.readsBack(t)
		})
	}
}

// TestCompressDictionaryNotAdopted: a dictionary that does not beat the
// current one on held-out samples is not kept (random data: nothing to
// learn).
func TestCompressDictionaryNotAdopted(t *testing.T) {
	defer maildirfs.SetZMin(0, 0)()
	defer maildirfs.SetZTrain(50, 64<<20, 1<<30, 0, 0.01)()
	defer maildirfs.ForgetZDicts()
	r := newRand()
	b := &trainedBox{s: zstore(t)}
	for range 60 {
		m := make([]byte, 2000+r.IntN(3000))
		for i := range m {
			m[i] = byte(r.Uint32())
		}
		b.msgs = append(b.msgs, m)
	}
	b.deliverAll(t, 0)
	if st := b.s.Stats(); st.CompressDict != 0 || st.CompressDicts != 0 {
		t.Errorf("a dictionary trained on random data was adopted: %+v", st)
	}
	if export, state := dictFiles(t, b.s); len(export)+len(state) != 0 {
		t.Errorf("dictionary files: %v %v", export, state)
	}
	b.readsBack(t)
}

// TestCompactTrains: the offline tool trains as the server does, and the
// server started on the compacted tree reads every message.
func TestCompactTrains(t *testing.T) {
	mdtest.RequireRoot(t)
	defer maildirfs.SetZTrain(100, 64<<20, 1<<30, 0, 0.01)()
	defer maildirfs.ForgetZDicts()
	msgs := mdtest.Corpus(300, mdtest.CorpusOptions{Seed: 12})
	exp, paths, opts := offlineTree(t, msgs)
	rep, err := maildirfs.Compact(exp, opts)
	if err != nil || rep.Changed != len(msgs) {
		t.Fatalf("compact: %+v %v", rep, err)
	}
	// The report counts the mail, not the store's dictionary.
	if rep, err := maildirfs.Compact(exp, opts); err != nil || rep.Files != len(msgs) || rep.Changed != 0 {
		t.Errorf("second compact: %+v %v", rep, err)
	}
	if export, _ := filepath.Glob(filepath.Join(exp, maildirfs.ZDictDir, "*.zdict")); len(export) != 1 {
		t.Fatalf("compact left dictionaries %v", export)
	}
	maildirfs.ForgetZDicts()
	fsys, err := maildirfs.Open(exp, opts)
	if err != nil {
		t.Fatal(err)
	}
	defer fsys.Close()
	cur, err := fsys.LookupPath(root, "Maildir/cur")
	if err != nil {
		t.Fatal(err)
	}
	for i, p := range paths {
		rel := filepath.Base(p)
		h, _, _, err := fsys.Lookup(cur, root, rel)
		if err != nil {
			t.Fatal(err)
		}
		buf := make([]byte, len(msgs[i])+1)
		k, eof, _, err := fsys.Read(h, root, 0, buf)
		if err != nil || !eof || !bytes.Equal(buf[:k], msgs[i]) {
			t.Fatalf("%s: read %d bytes, eof %v: %v", rel, k, eof, err)
		}
	}
	fsys.Close() // the server stops before the offline tool runs
	rep, err = maildirfs.Expand(exp, opts)
	if err != nil || rep.Changed != len(msgs) {
		t.Fatalf("expand: %+v %v", rep, err)
	}
	checkTree(t, paths, msgs)
}

// TestCompressRetrains: a later training (adopted whatever its gain here)
// makes a second dictionary current; messages of both stay readable,
// also after a restart, which makes the newer one current again.
func TestCompressRetrains(t *testing.T) {
	defer maildirfs.SetZTrain(60, 64<<20, 120, 0, -1)()
	defer maildirfs.ForgetZDicts()
	b := &trainedBox{s: zstore(t), msgs: mdtest.Corpus(400, mdtest.CorpusOptions{Seed: 3, HTMLRate: 0.5})}
	b.deliverAll(t, 0)
	st := b.s.Stats()
	if st.CompressDicts < 2 || st.CompressTrainings != uint64(st.CompressDicts) {
		t.Fatalf("after 400 messages with a retraining every 120: %+v", st)
	}
	used := map[uint32]int{}
	for _, id := range b.storedDicts(t) {
		used[id]++
	}
	if len(used) < 3 { // the built-in and two trained ones at least
		t.Errorf("messages name dictionaries %v", used)
	}
	export, state := dictFiles(t, b.s)
	if len(export) != st.CompressDicts || len(state) != st.CompressDicts {
		t.Errorf("%d dictionaries, files: export %v, state %v", st.CompressDicts, export, state)
	}
	b.readsBack(t)
	maildirfs.ForgetZDicts()
	b.s.Reopen(t)
	if st2 := b.s.Stats(); st2.CompressDict != st.CompressDict || st2.CompressDicts != st.CompressDicts {
		t.Errorf("after a restart: %+v, before: %+v", st2, st)
	}
	b.readsBack(t)
}

// TestCompressSubtreeExport: a subdirectory of a compressed tree opened as
// a store of its own (exported on its own, or nested in the compressing
// export) decodes the tree's messages, including those compressed with
// the tree's trained dictionary, though its own root carries no mark. It
// served the raw compressed bytes, with their size.
func TestCompressSubtreeExport(t *testing.T) {
	mdtest.RequireRoot(t)
	defer maildirfs.SetZTrain(100, 64<<20, 1<<30, 0, 0.01)()
	defer maildirfs.ForgetZDicts()
	msgs := mdtest.Corpus(300, mdtest.CorpusOptions{Seed: 12})
	exp, paths, opts := offlineTree(t, msgs)
	if rep, err := maildirfs.Compact(exp, opts); err != nil || rep.Changed != len(msgs) {
		t.Fatalf("compact: %+v %v", rep, err)
	}
	if d, _ := filepath.Glob(filepath.Join(exp, maildirfs.ZDictDir, "*.zdict")); len(d) != 1 {
		t.Fatalf("compact left dictionaries %v", d)
	}
	maildirfs.ForgetZDicts() // a fresh process knows only what Open loads
	for _, compress := range []string{"", "zstd"} {
		t.Run("Compress="+compress, func(t *testing.T) {
			o := opts
			o.Compress = compress
			fsys, err := maildirfs.Open(filepath.Join(exp, "Maildir"), o)
			if err != nil {
				t.Fatal(err)
			}
			defer fsys.Close()
			cur, err := fsys.LookupPath(root, "cur")
			if err != nil {
				t.Fatal(err)
			}
			for i, p := range paths {
				h, a, _, err := fsys.Lookup(cur, root, filepath.Base(p))
				if err != nil {
					t.Fatal(err)
				}
				if a.Size != uint64(len(msgs[i])) {
					t.Fatalf("%s: size %d, want %d", p, a.Size, len(msgs[i]))
				}
				buf := make([]byte, len(msgs[i])+1)
				k, eof, _, err := fsys.Read(h, root, 0, buf)
				if err != nil || !eof || !bytes.Equal(buf[:k], msgs[i]) {
					t.Fatalf("%s: read %d bytes of %d, eof %v, err %v; differ: %v", p, k, len(msgs[i]), eof, err, !bytes.Equal(buf[:k], msgs[i]))
				}
			}
		})
	}
}
