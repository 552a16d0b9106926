package repotest

import (
	"bytes"
	"encoding/json"
	"errors"
	"go/format"
	"go/parser"
	"go/token"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

const module = "github.com/mailnfs/mailnfs"

// pkg is the part of `go list -json` these tests read.
type pkg struct {
	ImportPath   string
	Name         string
	Dir          string
	Imports      []string
	Deps         []string
	GoFiles      []string
	CgoFiles     []string
	TestGoFiles  []string
	XTestGoFiles []string
	Error        *struct{ Err string }
}

// moduleRoot is the directory holding go.mod.
func moduleRoot(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil {
		t.Fatalf("go env GOMOD: %v", err)
	}
	gomod := strings.TrimSpace(string(out))
	if gomod == "" || gomod == os.DevNull {
		t.Fatal("not inside the module")
	}
	return filepath.Dir(gomod)
}

// listPackages returns every package of the module, including ones that do
// not build at the moment (their import lists are still known).
func listPackages(t *testing.T) []pkg {
	t.Helper()
	cmd := exec.Command("go", "list", "-e", "-json=ImportPath,Name,Dir,Imports,Deps,GoFiles,CgoFiles,TestGoFiles,XTestGoFiles,Error", "./...")
	cmd.Dir = moduleRoot(t)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v\n%s", err, stderr.Bytes())
	}
	var pkgs []pkg
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p pkg
		if err := dec.Decode(&p); errors.Is(err, io.EOF) {
			break
		} else if err != nil {
			t.Fatalf("decode go list output: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list found no packages")
	}
	return pkgs
}

// under reports whether import path p is rel (relative to the module) or below it.
func under(p, rel string) bool {
	full := module + "/" + rel
	return p == full || strings.HasPrefix(p, full+"/")
}

func TestPackageComments(t *testing.T) {
	for _, p := range listPackages(t) {
		files := append(append([]string{}, p.GoFiles...), p.CgoFiles...)
		if len(files) == 0 {
			// A test-only package documents itself in its test files.
			files = append(append(files, p.TestGoFiles...), p.XTestGoFiles...)
		}
		if len(files) == 0 {
			continue
		}
		found := false
		fset := token.NewFileSet()
		for _, f := range files {
			af, err := parser.ParseFile(fset, filepath.Join(p.Dir, f), nil, parser.PackageClauseOnly|parser.ParseComments)
			if err != nil {
				t.Errorf("%s: %v", f, err)
				continue
			}
			if af.Doc != nil && strings.TrimSpace(af.Doc.Text()) != "" {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("package %s has no package doc comment (add one, in doc.go for larger packages)", p.ImportPath)
		}
	}
}

// importRule forbids packages under From from depending, directly or
// transitively, on any package matching one of Not.
type importRule struct {
	From string   // module-relative path
	Not  []string // module-relative paths, or full paths of external modules
	Why  string
}

var importRules = []importRule{
	{From: "maildirfs", Not: []string{"github.com/willscott/go-nfs", "nfsd", "client"},
		Why: "the store knows nothing of NFS"},
	{From: "client", Not: []string{"nfsd"},
		Why: "the client must not share code with the server beyond internal/*"},
	{From: "nfsd", Not: []string{"client", "cmd", "bench"},
		Why: "imports point downward only"},
	{From: "internal/xdr", Not: []string{"nfsd", "client", "maildirfs", "cmd"},
		Why: "the wire codec is the bottom layer"},
	{From: "internal/rpc", Not: []string{"nfsd", "client", "maildirfs", "cmd"},
		Why: "the wire codec is the bottom layer"},
	{From: "internal/nfs3", Not: []string{"nfsd", "client", "cmd"},
		Why: "the wire codec is shared by server and client"},
	{From: "internal/portmap", Not: []string{"nfsd", "client", "maildirfs", "cmd"},
		Why: "the wire codec is shared by server and client"},
}

func matches(dep, pattern string) bool {
	if strings.Contains(pattern, ".") { // external module path
		return dep == pattern || strings.HasPrefix(dep, pattern+"/")
	}
	return under(dep, pattern)
}

func TestImportRules(t *testing.T) {
	pkgs := listPackages(t)
	for _, r := range importRules {
		for _, p := range pkgs {
			if !under(p.ImportPath, r.From) {
				continue
			}
			for _, d := range p.Deps {
				for _, not := range r.Not {
					if matches(d, not) {
						how := "transitively"
						if slices.Contains(p.Imports, d) {
							how = "directly"
						}
						t.Errorf("%s depends %s on %s: %s", p.ImportPath, how, d, r.Why)
					}
				}
			}
		}
	}
}

// TestNoTestingInProduction: only test helper packages (named *test, such as
// nfsdtest, mdtest, netnstest) may import "testing" from non-test files, and
// no other non-test package may depend on one.
func TestNoTestingInProduction(t *testing.T) {
	for _, p := range listPackages(t) {
		if strings.HasSuffix(path.Base(p.ImportPath), "test") {
			continue
		}
		for _, d := range p.Deps {
			if d == "testing" {
				how := "transitively (through a *test helper package?)"
				if slices.Contains(p.Imports, d) {
					how = "directly"
				}
				t.Errorf("non-test code of %s imports \"testing\" %s", p.ImportPath, how)
			}
		}
	}
}

func TestGofmt(t *testing.T) {
	root := moduleRoot(t)
	skip := map[string]bool{".git": true, "var": true, "bin": true, "testdata": true}
	n := 0
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if p != root && (skip[d.Name()] || strings.HasPrefix(d.Name(), ".")) {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(p, ".go") {
			return nil
		}
		src, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		n++
		got, err := format.Source(src)
		if err != nil {
			t.Errorf("%s: %v", p, err)
			return nil
		}
		if !bytes.Equal(got, src) {
			rel, _ := filepath.Rel(root, p)
			t.Errorf("%s is not gofmt'ed (run gofmt -w %s)", rel, rel)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n == 0 {
		t.Fatal("found no Go files")
	}
}

// TestRulesSeeTheirPackages guards the rules above against silently checking
// nothing after a rename: every rule's From must name a package that exists.
func TestRulesSeeTheirPackages(t *testing.T) {
	pkgs := listPackages(t)
	for _, r := range importRules {
		found := false
		for _, p := range pkgs {
			if under(p.ImportPath, r.From) {
				found = true
				break
			}
		}
		if !found {
			t.Errorf("import rule for %s matches no package", r.From)
		}
	}
}
