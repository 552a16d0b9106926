package maildirfs

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestCheckInfo(t *testing.T) {
	for info, ok := range map[string]bool{
		"2,":            true,
		"2,S":           true,
		"2,DFPRST":      true,
		"2,FSab":        true,
		"2,S,extra:txt": true,
		"1,anything":    true,
		"2,SR":          false, // not ASCII order
		"2,SS":          false, // duplicate
		"2,X":           false, // unknown upper-case flag
		"2,S1":          false,
		"3,S":           false,
		"":              false,
		"2":             false,
	} {
		if got := checkInfo(info) == ""; got != ok {
			t.Errorf("checkInfo(%q) ok=%v, want %v (%s)", info, got, ok, checkInfo(info))
		}
	}
}

// FuzzCheckInfo: no panic; an accepted "2," info stays accepted with any
// ",..." suffix, and its flags are strictly increasing.
func FuzzCheckInfo(f *testing.F) {
	for _, s := range []string{"2,", "2,S", "2,DFPRST", "2,FSab,W=1", "1,x", "2,SR", "", ":2,S"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, info string) {
		msg := checkInfo(info)
		if msg != "" || !strings.HasPrefix(info, "2,") {
			return
		}
		if checkInfo(info+",tail") != "" {
			t.Fatalf("%q accepted but not with a suffix", info)
		}
		flags, _, _ := strings.Cut(info[2:], ",")
		for i := 1; i < len(flags); i++ {
			if flags[i] <= flags[i-1] {
				t.Fatalf("%q accepted with unordered flags", info)
			}
		}
	})
}

func TestCheckFindsProblems(t *testing.T) {
	root := t.TempDir()
	md := filepath.Join(root, "user", "Maildir")
	for _, d := range []string{"tmp", "new", "cur", ".Sent/tmp", ".Sent/new", ".Sent/cur"} {
		os.MkdirAll(filepath.Join(md, d), 0o755)
	}
	files := map[string]time.Time{
		"tmp/1.stray":          time.Now().Add(-48 * time.Hour),
		"tmp/2.fresh":          time.Now(),
		"new/3.a":              {},
		"cur/3.a:2,S":          {}, // duplicate of new/3.a
		"cur/4.b:2,SR":         {}, // bad order
		"cur/5.c":              {}, // no info
		"cur/6.d:2,FS":         {},
		"cur/.hidden":          {},
		".Sent/cur/7.e:2,S":    {},
		".Sent/cur/7.e:2,RS":   {}, // duplicate within cur
		".Sent/new/8.f":        {},
		"maildirsize":          {},
		"dovecot-uidlist":      {},
		".Sent/maildirfolder":  {},
		"new/9.g,S=10":         {},
		"new/10.h:2,S":         {},
		"cur/11.i:2,S,W=1:xyz": {},
	}
	for name, mt := range files {
		p := filepath.Join(md, name)
		if err := os.WriteFile(p, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		if !mt.IsZero() {
			os.Chtimes(p, mt, mt)
		}
	}
	got := func(opts CheckOptions) []string {
		probs, err := Check(root, opts)
		if err != nil {
			t.Fatal(err)
		}
		var out []string
		for _, p := range probs {
			out = append(out, p.Kind+" "+p.Path)
		}
		return out
	}
	all := strings.Join(got(CheckOptions{}), "\n")
	for _, w := range []string{
		"stray-tmp user/Maildir/tmp/1.stray",
		"stray-tmp user/Maildir/tmp/2.fresh",
		"duplicate user/Maildir/cur/3.a:2,S",
		"bad-info user/Maildir/cur/4.b:2,SR",
		"bad-info user/Maildir/cur/5.c",
		"duplicate user/Maildir/.Sent/cur/7.e:2,S",
	} {
		if !strings.Contains(all, w) {
			t.Errorf("missing %q in\n%s", w, all)
		}
	}
	if n := len(strings.Split(all, "\n")); n != 6 {
		t.Errorf("%d problems, want 6:\n%s", n, all)
	}
	withGrace := strings.Join(got(CheckOptions{TmpGrace: 36 * time.Hour}), "\n")
	if strings.Contains(withGrace, "2.fresh") || !strings.Contains(withGrace, "1.stray") {
		t.Errorf("grace: %s", withGrace)
	}
}
