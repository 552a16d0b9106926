package maildirfs

import (
	"bytes"
	"errors"
	"testing"
)

func testFS(id uint32, key byte) *FS {
	f := &FS{exportID: id}
	for i := range f.key {
		f.key[i] = key + byte(i)
	}
	return f
}

func TestHandleRoundTrip(t *testing.T) {
	f := testFS(0x01020304, 1)
	k := kernelFH{typ: 1, bytes: []byte{1, 2, 3, 4, 5, 6, 7, 8}}
	h, ok := f.encodeHandle(k)
	if !ok || len(h) != 6+8+16 || len(h) > MaxHandle {
		t.Fatalf("encode: %x %v", h, ok)
	}
	if id, ok := ExportIDOf(h); !ok || id != 0x01020304 {
		t.Fatalf("ExportIDOf: %x %v", id, ok)
	}
	got, err := f.decodeHandle(h)
	if err != nil || got.typ != k.typ || !bytes.Equal(got.bytes, k.bytes) {
		t.Fatalf("decode: %+v %v", got, err)
	}
	if _, ok := f.encodeHandle(kernelFH{typ: 1, bytes: make([]byte, maxKernelFH+1)}); ok {
		t.Fatal("oversized kernel handle encoded")
	}
	if _, ok := f.encodeHandle(kernelFH{typ: 256, bytes: []byte{1}}); ok {
		t.Fatal("handle type 256 encoded")
	}
	for _, other := range []*FS{testFS(0x01020305, 1), testFS(0x01020304, 2)} {
		if _, err := other.decodeHandle(h); !errors.Is(err, ErrBadHandle) {
			t.Fatalf("other export/key: %v", err)
		}
	}
}

// FuzzDecodeHandle: arbitrary bytes never panic and never decode unless
// they are exactly a handle this FS encoded; encoded handles round-trip.
func FuzzDecodeHandle(f *testing.F) {
	fs := testFS(7, 9)
	good, _ := fs.encodeHandle(kernelFH{typ: 1, bytes: []byte{0xaa, 0xbb, 0xcc, 0xdd, 1, 2, 3, 4}})
	f.Add([]byte(good), uint8(1), []byte{1, 2, 3})
	f.Add([]byte{}, uint8(0), []byte{})
	f.Add(bytes.Repeat([]byte{1}, 64), uint8(255), bytes.Repeat([]byte{2}, 42))
	f.Fuzz(func(t *testing.T, raw []byte, typ uint8, kb []byte) {
		if k, err := fs.decodeHandle(raw); err == nil {
			re, ok := fs.encodeHandle(k)
			if !ok || !bytes.Equal(re, raw) {
				t.Fatalf("decoded %x but it re-encodes as %x", raw, re)
			}
		} else if !errors.Is(err, ErrBadHandle) {
			t.Fatalf("error %v", err)
		}
		ExportIDOf(raw)
		h, ok := fs.encodeHandle(kernelFH{typ: int32(typ), bytes: kb})
		if !ok {
			return
		}
		if len(h) > MaxHandle {
			t.Fatalf("handle of %d bytes", len(h))
		}
		k, err := fs.decodeHandle(h)
		if err != nil || k.typ != int32(typ) || !bytes.Equal(k.bytes, kb) {
			t.Fatalf("round trip: %+v %v", k, err)
		}
	})
}
