package maildirfs_test

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// TestCompressFailureThenClientChanges fails a compression group without
// a crash (the server goes on) in each way it can fail, then has clients
// change the files of the group, acknowledged (FILE_SYNC, SETATTR), and
// restarts the store: the journal records kept for the failed files must
// not be redone over those changes, and every file must hold exactly
// what the clients last wrote. Before that, every file reads intact (a
// failed rewrite is finished before the file is used), also after its
// node left the cache (two open nodes at most).
func TestCompressFailureThenClientChanges(t *testing.T) {
	for _, tc := range []struct {
		name  string
		fault func(f *mdtest.Faults)
		fails bool // the group reports the failure
	}{
		// The second file's rewrite fails; the others complete.
		{"Write", func(f *mdtest.Faults) { f.FailNth(maildirfs.FaultWrite, 2, syscall.EIO) }, true},
		// The sync of the markers fails (the first fsync is the journal's).
		{"MarkSync", func(f *mdtest.Faults) { f.FailNth(maildirfs.FaultFsync, 2, syscall.EIO) }, true},
		// The group's sync fails, and so does each file's own fsync.
		{"ContentSync", func(f *mdtest.Faults) {
			for n := 3; n <= 7; n++ {
				f.FailNth(maildirfs.FaultFsync, n, syscall.EIO)
			}
		}, true},
		// The group's sync fails, each file's own fsync succeeds: the
		// files are done.
		{"GroupSyncOnly", func(f *mdtest.Faults) { f.FailNth(maildirfs.FaultFsync, 3, syscall.EIO) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mdtest.NewOpts(t, maildirfs.Options{Compress: "zstd", MaxOpenNodes: 2})
			cur := lookup(t, s, "Maildir", "cur")
			msgs := mdtest.Corpus(4, mdtest.CorpusOptions{Seed: 21, HTMLRate: 1})
			var hs []maildirfs.Handle
			for i, m := range msgs {
				hs = append(hs, create(t, s, cur, root, fmt.Sprint("m", i, ":2,"), m))
			}
			tc.fault(s.Faults)
			k, err := s.CompressNow(hs)
			s.Faults.Clear()
			if tc.fails != errors.Is(err, syscall.EIO) || (!tc.fails && (err != nil || k != len(hs))) {
				t.Fatalf("compress: %d %v", k, err)
			}
			for i, h := range hs {
				if got := readChunks(t, s, h, 16<<10); !bytes.Equal(got, msgs[i]) {
					t.Fatalf("m%d differs after the failed group", i)
				}
			}
			// m0: truncated and rewritten; m1: a client mtime; m2:
			// patched in place; m3: left alone.
			m0 := bytes.Repeat([]byte("NEW CONTENT "), 100)
			if _, err := s.SetAttr(hs[0], root, maildirfs.SetAttr{Size: u64(0)}, nil); err != nil {
				t.Fatal(err)
			}
			if _, _, _, _, err := s.Write(hs[0], root, 0, m0, maildirfs.FileSync); err != nil {
				t.Fatal(err)
			}
			mt := time.Unix(1600000000, 0)
			if _, err := s.SetAttr(hs[1], root, maildirfs.SetAttr{Mtime: maildirfs.ClientTime, MtimeVal: mt}, nil); err != nil {
				t.Fatal(err)
			}
			m2 := append([]byte(nil), msgs[2]...)
			copy(m2[10:], "PATCHED")
			if _, _, _, _, err := s.Write(hs[2], root, 10, []byte("PATCHED"), maildirfs.FileSync); err != nil {
				t.Fatal(err)
			}
			want := [][]byte{m0, msgs[1], m2, msgs[3]}
			s.Reopen(t)
			for i, h := range hs {
				if got := readChunks(t, s, h, 16<<10); !bytes.Equal(got, want[i]) {
					t.Errorf("m%d after restart: %d bytes %.30q, want %d bytes %.30q", i, len(got), got, len(want[i]), want[i])
				}
			}
			if a := getattr(t, s, hs[1]); !a.Mtime.Equal(mt) {
				t.Errorf("m1: mtime %v after restart, want the client's %v", a.Mtime, mt)
			}
			// Compressing again works, and changes nothing visible.
			if _, err := s.CompressNow(hs); err != nil {
				t.Fatal(err)
			}
			for i, h := range hs {
				if got := readChunks(t, s, h, 16<<10); !bytes.Equal(got, want[i]) {
					t.Errorf("m%d after compressing again differs", i)
				}
			}
		})
	}
}

// TestExpandFailureThenWrite fails the expansion a WRITE to a compressed
// file starts, at each step that can fail: the WRITE fails, the file
// still reads intact, a second WRITE succeeds, and after a restart the
// file holds that WRITE (the expansion's journal record is not redone
// over it).
func TestExpandFailureThenWrite(t *testing.T) {
	for _, tc := range []struct {
		name string
		op   maildirfs.FaultOp
		nth  int
	}{
		{"MarkSync", maildirfs.FaultFsync, 1},
		{"Write", maildirfs.FaultWrite, 1},
		{"ContentSync", maildirfs.FaultFsync, 2},
		{"FinalSync", maildirfs.FaultFsync, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := zstore(t)
			cur := lookup(t, s, "Maildir", "cur")
			msg := mdtest.Corpus(1, mdtest.CorpusOptions{Seed: 5})[0]
			h := create(t, s, cur, root, "m:2,", msg)
			if k, err := s.CompressNow([]maildirfs.Handle{h}); k != 1 || err != nil {
				t.Fatalf("compress: %d %v", k, err)
			}
			s.Faults.FailNth(tc.op, tc.nth, syscall.EIO)
			_, _, _, _, err := s.Write(h, root, 0, []byte("FIRST"), maildirfs.FileSync)
			s.Faults.Clear()
			if !errors.Is(err, syscall.EIO) {
				t.Fatalf("write during a failing expansion: %v, want EIO", err)
			}
			if got := readChunks(t, s, h, 16<<10); !bytes.Equal(got, msg) && !bytes.Equal(got, append([]byte("FIRST"), msg[5:]...)) {
				t.Fatalf("content after the failed expansion differs")
			}
			if _, _, _, _, err := s.Write(h, root, 0, []byte("SECOND"), maildirfs.FileSync); err != nil {
				t.Fatal(err)
			}
			want := append([]byte("SECOND"), msg[6:]...)
			if got := readChunks(t, s, h, 16<<10); !bytes.Equal(got, want) {
				t.Fatalf("content after the second write differs")
			}
			s.Reopen(t)
			if got := readChunks(t, s, h, 16<<10); !bytes.Equal(got, want) {
				t.Fatalf("after restart: %.40q, want %.40q", got, want)
			}
			if _, marked := stored(t, filepath.Join(s.Dir, "Maildir", "cur", "m:2,")); marked {
				t.Error("the written file still carries the marker")
			}
		})
	}
}

// TestCompressJournalLeftOver: a journal record left behind for a file
// whose rewrite completed (here planted: a copy of the worker journal
// taken before the group emptied it) is not redone once a client changed
// the file, so a restart loses nothing.
func TestCompressJournalLeftOver(t *testing.T) {
	defer maildirfs.SetZCrashHook(nil)
	s := zstore(t)
	cur := lookup(t, s, "Maildir", "cur")
	msgs := mdtest.Corpus(2, mdtest.CorpusOptions{Seed: 8})
	hs := []maildirfs.Handle{create(t, s, cur, root, "a:2,", msgs[0]), create(t, s, cur, root, "b:2,", msgs[1])}
	jdirs, _ := filepath.Glob(filepath.Join(s.StateDir, maildirfs.ZJournalDir, "*"))
	var jdir string
	for _, d := range jdirs {
		if fi, err := os.Stat(filepath.Join(d, "worker.j")); err == nil && fi.Mode().IsRegular() {
			jdir = d
		}
	}
	if jdir == "" {
		t.Fatal("no worker journal")
	}
	var saved []byte
	maildirfs.SetZCrashHook(func(step string) error {
		if step == "applied" {
			saved, _ = os.ReadFile(filepath.Join(jdir, "worker.j"))
		}
		return nil
	})
	if k, err := s.CompressNow(hs); k != 2 || err != nil {
		t.Fatalf("compress: %d %v", k, err)
	}
	maildirfs.SetZCrashHook(nil)
	if len(saved) == 0 {
		t.Fatal("the journal held nothing")
	}
	if _, _, _, _, err := s.Write(hs[0], root, 0, []byte("CHANGED"), maildirfs.FileSync); err != nil {
		t.Fatal(err)
	}
	mt := time.Unix(1500000000, 0)
	if _, err := s.SetAttr(hs[1], root, maildirfs.SetAttr{Mtime: maildirfs.ClientTime, MtimeVal: mt}, nil); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(jdir, "failed-99.j"), saved, 0o600); err != nil {
		t.Fatal(err)
	}
	s.Reopen(t)
	if got := readChunks(t, s, hs[0], 16<<10); !bytes.Equal(got, append([]byte("CHANGED"), msgs[0][7:]...)) {
		t.Errorf("a: a stale record was redone over a FILE_SYNC write")
	}
	if a := getattr(t, s, hs[1]); !a.Mtime.Equal(mt) {
		t.Errorf("b: mtime %v, want the client's %v", a.Mtime, mt)
	}
	if got := readChunks(t, s, hs[1], 16<<10); !bytes.Equal(got, msgs[1]) {
		t.Errorf("b differs")
	}
}
