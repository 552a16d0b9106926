package maildirfs_test

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// TestSetgidLikeKernel: the store creates and chmods as root, so it must
// apply itself the rules the kernel applies to an unprivileged caller
// about S_ISGID. The same operations run natively on a thread with the
// caller's file system credentials and no capabilities, in a setgid
// directory of a group the caller is not in (and then is in), and the
// modes must agree: CREATE and MKNOD of a group-executable setgid file
// lose S_ISGID (mode_strip_sgid), a non-group-executable one keeps it, a
// new directory inherits it and never takes S_ISUID or S_ISGID from the
// mode asked (vfs_mkdir keeps only the permissions and S_ISVTX), and a chmod (SETATTR) by an owner outside the
// group drops it from files and directories alike (setattr_copy).
func TestSetgidLikeKernel(t *testing.T) {
	old := unix.Umask(0o022)
	defer unix.Umask(old)
	const group = 4242
	for _, tc := range []struct {
		name   string
		groups []uint32
	}{
		{"NotMember", nil},
		{"Member", []uint32{group}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := mdtest.New(t)
			c := maildirfs.Cred{UID: 1000, GID: 1000, GIDs: tc.groups}
			// setgidDir makes name, root's and setgid in group, holding a
			// directory and a file of the caller's in that group (for the
			// chmods).
			setgidDir := func(name string) string {
				p := filepath.Join(s.Dir, name)
				for _, err := range []error{
					os.Mkdir(p, 0o777),
					os.Mkdir(filepath.Join(p, "own"), 0o755),
					os.Chown(filepath.Join(p, "own"), 1000, group),
					os.WriteFile(filepath.Join(p, "ownf"), nil, 0o755),
					os.Chown(filepath.Join(p, "ownf"), 1000, group),
					os.Chown(p, 0, group),
					unix.Chmod(p, 0o2777), // os.Chmod would drop 0o2000 (not os.ModeSetgid)
				} {
					if err != nil {
						t.Fatal(err)
					}
				}
				return p
			}
			// The kernel's answers.
			kdir := setgidDir("kernel")
			// Relative to an fd opened here: the caller may not search
			// the test's temporary directories.
			kfd, err := unix.Open(kdir, unix.O_PATH|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer unix.Close(kfd)
			var kernelErr error
			asUnprivileged(t, 1000, 1000, tc.groups, func() {
				for _, op := range []func() error{
					func() error { return createFileAt(kfd, "x", 0o2755) },
					func() error { return createFileAt(kfd, "y", 0o2745) },
					func() error { return unix.Mknodat(kfd, "p", unix.S_IFIFO|0o2755, 0) },
					func() error { return unix.Mkdirat(kfd, "d", 0o755) },
					func() error { return unix.Mkdirat(kfd, "e", 0o7755) },
					func() error { return unix.Fchmodat(kfd, "own", 0o2755, 0) },
					func() error { return unix.Fchmodat(kfd, "ownf", 0o2755, 0) },
				} {
					if err := op(); err != nil && kernelErr == nil {
						kernelErr = err
					}
				}
			})
			if kernelErr != nil {
				t.Fatalf("native operations as uid 1000: %v", kernelErr)
			}
			// The store's.
			setgidDir("store")
			dh := lookup(t, s, "store")
			if _, _, _, err := s.Create(dh, c, "x", maildirfs.Guarded, maildirfs.SetAttr{Mode: u32(0o2755)}, [8]byte{}); err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := s.Create(dh, c, "y", maildirfs.Unchecked, maildirfs.SetAttr{Mode: u32(0o2745)}, [8]byte{}); err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := s.Mknod(dh, c, "p", maildirfs.TypeFifo, maildirfs.SetAttr{Mode: u32(0o2755)}, 0, 0); err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := s.Mkdir(dh, c, "d", maildirfs.SetAttr{Mode: u32(0o755)}); err != nil {
				t.Fatal(err)
			}
			if _, _, _, err := s.Mkdir(dh, c, "e", maildirfs.SetAttr{Mode: u32(0o7755)}); err != nil {
				t.Fatal(err)
			}
			for _, name := range []string{"own", "ownf"} {
				if _, err := s.SetAttr(lookup(t, s, "store", name), c, maildirfs.SetAttr{Mode: u32(0o2755)}, nil); err != nil {
					t.Fatal(err)
				}
			}
			for _, name := range []string{"x", "y", "p", "d", "e", "own", "ownf"} {
				var k, m unix.Stat_t
				if err := unix.Lstat(filepath.Join(kdir, name), &k); err != nil {
					t.Fatal(err)
				}
				if err := unix.Lstat(filepath.Join(s.Dir, "store", name), &m); err != nil {
					t.Fatal(err)
				}
				if k.Mode != m.Mode || k.Gid != m.Gid || k.Uid != m.Uid {
					t.Errorf("%s: store made mode %o %d:%d, the kernel %o %d:%d", name, m.Mode, m.Uid, m.Gid, k.Mode, k.Uid, k.Gid)
				}
			}
		})
	}
}

func createFileAt(dirfd int, name string, mode uint32) error {
	fd, err := unix.Openat(dirfd, name, unix.O_CREAT|unix.O_EXCL|unix.O_WRONLY|unix.O_CLOEXEC, mode)
	if err == nil {
		unix.Close(fd)
	}
	return err
}

// asUnprivileged runs fn on a thread of its own whose file system uid and
// gid are uid and gid, whose supplementary groups are groups and which
// has no capabilities, as an unprivileged local process would. The
// thread is never given back (it ends with its goroutine).
func asUnprivileged(t *testing.T, uid, gid uint32, groups []uint32, fn func()) {
	t.Helper()
	done := make(chan error)
	go func() {
		runtime.LockOSThread() // never unlocked: the runtime ends the thread
		var gp unsafe.Pointer
		if len(groups) > 0 {
			gp = unsafe.Pointer(&groups[0])
		}
		// Raw system calls change this thread only (x/sys's wrappers
		// change every thread of the process).
		if _, _, e := unix.RawSyscall(unix.SYS_SETGROUPS, uintptr(len(groups)), uintptr(gp), 0); e != 0 {
			done <- fmt.Errorf("setgroups: %w", e)
			return
		}
		unix.RawSyscall(unix.SYS_SETFSGID, uintptr(gid), 0, 0)
		unix.RawSyscall(unix.SYS_SETFSUID, uintptr(uid), 0, 0)
		hdr := unix.CapUserHeader{Version: unix.LINUX_CAPABILITY_VERSION_3}
		var none [2]unix.CapUserData
		if err := unix.Capset(&hdr, &none[0]); err != nil {
			done <- fmt.Errorf("capset: %w", err)
			return
		}
		fn()
		done <- nil
	}()
	if err := <-done; err != nil {
		t.Fatalf("taking an unprivileged caller's credentials: %v", err)
	}
}
