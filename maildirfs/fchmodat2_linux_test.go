package maildirfs_test

import (
	"bytes"
	"errors"
	"os"
	"os/exec"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// TestWithoutFchmodat2 runs the operations that set a mode in a child
// process where fchmodat2 fails with ENOSYS (a seccomp filter), as on
// kernels before 6.6 (Debian 12, RHEL 9, Ubuntu 22.04): the store must
// notice and fall back, so CREATE, MKDIR, SYMLINK, MKNOD and SETATTR
// work and give the modes asked for. The filter is per process, hence the
// child.
func TestWithoutFchmodat2(t *testing.T) {
	if os.Getenv("MAILNFS_NO_FCHMODAT2_CHILD") != "" {
		withoutFchmodat2(t)
		return
	}
	mdtest.RequireRoot(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestWithoutFchmodat2$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "MAILNFS_NO_FCHMODAT2_CHILD=1")
	out, err := cmd.CombinedOutput()
	if bytes.Contains(out, []byte("--- SKIP: TestWithoutFchmodat2")) {
		t.Skipf("the child could not install its seccomp filter:\n%s", out)
	}
	if err != nil || !bytes.Contains(out, []byte("--- PASS: TestWithoutFchmodat2")) {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// withoutFchmodat2 is the child's part of TestWithoutFchmodat2.
func withoutFchmodat2(t *testing.T) {
	// Every thread (TSYNC): fchmodat2 (452 on every architecture) fails
	// with ENOSYS; everything else is allowed.
	filter := []unix.SockFilter{
		{Code: unix.BPF_LD | unix.BPF_W | unix.BPF_ABS, K: 0}, // seccomp_data.nr
		{Code: unix.BPF_JMP | unix.BPF_JEQ | unix.BPF_K, Jt: 0, Jf: 1, K: unix.SYS_FCHMODAT2},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ERRNO | uint32(unix.ENOSYS)},
		{Code: unix.BPF_RET | unix.BPF_K, K: unix.SECCOMP_RET_ALLOW},
	}
	prog := unix.SockFprog{Len: uint16(len(filter)), Filter: &filter[0]}
	if err := unix.Prctl(unix.PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0); err != nil {
		t.Skipf("seccomp unavailable: no_new_privs: %v", err)
	}
	if _, _, e := unix.Syscall(unix.SYS_SECCOMP, unix.SECCOMP_SET_MODE_FILTER, unix.SECCOMP_FILTER_FLAG_TSYNC, uintptr(unsafe.Pointer(&prog))); e != 0 {
		t.Skipf("seccomp unavailable: %v", e)
	}
	if err := unix.Fchmodat(unix.AT_FDCWD, os.TempDir(), 0o1777, unix.AT_SYMLINK_NOFOLLOW); !errors.Is(err, unix.EOPNOTSUPP) {
		t.Fatalf("fchmodat2 with the filter: %v, want EOPNOTSUPP (x/sys's answer to ENOSYS)", err)
	}
	if maildirfs.HaveFchmodat2() {
		t.Fatal("the store thinks the kernel has fchmodat2")
	}
	s := mdtest.New(t)
	tmp := lookup(t, s, "Maildir", "tmp")
	u := maildirfs.Cred{UID: 1000, GID: 1000}
	if _, err := s.SetAttr(tmp, root, maildirfs.SetAttr{Mode: u32(0o777)}, nil); err != nil {
		t.Fatalf("SETATTR mode of a directory: %v", err)
	}
	fh, a, _, err := s.Create(tmp, u, "m", maildirfs.Guarded, maildirfs.SetAttr{Mode: u32(0o640)}, [8]byte{})
	if err != nil || a.Mode != 0o640 || a.UID != 1000 {
		t.Fatalf("CREATE: %v %+v", err, a)
	}
	if _, err := s.SetAttr(fh, u, maildirfs.SetAttr{Mode: u32(0o604)}, nil); err != nil || getattr(t, s, fh).Mode != 0o604 {
		t.Fatalf("SETATTR mode of a file: %v, mode %o", err, getattr(t, s, fh).Mode)
	}
	w, _, _, err := s.Mkdir(s.Root(), root, "w", maildirfs.SetAttr{Mode: u32(0o777)})
	if err != nil || getattr(t, s, w).Mode != 0o777 {
		t.Fatalf("MKDIR as root: %v", err)
	}
	if _, a, _, err := s.Mkdir(w, u, "d", maildirfs.SetAttr{Mode: u32(0o750)}); err != nil || a.Mode != 0o750 || a.UID != 1000 {
		t.Fatalf("MKDIR: %v %+v", err, a)
	}
	if _, a, _, err := s.Symlink(w, u, "l", "d", maildirfs.SetAttr{}); err != nil || a.Type != maildirfs.TypeLnk || a.UID != 1000 {
		t.Fatalf("SYMLINK: %v %+v", err, a)
	}
	if _, a, _, err := s.Mknod(w, u, "p", maildirfs.TypeFifo, maildirfs.SetAttr{Mode: u32(0o620)}, 0, 0); err != nil || a.Mode != 0o620 || a.UID != 1000 {
		t.Fatalf("MKNOD: %v %+v", err, a)
	}
	if _, err := s.Remove(tmp, u, "m"); err != nil {
		t.Fatal(err)
	}
}
