package nfsd

import (
	"bytes"
	"errors"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mailnfs/mailnfs/maildirfs"
)

// TestParseExportsCompress covers the compress option in both dialects:
// accepted forms give Export.Compress, the summary and Format show it.
func TestParseExportsCompress(t *testing.T) {
	cases := map[string]struct {
		in       string
		want     string // Summary
		compress map[string]string
	}{
		"FreeBSDEquals": {
			"/srv/mail -compress=zstd 127.0.0.1\n",
			"1 exports, 1 rules\n/srv/mail\t127.0.0.1 rw squash=root->65534:65534 compress=zstd (exports:1:1)\n",
			map[string]string{"/srv/mail": "zstd"},
		},
		"FreeBSDSpace": {
			"/srv/mail -compress zstd -network 10.0.0.0/8\n",
			"1 exports, 1 rules\n/srv/mail\t10.0.0.0/8 rw squash=root->65534:65534 compress=zstd (exports:1:1)\n",
			map[string]string{"/srv/mail": "zstd"},
		},
		"FreeBSDCombined": {
			"/srv/mail -alldirs,compress=zstd,ro 127.0.0.1\n",
			"1 exports, 1 rules\n/srv/mail\t127.0.0.1 ro squash=root->65534:65534 alldirs compress=zstd (exports:1:1)\n",
			map[string]string{"/srv/mail": "zstd"},
		},
		"FreeBSDSeveralDirs": {
			"/a /b -compress=zstd 127.0.0.1\n/c 127.0.0.1\n",
			"3 exports, 3 rules\n/a\t127.0.0.1 rw squash=root->65534:65534 compress=zstd (exports:1:1)\n" +
				"/b\t127.0.0.1 rw squash=root->65534:65534 compress=zstd (exports:1:1)\n" +
				"/c\t127.0.0.1 rw squash=root->65534:65534 (exports:2:1)\n",
			map[string]string{"/a": "zstd", "/b": "zstd", "/c": ""},
		},
		"FreeBSDLinesAgree": {
			"/srv/mail -compress=zstd 127.0.0.1\n/srv/mail -ro -compress zstd -network 10.0.0.0/8\n",
			"1 exports, 2 rules\n/srv/mail\t127.0.0.1 rw squash=root->65534:65534 compress=zstd (exports:1:1)\n" +
				"/srv/mail\t10.0.0.0/8 ro squash=root->65534:65534 compress=zstd (exports:2:1)\n",
			map[string]string{"/srv/mail": "zstd"},
		},
		"Linux": {
			"/srv/mail 127.0.0.1(rw,compress=zstd)\n",
			"1 exports, 1 rules\n/srv/mail\t127.0.0.1 rw squash=root->65534:65534 (per id) alldirs compress=zstd (exports:1:11)\n",
			map[string]string{"/srv/mail": "zstd"},
		},
		"LinuxEveryClient": {
			"/srv/mail 127.0.0.1(rw,compress=zstd) 10.0.0.0/8(ro,compress=zstd)\n",
			"1 exports, 2 rules\n/srv/mail\t127.0.0.1 rw squash=root->65534:65534 (per id) alldirs compress=zstd (exports:1:11)\n" +
				"/srv/mail\t10.0.0.0/8 ro squash=root->65534:65534 (per id) alldirs compress=zstd (exports:1:39)\n",
			map[string]string{"/srv/mail": "zstd"},
		},
		"LinuxDefaultsWord": {
			"/srv/mail -rw,compress=zstd 127.0.0.1 10.0.0.0/8(ro)\n",
			"1 exports, 2 rules\n/srv/mail\t127.0.0.1 rw squash=root->65534:65534 (per id) alldirs compress=zstd (exports:1:29)\n" +
				"/srv/mail\t10.0.0.0/8 ro squash=root->65534:65534 (per id) alldirs compress=zstd (exports:1:39)\n",
			map[string]string{"/srv/mail": "zstd"},
		},
		"MixedDialectsAgree": {
			"/srv/mail -compress=zstd -network 10.0.0.0/8\n/srv/mail 127.0.0.1(rw,compress=zstd)\n",
			"1 exports, 2 rules\n/srv/mail\t10.0.0.0/8 rw squash=root->65534:65534 compress=zstd (exports:1:1)\n" +
				"/srv/mail\t127.0.0.1 rw squash=root->65534:65534 (per id) alldirs compress=zstd (exports:2:11)\n",
			map[string]string{"/srv/mail": "zstd"},
		},
		"Absent": {
			"/srv/mail 127.0.0.1\n",
			"1 exports, 1 rules\n/srv/mail\t127.0.0.1 rw squash=root->65534:65534 (exports:1:1)\n",
			map[string]string{"/srv/mail": ""},
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tab, err := ParseExports("exports", []byte(tc.in), testParseOptions())
			exNoErr(t, err)
			exEqual(t, tc.want, tab.Summary())
			for p, c := range tc.compress {
				e := tab.Lookup(p)
				exTrue(t, e != nil, "no export", p)
				exEqual(t, c, e.Compress, p)
			}
			again, err := ParseExports("formatted", []byte(tab.Format()), testParseOptions())
			exNoErr(t, err, "formatted:\n%s", tab.Format())
			exEqual(t, stripPos(tab), stripPos(again))
		})
	}
}

// TestParseExportsCompressErrors checks the messages for bad values,
// missing values and lines that disagree about one path.
func TestParseExportsCompressErrors(t *testing.T) {
	cases := map[string]struct {
		in   string
		want string
	}{
		"FreeBSDUnknownMethod": {
			"/srv/mail -compress=lz4 127.0.0.1\n",
			`exports:1:21: -compress supports only zstd, got "lz4"`,
		},
		"FreeBSDSpaceUnknownMethod": {
			"/srv/mail -compress gzip\n",
			`exports:1:21: -compress supports only zstd, got "gzip"`,
		},
		"FreeBSDCaseMatters": {
			"/srv/mail -compress=ZSTD\n",
			`exports:1:21: -compress supports only zstd, got "ZSTD"`,
		},
		"FreeBSDNoValue": {
			"/srv/mail -compress\n",
			"exports:1:20: -compress needs a method: write -compress=zstd",
		},
		"FreeBSDEmptyValue": {
			"/srv/mail -compress= 127.0.0.1\n",
			"exports:1:21: -compress needs a method: write -compress=zstd",
		},
		"FreeBSDNoValueBeforeOption": {
			"/srv/mail -compress -ro\n",
			"exports:1:20: -compress needs a method: write -compress=zstd",
		},
		"FreeBSDTwice": {
			"/srv/mail -compress=zstd -compress=zstd\n",
			"exports:1:26: only one -compress per line; the first is at exports:1:11",
		},
		"LinuxUnknownMethod": {
			"/srv/mail 127.0.0.1(rw,compress=lz4)\n",
			`exports:1:33: compress supports only zstd, got "lz4"`,
		},
		"LinuxNoValue": {
			"/srv/mail 127.0.0.1(rw,compress)\n",
			"exports:1:32: compress needs a method: write compress=zstd",
		},
		"LinuxEmptyValue": {
			"/srv/mail 127.0.0.1(compress=)\n",
			"exports:1:30: compress needs a method: write compress=zstd",
		},
		"LinesDisagree": {
			"/srv/mail -compress=zstd 127.0.0.1\n/srv/mail -network 10.0.0.0/8\n",
			"exports:2:1: /srv/mail: no compress option here but -compress=zstd at exports:1:11; " +
				"compression is per directory, so every line and client for it must say the same",
		},
		"LinesDisagreeOtherOrder": {
			"/srv/mail 127.0.0.1\n/srv/mail 10.0.0.0/8(rw,compress=zstd)\n",
			"exports:2:25: /srv/mail: compress=zstd here but no compress option at exports:1:1; " +
				"compression is per directory, so every line and client for it must say the same",
		},
		"LinuxClientsDisagree": {
			"/srv/mail 127.0.0.1(rw,compress=zstd) 10.0.0.0/8(ro)\n",
			"exports:1:39: /srv/mail: no compress option here but compress=zstd at exports:1:24; " +
				"compression is per directory, so every line and client for it must say the same",
		},
		"DisagreeViaSeveralDirs": {
			"/a -compress=zstd 127.0.0.1\n/b /a 10.0.0.1\n",
			"exports:2:1: /a: no compress option here but -compress=zstd at exports:1:4; " +
				"compression is per directory, so every line and client for it must say the same",
		},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			tab, err := ParseExports("exports", []byte(tc.in), testParseOptions())
			exTrue(t, tab == nil, "table with error")
			var perrs ParseErrors
			exTrue(t, errors.As(err, &perrs), "want ParseErrors, got", err)
			exEqual(t, tc.want, err.Error())
		})
	}
}

// TestExportsOpenCompress checks that each export's store is opened with
// its Compress, and that a reload changing it keeps the open store (and
// its setting) and warns that the change needs a restart.
func TestExportsOpenCompress(t *testing.T) {
	var (
		mu     sync.Mutex
		opened = map[string][]string{} // root -> Compress of each open
	)
	var logs bytes.Buffer
	parse := func(text string) *ExportTable {
		tab, err := ParseExports("exports", []byte(text), nil)
		exNoErr(t, err)
		return tab
	}
	x, err := OpenExports(parse("/a 127.0.0.1(rw,compress=zstd)\n/b -network 10.0.0.0/8\n"), ExportsOptions{
		StateDir: t.TempDir(),
		Logger:   slog.New(slog.NewTextHandler(&logs, nil)),
		OpenStore: func(root string, o maildirfs.Options) (Store, error) {
			mu.Lock()
			defer mu.Unlock()
			opened[root] = append(opened[root], o.Compress)
			return &pathStore{root: []byte("root:" + root), sub: []byte("sub:" + root)}, nil
		},
	})
	exNoErr(t, err)
	t.Cleanup(func() { x.Close() })
	exEqual(t, map[string][]string{"/a": {"zstd"}, "/b": {""}}, opened)

	// /a loses compress, /b gains it, /c is new with it.
	exNoErr(t, x.Reload(parse("/a 127.0.0.1(rw)\n/b -compress=zstd -network 10.0.0.0/8\n/c -compress zstd\n")))
	exEqual(t, map[string][]string{"/a": {"zstd"}, "/b": {""}, "/c": {"zstd"}}, opened)
	exEqual(t, "", x.Table().Lookup("/a").Compress)
	out := logs.String()
	exEqual(t, 2, strings.Count(out, "compress changed for an open export; it takes effect when mailnfsd restarts"), out)
	exTrue(t, strings.Contains(out, "export=/a") && strings.Contains(out, "running=zstd"), out)
	exTrue(t, strings.Contains(out, "export=/b") && strings.Contains(out, "file=zstd"), out)

	// Back to what /a runs with: no warning for it.
	logs.Reset()
	exNoErr(t, x.Reload(parse("/a 127.0.0.1(rw,compress=zstd)\n/b\n")))
	exEqual(t, "", logs.String())
}

// TestExportsCompressOverlap: a compressing export whose directory is, or
// is above or below, another export's on the same file system fails the
// start and a reload (the table in force stays); exports that do not
// overlap, or that do not compress, are served. Two stores of one tree
// each run their own locks, so a WRITE through one export during the
// other's rewrite was lost.
func TestExportsCompressOverlap(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("maildirfs needs root (CAP_DAC_READ_SEARCH)")
	}
	dir := t.TempDir()
	for _, d := range []string{"a", "a/sub", "b"} {
		exNoErr(t, os.Mkdir(filepath.Join(dir, d), 0o755))
	}
	exNoErr(t, os.Symlink(filepath.Join(dir, "a"), filepath.Join(dir, "link")))
	a, sub, b, link := filepath.Join(dir, "a"), filepath.Join(dir, "a/sub"), filepath.Join(dir, "b"), filepath.Join(dir, "link")
	parse := func(text string) *ExportTable {
		tab, err := ParseExports("exports", []byte(text), nil)
		exNoErr(t, err)
		return tab
	}
	opts := ExportsOptions{StateDir: filepath.Join(dir, "state")}
	for _, tc := range []struct {
		text string
		ok   bool
	}{
		{a + " 127.0.0.1(rw,compress=zstd)\n" + sub + " 127.0.0.1(rw)\n", false},
		{a + " 127.0.0.1(rw)\n" + sub + " 127.0.0.1(rw,compress=zstd)\n", false},
		{a + " 127.0.0.1(rw,compress=zstd)\n" + sub + " 127.0.0.1(rw,compress=zstd)\n", false},
		{a + " 127.0.0.1(rw,compress=zstd)\n" + link + " 127.0.0.1(rw)\n", false},
		{link + "/sub 127.0.0.1(rw)\n" + a + " 127.0.0.1(rw,compress=zstd)\n", false},
		{a + " 127.0.0.1(rw)\n" + sub + " 127.0.0.1(rw)\n", true},
		{a + " 127.0.0.1(rw,compress=zstd)\n" + b + " 127.0.0.1(rw,compress=zstd)\n", true},
	} {
		x, err := OpenExports(parse(tc.text), opts)
		if err == nil {
			x.Close()
		}
		if tc.ok != (err == nil) {
			t.Errorf("%q: err %v, want ok %v", tc.text, err, tc.ok)
		}
		if err != nil && !strings.Contains(err.Error(), "hold the same files") {
			t.Errorf("%q: err %v", tc.text, err)
		}
	}
	x, err := OpenExports(parse(a+" 127.0.0.1(rw,compress=zstd)\n"), opts)
	exNoErr(t, err)
	defer x.Close()
	if err := x.Reload(parse(a + " 127.0.0.1(rw,compress=zstd)\n" + sub + " 127.0.0.1(rw)\n")); err == nil {
		t.Error("reload to overlapping exports succeeded")
	}
	exTrue(t, x.Table().Lookup(sub) == nil, "the refused table is in force")
}
