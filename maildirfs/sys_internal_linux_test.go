package maildirfs

import (
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
