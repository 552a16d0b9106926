package maildirfs

import "golang.org/x/sys/unix"

// Test hooks for the external test package.

// KernelHandle returns the kernel handle type and bytes of path (not
// following a symlink), as a handle embeds them.
func KernelHandle(path string) (byte, []byte, error) {
	k, _, err := nameHandle(unix.AT_FDCWD, path)
	return byte(k.typ), k.bytes, err
}

// ErrZCrash is returned by a rewrite stopped by the crash hook.
var ErrZCrash = errZCrash

// SetZCrashHook installs the crash hook (nil removes it).
func SetZCrashHook(h func(step string) error) { zcrashHook = h }

// SetZMin sets the minimum size and gain divisor for compression and
// returns a function restoring the defaults.
func SetZMin(size, div int64) func() {
	os, od := zMinSize, zMinGainDiv
	zMinSize, zMinGainDiv = size, div
	return func() { zMinSize, zMinGainDiv = os, od }
}

// CompressNow compresses the files of hs synchronously (what the
// background worker does).
func (f *FS) CompressNow(hs []Handle) (int, error) { return f.zcompress(hs) }

// ZXattr is the name of the marker xattr.
const ZXattr = zXattr
