package interop

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/maildirfs"
)

// syscallEvent is one system call in an strace -f -yy -xx log, with the
// line numbers where it started and where it returned (the same line unless
// strace split it into "<unfinished ...>" and "<... resumed>").
type syscallEvent struct {
	pid        int
	name       string
	start, end int
	text       string // the whole call, both halves joined
	fdPath     string // the decoded <...> annotation of the first argument
}

var (
	straceStart   = regexp.MustCompile(`^(\d+)\s+([a-z_0-9]+)\((.*)$`)
	straceResumed = regexp.MustCompile(`^(\d+)\s+<\.\.\. ([a-z_0-9]+) resumed>(.*)$`)
	hexEscape     = regexp.MustCompile(`\\x([0-9a-f]{2})`)
)

// decodeStraceString turns strace -xx escapes back into bytes.
func decodeStraceString(s string) string {
	return hexEscape.ReplaceAllStringFunc(s, func(m string) string {
		v, _ := strconv.ParseUint(m[2:], 16, 8)
		return string([]byte{byte(v)})
	})
}

// parseStrace reads an strace log into completed calls, in start order.
func parseStrace(t *testing.T, path string) []syscallEvent {
	t.Helper()
	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var events []syscallEvent
	pending := map[int]int{} // pid -> index in events of its unfinished call
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	line := 0
	for sc.Scan() {
		line++
		l := sc.Text()
		if m := straceResumed.FindStringSubmatch(l); m != nil {
			pid, _ := strconv.Atoi(m[1])
			if i, ok := pending[pid]; ok && events[i].name == m[2] {
				events[i].end = line
				events[i].text += m[3]
				delete(pending, pid)
			}
			continue
		}
		m := straceStart.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		pid, _ := strconv.Atoi(m[1])
		ev := syscallEvent{pid: pid, name: m[2], start: line, end: line, text: m[3]}
		// First argument "7<\x2f...>": the fd and its decoded path.
		if a := ev.text; a != "" {
			if lt := strings.IndexByte(a, '<'); lt >= 0 && lt < 12 {
				if gt := strings.IndexByte(a[lt:], '>'); gt > 0 {
					ev.fdPath = decodeStraceString(a[lt+1 : lt+gt])
				}
			}
		}
		if strings.HasSuffix(l, "<unfinished ...>") {
			pending[pid] = len(events)
			ev.end = -1
		}
		events = append(events, ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return events
}

// xidPattern is how strace -xx prints the 4 bytes of xid.
func xidPattern(xid uint32) string {
	var b [4]byte
	binary.BigEndian.PutUint32(b[:], xid)
	return fmt.Sprintf(`\x%02x\x%02x\x%02x\x%02x`, b[0], b[1], b[2], b[3])
}

// window finds the server's socket read that received call xid and the
// socket write that sent its reply, and returns the calls in between: those
// that started after the request arrived and finished before the reply
// left.
func window(t *testing.T, events []syscallEvent, xid uint32, what string) []syscallEvent {
	t.Helper()
	pat := xidPattern(xid)
	readEnd, writeStart := -1, -1
	for _, ev := range events {
		if !strings.Contains(ev.fdPath, "TCP") || !strings.Contains(ev.text, pat) {
			continue
		}
		switch ev.name {
		case "read", "recvfrom", "recvmsg", "readv":
			if readEnd < 0 {
				readEnd = ev.end
			}
		case "write", "writev", "sendmsg", "sendto":
			if writeStart < 0 && readEnd >= 0 {
				writeStart = ev.start
			}
		}
	}
	if readEnd < 0 || writeStart < 0 {
		t.Fatalf("%s (xid %#x): request read at line %d, reply write at line %d in the strace log", what, xid, readEnd, writeStart)
	}
	var in []syscallEvent
	for _, ev := range events {
		if ev.start > readEnd && ev.end >= 0 && ev.end < writeStart {
			in = append(in, ev)
		}
	}
	return in
}

// isSyncOf reports whether ev makes the file or directory at path durable.
func isSyncOf(ev syscallEvent, path string) bool {
	switch ev.name {
	case "fsync", "fdatasync":
		return ev.fdPath == path && strings.HasSuffix(strings.TrimSpace(ev.text), "= 0")
	case "syncfs":
		return strings.HasSuffix(strings.TrimSpace(ev.text), "= 0")
	}
	return false
}

func describe(evs []syscallEvent) string {
	var b strings.Builder
	for _, ev := range evs {
		if ev.name == "read" || ev.name == "write" {
			continue
		}
		fmt.Fprintf(&b, "  line %d-%d: %s(%s) %s\n", ev.start, ev.end, ev.name, ev.fdPath, ev.text)
	}
	if b.Len() == 0 {
		return "  (no sync or rename calls)\n"
	}
	return b.String()
}

// TestDurabilityStrace runs the server under strace and checks, call by
// call, that the reply to WRITE FILE_SYNC and to COMMIT left only after an
// fsync of the file, that CREATE synced the directory, and that RENAME
// synced both directories after the rename itself (docs/design.md
// "Durability"). Where one sync commits a whole operation (a journalled
// file system under TMPDIR, maildirfs.CommitModel), CREATE must sync the
// new file and RENAME the target directory.
func TestDurabilityStrace(t *testing.T) {
	s := startServer(t, serverOpts{strace: true, setup: func(t *testing.T, root string) { makeMaildir(t, root) }})
	oneSync := commitModel(t).OneSync

	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	root, c := mountRaw(ctx, t, s)
	tmp, err := c.lookupPath(root, "Maildir", "tmp")
	if err != nil {
		t.Fatal(err)
	}
	newDir, err := c.lookupPath(root, "Maildir", "new")
	if err != nil {
		t.Fatal(err)
	}
	tmpPath := filepath.Join(s.root, "Maildir", "tmp")
	newPath := filepath.Join(s.root, "Maildir", "new")

	type step struct {
		what string
		xid  uint32
		// syncs lists the paths that must be synced between request and reply.
		syncs []string
		// rename requires a successful rename before the syncs.
		rename bool
	}
	var steps []step
	const rounds = 5
	body := []byte(strings.Repeat("durable mail line\r\n", 200))
	for i := 0; i < rounds; i++ {
		name := fmt.Sprintf("170000000%d.M%d.durable", i, i)
		filePath := filepath.Join(tmpPath, name)

		xid := c.nextXID()
		fh, err := c.create(tmp, name)
		if err != nil {
			t.Fatal(err)
		}
		createSyncs := []string{tmpPath}
		if oneSync {
			createSyncs = []string{filePath}
		}
		steps = append(steps, step{what: "CREATE " + name, xid: xid, syncs: createSyncs})

		if i%2 == 0 {
			xid = c.nextXID()
			if _, err := c.write(fh, 0, body, nfs3.FileSync); err != nil {
				t.Fatal(err)
			}
			steps = append(steps, step{what: "WRITE FILE_SYNC " + name, xid: xid, syncs: []string{filePath}})
		} else {
			if _, err := c.write(fh, 0, body, nfs3.Unstable); err != nil {
				t.Fatal(err)
			}
			xid = c.nextXID()
			if err := c.commit(fh); err != nil {
				t.Fatal(err)
			}
			steps = append(steps, step{what: "COMMIT " + name, xid: xid, syncs: []string{filePath}})
		}

		xid = c.nextXID()
		if err := c.rename(tmp, name, newDir, name); err != nil {
			t.Fatal(err)
		}
		renameSyncs := []string{newPath, tmpPath}
		if oneSync {
			renameSyncs = []string{newPath}
		}
		steps = append(steps, step{what: "RENAME " + name, xid: xid, syncs: renameSyncs, rename: true})
	}
	c.Close()
	if err := s.stop(); err != nil {
		t.Logf("server exit: %v", err)
	}
	events := parseStrace(t, s.straceLog)
	if len(events) == 0 {
		t.Fatal("strace log is empty")
	}

	for _, st := range steps {
		t.Run(strings.Fields(st.what)[0], func(t *testing.T) {
			in := window(t, events, st.xid, st.what)
			after := 0 // syncs must follow the rename when there is one
			if st.rename {
				after = -1
				for _, ev := range in {
					if strings.HasPrefix(ev.name, "rename") && strings.HasSuffix(strings.TrimSpace(ev.text), "= 0") {
						after = ev.end
						break
					}
				}
				if after < 0 {
					t.Fatalf("%s: no successful rename between request and reply:\n%s", st.what, describe(in))
				}
			}
			for _, p := range st.syncs {
				ok := false
				for _, ev := range in {
					if ev.start > after && isSyncOf(ev, p) {
						ok = true
						break
					}
				}
				if !ok {
					t.Errorf("%s: reply sent without an fsync of %s first; calls between request and reply:\n%s", st.what, p, describe(in))
				}
			}
		})
	}
}

// commitModel is the commit model maildirfs uses on the file system under
// TMPDIR, where startServer puts its exports.
func commitModel(t *testing.T) maildirfs.CommitModel {
	t.Helper()
	dir := t.TempDir()
	fs, err := maildirfs.Open(dir, maildirfs.Options{StateDir: filepath.Join(t.TempDir(), "state")})
	if err != nil {
		t.Fatal(err)
	}
	defer fs.Close()
	return fs.CommitModel()
}
