package repotest

import (
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
)

// crossTarget is a platform mailnfsd ships on (issue #7: freebsd/amd64,
// linux/amd64, linux/arm64).
type crossTarget struct {
	goos, goarch string
	vet          bool // also go vet ./... (tests included) for it
}

// crossTargets: every command is built for each; the platform whose
// system interface differs (FreeBSD) is vetted as well, so its
// *_freebsd.go files and tests keep compiling although nothing here runs
// them.
var crossTargets = []crossTarget{
	{"freebsd", "amd64", true},
	{"linux", "amd64", false},
	{"linux", "arm64", false},
}

// goCross runs the go command for target from the module root, with cgo off
// as for the release binaries (no C cross toolchain needed). The build
// cache is the user's, shared with every other go command, so a repeated
// run only relinks.
func goCross(t *testing.T, root string, tg crossTarget, args ...string) {
	t.Helper()
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS="+tg.goos, "GOARCH="+tg.goarch)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Errorf("GOOS=%s GOARCH=%s CGO_ENABLED=0 go %s: %v\n%s", tg.goos, tg.goarch, strings.Join(args, " "), err, out)
	}
}

// TestCrossBuild builds and links ./cmd/... for every shipped platform
// (into a temporary directory) and vets ./... for FreeBSD: what
// scripts/crossbuild.sh reports, as a failing test. With a warm build
// cache a run takes seconds per platform, most of it the go command's own
// package loading.
func TestCrossBuild(t *testing.T) {
	root := moduleRoot(t)
	for _, tg := range crossTargets {
		t.Run(tg.goos+"-"+tg.goarch, func(t *testing.T) {
			goCross(t, root, tg, "build", "-o", t.TempDir()+string(filepath.Separator), "./cmd/...")
			if tg.vet {
				goCross(t, root, tg, "vet", "./...")
			}
		})
	}
}

// TestCrossBuildScriptTargets keeps scripts/crossbuild.sh's default
// platform list equal to crossTargets.
func TestCrossBuildScriptTargets(t *testing.T) {
	src, err := os.ReadFile(filepath.Join(moduleRoot(t), "scripts", "crossbuild.sh"))
	if err != nil {
		t.Fatal(err)
	}
	var want []string
	for _, tg := range crossTargets {
		want = append(want, tg.goos+"/"+tg.goarch)
	}
	line := `targets=${TARGETS:-"` + strings.Join(want, " ") + `"}`
	if !strings.Contains(string(src), line) {
		t.Errorf("scripts/crossbuild.sh does not default to %s (want the line %s)", strings.Join(want, " "), line)
	}
}

// TestUnsafeWriteOnlyBuild keeps the measuring build of
// scripts/bench-writeonly.sh compiling (tag mailnfs_unsafe_writeonly,
// maildirfs/unsafe_writeonly.go), and checks that the tag is the only way
// to get it: a default build must not carry the constant as true.
func TestUnsafeWriteOnlyBuild(t *testing.T) {
	root := moduleRoot(t)
	host := crossTarget{goos: runtime.GOOS, goarch: runtime.GOARCH}
	goCross(t, root, host, "vet", "-tags", "mailnfs_unsafe_writeonly", "./maildirfs", "./nfsd", "./cmd/mailnfsd")
	off, err := os.ReadFile(filepath.Join(root, "maildirfs", "unsafe_writeonly_off.go"))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(string(off), "//go:build !mailnfs_unsafe_writeonly\n") ||
		!strings.Contains(string(off), "const UnsafeWriteOnly = false\n") {
		t.Error("maildirfs/unsafe_writeonly_off.go must build by default and set UnsafeWriteOnly = false")
	}
}
