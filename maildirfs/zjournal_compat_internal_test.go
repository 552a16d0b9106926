package maildirfs

import (
	"bytes"
	"os"
	"testing"
)

// TestJournalReadsOlderBuild decodes a compression worker journal written
// by an older mailnfsd (testdata/worker-f7108ed.j: f7108ed killed while
// it wrote a group's records: 7 whole ones, then the first 4 KiB page's
// share of the 8th). An upgraded server must redo such records at Open: a
// record it cannot decode is taken for a torn tail and dropped, and a
// rewrite it names is then never finished.
func TestJournalReadsOlderBuild(t *testing.T) {
	b, err := os.ReadFile("testdata/worker-f7108ed.j")
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for len(b) > 0 {
		rec, k, err := zdecodeRec(b)
		if err != nil {
			if !bytes.HasPrefix(b, []byte(zJMagic)) || len(b) > 1024 {
				t.Errorf("record %d (%d bytes left) does not decode: %v", n, len(b), err)
			}
			break // the torn one
		}
		b = b[k:]
		n++
		if !rec.compress || rec.legacy || rec.id == 0 || rec.csize != int64(len(rec.data)) || rec.ino == 0 || len(rec.kfh.bytes) == 0 {
			t.Errorf("record %d: compress %v legacy %v id %x csize %d (data %d) ino %d", n, rec.compress, rec.legacy, rec.id, rec.csize, len(rec.data), rec.ino)
			continue
		}
		if usize, _, _, err := zparseHeader(rec.data, rec.csize); err != nil || usize != rec.usize {
			t.Errorf("record %d: compressed data: usize %d (record says %d), %v", n, usize, rec.usize, err)
		}
	}
	if n != 7 {
		t.Errorf("%d records, want 7", n)
	}
}
