//go:build linux

package main

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// zMnt is where Config.ZExport, an export that compresses messages at
// rest, is mounted.
const zMnt = "/mnt4"

// runCompressed delivers r.Messages messages into r.Maildir on the
// compressing export, waits until the server has compressed them (their
// used space, st_blocks, drops below half their size), then does to the
// compressed files what a front end may: read them (O_DIRECT and through
// the page cache it filled while writing), flag them into cur/, append,
// truncate, rewrite in the middle, touch -d and hard-link. Each must read
// back as a plain file would, with the mtime of the delivery unless the
// step set it. Failures are reported in Result.Failed, as runPosix does.
func runCompressed(r Run) (*Result, error) {
	t0 := time.Now()
	md := filepath.Join(zMnt, r.Maildir)
	res := &Result{Run: r.Name, UID: os.Getuid(), Steps: map[string]float64{}}
	bodies := map[string][]byte{} // name in new/ -> content
	mtimes := map[string]unix.Timespec{}
	var names []string
	for i := 0; i < r.Messages; i++ {
		body := messageSized(300+i, i, 24<<10+i*1000)
		m, err := deliverBody(md, 300+i, i, body)
		if err != nil {
			return nil, err
		}
		bodies[m.Name] = body
		names = append(names, m.Name)
		st, err := statOpen(filepath.Join(md, "new", m.Name))
		if err != nil {
			return nil, err
		}
		mtimes[m.Name] = st.Mtim
	}
	sort.Strings(names)
	compressed := func(p string, size int) bool {
		st, err := statOpen(p)
		return err == nil && st.Blocks*512 < int64(size)/2
	}
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range names {
		for !compressed(filepath.Join(md, "new", n), len(bodies[n])) {
			if time.Now().After(deadline) {
				return nil, fmt.Errorf("%s: not compressed within 30s", n)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
	res.Steps["wait-compressed"] = time.Since(t0).Seconds()
	// Read each message once through the page cache its delivery filled:
	// bytes the client fetches again are what compression's new ctime
	// cost (for NFSv3 Linux takes ctime as the change attribute).
	r0, err := serverRead(zMnt)
	if err != nil {
		return nil, err
	}
	for _, n := range names {
		if _, err := os.ReadFile(filepath.Join(md, "new", n)); err != nil {
			return nil, err
		}
	}
	r1, err := serverRead(zMnt)
	if err != nil {
		return nil, err
	}
	res.Reread = r1 - r0
	fail := func(format string, args ...any) {
		msg := fmt.Sprintf(format, args...)
		res.Failed = append(res.Failed, msg)
		fmt.Printf("MAILNFS-COMPRESSED failed: %s\n", msg)
	}
	// want checks p's content and, unless mtime is nil, its mtime.
	want := func(what, p string, body []byte, mtime *unix.Timespec) {
		b, err := readDirect(p)
		if err != nil || !bytes.Equal(b, body) {
			fail("%s: O_DIRECT read of %s: %d bytes, %v; want %d", what, p, len(b), err, len(body))
			return
		}
		b, err = os.ReadFile(p)
		if err != nil || !bytes.Equal(b, body) {
			fail("%s: buffered read of %s: %d bytes, %v; want %d", what, p, len(b), err, len(body))
			return
		}
		st, err := statOpen(p)
		if err != nil || st.Size != int64(len(body)) || mtime != nil && st.Mtim != *mtime {
			fail("%s: %s: size %d mtime %v, %v; want %d %v", what, p, st.Size, st.Mtim, err, len(body), mtime)
		}
	}
	for _, n := range names {
		mt := mtimes[n]
		want("compressed", filepath.Join(md, "new", n), bodies[n], &mt)
	}
	// Flag every message into cur/, as an IMAP server does.
	cur := map[string]string{}
	for _, n := range names {
		cur[n] = filepath.Join(md, "cur", n+":2,S")
		if err := os.Rename(filepath.Join(md, "new", n), cur[n]); err != nil {
			return nil, err
		}
		mt := mtimes[n]
		want("flagged", cur[n], bodies[n], &mt)
	}
	step := 0
	next := func() (string, []byte) {
		n := names[step%len(names)]
		step++
		return cur[n], bodies[n]
	}
	t1 := time.Now()
	{ // O_APPEND
		p, body := next()
		f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
		if err == nil {
			_, err = f.Write([]byte("appended\n"))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fail("append to %s: %v", p, err)
		} else {
			want("appended", p, append(bytes.Clone(body), "appended\n"...), nil)
		}
	}
	{ // truncate to half
		p, body := next()
		if err := os.Truncate(p, int64(len(body)/2)); err != nil {
			fail("truncate %s: %v", p, err)
		} else {
			want("truncated", p, body[:len(body)/2], nil)
		}
	}
	{ // rewrite in the middle, through a descriptor opened before
		p, body := next()
		f, err := os.OpenFile(p, os.O_RDWR, 0)
		if err == nil {
			_, err = f.WriteAt([]byte("MIDDLE"), int64(len(body)/3))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
		}
		if err != nil {
			fail("write into %s: %v", p, err)
		} else {
			b := bytes.Clone(body)
			copy(b[len(b)/3:], "MIDDLE")
			want("rewritten", p, b, nil)
		}
	}
	{ // touch -d
		p, body := next()
		if _, err := bb("touch", "-d", "2001-09-09 01:46:40", p); err != nil {
			fail("%v", err)
		} else {
			want("touched", p, body, &unix.Timespec{Sec: 1e9})
		}
	}
	{ // hard link into another folder (Dovecot's copy by link)
		p, body := next()
		dst := filepath.Join(md, "..", ".Archive", "cur", filepath.Base(p))
		if err := os.MkdirAll(filepath.Dir(dst), 0o700); err != nil {
			fail("mkdir: %v", err)
		} else if err := os.Link(p, dst); err != nil {
			fail("link %s: %v", p, err)
		} else {
			mt := mtimes[filepath.Base(p[:len(p)-len(":2,S")])]
			want("linked", dst, body, &mt)
		}
	}
	res.Steps["changes"] = time.Since(t1).Seconds()
	// ls -l of cur/: the sizes READDIRPLUS reports are the plain ones.
	if out, err := bb("ls", "-ln", filepath.Join(md, "cur")); err != nil {
		fail("%v", err)
	} else {
		sizes := map[string]string{}
		for _, l := range strings.Split(string(out), "\n") {
			if f := strings.Fields(l); len(f) >= 9 {
				sizes[f[len(f)-1]] = f[4]
			}
		}
		for _, n := range names[step:] {
			if got, want := sizes[filepath.Base(cur[n])], strconv.Itoa(len(bodies[n])); got != want {
				fail("ls -l cur/ shows %s with size %q, want %s", filepath.Base(cur[n]), got, want)
			}
		}
	}
	// The rest are untouched: still as delivered.
	for _, n := range names[step:] {
		mt := mtimes[n]
		want("untouched", cur[n], bodies[n], &mt)
	}
	res.Seconds = time.Since(t0).Seconds()
	return res, nil
}

// serverRead returns the bytes the NFS mount at mountpoint has read from
// the server (/proc/self/mountstats, "bytes:" field serverread).
func serverRead(mountpoint string) (int64, error) {
	b, err := os.ReadFile("/proc/self/mountstats")
	if err != nil {
		return 0, err
	}
	in := false
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "device ") {
			in = strings.Contains(l, " mounted on "+mountpoint+" ")
		}
		if f := strings.Fields(l); in && len(f) == 9 && f[0] == "bytes:" {
			return strconv.ParseInt(f[5], 10, 64)
		}
	}
	return 0, fmt.Errorf("mountstats: no bytes: line for %s", mountpoint)
}
