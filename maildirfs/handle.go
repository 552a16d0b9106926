package maildirfs

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"hash"
)

// Handle layout (version 1), at most MaxHandle bytes:
//
//	[0]      version (1)
//	[1:5]    export id, big endian (readable by ExportIDOf without the key)
//	[5]      kernel handle type (struct file_handle.handle_type, < 256)
//	[6:n-16] kernel handle bytes from name_to_handle_at
//	[n-16:n] HMAC-SHA256 over bytes [0:n-16], truncated to 16 bytes
//
// The kernel handle names the inode (ext4: inode + generation), so the
// handle survives renames and restarts and goes stale when the inode is
// freed. The MAC binds it to this server's key and export.
const (
	handleVersion = 1
	handleHdr     = 6
	handleMAC     = 16
	maxKernelFH   = MaxHandle - handleHdr - handleMAC
)

// ExportIDOf returns the export id of h without checking its MAC, so a server
// with several exports can route a handle to the FS that verifies it.
func ExportIDOf(h Handle) (id uint32, ok bool) {
	if len(h) < handleHdr+1+handleMAC || len(h) > MaxHandle || h[0] != handleVersion {
		return 0, false
	}
	return binary.BigEndian.Uint32(h[1:5]), true
}

// kernelFH is a decoded kernel file handle; key is its cache key.
type kernelFH struct {
	typ   int32
	bytes []byte
}

func (k kernelFH) key() string {
	return string(append([]byte{byte(k.typ)}, k.bytes...))
}

func (f *FS) mac(b []byte) []byte {
	m, _ := f.macs.Get().(hash.Hash)
	if m == nil {
		m = hmac.New(sha256.New, f.key[:])
	}
	m.Reset()
	m.Write(b)
	sum := m.Sum(make([]byte, 0, sha256.Size))[:handleMAC]
	f.macs.Put(m)
	return sum
}

// encodeHandle builds a signed handle for a kernel handle.
func (f *FS) encodeHandle(k kernelFH) (Handle, bool) {
	if k.typ < 0 || k.typ > 255 || len(k.bytes) == 0 || len(k.bytes) > maxKernelFH {
		return nil, false
	}
	h := make([]byte, 0, handleHdr+len(k.bytes)+handleMAC)
	h = append(h, handleVersion)
	h = binary.BigEndian.AppendUint32(h, f.exportID)
	h = append(h, byte(k.typ))
	h = append(h, k.bytes...)
	h = append(h, f.mac(h)...)
	return h, true
}

// decodeHandle checks h's shape, export and MAC.
func (f *FS) decodeHandle(h Handle) (kernelFH, error) {
	k, ok := f.peekHandle(h)
	if !ok || !hmac.Equal(f.mac(h[:len(h)-handleMAC]), h[len(h)-handleMAC:]) {
		return kernelFH{}, ErrBadHandle
	}
	return k, nil
}

// peekHandle checks h's shape and export, not its MAC, and returns the
// kernel handle in it (aliasing h).
func (f *FS) peekHandle(h Handle) (kernelFH, bool) {
	id, ok := ExportIDOf(h)
	if !ok || id != f.exportID {
		return kernelFH{}, false
	}
	return kernelFH{typ: int32(h[5]), bytes: h[handleHdr : len(h)-handleMAC]}, true
}

// cachedHandle returns the cached node of h, referenced, when h is exactly
// the handle of a cached node. That proves h authentic without computing
// its MAC: a node's handle was verified or made by us, and a handle is a
// function of its kernel handle (the cache key), so any valid handle with
// that key equals it. The comparison takes constant time, so it tells a
// forger no more than a MAC check would. nil: not cached, or h differs
// (the caller then checks the MAC as usual).
func (f *FS) cachedHandle(h Handle) *node {
	k, ok := f.peekHandle(h)
	if !ok {
		return nil
	}
	var buf [1 + maxKernelFH]byte
	key := append(append(buf[:0], byte(k.typ)), k.bytes...)
	n := f.cache.lookupBytes(key)
	if n == nil {
		return nil
	}
	if subtle.ConstantTimeCompare(n.h, h) != 1 {
		f.put(n)
		return nil
	}
	return n
}

// lookupBytes is lookup with the key as bytes (no allocation).
func (c *nodeCache) lookupBytes(key []byte) *node {
	c.mu.Lock()
	defer c.mu.Unlock()
	n := c.byKey[string(key)]
	if n == nil {
		return nil
	}
	n.refs++
	c.lru.MoveToFront(n.elem)
	return n
}
