package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// toolMail is a compressible text message of about n bytes.
func toolMail(seed, n int) []byte {
	var b bytes.Buffer
	fmt.Fprintf(&b, "From: user%d@example.org\r\nSubject: message %d\r\n\r\n", seed, seed)
	for i := 0; b.Len() < n; i++ {
		fmt.Fprintf(&b, "Line %d of message %d: the quick brown fox jumps over the lazy dog.\r\n", i, seed)
	}
	return b.Bytes()[:n]
}

// TestCompactExpand compacts a Maildir with "mailnfsd compact", checks the
// messages in new/ and cur/ are compressed on disk (and tmp/ and tiny ones
// are not), then expands it and checks every file has its exact bytes
// again, with mtimes unchanged throughout.
func TestCompactExpand(t *testing.T) {
	nfsdtest.RequireRoot(t)
	base := t.TempDir()
	root, state := filepath.Join(base, "Maildir"), filepath.Join(base, "state")
	files := map[string][]byte{
		"new/1.M1.mx":             toolMail(1, 3000),
		"new/2.M2.mx":             toolMail(2, 300_000),
		"cur/3.M3.mx:2,S":         toolMail(3, 70_000),
		".Sent/cur/4.M4.mx:2,S":   toolMail(4, 20_000),
		"cur/5.M5.mx:2,":          []byte("tiny\r\n"),
		"tmp/6.M6.mx":             toolMail(6, 20_000),
		"dovecot-uidlist":         toolMail(7, 20_000),
		".Sent/new/8.M8.mx":       {},
		".Sent/dovecot.index.log": toolMail(9, 4000),
	}
	compressed := map[string]bool{"new/1.M1.mx": true, "new/2.M2.mx": true, "cur/3.M3.mx:2,S": true, ".Sent/cur/4.M4.mx:2,S": true}
	mtime := time.Date(2024, 3, 1, 12, 30, 0, 123456789, time.UTC)
	for _, d := range []string{"new", "cur", "tmp", ".Sent/new", ".Sent/cur", ".Sent/tmp"} {
		if err := os.MkdirAll(filepath.Join(root, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	for name, data := range files {
		p := filepath.Join(root, name)
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	check := func(stage string, wantCompressed bool) {
		t.Helper()
		for name, data := range files {
			p := filepath.Join(root, name)
			st, err := os.Stat(p)
			if err != nil {
				t.Fatalf("%s: %v", stage, err)
			}
			if !st.ModTime().Equal(mtime) {
				t.Errorf("%s: %s mtime %v, want %v", stage, name, st.ModTime(), mtime)
			}
			raw, err := os.ReadFile(p)
			if err != nil {
				t.Fatal(err)
			}
			_, xerr := unix.Getxattr(p, "user.mailnfs.z", nil)
			if wantCompressed && compressed[name] {
				if xerr != nil || bytes.Equal(raw, data) || len(raw) >= len(data) {
					t.Errorf("%s: %s not compressed: xattr err %v, %d bytes on disk for %d", stage, name, xerr, len(raw), len(data))
				}
				continue
			}
			if xerr == nil {
				t.Errorf("%s: %s still has user.mailnfs.z", stage, name)
			}
			if !bytes.Equal(raw, data) {
				t.Errorf("%s: %s differs from what was written (%d bytes, want %d)", stage, name, len(raw), len(data))
			}
		}
	}

	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"compact", "-state-dir", state, root}, &stdout, &stderr); code != 0 {
		t.Fatalf("compact: exit %d\nstdout: %s\nstderr: %s", code, &stdout, &stderr)
	}
	out := stdout.String()
	if !strings.HasPrefix(out, "compact "+root+": 9 files, 4 compressed, plain ") || !strings.Contains(out, "ratio ") {
		t.Errorf("compact output %q", out)
	}
	check("after compact", true)

	// Again: nothing left to do, same totals. Flags after DIR work too.
	stdout.Reset()
	if code := run(context.Background(), []string{"compact", root, "-state-dir", state}, &stdout, &stderr); code != 0 {
		t.Fatalf("second compact: exit %d\nstderr: %s", code, &stderr)
	}
	if !strings.HasPrefix(stdout.String(), "compact "+root+": 9 files, 0 compressed, ") {
		t.Errorf("second compact output %q", stdout.String())
	}
	check("after second compact", true)

	stdout.Reset()
	if code := run(context.Background(), []string{"expand", "-state-dir", state, root}, &stdout, &stderr); code != 0 {
		t.Fatalf("expand: exit %d\nstdout: %s\nstderr: %s", code, &stdout, &stderr)
	}
	var plain int64
	for _, d := range files {
		plain += int64(len(d))
	}
	want := fmt.Sprintf("expand %s: 9 files, 4 expanded, plain %d bytes, stored %d bytes, ratio 1.00\n", root, plain, plain)
	if stdout.String() != want {
		t.Errorf("expand output %q, want %q", stdout.String(), want)
	}
	check("after expand", false)
	if _, err := unix.Getxattr(root, "user.mailnfs.z", nil); err == nil {
		t.Errorf("expand left the compression mark on %s", root)
	}
}

func TestCompactUsage(t *testing.T) {
	cases := []struct {
		name string
		args []string
		code int
		err  string
	}{
		{"NoDir", []string{"compact"}, 2, "mailnfsd compact: want exactly one directory, got 0\nusage: mailnfsd compact"},
		{"TwoDirs", []string{"expand", "/a", "/b"}, 2, "mailnfsd expand: want exactly one directory, got 2\n"},
		{"BadFlag", []string{"compact", "-frob", "/a"}, 2, "flag provided but not defined: -frob"},
		{"BadLogLevel", []string{"compact", "-log-level", "loud", "/a"}, 2, `-log-level "loud"`},
		{"Help", []string{"expand", "-h"}, 0, "must\nnot serve the tree meanwhile. -state-dir must be the server's"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), tc.args, &stdout, &stderr)
			if code != tc.code || !strings.Contains(stderr.String(), tc.err) {
				t.Fatalf("exit %d (want %d), stderr %q, want it to contain %q", code, tc.code, stderr.String(), tc.err)
			}
		})
	}
}

// TestCompactMissingDir: an error exits 1 and names the directory.
func TestCompactMissingDir(t *testing.T) {
	nfsdtest.RequireRoot(t)
	dir := filepath.Join(t.TempDir(), "nosuch")
	var stdout, stderr bytes.Buffer
	code := run(context.Background(), []string{"compact", "-state-dir", t.TempDir(), dir}, &stdout, &stderr)
	if code != 1 || !strings.Contains(stderr.String(), "mailnfsd compact "+dir+": ") || stdout.Len() != 0 {
		t.Fatalf("exit %d, stdout %q, stderr %q", code, stdout.String(), stderr.String())
	}
}
