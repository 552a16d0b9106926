package maildirfs

import (
	"testing"
	"unsafe"

	"golang.org/x/sys/unix"
)

// TestDirentLayoutFreeBSD checks the hand-written parser's offsets against
// x/sys's struct dirent.
func TestDirentLayoutFreeBSD(t *testing.T) {
	var d unix.Dirent
	if unsafe.Offsetof(d.Name) != freebsdDirentHdr || unsafe.Offsetof(d.Namlen) != 20 || unsafe.Offsetof(d.Reclen) != 16 || unsafe.Offsetof(d.Off) != 8 {
		t.Fatalf("dirent: name at %d, namlen at %d, reclen at %d, off at %d", unsafe.Offsetof(d.Name), unsafe.Offsetof(d.Namlen), unsafe.Offsetof(d.Reclen), unsafe.Offsetof(d.Off))
	}
}

// TestFhandleLayout: fhandle_t is 28 bytes, 4-byte aligned.
func TestFhandleLayout(t *testing.T) {
	var fh fhandle
	if unsafe.Sizeof(fh) != fhandleSize || unsafe.Alignof(fh) != 4 {
		t.Fatalf("fhandle: size %d, align %d", unsafe.Sizeof(fh), unsafe.Alignof(fh))
	}
	if fhandleSize+handleHdr+handleMAC > MaxHandle {
		t.Fatalf("a FreeBSD handle (%d bytes) does not fit in %d", fhandleSize+handleHdr+handleMAC, MaxHandle)
	}
}

// TestFhOf: only 28-byte type-0 kernel handles convert back.
func TestFhOf(t *testing.T) {
	var fh fhandle
	for i := range fh.b {
		fh.b[i] = byte(i + 1)
	}
	k, fsid := fhKernelFH(&fh)
	if fsid != fsidOf(fh.b[:]) || k.typ != 0 || len(k.bytes) != fhandleSize {
		t.Fatalf("fhKernelFH: %+v %x", k, fsid)
	}
	back, err := fhOf(k)
	if err != nil || back.b != fh.b {
		t.Fatalf("fhOf: %v", err)
	}
	if _, err := fhOf(kernelFH{typ: 1, bytes: k.bytes}); err == nil {
		t.Error("type 1 accepted")
	}
	if _, err := fhOf(kernelFH{bytes: k.bytes[:20]}); err == nil {
		t.Error("short handle accepted")
	}
}
