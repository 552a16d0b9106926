//go:build linux

package main

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Statfs is the guest's statfs of the mount (FSSTAT), in KiB and files.
type Statfs struct {
	TotalKiB uint64 `json:"total_kib"`
	FreeKiB  uint64 `json:"free_kib"`
	AvailKiB uint64 `json:"avail_kib"`
	Files    uint64 `json:"files"`
	FilesFre uint64 `json:"files_free"`
}

// posixStep is one check of runPosix: its name and what it found wrong.
type posixStep struct {
	name string
	run  func() error
}

// runPosix runs what a Linux front end does to a mount besides delivering
// mail, through the tools it uses (busybox cp, cmp, ls -l, mv, ln, touch,
// rm -rf, mkdir -p) and plain system calls, in r.Maildir (owned by the
// run's uid), with the second mount (nosharecache: a page and attribute
// cache of its own) as a second front end. Every step runs; the ones that
// fail are reported in Result.Failed with what they found, so one run
// shows every defect. Root (squashed to nobody by the export) checks only
// what squashing allows and refuses.
func runPosix(r Run, cfg *Config) (*Result, error) {
	t0 := time.Now()
	res := &Result{Run: r.Name, UID: os.Getuid(), Steps: map[string]float64{}}
	d := filepath.Join(mnt, r.Maildir)
	d2 := filepath.Join(cfg.SecondMount, r.Maildir)
	var steps []posixStep
	if os.Getuid() == 0 {
		steps = append(rootSteps(r, d), mountSteps(cfg, filepath.Dir(r.Maildir))...)
	} else {
		steps = userSteps(r, d, d2, res)
	}
	for _, s := range steps {
		t := time.Now()
		err := s.run()
		res.Steps[s.name] = time.Since(t).Seconds()
		if err != nil {
			res.Failed = append(res.Failed, fmt.Sprintf("%s: %v", s.name, err))
			fmt.Printf("MAILNFS-POSIX %s failed: %v\n", s.name, err)
		}
	}
	var st unix.Statfs_t
	if err := unix.Statfs(mnt, &st); err != nil {
		return nil, err
	}
	res.Statfs = &Statfs{TotalKiB: st.Blocks * uint64(st.Bsize) >> 10, FreeKiB: st.Bfree * uint64(st.Bsize) >> 10,
		AvailKiB: st.Bavail * uint64(st.Bsize) >> 10, Files: st.Files, FilesFre: st.Ffree}
	res.Seconds = time.Since(t0).Seconds()
	return res, nil
}

// bb runs a busybox applet and returns its output; a non-zero exit is an
// error carrying the output.
func bb(args ...string) ([]byte, error) {
	out, err := exec.Command("/bin/busybox", args...).CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("%s: %w: %s", strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return out, nil
}

// within fails if f takes longer than d (it is left running: a hung system
// call cannot be stopped).
func within(d time.Duration, what string, f func() error) error {
	done := make(chan error, 1)
	go func() { done <- f() }()
	select {
	case err := <-done:
		return err
	case <-time.After(d):
		return fmt.Errorf("%s: still running after %v", what, d)
	}
}

func userSteps(r Run, d, d2 string, res *Result) []posixStep {
	const bigSize = 20 << 20
	big := pattern(bigSize, 20)
	bigPath := filepath.Join(d, "big20")
	return []posixStep{
		{"rsize", func() error {
			// The kernel takes rsize from FSINFO's rtmax (1 MiB).
			b, err := os.ReadFile("/proc/mounts")
			if err != nil {
				return err
			}
			for _, l := range strings.Split(string(b), "\n") {
				if f := strings.Fields(l); len(f) > 3 && f[1] == mnt {
					if !strings.Contains(f[3], "rsize=1048576") || !strings.Contains(f[3], "wsize=1048576") {
						return fmt.Errorf("mount options %s, want rsize and wsize 1048576", f[3])
					}
					return nil
				}
			}
			return fmt.Errorf("%s not in /proc/mounts", mnt)
		}},
		{"cp-in", func() error {
			// cp of a 20 MiB file into the mount; cmp through the other
			// mount, whose cache is cold: 1 MiB READs, readahead of
			// up to 15 of them at once on one connection.
			src := "/tmp/big20.src"
			if err := os.WriteFile(src, big, 0o644); err != nil {
				return err
			}
			defer os.Remove(src)
			if _, err := bb("cp", src, bigPath); err != nil {
				return err
			}
			_, err := bb("cmp", src, filepath.Join(d2, "big20"))
			return err
		}},
		{"cp-out", func() error {
			dst := "/tmp/big20.out"
			defer os.Remove(dst)
			// A fresh name on the second mount, so nothing is cached.
			if err := os.Link(bigPath, filepath.Join(d, "big20.l")); err != nil {
				return err
			}
			defer os.Remove(filepath.Join(d, "big20.l"))
			if _, err := bb("cp", filepath.Join(d2, "big20.l"), dst); err != nil {
				return err
			}
			b, err := os.ReadFile(dst)
			if err != nil {
				return err
			}
			if !bytes.Equal(b, big) {
				return fmt.Errorf("copy out differs (%d bytes)", len(b))
			}
			return nil
		}},
		{"parallel-read", func() error {
			// Four readers, O_DIRECT with 4 MiB buffers: 16 MiB of
			// READ replies asked for at once on one connection, four
			// times the server's per-connection queue.
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for k := 0; k < 4; k++ {
				wg.Add(1)
				go func(k int) {
					defer wg.Done()
					errs <- within(60*time.Second, "O_DIRECT reader", func() error {
						f, err := os.OpenFile(filepath.Join(d2, "big20"), os.O_RDONLY|syscall.O_DIRECT, 0)
						if err != nil {
							return err
						}
						defer f.Close()
						buf := make([]byte, 4<<20)
						for i := 0; i < bigSize/len(buf); i++ {
							off := ((i + k) % (bigSize / len(buf))) * len(buf)
							n, err := f.ReadAt(buf, int64(off))
							if n != len(buf) || !bytes.Equal(buf, big[off:off+len(buf)]) {
								return fmt.Errorf("read at %d: %d bytes, %v, equal %v", off, n, err, bytes.Equal(buf[:n], big[off:off+n]))
							}
						}
						return nil
					})
				}(k)
			}
			wg.Wait()
			close(errs)
			return errors.Join(<-errs, <-errs, <-errs, <-errs)
		}},
		{"append", func() error {
			// Two shells append lines to one file, each echo an
			// open(O_APPEND), write, close; and two processes' worth of
			// long-held O_APPEND descriptors.
			p := filepath.Join(d, "append.log")
			var wg sync.WaitGroup
			errs := make(chan error, 4)
			for k := 0; k < 2; k++ {
				wg.Add(1)
				go func(k int) {
					defer wg.Done()
					_, err := bb("sh", "-c", fmt.Sprintf(`for i in $(seq 1 100); do echo "shell %d line $i ................................" >> %s; done`, k, p))
					errs <- err
				}(k)
				wg.Add(1)
				go func(k int) {
					defer wg.Done()
					f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o644)
					if err != nil {
						errs <- err
						return
					}
					defer f.Close()
					for i := 1; i <= 100; i++ {
						if _, err := fmt.Fprintf(f, "fd %d line %d ................................\n", k, i); err != nil {
							errs <- err
							return
						}
					}
					errs <- f.Close()
				}(k)
			}
			wg.Wait()
			close(errs)
			if err := errors.Join(<-errs, <-errs, <-errs, <-errs); err != nil {
				return err
			}
			b, err := os.ReadFile(filepath.Join(d2, "append.log"))
			if err != nil {
				return err
			}
			next := map[string]int{}
			lines := strings.Split(strings.TrimSuffix(string(b), "\n"), "\n")
			for _, l := range lines {
				f := strings.Fields(l)
				if len(f) != 5 || f[4] != "................................" {
					return fmt.Errorf("torn line %q", l)
				}
				who := f[0] + f[1]
				if n, _ := strconv.Atoi(f[3]); n != next[who]+1 {
					return fmt.Errorf("%s: line %d after %d", who, n, next[who])
				}
				next[who]++
			}
			if len(lines) != 400 {
				return fmt.Errorf("%d lines, want 400", len(lines))
			}
			return nil
		}},
		{"ls-l-20k", func() error {
			// The test made r.ListFiles files m00000.. of i%97 bytes.
			dir := filepath.Join(mnt, r.ListDir)
			out, err := bb("ls", "-ln", dir)
			if err != nil {
				return err
			}
			seen := make([]bool, r.ListFiles)
			n := 0
			sc := bufio.NewScanner(bytes.NewReader(out))
			for sc.Scan() {
				f := strings.Fields(sc.Text())
				if len(f) < 9 {
					continue
				}
				name := f[len(f)-1]
				i, err := strconv.Atoi(strings.TrimPrefix(name, "m"))
				if err != nil || i < 0 || i >= r.ListFiles || seen[i] {
					return fmt.Errorf("bad or repeated entry %q", sc.Text())
				}
				seen[i] = true
				n++
				if f[4] != strconv.Itoa(i%97) || f[2] != "2001" {
					return fmt.Errorf("entry %q: want size %d, uid 2001", sc.Text(), i%97)
				}
			}
			if n != r.ListFiles {
				return fmt.Errorf("ls -l listed %d files, want %d", n, r.ListFiles)
			}
			return nil
		}},
		{"mv", func() error {
			a, b := filepath.Join(d, "a"), filepath.Join(d, "b")
			for _, p := range []string{a, b, filepath.Join(a, "sub")} {
				if err := os.Mkdir(p, 0o755); err != nil {
					return err
				}
			}
			for name, body := range map[string]string{"a/x": "x\n", "a/y": "new y\n", "b/y": "old y, longer\n", "a/sub/f": "f\n"} {
				if err := os.WriteFile(filepath.Join(d, name), []byte(body), 0o644); err != nil {
					return err
				}
			}
			var old unix.Stat_t
			if err := unix.Stat(filepath.Join(b, "y"), &old); err != nil {
				return err
			}
			for _, mv := range [][2]string{{"a/x", "b/x"}, {"a/y", "b/y"}, {"a/sub", "b/sub"}} {
				if _, err := bb("mv", filepath.Join(d, mv[0]), filepath.Join(d, mv[1])); err != nil {
					return err
				}
			}
			for _, m := range []string{d, d2} {
				for name, want := range map[string]string{"b/x": "x\n", "b/y": "new y\n", "b/sub/f": "f\n"} {
					got, err := os.ReadFile(filepath.Join(m, name))
					if err != nil || string(got) != want {
						return fmt.Errorf("%s/%s after mv: %q, %v; want %q", m, name, got, err, want)
					}
				}
				ents, err := os.ReadDir(filepath.Join(m, "a"))
				if err != nil || len(ents) != 0 {
					return fmt.Errorf("%s/a after mv: %d entries, %v", m, len(ents), err)
				}
				var sub, dotdot, bst unix.Stat_t
				unix.Stat(filepath.Join(m, "b/sub"), &sub)
				unix.Stat(filepath.Join(m, "b/sub/.."), &dotdot)
				unix.Stat(filepath.Join(m, "b"), &bst)
				if dotdot.Ino != bst.Ino || sub.Ino == 0 {
					return fmt.Errorf("%s/b/sub/.. is inode %d, b is %d", m, dotdot.Ino, bst.Ino)
				}
				if bst.Nlink != 3 {
					return fmt.Errorf("%s/b has %d links, want 3 (., b, sub/..)", m, bst.Nlink)
				}
			}
			var now unix.Stat_t
			if err := unix.Stat(filepath.Join(b, "y"), &now); err != nil {
				return err
			}
			if now.Ino == old.Ino {
				return errors.New("b/y kept the replaced file's inode")
			}
			return nil
		}},
		{"ln", func() error {
			h1 := filepath.Join(d, "h1")
			if err := os.WriteFile(h1, []byte("linked\n"), 0o644); err != nil {
				return err
			}
			nlink := func(m, p string) (uint64, uint64, error) {
				st, err := statOpen(filepath.Join(m, p))
				return st.Nlink, st.Ino, err
			}
			if _, err := bb("ln", h1, filepath.Join(d, "h2")); err != nil {
				return err
			}
			if _, err := bb("ln", h1, filepath.Join(d, "b", "h3")); err != nil {
				return err
			}
			for _, m := range []string{d, d2} {
				n1, i1, err1 := nlink(m, "h1")
				n3, i3, err3 := nlink(m, "b/h3")
				if err := errors.Join(err1, err3); err != nil {
					return err
				}
				if n1 != 3 || n3 != 3 || i1 != i3 {
					return fmt.Errorf("%s: h1 has %d links (inode %d), b/h3 %d (inode %d); want 3, same inode", m, n1, i1, n3, i3)
				}
			}
			if err := os.Remove(filepath.Join(d, "h2")); err != nil {
				return err
			}
			for _, m := range []string{d, d2} {
				if n, _, err := nlink(m, "b/h3"); err != nil || n != 2 {
					return fmt.Errorf("%s: b/h3 has %d links after rm h2, want 2 (%v)", m, n, err)
				}
			}
			return nil
		}},
		{"chmod-chown", func() error {
			p := filepath.Join(d, "modes")
			if err := os.WriteFile(p, []byte("m\n"), 0o644); err != nil {
				return err
			}
			for _, mode := range []string{"640", "2750", "4755", "600"} {
				if _, err := bb("chmod", mode, p); err != nil {
					return err
				}
				want, _ := strconv.ParseUint(mode, 8, 32)
				for _, m := range []string{d, d2} {
					st, err := statOpen(filepath.Join(m, "modes"))
					if err != nil {
						return err
					}
					if uint64(st.Mode&0o7777) != want {
						return fmt.Errorf("%s: chmod %s: mode %o", m, mode, st.Mode&0o7777)
					}
				}
			}
			if err := os.WriteFile(filepath.Join(d, "shared"), []byte("s\n"), 0o644); err != nil {
				return err
			}
			if err := os.Chmod(filepath.Join(d, "shared"), 0o666); err != nil {
				return err
			}
			if err := os.Chown(p, 2001, 2001); err != nil {
				return fmt.Errorf("chown to self: %w", err)
			}
			if err := os.Chown(p, 0, -1); !errors.Is(err, syscall.EPERM) {
				return fmt.Errorf("chown to root as uid 2001: %v, want EPERM", err)
			}
			if err := os.Chown(p, -1, 0); !errors.Is(err, syscall.EPERM) {
				return fmt.Errorf("chgrp to a group not ours: %v, want EPERM", err)
			}
			return nil
		}},
		{"mkdir-p-rm-rf", func() error {
			deep := filepath.Join(d, "deep")
			var parts []string
			for i := 0; i < 40; i++ {
				parts = append(parts, fmt.Sprintf("level%02d", i))
			}
			leaf := filepath.Join(deep, filepath.Join(parts...))
			if _, err := bb("mkdir", "-p", leaf); err != nil {
				return err
			}
			for i := 0; i < 40; i += 4 {
				if err := os.WriteFile(filepath.Join(deep, filepath.Join(parts[:i+1]...), "file"), []byte("x"), 0o644); err != nil {
					return err
				}
			}
			for i := 0; i < 8; i++ {
				w := filepath.Join(deep, fmt.Sprintf("wide%d", i))
				if err := os.Mkdir(w, 0o755); err != nil {
					return err
				}
				for j := 0; j < 10; j++ {
					if err := os.WriteFile(filepath.Join(w, strconv.Itoa(j)), []byte("y"), 0o644); err != nil {
						return err
					}
				}
			}
			if _, err := os.Stat(filepath.Join(d2, "deep", filepath.Join(parts...))); err != nil {
				return fmt.Errorf("leaf on the second mount: %w", err)
			}
			if _, err := bb("rm", "-rf", deep); err != nil {
				return err
			}
			for _, m := range []string{d, d2} {
				if _, err := os.Lstat(filepath.Join(m, "deep")); !errors.Is(err, os.ErrNotExist) {
					return fmt.Errorf("%s/deep after rm -rf: %v", m, err)
				}
			}
			return nil
		}},
		{"symlink", func() error {
			long := strings.Repeat("abcdefg/", 127) + "end" // 1019 bytes
			for name, target := range map[string]string{"sl": "b/x", "slup": "../2001/b/y", "sllong": long, "sldangle": "nowhere"} {
				if _, err := bb("ln", "-s", target, filepath.Join(d, name)); err != nil {
					return err
				}
				for _, m := range []string{d, d2} {
					got, err := os.Readlink(filepath.Join(m, name))
					if err != nil || got != target {
						return fmt.Errorf("%s/%s: readlink %q, %v; want %q", m, name, got, err, target)
					}
					var st unix.Stat_t
					if err := unix.Lstat(filepath.Join(m, name), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFLNK || st.Size != int64(len(target)) {
						return fmt.Errorf("%s/%s: lstat mode %o size %d, %v", m, name, st.Mode, st.Size, err)
					}
				}
				if out, err := bb("readlink", filepath.Join(d2, name)); err != nil || strings.TrimSpace(string(out)) != target {
					return fmt.Errorf("busybox readlink %s: %q %v", name, out, err)
				}
			}
			if b, err := os.ReadFile(filepath.Join(d2, "slup")); err != nil || string(b) != "new y\n" {
				return fmt.Errorf("read through slup: %q, %v", b, err)
			}
			if _, err := os.Stat(filepath.Join(d, "sldangle")); !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("stat through a dangling link: %v", err)
			}
			return nil
		}},
		{"touch-d", func() error {
			p := filepath.Join(d, "times")
			if err := os.WriteFile(p, nil, 0o644); err != nil {
				return err
			}
			if _, err := bb("touch", "-d", "2001-09-09 01:46:40", p); err != nil {
				return err
			}
			check := func(what string, atime, mtime unix.Timespec) error {
				for _, m := range []string{d, d2} {
					st, err := statOpen(filepath.Join(m, "times"))
					if err != nil {
						return err
					}
					if st.Atim != atime || st.Mtim != mtime {
						return fmt.Errorf("%s: %s: atime %v mtime %v, want %v %v", m, what, st.Atim, st.Mtim, atime, mtime)
					}
				}
				return nil
			}
			if err := check("touch -d", unix.Timespec{Sec: 1e9}, unix.Timespec{Sec: 1e9}); err != nil {
				return err
			}
			at, mt := unix.Timespec{Sec: 1234567890, Nsec: 123456789}, unix.Timespec{Sec: 4000000000, Nsec: 999999999}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{at, mt}, 0); err != nil {
				return err
			}
			if err := check("utimensat", at, mt); err != nil {
				return err
			}
			// Only atime; mtime stays (UTIME_OMIT: SETATTR without
			// mtime).
			at2 := unix.Timespec{Sec: 1500000000, Nsec: 5}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{at2, {Nsec: unix.UTIME_OMIT}}, 0); err != nil {
				return err
			}
			return check("utimensat atime only", at2, mt)
		}},
		{"flock", func() error {
			// nolock: the kernel keeps locks local; they must not
			// reach (and wait on) the server.
			return within(20*time.Second, "flock/fcntl", func() error {
				f, err := os.OpenFile(filepath.Join(d, "lockfile"), os.O_CREATE|os.O_RDWR, 0o644)
				if err != nil {
					return err
				}
				defer f.Close()
				if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil && !errors.Is(err, unix.ENOLCK) {
					return fmt.Errorf("flock: %w", err)
				}
				lk := unix.Flock_t{Type: unix.F_WRLCK, Whence: 0}
				if err := unix.FcntlFlock(f.Fd(), unix.F_SETLK, &lk); err != nil && !errors.Is(err, unix.ENOLCK) {
					return fmt.Errorf("fcntl F_SETLK: %w", err)
				}
				return nil
			})
		}},
		{"close-to-open", func() error {
			// Rewrite the same bytes' worth in place, alternately from
			// each mount, and read after each close through the other:
			// the open must see the server's new mtime or size.
			p1, p2 := filepath.Join(d, "cto"), filepath.Join(d2, "cto")
			if err := os.WriteFile(p1, []byte("version 00\n"), 0o644); err != nil {
				return err
			}
			for i := 1; i <= 10; i++ {
				w, rd := p1, p2
				if i%2 == 1 {
					w, rd = p2, p1
				}
				f, err := os.OpenFile(w, os.O_WRONLY, 0)
				if err != nil {
					return err
				}
				_, err = fmt.Fprintf(f, "version %02d\n", i)
				if cerr := f.Close(); err == nil {
					err = cerr
				}
				if err != nil {
					return err
				}
				got, err := os.ReadFile(rd)
				if want := fmt.Sprintf("version %02d\n", i); err != nil || string(got) != want {
					return fmt.Errorf("after writing %q through %s, %s read %q, %v", want, w, rd, got, err)
				}
			}
			return nil
		}},
		{"stat-after-write", func() error {
			p := filepath.Join(d, "cto")
			var before unix.Stat_t
			if err := unix.Stat(p, &before); err != nil {
				return err
			}
			time.Sleep(20 * time.Millisecond)
			f, err := os.OpenFile(p, os.O_WRONLY|os.O_APPEND, 0)
			if err != nil {
				return err
			}
			f.WriteString("more\n")
			if err := f.Sync(); err != nil {
				return err
			}
			f.Close()
			for _, m := range []string{d, d2} {
				st, err := statOpen(filepath.Join(m, "cto"))
				if err != nil {
					return err
				}
				if st.Size != before.Size+5 || !after(st.Mtim, before.Mtim) || !after(st.Ctim, before.Ctim) {
					return fmt.Errorf("%s: size %d mtime %v ctime %v; before the write %d %v %v", m, st.Size, st.Mtim, st.Ctim, before.Size, before.Mtim, before.Ctim)
				}
			}
			return nil
		}},
		{"silly-rename", func() error {
			// An IMAP server reads a message another session expunges:
			// the kernel renames the open file to .nfsXXXX and removes
			// that at the last close.
			dir := filepath.Join(d, "silly")
			if err := os.Mkdir(dir, 0o755); err != nil {
				return err
			}
			p := filepath.Join(dir, "1.M1P1.guest:2,S")
			if err := os.WriteFile(p, []byte("expunged while open\n"), 0o600); err != nil {
				return err
			}
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := os.Remove(p); err != nil {
				return fmt.Errorf("unlink of an open file: %w", err)
			}
			if _, err := os.Lstat(p); !errors.Is(err, os.ErrNotExist) {
				return fmt.Errorf("lstat after unlink: %v", err)
			}
			b, err := io.ReadAll(f)
			if err != nil || string(b) != "expunged while open\n" {
				return fmt.Errorf("read of the unlinked open file: %q, %v", b, err)
			}
			if err := f.Close(); err != nil {
				return err
			}
			for _, m := range []string{d, d2} {
				ents, err := os.ReadDir(filepath.Join(m, "silly"))
				if err != nil || len(ents) != 0 {
					return fmt.Errorf("%s/silly after the last close: %d entries (%v), %v", m, len(ents), names(ents), err)
				}
			}
			return os.Remove(dir)
		}},
		{"rename-errors", func() error {
			for _, p := range []string{"r/empty", "r/full/x", "r/src/y"} {
				if err := os.MkdirAll(filepath.Join(d, p), 0o755); err != nil {
					return err
				}
			}
			if err := os.WriteFile(filepath.Join(d, "r/file"), []byte("f"), 0o644); err != nil {
				return err
			}
			for _, c := range []struct {
				from, to string
				want     error
			}{
				{"r/src", "r/full", syscall.ENOTEMPTY},
				{"r/file", "r/full", syscall.EISDIR},
				{"r/src", "r/file", syscall.ENOTDIR},
				{"r/src", "r/empty", nil}, // a directory replaces an empty one
				{"r/file", "r/empty/y", syscall.EISDIR},
			} {
				// rename(2) itself: os.Rename refuses a directory
				// target before asking the kernel.
				err := unix.Rename(filepath.Join(d, c.from), filepath.Join(d, c.to))
				if (c.want == nil) != (err == nil) || c.want != nil && !errors.Is(err, c.want) {
					return fmt.Errorf("rename %s %s: %v, want %v", c.from, c.to, err, c.want)
				}
			}
			if err := unix.Rmdir(filepath.Join(d, "r/full")); !errors.Is(err, syscall.ENOTEMPTY) {
				return fmt.Errorf("rmdir of a non-empty directory: %v, want ENOTEMPTY", err)
			}
			if _, err := os.Stat(filepath.Join(d2, "r/empty/y")); err != nil {
				return fmt.Errorf("the moved directory's entry on the second mount: %w", err)
			}
			if err := os.Rename(filepath.Join(d, "r/file"), filepath.Join(fullMnt, "file")); !errors.Is(err, syscall.EXDEV) {
				return fmt.Errorf("rename to the other export: %v, want EXDEV", err)
			}
			return nil
		}},
		{"readonly-create", func() error {
			// git, cp -p, tar: create a file read-only and write it
			// through the descriptor the create returned.
			p := filepath.Join(d, "ro-created")
			f, err := os.OpenFile(p, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o444)
			if err != nil {
				return err
			}
			if _, err := f.Write([]byte("read-only but mine\n")); err != nil {
				f.Close()
				return fmt.Errorf("write: %w", err)
			}
			if err := f.Sync(); err != nil {
				f.Close()
				return fmt.Errorf("fsync: %w", err)
			}
			if err := f.Truncate(5); err != nil {
				f.Close()
				return fmt.Errorf("ftruncate: %w", err)
			}
			if err := f.Close(); err != nil {
				return fmt.Errorf("close: %w", err)
			}
			st, err := statOpen(filepath.Join(d2, "ro-created"))
			if err != nil || st.Mode&0o777 != 0o444 || st.Size != 5 {
				return fmt.Errorf("second mount: mode %o size %d, %v", st.Mode&0o777, st.Size, err)
			}
			if _, err := os.OpenFile(p, os.O_WRONLY, 0); !errors.Is(err, syscall.EACCES) {
				return fmt.Errorf("a new open for writing: %v, want EACCES", err)
			}
			return nil
		}},
		{"sparse-names-fifo", func() error {
			p := filepath.Join(d, "sparse")
			f, err := os.OpenFile(p, os.O_CREATE|os.O_RDWR, 0o644)
			if err != nil {
				return err
			}
			defer f.Close()
			if err := f.Truncate(1 << 30); err != nil {
				return fmt.Errorf("extend to 1 GiB: %w", err)
			}
			if _, err := f.WriteAt([]byte("end"), 1<<40); err != nil {
				return fmt.Errorf("write at 1 TiB: %w", err)
			}
			if _, err := f.WriteAt([]byte("x"), 17<<40); !errors.Is(err, syscall.EFBIG) {
				// ext4's largest file is 16 TiB; the kernel may
				// report the server's NFS3ERR_FBIG at fsync.
				if err == nil {
					err = f.Sync()
				}
				if !errors.Is(err, syscall.EFBIG) {
					return fmt.Errorf("write at 17 TiB: %v, want EFBIG", err)
				}
			}
			if err := f.Close(); err != nil && !errors.Is(err, syscall.EFBIG) {
				return fmt.Errorf("close: %w", err)
			}
			g, err := os.Open(filepath.Join(d2, "sparse"))
			if err != nil {
				return err
			}
			defer g.Close()
			buf := make([]byte, 4096)
			if n, err := g.ReadAt(buf, 1<<30-2048); n != 2048 || err != io.EOF && err != nil || !bytes.Equal(buf[:n], make([]byte, 2048)) {
				// 1 GiB of hole and then the byte range to 1 TiB.
				if n != 4096 || !bytes.Equal(buf, make([]byte, 4096)) {
					return fmt.Errorf("hole at 1 GiB: %d bytes, %v", n, err)
				}
			}
			if n, err := g.ReadAt(buf, 1<<40); n != 3 || string(buf[:3]) != "end" {
				return fmt.Errorf("read at 1 TiB: %q, %v", buf[:n], err)
			}
			if err := os.Remove(p); err != nil {
				return err
			}
			long := strings.Repeat("n", 255)
			if err := os.WriteFile(filepath.Join(d, long), nil, 0o644); err != nil {
				return fmt.Errorf("create with a 255-byte name: %w", err)
			}
			if _, err := os.Stat(filepath.Join(d2, long)); err != nil {
				return err
			}
			if err := os.WriteFile(filepath.Join(d, long+"n"), nil, 0o644); !errors.Is(err, syscall.ENAMETOOLONG) {
				return fmt.Errorf("create with a 256-byte name: %v, want ENAMETOOLONG", err)
			}
			if err := unix.Mkfifo(filepath.Join(d, "fifo"), 0o644); err != nil {
				return fmt.Errorf("mkfifo: %w", err)
			}
			var st unix.Stat_t
			if err := unix.Lstat(filepath.Join(d2, "fifo"), &st); err != nil || st.Mode&unix.S_IFMT != unix.S_IFIFO {
				return fmt.Errorf("fifo on the second mount: mode %o, %v", st.Mode, err)
			}
			return nil
		}},
		{"truncate-open", func() error {
			// `: > file` (open O_TRUNC) while another descriptor, on
			// each mount, has the file open and has read it.
			p := filepath.Join(d, "trunc")
			body := bytes.Repeat([]byte("0123456789abcdef"), 4096) // 64 KiB
			if err := os.WriteFile(p, body, 0o644); err != nil {
				return err
			}
			var held []*os.File
			defer func() {
				for _, f := range held {
					f.Close()
				}
			}()
			for _, m := range []string{d, d2} {
				f, err := os.Open(filepath.Join(m, "trunc"))
				if err != nil {
					return err
				}
				held = append(held, f)
				if b, err := io.ReadAll(f); err != nil || !bytes.Equal(b, body) {
					return fmt.Errorf("%s: read before truncation: %d bytes, %v", m, len(b), err)
				}
			}
			if _, err := bb("sh", "-c", ": > "+p); err != nil {
				return err
			}
			// Same client: the open descriptor sees the truncation at once.
			var st unix.Stat_t
			if err := unix.Fstat(int(held[0].Fd()), &st); err != nil || st.Size != 0 {
				return fmt.Errorf("fstat of the open descriptor after truncation: size %d, %v", st.Size, err)
			}
			if n, err := held[0].ReadAt(make([]byte, 16), 0); n != 0 || err != io.EOF {
				return fmt.Errorf("read of the open descriptor after truncation: %d bytes, %v", n, err)
			}
			f, err := os.OpenFile(p, os.O_WRONLY, 0)
			if err != nil {
				return err
			}
			f.WriteString("short\n")
			if err := f.Close(); err != nil {
				return err
			}
			buf := make([]byte, 64)
			if n, _ := held[0].ReadAt(buf, 0); string(buf[:n]) != "short\n" {
				return fmt.Errorf("open descriptor reads %q after the rewrite", buf[:n])
			}
			// The other mount, on a new open (close-to-open).
			if b, err := os.ReadFile(filepath.Join(d2, "trunc")); err != nil || string(b) != "short\n" {
				return fmt.Errorf("second mount reads %q, %v after truncation and rewrite", b, err)
			}
			return nil
		}},
	}
}

// statOpen opens p and stats the open file: on NFS an open revalidates
// the attributes (close-to-open), where a stat may answer from the
// attribute cache for up to acregmin.
func statOpen(p string) (unix.Stat_t, error) {
	var st unix.Stat_t
	f, err := os.Open(p)
	if err != nil {
		return st, err
	}
	defer f.Close()
	err = unix.Fstat(int(f.Fd()), &st)
	return st, err
}

func names(ents []os.DirEntry) []string {
	var n []string
	for _, e := range ents {
		n = append(n, e.Name())
	}
	return n
}

func after(a, b unix.Timespec) bool {
	return a.Sec > b.Sec || a.Sec == b.Sec && a.Nsec > b.Nsec
}

// mountSteps mounts the export as other front ends' fstab lines may, with
// MOUNT over UDP (mount.nfs picks it when the portmapper offers it), and
// reads the uid-2001 run's 20 MiB file with four O_DIRECT readers. (An
// nconnect=4 mount here would share the first mount's nfs_client and its
// one connection: mountstats shows one transport.)
func mountSteps(cfg *Config, dir string) []posixStep {
	const at = "/mnt5"
	big := pattern(20<<20, 20)
	// mountRead mounts with cfg.Options, after replacing old by new in
	// them, and reads.
	mountRead := func(old, new string, want int) error {
		if err := os.MkdirAll(at, 0o755); err != nil {
			return err
		}
		src := cfg.Server + ":" + cfg.Export
		opts := strings.Replace(cfg.Options, old, new, 1) + ",nosharecache,addr=" + cfg.Server
		if err := within(60*time.Second, "mount", func() error { return unix.Mount(src, at, "nfs", 0, opts) }); err != nil {
			return fmt.Errorf("mount -o %s: %w", opts, err)
		}
		defer unix.Unmount(at, 0)
		p := filepath.Join(at, dir, "2001", "big20")
		var wg sync.WaitGroup
		errs := make(chan error, 4)
		for k := 0; k < 4; k++ {
			wg.Add(1)
			go func(k int) {
				defer wg.Done()
				errs <- within(60*time.Second, "O_DIRECT reader", func() error {
					b, err := readDirect(p)
					if err == nil && !bytes.Equal(b, big) {
						err = fmt.Errorf("%s differs (%d bytes)", p, len(b))
					}
					return err
				})
			}(k)
		}
		wg.Wait()
		close(errs)
		if err := errors.Join(<-errs, <-errs, <-errs, <-errs); err != nil {
			return err
		}
		if n := transports(at); n != want {
			return fmt.Errorf("mountstats shows %d transports for -o %s, want %d", n, opts, want)
		}
		if err := unix.Unmount(at, 0); err != nil {
			return fmt.Errorf("umount: %w", err)
		}
		return nil
	}
	return []posixStep{
		{"mountproto-udp", func() error {
			return mountRead("mountproto=tcp", "mountproto=udp", 1)
		}},
	}
}

// transports counts the RPC transports (TCP connections) of the NFS mount
// at mountpoint in /proc/self/mountstats ("xprt:" lines).
func transports(mountpoint string) int {
	b, err := os.ReadFile("/proc/self/mountstats")
	if err != nil {
		return -1
	}
	in, n := false, 0
	for _, l := range strings.Split(string(b), "\n") {
		if strings.HasPrefix(l, "device ") {
			in = strings.Contains(l, " mounted on "+mountpoint+" ")
		}
		if in && strings.HasPrefix(strings.TrimSpace(l), "xprt:") {
			n++
		}
	}
	return n
}

// rootSteps checks what root on the front end, squashed to nobody by the
// export, may and may not do in the uid-2001 run's directory (which must
// have run first) and in dir, which nobody owns.
func rootSteps(r Run, d string) []posixStep {
	user := filepath.Join(filepath.Dir(d), "2001")
	return []posixStep{
		{"squashed-create", func() error {
			p := filepath.Join(d, "rootfile")
			if err := os.WriteFile(p, []byte("r\n"), 0o644); err != nil {
				return err
			}
			var st unix.Stat_t
			if err := unix.Stat(p, &st); err != nil {
				return err
			}
			if st.Uid != 65534 || st.Gid != 65534 {
				return fmt.Errorf("root's new file is owned by %d:%d, want 65534:65534", st.Uid, st.Gid)
			}
			if err := os.Chmod(p, 0o600); err != nil {
				return fmt.Errorf("chmod of nobody's own file: %w", err)
			}
			if err := os.Chown(p, 0, 0); !errors.Is(err, syscall.EPERM) {
				return fmt.Errorf("chown to root by squashed root: %v, want EPERM", err)
			}
			return nil
		}},
		{"squashed-foreign", func() error {
			p := filepath.Join(user, "b", "x")
			if err := os.Chmod(p, 0o666); !errors.Is(err, syscall.EPERM) {
				return fmt.Errorf("chmod of uid 2001's file by squashed root: %v, want EPERM", err)
			}
			if err := os.Chown(p, 0, 0); !errors.Is(err, syscall.EPERM) {
				return fmt.Errorf("chown of uid 2001's file by squashed root: %v, want EPERM", err)
			}
			if err := os.WriteFile(filepath.Join(user, "fromroot"), nil, 0o644); !errors.Is(err, syscall.EACCES) {
				return fmt.Errorf("create in uid 2001's 0755 directory by squashed root: %v, want EACCES", err)
			}
			if err := unix.UtimesNanoAt(unix.AT_FDCWD, p, []unix.Timespec{{Sec: 1}, {Sec: 1}}, 0); !errors.Is(err, syscall.EPERM) {
				return fmt.Errorf("utimensat of uid 2001's file by squashed root: %v, want EPERM", err)
			}
			if b, err := os.ReadFile(p); err != nil || string(b) != "x\n" {
				return fmt.Errorf("read of uid 2001's 0644 file: %q, %v", b, err)
			}
			if _, err := os.ReadFile(filepath.Join(user, "modes")); !errors.Is(err, syscall.EACCES) {
				return fmt.Errorf("read of uid 2001's 0600 file by squashed root: %v, want EACCES", err)
			}
			// touch without a time on a file others may write: the
			// server's time (SET_TO_SERVER_TIME), allowed to writers.
			shared := filepath.Join(user, "shared")
			if err := os.Chmod(shared, 0o666); !errors.Is(err, syscall.EPERM) {
				return fmt.Errorf("chmod of uid 2001's shared file: %v, want EPERM", err)
			}
			before, err := statOpen(shared)
			if err != nil {
				return err
			}
			time.Sleep(10 * time.Millisecond)
			if _, err := bb("touch", shared); err != nil {
				return fmt.Errorf("touch of a 0666 file by squashed root: %w", err)
			}
			if st, err := statOpen(shared); err != nil || !after(st.Mtim, before.Mtim) {
				return fmt.Errorf("touch of a 0666 file: mtime %v, before %v, %v", st.Mtim, before.Mtim, err)
			}
			return nil
		}},
	}
}
