package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/internal/logtest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/portmap"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

func writeFile(t *testing.T, path, text string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
		t.Fatal(err)
	}
}

func TestCheckConfig(t *testing.T) {
	dir := t.TempDir()
	export := filepath.Join(dir, "mail")
	if err := os.Mkdir(export, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(export, "sub"), 0o755); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(dir, "exports")
	cases := []struct {
		name     string
		text     string
		code     int
		out, err string
	}{
		{"Good", "# mail\n" + export + " -network 10.1.2.0 -mask 255.255.255.0\n", 0,
			file + ": OK, 1 exports, 1 rules\n" + export + "\t10.1.2.0/24 rw squash=root->65534:65534 (" + file + ":2:1)\n", ""},
		{"BadMask", "# mail\n\n" + export + " -network 10.1.2.0 -mask foo\n", 1,
			"", fmt.Sprintf("%s:3:%d: -mask needs a dotted netmask like 255.255.255.0, got \"foo\"\n", file, len(export)+26)},
		{"TwoErrors", "/a -frob\n" + export + "(rw)\n", 1,
			"", file + ":1:4: unknown FreeBSD export option -frob; known: -alldirs, -compress, -mapall, -maproot, -mask, -network, -o, -quiet, -r, -ro, -sec\n" +
				file + ":2:1: options need a client before them: write " + export + " *(rw) for everyone (quote a path that contains \"(\")\n"},
		{"Compress", export + " 127.0.0.1(rw,compress=zstd)\n", 0,
			file + ": OK, 1 exports, 1 rules\n" + export + "\t127.0.0.1 rw squash=root->65534:65534 (per id) alldirs compress=zstd (" + file + fmt.Sprintf(":1:%d)\n", len(export)+2), ""},
		{"CompressOverlap", export + " 127.0.0.1(rw,compress=zstd)\n" + export + "/sub 127.0.0.1(rw)\n", 1,
			"", file + ":1:1: export " + export + " (compress=zstd) and " + export + "/sub (" + file + ":2:1) hold the same files: each would get a store of its own, whose compression worker does not hold a file against the other's calls (writes through one during a rewrite by the other are lost); export only one of them, or directories that do not overlap\n"},
		{"CompressUnknown", export + " -compress=lz4 127.0.0.1\n", 1,
			"", fmt.Sprintf("%s:1:%d: -compress supports only zstd, got \"lz4\"\n", file, len(export)+12)},
		{"AmbiguousLine", export + " 10.1.2.3\n", 0,
			file + ": OK, 1 exports, 1 rules\n" + export + "\t10.1.2.3 rw squash=root->65534:65534 (" + file + ":1:1)\n" +
				"warning: " + file + ":1:1: read as FreeBSD exports(5): " + export + " is read-write for 10.1.2.3 (root squashed), but Linux reads this line as read-only; " +
				"write " + export + " 10.1.2.3(ro) for Linux's read-only, or " + export + " 10.1.2.3(rw) to keep read-write\n", ""},
		{"LinuxNetworkWithoutOptions", export + " 10.1.2.0/24\n", 0,
			file + ": OK, 1 exports, 1 rules\n" + export + "\t10.1.2.0/24 ro squash=root->65534:65534 (per id) alldirs (" + file + fmt.Sprintf(":1:%d)\n", len(export)+2) +
				"warning: " + file + fmt.Sprintf(":1:%d: ", len(export)+2) + "10.1.2.0/24 has no options, so it gets Linux's defaults: read-only, root squashed (exports(5)); write 10.1.2.0/24(rw) if its clients deliver mail, or 10.1.2.0/24(ro) to say read-only\n", ""},
		{"MountpointNotMounted", export + " 127.0.0.1(rw,mp)\n", 0,
			file + ": OK, 1 exports, 1 rules\n" + export + "\t127.0.0.1 rw squash=root->65534:65534 (per id) alldirs mountpoint=" + export + " (" + file + fmt.Sprintf(":1:%d)\n", len(export)+2) +
				"warning: " + file + fmt.Sprintf(":1:%d: ", len(export)+15) + "export " + export + " is not served: " + export + " is not a mount point (mp); mount its file system, then reload (SIGHUP)\n", ""},
		{"NotHonouredOptions", export + " 127.0.0.1(rw,subtree_check,sec=krb5:sys)\n", 0,
			file + ": OK, 1 exports, 1 rules\n" + export + "\t127.0.0.1 rw squash=root->65534:65534 (per id) alldirs (" + file + fmt.Sprintf(":1:%d)\n", len(export)+2) +
				"warning: " + file + fmt.Sprintf(":1:%d: ", len(export)+15) + "subtree_check is accepted but not honoured: mailnfsd works as no_subtree_check (Linux's default), so a handle it handed out stays valid for a file moved out of the export on the same file system\n" +
				"warning: " + file + fmt.Sprintf(":1:%d: ", len(export)+33) + "sec flavor \"krb5\" is not served: this server speaks sys (AUTH_SYS), which the list also allows, so clients use that\n", ""},
		{"MissingDirectory", export + "/nosuch 127.0.0.1\n", 1,
			"", file + ":1:1: export " + export + "/nosuch: no such file or directory\n"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			writeFile(t, file, tc.text)
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"-check-config", "-exports", file, "-listen", "10.1.2.1"}, &stdout, &stderr)
			if code != tc.code || stdout.String() != tc.out || stderr.String() != tc.err {
				t.Fatalf("exit %d (want %d)\nstdout:\n%s\nwant:\n%s\nstderr:\n%s\nwant:\n%s", code, tc.code, &stdout, tc.out, &stderr, tc.err)
			}
		})
	}
	check := func(t *testing.T, args ...string) (int, string, string) {
		t.Helper()
		var stdout, stderr bytes.Buffer
		code := run(context.Background(), append([]string{"-check-config"}, args...), &stdout, &stderr)
		return code, stdout.String(), stderr.String()
	}
	t.Run("HostsAllow", func(t *testing.T) {
		writeFile(t, file, export+" -network 10.1.2.0 -mask 255.255.255.0\n")
		allow := filepath.Join(dir, "hosts.allow")
		writeFile(t, allow, "ALL : localhost : allow\nrpcbind mountd : 10.1.2.0/255.255.255.0 : allow\nrpcbind mountd : ALL : deny\n")
		code, out, errOut := check(t, "-exports", file, "-listen", "10.1.2.1", "-hosts-allow", allow, "-hosts-deny", "none")
		want := allow + ": OK, 3 hosts_access rules (MOUNT checked: true, NFS checked: false)\n"
		if code != 0 || !strings.HasSuffix(out, want) || errOut != "" {
			t.Fatalf("exit %d\nstdout:\n%s\nwant suffix:\n%s\nstderr:\n%s", code, out, want, errOut)
		}
		// A broken hosts.allow fails the check with file:line:col, even
		// when the exports are fine.
		writeFile(t, allow, "# storage box\nrpcbind : 10.1.2.0/255.255.0.255 : allow\n")
		code, out, errOut = check(t, "-exports", file, "-listen", "10.1.2.1", "-hosts-allow", allow, "-hosts-deny", "none")
		want = allow + ":2:20: network \"10.1.2.0/255.255.0.255\": expected a netmask (255.255.255.0) or prefix length 0..32 after \"/\"\n"
		if code != 1 || out != "" || errOut != want {
			t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s\nwant:\n%s", code, out, errOut, want)
		}
		// The classic pair: hosts.deny beside hosts.allow is checked too.
		writeFile(t, allow, "rpcbind : 10.1.2.0/24\n")
		writeFile(t, filepath.Join(dir, "hosts.deny"), "rpcbind : ALL EXCEPT\n")
		code, _, errOut = check(t, "-exports", file, "-listen", "10.1.2.1", "-hosts-allow", allow)
		if code != 1 || !strings.Contains(errOut, filepath.Join(dir, "hosts.deny")+":1:15: expected a client pattern after EXCEPT") {
			t.Fatalf("hosts.deny error: exit %d\n%s", code, errOut)
		}
		if code, _, errOut = check(t, "-exports", file, "-hosts-allow", filepath.Join(dir, "nosuch")); code != 1 || !strings.Contains(errOut, "no such file") {
			t.Fatalf("missing hosts.allow: exit %d\n%s", code, errOut)
		}
	})
	t.Run("PublicWarnings", func(t *testing.T) {
		writeFile(t, file, export+" -network 84.201.31.0 -mask 255.255.255.0\n"+export+" -ro\n")
		code, out, errOut := check(t, "-exports", file, "-listen", "84.201.31.1")
		for _, want := range []string{
			"warning: private network guard: listening on public address 84.201.31.1",
			"warning: private network guard: " + file + ":1:1: export " + export + " admits 84.201.31.0/24, outside private networks",
			"warning: private network guard: " + file + ":2:1: export " + export + " admits everyone",
		} {
			if !strings.Contains(out, want) {
				t.Errorf("stdout lacks %q:\n%s", want, out)
			}
		}
		if code != 0 || errOut != "" {
			t.Fatalf("warnings must not fail the check: exit %d\n%s", code, errOut)
		}
	})
	t.Run("BadListen", func(t *testing.T) {
		// The server refuses these at start (exit 2): the check must
		// not pass them.
		writeFile(t, file, export+" 10.1.2.0/24(rw)\n")
		for _, listen := range []string{"storage1", "10.1.2.1,fd00::1", "[fd00::1]"} {
			code, out, errOut := check(t, "-exports", file, "-listen", listen)
			if code != 2 || !strings.Contains(errOut, "is not an IP address") {
				t.Errorf("-listen %s: exit %d, want 2\nstdout:\n%s\nstderr:\n%s", listen, code, out, errOut)
			}
		}
	})
	t.Run("MissingFile", func(t *testing.T) {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), []string{"-check-config", "-exports", filepath.Join(dir, "nosuch")}, &stdout, &stderr); code != 1 {
			t.Fatalf("exit %d, stderr %s", code, &stderr)
		}
		if !strings.Contains(stderr.String(), "no such file or directory") {
			t.Fatalf("stderr: %s", &stderr)
		}
	})
}

func TestBadFlags(t *testing.T) {
	for _, args := range [][]string{
		{"-nosuchflag"},
		{"extra-argument"},
		{"-log-level", "loud"},
		{"-log-format", "xml"},
		{"-nfs-port", "70000", "-exports", "/dev/null"},
		{"-listen", "localhost", "-exports", "/dev/null"},
		// A -metrics that is no host:port fails -check-config (the
		// unit's ExecStartPre) as it fails the start; it passed the
		// check, and the start then failed (exit 1) in a restart loop.
		{"-metrics", "9139", "-exports", "/dev/null"},
		{"-check-config", "-metrics", "9139", "-exports", "/dev/null"},
		{"-check-config", "-metrics", "127.0.0.1:99999", "-exports", "/dev/null"},
	} {
		var stdout, stderr bytes.Buffer
		if code := run(context.Background(), args, &stdout, &stderr); code != 2 {
			t.Errorf("%q: exit %d, want 2; stderr %s", args, code, &stderr)
		}
		if stderr.Len() == 0 {
			t.Errorf("%q: nothing on stderr", args)
		}
	}
}

// freePorts returns n ports free on 127.0.0.1 for both TCP and UDP.
func freePorts(t *testing.T, n int) []int {
	t.Helper()
	var ports []int
	var hold []func() error
	defer func() {
		for _, c := range hold {
			c()
		}
	}()
	for len(ports) < n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		hold = append(hold, ln.Close)
		p := ln.Addr().(*net.TCPAddr).Port
		pc, err := net.ListenPacket("udp", "127.0.0.1:"+strconv.Itoa(p))
		if err != nil {
			continue
		}
		hold = append(hold, pc.Close)
		ports = append(ports, p)
	}
	return ports
}

// proc is a mailnfsd process.
type proc struct {
	cmd    *exec.Cmd
	stdout logtest.Buffer
	stderr logtest.Buffer
	done   chan struct{} // closed when the process has exited
	err    error         // Wait's result, set before done closes
}

func startBinary(t *testing.T, args ...string) *proc {
	t.Helper()
	return startCmd(t, exec.Command(nfsdtest.Binary(t), args...))
}

// startCmd starts cmd, a mailnfsd command, as startBinary does.
func startCmd(t *testing.T, cmd *exec.Cmd) *proc {
	t.Helper()
	p := &proc{cmd: cmd, done: make(chan struct{})}
	p.cmd.Stdout, p.cmd.Stderr = &p.stdout, &p.stderr
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		p.err = p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		select {
		case <-p.done:
		default:
			p.cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// exitCode waits for the process and returns its exit code.
func (p *proc) exitCode(t *testing.T) int {
	t.Helper()
	select {
	case <-p.done:
	case <-time.After(30 * time.Second):
		t.Fatalf("mailnfsd did not exit\n%s", p.stderr.String())
	}
	var ee *exec.ExitError
	if errors.As(p.err, &ee) {
		return ee.ExitCode()
	}
	if p.err != nil {
		t.Fatal(p.err)
	}
	return 0
}

// waitListening waits until every port accepts TCP connections.
func (p *proc) waitListening(t *testing.T, ports ...int) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for _, port := range ports {
		for {
			c, err := net.DialTimeout("tcp", "127.0.0.1:"+strconv.Itoa(port), time.Second)
			if err == nil {
				c.Close()
				break
			}
			select {
			case <-p.done:
				t.Fatalf("mailnfsd exited: %v\n%s", p.err, p.stderr.String())
			default:
			}
			if time.Now().After(deadline) {
				t.Fatalf("mailnfsd not listening on %d: %v\n%s", port, err, p.stderr.String())
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
}

// dialAsRoot mounts export through the portmapper on pmPort as uid 0
// with the client library; the test fails, with p's log, if it cannot.
// The client is closed when the test ends.
func (p *proc) dialAsRoot(ctx context.Context, t *testing.T, pmPort int, export string) *client.Client {
	t.Helper()
	c, err := client.Dial(ctx, "nfs://127.0.0.1:"+strconv.Itoa(pmPort)+export+"?uid=0&gid=0", client.Options{})
	if err != nil {
		t.Fatalf("%v\n%s", err, p.stderr.String())
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// reload sends SIGHUP and waits (10 s at most) for the line that says
// the reload ran or failed.
func (p *proc) reload(t *testing.T) {
	t.Helper()
	n := strings.Count(p.stderr.String(), "reload")
	p.cmd.Process.Signal(syscall.SIGHUP)
	for deadline := time.Now().Add(10 * time.Second); strings.Count(p.stderr.String(), "reload") == n; {
		if time.Now().After(deadline) {
			t.Fatalf("no reload line after SIGHUP:\n%s", p.stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// stop sends sig and returns the exit code.
func (p *proc) stop(t *testing.T, sig os.Signal) int {
	t.Helper()
	if err := p.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	return p.exitCode(t)
}

func TestCheckConfigBinary(t *testing.T) {
	file := filepath.Join(t.TempDir(), "exports")
	writeFile(t, file, "/srv/mail -network 10.1.2.0 -mask foo\n")
	p := startBinary(t, "-check-config", "-exports", file)
	if code := p.exitCode(t); code != 1 {
		t.Fatalf("exit %d, want 1", code)
	}
	want := file + ":1:35: -mask needs a dotted netmask like 255.255.255.0, got \"foo\"\n"
	if p.stderr.String() != want {
		t.Fatalf("stderr:\n%s\nwant:\n%s", &p.stderr, want)
	}
}

func TestBinaryServes(t *testing.T) {
	nfsdtest.RequireRoot(t)
	dir := t.TempDir()
	export, other := filepath.Join(dir, "export"), filepath.Join(dir, "other")
	for _, d := range []string{export, other} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exports := filepath.Join(dir, "exports")
	writeFile(t, exports, export+" -network 127.0.0.0/8\n")
	ports := freePorts(t, 3)
	nfsPort, mountPort, pmPort := ports[0], ports[1], ports[2]
	// Loopback callers of the portmapper are never checked; MOUNT and NFS
	// are, because mountd and nfsd are named.
	hostsAllow := filepath.Join(dir, "hosts.allow")
	writeFile(t, hostsAllow, "ALL : localhost : allow\nrpcbind mountd nfsd : ALL : deny\n")
	p := startBinary(t, "-exports", exports, "-state-dir", filepath.Join(dir, "state"),
		"-listen", "127.0.0.1", "-nfs-port", strconv.Itoa(nfsPort), "-mount-port", strconv.Itoa(mountPort),
		"-portmap-port", strconv.Itoa(pmPort), "-hosts-allow", hostsAllow, "-log-format", "json")
	p.waitListening(t, nfsPort, mountPort, pmPort)

	addr := func(port int) netip.AddrPort {
		return netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port))
	}
	for _, network := range []string{"tcp", "udp"} {
		nfsdtest.Dial(t, network, addr(nfsPort)).Null(t, nfs3.Program, nfs3.Version)
		m := nfsdtest.Dial(t, network, addr(mountPort))
		m.Null(t, nfs3.MountProgram, nfs3.MountV1)
		m.Null(t, nfs3.MountProgram, nfs3.MountV3)
		pm := nfsdtest.Dial(t, network, addr(pmPort))
		pm.Null(t, portmap.Prog, portmap.V2)
		// The portmapper knows where NFS and MOUNT are.
		for _, q := range []struct{ prog, vers, port int }{{nfs3.Program, 3, nfsPort}, {nfs3.MountProgram, 1, mountPort}, {nfs3.MountProgram, 3, mountPort}} {
			prot := uint32(6)
			if network == "udp" {
				prot = 17
			}
			d, err := pm.Call(portmap.Prog, portmap.V2, portmap.PmapProcGetPort, nfsdtest.AuthNone, func(e *xdr.Encoder) {
				e.Uint32(uint32(q.prog))
				e.Uint32(uint32(q.vers))
				e.Uint32(prot)
				e.Uint32(0)
			})
			if err != nil {
				t.Fatal(err)
			}
			if got := d.Uint32(); int(got) != q.port || d.Done() != nil {
				t.Errorf("GETPORT %d v%d %s: %d, want %d", q.prog, q.vers, network, got, q.port)
			}
		}
	}

	// SIGHUP re-reads the exports.
	mc := nfsdtest.Dial(t, "tcp", addr(mountPort))
	mntStatus := func(path string) nfs3.MountStat {
		d, err := mc.Call(nfs3.MountProgram, 3, uint32(nfs3.MountProcMnt), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
			(&nfs3.DirPath{Path: path}).Encode(e)
		})
		if err != nil {
			t.Fatal(err)
		}
		var r nfs3.MountRes3
		r.Decode(d)
		return r.Status
	}
	if st := mntStatus(other); st != nfs3.MountAcces {
		t.Fatalf("MNT %s before SIGHUP: %v", other, st)
	}
	writeFile(t, exports, export+" -network 127.0.0.0/8\n"+other+" 127.0.0.1(rw)\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(10 * time.Second)
	for mntStatus(other) != nfs3.MountOK {
		if time.Now().After(deadline) {
			t.Fatalf("MNT %s still refused after SIGHUP\n%s", other, p.stderr.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	// A broken file keeps the rules in force.
	writeFile(t, exports, "/x -mask foo\n")
	p.cmd.Process.Signal(syscall.SIGHUP)
	time.Sleep(200 * time.Millisecond)
	if st := mntStatus(other); st != nfs3.MountOK {
		t.Fatalf("MNT %s after a broken reload: %v", other, st)
	}

	if code := p.stop(t, syscall.SIGTERM); code != 0 {
		t.Fatalf("exit %d after SIGTERM\n%s", code, p.stderr.String())
	}
	// The JSON log names the hosts_access warning, the broken reload and
	// the stop; check the stream is JSON lines, without relying on wording.
	for _, line := range strings.Split(strings.TrimSpace(p.stderr.String()), "\n") {
		if !strings.HasPrefix(line, "{") {
			t.Errorf("not a JSON log line: %s", line)
		}
	}
	if _, err := mc.Call(nfs3.MountProgram, 3, 0, nfsdtest.AuthNone, nil); err == nil {
		t.Fatal("MOUNT still answers after SIGTERM")
	}
}

func TestDemo(t *testing.T) {
	nfsdtest.RequireRoot(t)
	nfsLs, err := exec.LookPath("nfs-ls")
	if err != nil {
		t.Fatalf("nfs-ls (libnfs-utils) is required: run make deps: %v", err)
	}
	dir := t.TempDir()
	ports := freePorts(t, 2)
	p := startBinary(t, "-demo", dir, "-nfs-port", strconv.Itoa(ports[0]), "-portmap-port", strconv.Itoa(ports[1]))
	p.waitListening(t, ports...)
	md := filepath.Join(dir, "export", demoMaildir)
	msgs, err := os.ReadDir(filepath.Join(md, "new"))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("demo Maildir new/: %v %v", msgs, err)
	}
	url := fmt.Sprintf("nfs://127.0.0.1%s/new?version=3&nfsport=%d&mountport=%d", md, ports[0], ports[0])
	// The banner is printed once the daemon serves; wait for it.
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stdout.String(), "Stop with") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	for _, want := range []string{url,
		fmt.Sprintf("mount -t nfs -o vers=3,tcp,nolock,port=%d,mountport=%d 127.0.0.1:%s/export /mnt", ports[0], ports[0], dir),
		// mailnfsd serves no lock manager: FreeBSD needs nolockd as Linux nolock.
		fmt.Sprintf("mount -t nfs -o nfsv3,tcp,nolockd,port=%d 127.0.0.1:%s/export /mnt", ports[0], dir)} {
		if !strings.Contains(p.stdout.String(), want) {
			t.Errorf("banner lacks %q:\n%s", want, p.stdout.String())
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, nfsLs, url).CombinedOutput()
	if err != nil || !strings.Contains(string(out), msgs[0].Name()) {
		t.Fatalf("nfs-ls %s: %v\n%s\nserver log:\n%s", url, err, out, p.stderr.String())
	}
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d after SIGINT\n%s", code, p.stderr.String())
	}
	// A second run finds the Maildir and adds no second message.
	if err := writeDemoMaildir(md); err != nil {
		t.Fatal(err)
	}
	if msgs, _ := os.ReadDir(filepath.Join(md, "new")); len(msgs) != 1 {
		t.Fatalf("second run: %d messages", len(msgs))
	}
}

// TestDemoBannerPorts checks the banner against the ports served: MOUNT
// on a port of its own, and a portmapper not on port 111 (which FreeBSD's
// mount_nfs cannot use: it has no option for the MOUNT port).
func TestDemoBannerPorts(t *testing.T) {
	nfsdtest.RequireRoot(t)
	dir := t.TempDir()
	ports := freePorts(t, 3)
	p := startBinary(t, "-demo", dir, "-nfs-port", strconv.Itoa(ports[0]), "-mount-port", strconv.Itoa(ports[1]),
		"-portmap-port", strconv.Itoa(ports[2]))
	p.waitListening(t, ports...)
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.stdout.String(), "Stop with") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	out := p.stdout.String()
	for _, want := range []string{
		fmt.Sprintf("(NFSv3 on port %d, MOUNT on port %d, portmap on port %d)", ports[0], ports[1], ports[2]),
		fmt.Sprintf("mount -t nfs -o vers=3,tcp,nolock,port=%d,mountport=%d 127.0.0.1:%s/export /mnt", ports[0], ports[1], dir),
		"(needs the portmapper on port 111: mount_nfs finds MOUNT only through it)",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("banner lacks %q:\n%s", want, out)
		}
	}
	for _, wrong := range []string{fmt.Sprintf("NFSv3 and MOUNT on port %d", ports[0]), "through the portmapper on port 111"} {
		if strings.Contains(out, wrong) {
			t.Errorf("banner says %q:\n%s", wrong, out)
		}
	}
	if code := p.stop(t, syscall.SIGINT); code != 0 {
		t.Fatalf("exit %d after SIGINT\n%s", code, p.stderr.String())
	}
}

func TestProcs(t *testing.T) {
	if got := procs(3); got != 3 {
		t.Errorf("procs(3) = %d", got)
	}
	t.Setenv("GOMAXPROCS", "") // restored after the test
	os.Unsetenv("GOMAXPROCS")
	n := runtime.GOMAXPROCS(0)
	if got, want := procs(0), min(4*n, n+16); got != want {
		t.Errorf("procs(0) = %d, want four per CPU up to CPUs+16, %d", got, want)
	}
	t.Setenv("GOMAXPROCS", "5")
	if got, want := procs(0), runtime.GOMAXPROCS(0); got != want {
		t.Errorf("procs(0) with $GOMAXPROCS = %d, want the runtime's %d", got, want)
	}
}

// TestUsage checks that mailnfsd -h, where an operator looks first, names
// what the flag list cannot: the compact and expand subcommands, the
// MAILNFSD_PPROF variable, the signals and the exit status.
func TestUsage(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run(context.Background(), []string{"-h"}, &stdout, &stderr); code != 0 {
		t.Fatalf("-h: exit %d, want 0; stderr %s", code, &stderr)
	}
	for _, want := range []string{"mailnfsd compact", "mailnfsd expand", "-check-config", "-demo DIR",
		pprofEnv, "SIGHUP", "SIGTERM", "Exit status", "  -state-dir directory"} {
		if !strings.Contains(stderr.String(), want) {
			t.Errorf("mailnfsd -h does not mention %q:\n%s", want, &stderr)
		}
	}
}
