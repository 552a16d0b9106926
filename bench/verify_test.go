package bench

import (
	"os"
	"path/filepath"
	"testing"
)

// TestVerifyMaildirs plants a loss, a duplicate, a corrupt file and a stray
// tmp/ file, and checks that each is caught.
func TestVerifyMaildirs(t *testing.T) {
	export := t.TempDir()
	mbs := []string{"a/mb0", "a/mb1"}
	if err := MakeMaildirs(export, mbs, os.Getuid(), os.Getgid()); err != nil {
		t.Fatal(err)
	}
	put := func(mb, sub, name string, body []byte) {
		t.Helper()
		if err := os.WriteFile(filepath.Join(export, mb, sub, name), body, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	const size = 500
	put("a/mb0", "new", "1", MessageBody("id1", size))
	put("a/mb1", "new", "2", MessageBody("id2", size))

	v, err := VerifyMaildirs(export, mbs, []string{"id1", "id2"}, size)
	if err != nil {
		t.Fatal(err)
	}
	if !v.OK() || v.Found != 2 {
		t.Fatalf("clean run: %v", v)
	}

	t.Run("Loss", func(t *testing.T) {
		v, _ := VerifyMaildirs(export, mbs, []string{"id1", "id2", "id3"}, size)
		if v.OK() || len(v.Missing) != 1 || v.Missing[0] != "id3" {
			t.Errorf("got %v, want id3 missing", v)
		}
	})
	t.Run("Duplicate", func(t *testing.T) {
		put("a/mb1", "new", "2dup", MessageBody("id2", size))
		defer os.Remove(filepath.Join(export, "a/mb1/new/2dup"))
		v, _ := VerifyMaildirs(export, mbs, []string{"id1", "id2"}, size)
		if v.OK() || len(v.Duplicated) != 1 {
			t.Errorf("got %v, want id2 duplicated", v)
		}
	})
	t.Run("Corrupt", func(t *testing.T) {
		b := MessageBody("id1", size)
		b[len(b)-1] ^= 1
		put("a/mb0", "new", "1", b)
		defer put("a/mb0", "new", "1", MessageBody("id1", size))
		v, _ := VerifyMaildirs(export, mbs, []string{"id1", "id2"}, size)
		if v.OK() || len(v.Corrupt) != 1 {
			t.Errorf("got %v, want one corrupt", v)
		}
	})
	t.Run("StrayTmp", func(t *testing.T) {
		put("a/mb0", "tmp", "x", nil)
		defer os.Remove(filepath.Join(export, "a/mb0/tmp/x"))
		v, _ := VerifyMaildirs(export, mbs, []string{"id1", "id2"}, size)
		if v.OK() || len(v.StrayTmp) != 1 {
			t.Errorf("got %v, want one stray tmp file", v)
		}
	})
	t.Run("UnackedLanded", func(t *testing.T) {
		v, _ := VerifyMaildirs(export, mbs, []string{"id1"}, size)
		if !v.OK() || len(v.Unacked) != 1 {
			t.Errorf("got %v, want ok with one unacked", v)
		}
	})
}
