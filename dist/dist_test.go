// Package dist holds the service files and the install fragment of
// mailnfsd: the systemd unit (systemd/mailnfsd.service), the FreeBSD rc.d
// script (freebsd/mailnfsd), rc.conf lines (rc.conf.sample) and
// install.mk, which the top-level Makefile includes for `make install`.
// Its tests check the files with the tools that read them: sh -n,
// systemd-analyze verify, make, and the mailnfsd binary's own flag parser.
package dist

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/logtest"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// run runs a command in dir and fails the test with its output on error.
func run(t *testing.T, dir, name string, args ...string) string {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// repoRoot is the module root (dist's parent).
func repoRoot(t *testing.T) string {
	t.Helper()
	wd, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	return filepath.Dir(wd)
}

func TestRCScriptSyntax(t *testing.T) {
	run(t, ".", "sh", "-n", "freebsd/mailnfsd")
	b, err := os.ReadFile("freebsd/mailnfsd")
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	// What rc(8) and rcorder(8) need from a script (rc.subr(8)).
	for _, want := range []string{
		"#!/bin/sh\n", "\n# PROVIDE: mailnfsd\n", "\n# REQUIRE: ", "\n# KEYWORD: ",
		"\n. /etc/rc.subr\n", `name="mailnfsd"`, `rcvar="mailnfsd_enable"`,
		`load_rc_config "$name"`, `: ${mailnfsd_enable:="NO"}`, `sig_reload="HUP"`,
		`extra_commands="reload checkconfig"`, "-p ${pidfile}", `command="/usr/sbin/daemon"`,
		`procname="@SBINDIR@/mailnfsd"`, "\nrun_rc_command \"$1\"\n",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("rc.d script lacks %q", want)
		}
	}
	// Every rc.conf variable the sample sets for mailnfsd is one the script reads.
	sample, err := os.ReadFile("rc.conf.sample")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`(?m)^#?(mailnfsd_[a-z_]+)=`).FindAllStringSubmatch(string(sample), -1) {
		if m[1] != "mailnfsd_flags" && !strings.Contains(s, "${"+m[1]) {
			t.Errorf("rc.conf.sample sets %s, which the rc.d script does not read", m[1])
		}
	}
	run(t, ".", "sh", "-n", "rc.conf.sample")
}

// build gives a directory with the mailnfsd binary, as `make build` leaves
// it in bin/.
func build(t *testing.T) string {
	bin := t.TempDir()
	b, err := os.ReadFile(nfsdtest.Binary(t))
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bin, "mailnfsd"), b, 0o755); err != nil {
		t.Fatal(err)
	}
	return bin
}

func requireMake(t *testing.T) {
	if _, err := exec.LookPath("make"); err != nil {
		t.Skip("make not installed")
	}
}

// listTree returns the files under root as "mode path" lines.
func listTree(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	err := filepath.Walk(root, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		out = append(out, fi.Mode().Perm().String()+" /"+rel)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	slices.Sort(out)
	return out
}

func TestInstall(t *testing.T) {
	requireMake(t)
	bin := build(t)
	dest := t.TempDir()
	run(t, repoRoot(t), "make", "-f", "dist/install.mk", "install",
		"DESTDIR="+dest, "PREFIX=/usr/local", "BIN="+bin, "SERVICE=all")
	got := listTree(t, dest)
	for _, want := range []string{
		"-rwxr-xr-x /usr/local/sbin/mailnfsd",
		"-rw-r--r-- /usr/local/lib/systemd/system/mailnfsd.service",
		"-r-xr-xr-x /usr/local/etc/rc.d/mailnfsd",
		"-rw-r--r-- /usr/local/share/doc/mailnfs/rc.conf.sample",
		"-rw-r--r-- /usr/local/share/doc/mailnfs/storage-box.md",
		"-rw-r--r-- /usr/local/share/doc/mailnfs/front-ends.md",
		"-rw-r--r-- /usr/local/share/doc/mailnfs/operations.md",
		"-rw-r--r-- /usr/local/share/doc/mailnfs/exports.example",
		// front-ends.md sends the reader to mailnfs's own page (the
		// transports, the userdb format, the exit codes).
		"-rw-r--r-- /usr/local/share/doc/mailnfs/mailnfs.md",
	} {
		if !slices.Contains(got, want) {
			t.Errorf("installed tree lacks %q; have:\n%s", want, strings.Join(got, "\n"))
		}
	}
	unit, err := os.ReadFile(filepath.Join(dest, "usr/local/lib/systemd/system/mailnfsd.service"))
	if err != nil {
		t.Fatal(err)
	}
	rcd, err := os.ReadFile(filepath.Join(dest, "usr/local/etc/rc.d/mailnfsd"))
	if err != nil {
		t.Fatal(err)
	}
	for name, b := range map[string][]byte{"unit": unit, "rc.d script": rcd} {
		if bytes.Contains(b, []byte("@")) && regexp.MustCompile(`@[A-Z]+@`).Match(b) {
			t.Errorf("installed %s keeps a placeholder: %s", name, regexp.MustCompile(`@[A-Z]+@`).Find(b))
		}
	}
	if !bytes.Contains(unit, []byte("ExecStart=/usr/local/sbin/mailnfsd ")) {
		t.Error("installed unit does not start /usr/local/sbin/mailnfsd")
	}
	if !bytes.Contains(rcd, []byte(`procname="/usr/local/sbin/mailnfsd"`)) {
		t.Error("installed rc.d script does not run /usr/local/sbin/mailnfsd")
	}
	run(t, dest, "sh", "-n", "usr/local/etc/rc.d/mailnfsd")

	// SERVICE=none installs no service file; a missing binary is an error.
	dest2 := t.TempDir()
	run(t, repoRoot(t), "make", "-f", "dist/install.mk", "install",
		"DESTDIR="+dest2, "PREFIX=/opt/mailnfs", "BIN="+bin, "SERVICE=none")
	for _, f := range listTree(t, dest2) {
		if strings.Contains(f, "systemd") || strings.Contains(f, "rc.d") {
			t.Errorf("SERVICE=none installed %s", f)
		}
	}
	// BSD make (FreeBSD's make(1) dialect), where installed: same tree.
	if _, err := exec.LookPath("bmake"); err == nil {
		dest3 := t.TempDir()
		run(t, repoRoot(t), "bmake", "-f", "dist/install.mk", "install",
			"DESTDIR="+dest3, "PREFIX=/usr/local", "BIN="+bin, "SERVICE=all")
		if diff := listTree(t, dest3); !slices.Equal(diff, got) {
			t.Errorf("bmake installed:\n%s\nGNU make installed:\n%s", strings.Join(diff, "\n"), strings.Join(got, "\n"))
		}
	} else {
		t.Log("bmake not installed: the BSD make dialect is not checked")
	}
	cmd := exec.Command("make", "-f", "dist/install.mk", "install", "DESTDIR="+t.TempDir(), "BIN="+t.TempDir())
	cmd.Dir = repoRoot(t)
	if out, err := cmd.CombinedOutput(); err == nil || !strings.Contains(string(out), "not built") {
		t.Errorf("install without a binary: err %v, output %s", err, out)
	}
}

// TestSystemdVerify installs the unit under a temporary PREFIX (so the
// paths it names exist) and runs systemd-analyze verify on it.
func TestSystemdVerify(t *testing.T) {
	if _, err := exec.LookPath("systemd-analyze"); err != nil {
		t.Skip("systemd-analyze not installed (not a systemd system); the unit is unverified here")
	}
	requireMake(t)
	bin := build(t)
	prefix := t.TempDir()
	run(t, repoRoot(t), "make", "-f", "dist/install.mk", "install",
		"PREFIX="+prefix, "BIN="+bin, "SERVICE=systemd")
	unit := filepath.Join(prefix, "lib/systemd/system/mailnfsd.service")
	out := run(t, ".", "systemd-analyze", "verify", unit)
	// verify exits 0 on warnings too; none are expected from this unit.
	if strings.TrimSpace(out) != "" {
		t.Errorf("systemd-analyze verify %s:\n%s", unit, out)
	}
}

// TestServiceFlags runs the installed binary with the flags the service
// files pass (-check-config, -exports, -state-dir), so a renamed flag
// breaks this test rather than a storage box.
func TestServiceFlags(t *testing.T) {
	bin := build(t)
	dir := t.TempDir()
	export := filepath.Join(dir, "mail1")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	exports := filepath.Join(dir, "exports")
	if err := os.WriteFile(exports, []byte(export+" -network 10.1.2.0 -mask 255.255.255.0\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run(t, dir, filepath.Join(bin, "mailnfsd"), "-check-config", "-exports", exports, "-state-dir", filepath.Join(dir, "state"))

	// The flags named in the service files are all flags of the binary.
	usage, _ := exec.Command(filepath.Join(bin, "mailnfsd"), "-h").CombinedOutput()
	for _, f := range []string{"systemd/mailnfsd.service", "freebsd/mailnfsd", "rc.conf.sample"} {
		b, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for _, m := range regexp.MustCompile(`[\s"](-[a-z][a-z-]+)[ "\n=]`).FindAllStringSubmatch(string(b), -1) {
			flag := m[1]
			switch flag {
			case "-f", "-S", "-l", "-T", "-p", "-d", "-m", "-o", "-g", "-n", "-L", "-HUP":
				continue // daemon(8), install(1), sh, kill and rpcbind flags
			}
			if !strings.Contains(string(usage), "  "+flag+" ") && !strings.Contains(string(usage), "  "+flag+"\n") {
				t.Errorf("%s passes %s, which mailnfsd -h does not list", f, flag)
			}
		}
	}
}

// TestServiceCapabilities starts mailnfsd as root with exactly the
// capabilities the systemd unit's CapabilityBoundingSet leaves it
// (setpriv), and checks that it opens its export and holds users' writes
// to the file system's limits for users (it sets a thread's fsuid, which
// needs CAP_SETUID); without CAP_SETUID it says at start that it cannot.
func TestServiceCapabilities(t *testing.T) {
	nfsdtest.RequireRoot(t)
	if _, err := exec.LookPath("setpriv"); err != nil {
		t.Skip("setpriv (util-linux) not installed")
	}
	b, err := os.ReadFile("systemd/mailnfsd.service")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^CapabilityBoundingSet=(.*)$`).FindStringSubmatch(string(b))
	if m == nil {
		t.Fatal("the unit sets no CapabilityBoundingSet")
	}
	caps := strings.Fields(m[1])
	bin := filepath.Join(build(t), "mailnfsd")
	start := func(caps []string) string {
		t.Helper()
		set := "-all"
		for _, c := range caps {
			set += ",+" + strings.ToLower(strings.TrimPrefix(c, "CAP_"))
		}
		dir := t.TempDir()
		cmd := exec.Command("setpriv", "--bounding-set="+set, "--inh-caps=-all", "--",
			bin, "-demo", dir, "-listen", "127.0.0.1", "-nfs-port", "0", "-portmap-port", "0",
			"-state-dir", filepath.Join(dir, "state"))
		var out logtest.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		defer func() { cmd.Process.Kill(); cmd.Wait() }()
		for range 200 {
			if strings.Contains(out.String(), "mailnfsd serving") || cmd.ProcessState != nil { // after every start-up line
				break
			}
			time.Sleep(25 * time.Millisecond)
		}
		return out.String()
	}
	log := start(caps)
	if !strings.Contains(log, "user_writes_limited=true") {
		t.Errorf("with the unit's capabilities %v, mailnfsd did not open its export with users' writes limited:\n%s", caps, log)
	}
	without := slices.DeleteFunc(slices.Clone(caps), func(c string) bool { return c == "CAP_SETUID" })
	log = start(without)
	if !strings.Contains(log, "user_writes_limited=false") || !strings.Contains(log, "no CAP_SETUID") {
		t.Errorf("without CAP_SETUID, mailnfsd did not warn that users' writes are not limited:\n%s", log)
	}
}

// TestServicesStartAfterRpcbind checks that both service files order
// mailnfsd after the system's rpcbind. With -portmap-port 0 (the
// documented way to keep the system's rpcbind) mailnfsd registers with
// rpcbind once, at start, and never again: started before it, it serves
// but no client finds it through the portmapper (rpcinfo -p lists no
// nfs or mountd). FreeBSD's rcorder and systemd order only what the
// files say, as FreeBSD's mountd says "REQUIRE: rpcbind".
func TestServicesStartAfterRpcbind(t *testing.T) {
	rc, err := os.ReadFile("freebsd/mailnfsd")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^# REQUIRE:(.*)$`).FindStringSubmatch(string(rc))
	if m == nil || !slices.Contains(strings.Fields(m[1]), "rpcbind") {
		t.Errorf("the rc.d script's REQUIRE line does not name rpcbind: %q", m)
	}
	unit, err := os.ReadFile("systemd/mailnfsd.service")
	if err != nil {
		t.Fatal(err)
	}
	var after []string
	for _, m := range regexp.MustCompile(`(?m)^After=(.*)$`).FindAllStringSubmatch(string(unit), -1) {
		after = append(after, strings.Fields(m[1])...)
	}
	for _, want := range []string{"rpcbind.socket", "rpcbind.service"} {
		if !slices.Contains(after, want) {
			t.Errorf("the systemd unit is not ordered After=%s (After: %v)", want, after)
		}
	}
}

// TestSystemdReloadChecks runs the systemd unit's ExecReload= lines as
// systemd does (in order, the first failure failing the reload) against a
// running mailnfsd. A broken exports file must fail `systemctl reload`
// with its file:line:col, as `service mailnfsd reload` does on FreeBSD
// (reload_precmd); the unit only sent SIGHUP, so the reload reported
// success while mailnfsd kept the old rules, and the error was in the
// journal only. A good file reloads.
func TestSystemdReloadChecks(t *testing.T) {
	nfsdtest.RequireRoot(t)
	unit, err := os.ReadFile("systemd/mailnfsd.service")
	if err != nil {
		t.Fatal(err)
	}
	var reload []string
	for _, m := range regexp.MustCompile(`(?m)^ExecReload=(.*)$`).FindAllStringSubmatch(string(unit), -1) {
		reload = append(reload, m[1])
	}
	if len(reload) == 0 {
		t.Fatal("the unit has no ExecReload")
	}
	bin := build(t)
	dir := t.TempDir()
	export := filepath.Join(dir, "mail1")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	exports := filepath.Join(dir, "exports")
	writeExports := func(text string) {
		t.Helper()
		if err := os.WriteFile(exports, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	writeExports(export + " -network 127.0.0.0/8\n")
	state := filepath.Join(dir, "state")
	d := exec.Command(filepath.Join(bin, "mailnfsd"), "-exports", exports, "-state-dir", state,
		"-listen", "127.0.0.1", "-nfs-port", "0", "-portmap-port", "0")
	var log logtest.Buffer
	d.Stdout, d.Stderr = &log, &log
	if err := d.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { d.Process.Kill(); d.Wait() }()
	waitLog := func(what string) {
		t.Helper()
		for range 400 {
			if strings.Contains(log.String(), what) {
				return
			}
			time.Sleep(25 * time.Millisecond)
		}
		t.Fatalf("mailnfsd did not log %q:\n%s", what, log.String())
	}
	waitLog("mailnfsd serving")

	// systemctl reload: each line with the unit's variables, as systemd
	// expands them (${X} and $X; the unit quotes nothing).
	vars := map[string]string{
		"MAILNFSD_EXPORTS": exports, "STATE_DIRECTORY": state, "MAILNFSD_FLAGS": "",
		"MAINPID": strconv.Itoa(d.Process.Pid),
	}
	systemctlReload := func() (string, error) {
		var out bytes.Buffer
		for _, line := range reload {
			line = strings.ReplaceAll(line, "@SBINDIR@", bin)
			line = regexp.MustCompile(`\$\{?([A-Z_]+)\}?`).ReplaceAllStringFunc(line, func(v string) string {
				return vars[strings.Trim(v, "${}")]
			})
			args := strings.Fields(line)
			cmd := exec.Command(args[0], args[1:]...)
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Run(); err != nil {
				return out.String(), err
			}
		}
		return out.String(), nil
	}

	writeExports(export + " -network 127.0.0.0/8\n" + export + "/sub -netwrk 10.0.0.0/8\n")
	out, err := systemctlReload()
	if err == nil {
		t.Errorf("systemctl reload with a broken exports file succeeded; want it to fail with the file's errors (output %q)", out)
	} else if !strings.Contains(out, exports+":2:") {
		t.Errorf("systemctl reload with a broken exports file failed without naming %s:2:col:\n%s", exports, out)
	}

	writeExports(export + " -network 127.0.0.0/8 -ro\n")
	if out, err := systemctlReload(); err != nil {
		t.Fatalf("systemctl reload with a good exports file: %v\n%s", err, out)
	}
	waitLog("exports and hosts_access reloaded")
}
