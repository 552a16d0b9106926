package maildirfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"math/rand/v2"
	"testing"

	"golang.org/x/sys/unix"
)

// TestZCodecRoundTrip encodes and decodes 0 B..10 MiB, frame by frame and
// whole.
func TestZCodecRoundTrip(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, n := range []int{0, 1, zFrameSize - 1, zFrameSize, zFrameSize + 1, 3*zFrameSize + 17, 10 << 20} {
		plain := make([]byte, n)
		for i := range plain {
			if i%3 == 0 {
				plain[i] = byte(r.Uint32())
			} else {
				plain[i] = 'a' + byte(i%7)
			}
		}
		c := zencode(plain)
		got, err := zdecodeAll(c)
		if err != nil || !bytes.Equal(got, plain) {
			t.Fatalf("%d bytes: %v", n, err)
		}
		z, err := zparseIndex(c, int64(len(c)))
		if err != nil || z.usize != int64(n) || z.frames() != (n+zFrameSize-1)/zFrameSize {
			t.Fatalf("%d bytes: index %+v %v", n, z, err)
		}
		// Any damage to header or index is detected.
		for _, i := range []int{0, 9, 17, 21, 25, zHdrLen} {
			if i >= len(c) {
				continue
			}
			d := bytes.Clone(c)
			d[i] ^= 0x40
			if _, err := zparseIndex(d, int64(len(d))); err == nil {
				t.Errorf("%d bytes: flipped byte %d accepted", n, i)
			}
		}
		if _, err := zparseIndex(c, int64(len(c))+1); err == nil {
			t.Errorf("%d bytes: wrong file size accepted", n)
		}
	}
}

func FuzzZParseIndex(f *testing.F) {
	f.Add(zencode(nil))
	f.Add(zencode([]byte("hello hello hello hello")))
	f.Add(zencode(bytes.Repeat([]byte("x"), 3*zFrameSize+5)))
	f.Add([]byte(zMagic))
	f.Fuzz(func(t *testing.T, b []byte) {
		z, err := zparseIndex(b, int64(len(b)))
		if _, _, n, herr := zparseHeader(b, int64(len(b))); err != nil && herr == nil {
			// Mutations break the checksum, which would keep the
			// fuzzer out of the index and the frames: put it right.
			b = bytes.Clone(b)
			c := crc32.Update(crc32.Checksum(b[:24], crcTable), crcTable, b[zHdrLen:zHdrLen+4*n])
			binary.BigEndian.PutUint32(b[24:], c)
			z, err = zparseIndex(b, int64(len(b)))
		}
		if err != nil {
			return
		}
		// A parsed index stays within the file and frames decode or fail
		// cleanly.
		if z.offs[len(z.offs)-1] != int64(len(b)) {
			t.Fatalf("index ends at %d of %d", z.offs[len(z.offs)-1], len(b))
		}
		for i := range z.frames() {
			if z.offs[i] > z.offs[i+1] {
				t.Fatal("frames out of order")
			}
			z.decodeFrame(i, b[z.offs[i]:z.offs[i+1]], nil)
		}
		if z.usize <= zMaxFile {
			if p, err := zdecodeAll(b); err == nil && int64(len(p)) != z.usize {
				t.Fatalf("decoded %d bytes, header says %d", len(p), z.usize)
			}
		}
	})
}

func FuzzZJournalRecord(f *testing.F) {
	rec := &zrec{compress: true, kfh: kernelFH{typ: 1, bytes: []byte{1, 2, 3, 4, 5, 6, 7, 8}}, ino: 12, id: 99, csize: 4,
		atime: unix.Timespec{Sec: 1, Nsec: 2}, mtime: unix.Timespec{Sec: 3, Nsec: 4}, usize: 5, data: []byte("data")}
	f.Add(rec.encode())
	rec.compress, rec.csize = false, 77
	f.Add(append(rec.encode(), rec.encode()...))
	legacy := *rec
	legacy.id, legacy.csize, legacy.legacy = 0, 0, true // before ids (MNFSZJ01)
	f.Add(append(legacy.encode(), rec.encode()...))
	f.Fuzz(func(t *testing.T, b []byte) {
		for len(b) > 0 {
			r, k, err := zdecodeRec(b)
			if err != nil {
				return
			}
			if k <= 0 || k > len(b) {
				t.Fatalf("record length %d of %d", k, len(b))
			}
			if again := r.encode(); !bytes.Equal(again, b[:k]) {
				t.Fatal("record does not re-encode to its bytes")
			}
			b = b[k:]
		}
	})
}

func FuzzZXattr(f *testing.F) {
	f.Add(zxattrValue(100, 40, 0))
	f.Add(zxattrValue(100, 40, 7))
	f.Add([]byte("Z1"))
	f.Fuzz(func(t *testing.T, b []byte) {
		us, cs, id, ok := zparseXattr(b)
		if ok && !bytes.Equal(zxattrValue(us, cs, id), b) {
			t.Fatal("marker does not re-encode to its bytes")
		}
	})
}

// TestZDecodeAllClaimedSize: a header (with a valid checksum) may claim up
// to zMaxUSize uncompressed bytes in a small file, one byte per 4 MiB
// frame. zdecodeAll must fail on the bad frames, not first allocate the
// terabyte the header claims (which kills the process).
func TestZDecodeAllClaimedSize(t *testing.T) {
	const fs = zMaxFrameSz
	nf := (zMaxUSize + fs - 1) / fs
	b := make([]byte, zHdrLen+4*nf+nf)
	copy(b, zMagic)
	binary.BigEndian.PutUint64(b[8:], zMaxUSize)
	binary.BigEndian.PutUint32(b[16:], fs)
	binary.BigEndian.PutUint32(b[20:], uint32(nf))
	for i := range nf {
		binary.BigEndian.PutUint32(b[zHdrLen+4*i:], 1)
	}
	c := crc32.Update(crc32.Checksum(b[:24], crcTable), crcTable, b[zHdrLen:zHdrLen+4*nf])
	binary.BigEndian.PutUint32(b[24:], c)
	if _, err := zparseIndex(b, int64(len(b))); err != nil {
		t.Fatalf("crafted index rejected: %v", err)
	}
	if _, err := zdecodeAll(b); !errors.Is(err, ErrCorrupt) {
		t.Fatalf("zdecodeAll = %v, want ErrCorrupt", err)
	}
}
