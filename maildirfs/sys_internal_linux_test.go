package maildirfs

import (
	"os"
	"path/filepath"
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestDirentLayoutLinux checks the hand-written parser's offsets against
// x/sys's struct linux_dirent64.
func TestDirentLayoutLinux(t *testing.T) {
	var d unix.Dirent
	if unsafe.Offsetof(d.Name) != linuxDirentHdr || unsafe.Offsetof(d.Reclen) != 16 || unsafe.Offsetof(d.Off) != 8 {
		t.Fatalf("linux_dirent64: name at %d, reclen at %d, off at %d", unsafe.Offsetof(d.Name), unsafe.Offsetof(d.Reclen), unsafe.Offsetof(d.Off))
	}
}

// TestChmodProcFd: the fallback for kernels without fchmodat2 sets the
// mode through an O_PATH fd of a file, a directory and a fifo, and leaves
// a symlink alone without an error.
func TestChmodProcFd(t *testing.T) {
	dir := t.TempDir()
	for _, mk := range []struct {
		name string
		make func(p string) error
	}{
		{"file", func(p string) error { return os.WriteFile(p, nil, 0o600) }},
		{"dir", func(p string) error { return os.Mkdir(p, 0o700) }},
		{"fifo", func(p string) error { return unix.Mkfifo(p, 0o600) }},
	} {
		p := filepath.Join(dir, mk.name)
		if err := mk.make(p); err != nil {
			t.Fatal(err)
		}
		fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		err = chmodProcFd(fd, 0o2751)
		unix.Close(fd)
		if err != nil {
			t.Fatalf("%s: %v", mk.name, err)
		}
		var st unix.Stat_t
		if err := unix.Lstat(p, &st); err != nil || st.Mode&0o7777 != 0o2751 {
			t.Errorf("%s: mode %o (%v), want 2751", mk.name, st.Mode&0o7777, err)
		}
	}
	p := filepath.Join(dir, "link")
	if err := os.Symlink("file", p); err != nil {
		t.Fatal(err)
	}
	fd, err := unix.Open(p, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(fd)
	if err := chmodProcFd(fd, 0o600); err != nil {
		t.Fatalf("symlink: %v", err)
	}
	var st unix.Stat_t
	if err := unix.Stat(filepath.Join(dir, "file"), &st); err != nil || st.Mode&0o7777 != 0o2751 {
		t.Errorf("the symlink's target changed: mode %o (%v)", st.Mode&0o7777, err)
	}
}
