package main

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestJournalPriorities runs mailnfsd as systemd does, its stderr the
// journal's stream named by JOURNAL_STREAM, and checks that each line
// starts with its syslog priority (<3> error, <4> warning, <6> info),
// which journald reads: before, every line was at the stream's level
// (info), so `journalctl -p err -u mailnfsd` listed none of mailnfsd's
// errors (an export not served because it is not mounted, a failed
// reload). With another stderr the lines are unchanged.
func TestJournalPriorities(t *testing.T) {
	nfsdtest.RequireRoot(t)
	dir := t.TempDir()
	served, unmounted := filepath.Join(dir, "mail1"), filepath.Join(dir, "mail2")
	for _, d := range []string{served, unmounted} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	exports := filepath.Join(dir, "exports")
	// mail2 says mp and is no mount point: logged at error, not served.
	writeFile(t, exports, served+" 127.0.0.1(rw)\n"+unmounted+" 127.0.0.1(rw,mp)\n")

	for _, journal := range []bool{true, false} {
		r, w, err := os.Pipe()
		if err != nil {
			t.Fatal(err)
		}
		var st unix.Stat_t
		if err := unix.Fstat(int(w.Fd()), &st); err != nil {
			t.Fatal(err)
		}
		ports := freePorts(t, 2)
		cmd := exec.Command(nfsdtest.Binary(t), "-exports", exports, "-state-dir", filepath.Join(dir, "state"+strconv.FormatBool(journal)),
			"-listen", "127.0.0.1", "-nfs-port", strconv.Itoa(ports[0]), "-portmap-port", strconv.Itoa(ports[1]))
		stream := strconv.FormatUint(uint64(st.Dev), 10) + ":" + strconv.FormatUint(uint64(st.Ino), 10)
		if !journal {
			stream = "1:1" // another stream than stderr
		}
		cmd.Env = append(os.Environ(), "JOURNAL_STREAM="+stream)
		cmd.Stderr = w
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		w.Close()
		lines := make(chan string, 100)
		go func() {
			defer close(lines)
			sc := bufio.NewScanner(r)
			for sc.Scan() {
				lines <- sc.Text()
			}
		}()
		var log []string
		timeout := time.After(30 * time.Second)
	read:
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					break read
				}
				log = append(log, l)
				if strings.Contains(l, "mailnfsd serving") {
					cmd.Process.Signal(syscall.SIGTERM)
				}
			case <-timeout:
				cmd.Process.Kill()
				t.Fatalf("mailnfsd did not serve and stop:\n%s", strings.Join(log, "\n"))
			}
		}
		cmd.Wait()
		r.Close()
		want := map[string]string{
			"is not a mount point":      "<3>",
			"no handle key":             "<4>",
			`msg="mailnfsd serving"`:    "<6>",
			`msg="nfsd: export opened"`: "<6>",
			`msg="mailnfsd stopped"`:    "<6>",
		}
		for sub, prefix := range want {
			if !journal {
				prefix = "time="
			}
			found := false
			for _, l := range log {
				if strings.Contains(l, sub) {
					found = true
					if !strings.HasPrefix(l, prefix) {
						t.Errorf("journal %v: line with %q does not start with %q:\n%s", journal, sub, prefix, l)
					}
				}
			}
			if !found {
				t.Errorf("journal %v: no line with %q:\n%s", journal, sub, strings.Join(log, "\n"))
			}
		}
	}
}
