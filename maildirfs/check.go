package maildirfs

import (
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"time"
)

// Problem is one Maildir invariant violation found by Check.
type Problem struct {
	Path   string // file or directory, relative to the checked root
	Kind   string // "stray-tmp", "duplicate", "bad-info"
	Detail string
}

func (p Problem) String() string { return p.Kind + " " + p.Path + ": " + p.Detail }

// CheckOptions tune Check. The zero value reports every file in tmp/.
type CheckOptions struct {
	// TmpGrace: files in tmp/ younger than this are not stray (readers
	// delete tmp/ files after 36 hours). Zero reports all of them.
	TmpGrace time.Duration
	// Now is the reference time for TmpGrace; zero means time.Now().
	Now time.Time
}

// Check walks root (a local path, without following symlinks) and reports
// in every maildir (a directory with tmp/, new/ and cur/): stray files in
// tmp/, the same unique name twice across new/ and cur/, and cur/ names
// whose info is not ":2," followed by flags in strict ASCII order (DFPRST
// and lowercase keywords), optionally followed by ",..." text. Names
// starting with "." are ignored, as readers do.
func Check(root string, opts CheckOptions) ([]Problem, error) {
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	var probs []Problem
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if errors.Is(err, fs.ErrNotExist) {
				return nil
			}
			return err
		}
		if !d.IsDir() || !isMaildir(p) {
			return nil
		}
		rel, _ := filepath.Rel(root, p)
		probs = append(probs, checkMaildir(p, rel, opts)...)
		return nil
	})
	sort.Slice(probs, func(i, j int) bool { return probs[i].Path < probs[j].Path })
	return probs, err
}

func isMaildir(p string) bool {
	for _, s := range []string{"tmp", "new", "cur"} {
		fi, err := os.Lstat(filepath.Join(p, s))
		if err != nil || !fi.IsDir() {
			return false
		}
	}
	return true
}

func checkMaildir(p, rel string, opts CheckOptions) []Problem {
	var probs []Problem
	add := func(sub, name, kind, detail string) {
		probs = append(probs, Problem{Path: filepath.Join(rel, sub, name), Kind: kind, Detail: detail})
	}
	tmp, _ := os.ReadDir(filepath.Join(p, "tmp"))
	for _, e := range tmp {
		fi, err := e.Info()
		if err != nil || fi.IsDir() {
			continue
		}
		if opts.TmpGrace == 0 || opts.Now.Sub(fi.ModTime()) >= opts.TmpGrace {
			add("tmp", e.Name(), "stray-tmp", "left in tmp/")
		}
	}
	seen := map[string]string{}
	for _, sub := range []string{"new", "cur"} {
		ents, _ := os.ReadDir(filepath.Join(p, sub))
		for _, e := range ents {
			name := e.Name()
			if strings.HasPrefix(name, ".") || e.IsDir() {
				continue
			}
			uniq, info, hasInfo := strings.Cut(name, ":")
			if sub == "cur" {
				if !hasInfo {
					add(sub, name, "bad-info", "no :2, info in cur/")
				} else if msg := checkInfo(info); msg != "" {
					add(sub, name, "bad-info", msg)
				}
			} else if hasInfo {
				if msg := checkInfo(info); msg != "" {
					add(sub, name, "bad-info", msg)
				}
			}
			if prev, dup := seen[uniq]; dup {
				add(sub, name, "duplicate", "unique name also in "+prev)
			} else {
				seen[uniq] = filepath.Join(sub, name)
			}
		}
	}
	return probs
}

// checkInfo validates the part after ':' of a message name; "" means fine.
func checkInfo(info string) string {
	if strings.HasPrefix(info, "1,") {
		return "" // experimental semantics: not ours to judge
	}
	flags, ok := strings.CutPrefix(info, "2,")
	if !ok {
		return "info does not start with 2,"
	}
	flags, _, _ = strings.Cut(flags, ",")
	var last byte
	for i := 0; i < len(flags); i++ {
		ch := flags[i]
		switch {
		case strings.IndexByte("DFPRST", ch) >= 0, ch >= 'a' && ch <= 'z':
		default:
			return "unknown flag " + string(rune(ch))
		}
		if ch <= last {
			return "flags not in strict ASCII order"
		}
		last = ch
	}
	return ""
}
