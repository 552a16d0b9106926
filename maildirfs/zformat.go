package maildirfs

import (
	"encoding/binary"
	"fmt"
	"hash/crc32"
	"slices"
	"sync"

	"github.com/klauspost/compress/zstd"
)

// Compressed file layout (version 1), written in place into the message's
// own inode so that its handle keeps naming it:
//
//	[0:8]    magic "MNFSZ\x00\x00\x01"
//	[8:16]   uncompressed size, big endian
//	[16:20]  frame size (uncompressed bytes per frame; the last may be short)
//	[20:24]  number of frames = ceil(size / frame size)
//	[24:28]  CRC-32C over bytes [0:24] and the index
//	[28:32]  zero
//	[32:32+4n] index: compressed length of each frame, big endian
//	then the frames: independent zstd frames, in order.
//
// The magic alone never marks a file as compressed: the xattr zXattr is the
// authority (a plain file may start with the magic). Its value is
// "Z2" | uncompressed size (8) | compressed file size (8) | rewrite id (8);
// a file counts as compressed only when the xattr parses and st_size
// equals the compressed size it names. A "Z2" marker whose compressed size
// is not st_size marks a rewrite that stopped part way (pending); the id
// names the journal record that finishes it (compress.go). Files
// compressed before the id existed carry "Z1" (no id); a "Z1" marker that
// names another size counts as plain.
const (
	zMagic      = "MNFSZ\x00\x00\x01"
	zHdrLen     = 32
	zFrameSize  = 64 << 10
	zXattr      = "user.mailnfs.z"
	zXattrLen1  = 18        // "Z1" marker
	zXattrLen   = 26        // "Z2" marker
	zMaxUSize   = 1 << 40   // larger files are never compressed
	zMaxFrameSz = 4 << 20   // bound accepted when parsing
	zMinFrameSz = 4 << 10   // bound accepted when parsing
	zFrameSlack = 64 + 1024 // zstd worst-case overhead bound per frame, plus margin
)

var crcTable = crc32.MakeTable(crc32.Castagnoli)

// zindex is a parsed header: where each frame starts.
type zindex struct {
	usize     int64
	frameSize int64
	offs      []int64 // len = frames+1; offs[i] = file offset of frame i, offs[n] = file size
}

// frames returns the number of frames.
func (z *zindex) frames() int { return len(z.offs) - 1 }

var (
	zencOnce sync.Once
	zenc     *zstd.Encoder
	zdec     *zstd.Decoder
)

func zcodecs() (*zstd.Encoder, *zstd.Decoder) {
	zencOnce.Do(func() {
		var err error
		zenc, err = zstd.NewWriter(nil, zencOptions(zstd.WithEncoderDict(zdict2))...)
		if err != nil {
			panic(err) // constant options: cannot fail
		}
		zdec, err = newZDecoder([][]byte{zdict2})
		if err != nil {
			panic(err)
		}
	})
	return zenc, zdec
}

// zencOptions are the encoder's settings with dict (one of the zstd
// dictionary options). SpeedBetterCompression: SpeedBestCompression saves
// 3% more on text mail but costs over ten times the CPU per message with a
// dictionary (README, Compression at rest).
func zencOptions(dict zstd.EOption) []zstd.EOption {
	return []zstd.EOption{zstd.WithEncoderLevel(zstd.SpeedBetterCompression), zstd.WithEncoderConcurrency(1), zstd.WithWindowSize(zFrameSize), dict}
}

// zencode compresses plain into the layout above. Encoder.EncodeAll is
// safe for concurrent use.
func zencode(plain []byte) []byte {
	enc, _ := zcodecs()
	return zencodeWith(enc, plain)
}

// zencodeWith is zencode with the given encoder.
func zencodeWith(enc *zstd.Encoder, plain []byte) []byte {
	n := (len(plain) + zFrameSize - 1) / zFrameSize
	out := make([]byte, zHdrLen+4*n, zHdrLen+4*n+len(plain)/2+64)
	copy(out, zMagic)
	binary.BigEndian.PutUint64(out[8:], uint64(len(plain)))
	binary.BigEndian.PutUint32(out[16:], zFrameSize)
	binary.BigEndian.PutUint32(out[20:], uint32(n))
	for i := range n {
		chunk := plain[i*zFrameSize : min(len(plain), (i+1)*zFrameSize)]
		before := len(out)
		out = enc.EncodeAll(chunk, out)
		binary.BigEndian.PutUint32(out[zHdrLen+4*i:], uint32(len(out)-before))
	}
	c := crc32.Update(crc32.Checksum(out[:24], crcTable), crcTable, out[zHdrLen:zHdrLen+4*n])
	binary.BigEndian.PutUint32(out[24:], c)
	return out
}

// zparseHeader parses the fixed header: uncompressed size, frame size,
// number of frames. fileSize bounds every field.
func zparseHeader(hdr []byte, fileSize int64) (usize, frameSize int64, n int, err error) {
	if len(hdr) < zHdrLen || string(hdr[:8]) != zMagic {
		return 0, 0, 0, fmt.Errorf("compressed header: bad magic: %w", ErrCorrupt)
	}
	usize = int64(binary.BigEndian.Uint64(hdr[8:]))
	frameSize = int64(binary.BigEndian.Uint32(hdr[16:]))
	nf := int64(binary.BigEndian.Uint32(hdr[20:]))
	switch {
	case usize < 0 || usize > zMaxUSize:
		err = fmt.Errorf("compressed header: size %d: %w", usize, ErrCorrupt)
	case frameSize < zMinFrameSz || frameSize > zMaxFrameSz:
		err = fmt.Errorf("compressed header: frame size %d: %w", frameSize, ErrCorrupt)
	case nf != (usize+frameSize-1)/frameSize:
		err = fmt.Errorf("compressed header: %d frames for %d bytes: %w", nf, usize, ErrCorrupt)
	case zHdrLen+4*nf > fileSize:
		err = fmt.Errorf("compressed header: index beyond file end: %w", ErrCorrupt)
	}
	return usize, frameSize, int(nf), err
}

// zparseIndex parses header plus index (b holds at least zHdrLen+4n bytes)
// of a compressed file of fileSize bytes.
func zparseIndex(b []byte, fileSize int64) (*zindex, error) {
	usize, fs, n, err := zparseHeader(b, fileSize)
	if err != nil {
		return nil, err
	}
	end := zHdrLen + 4*n
	if len(b) < end {
		return nil, fmt.Errorf("compressed index: short: %w", ErrCorrupt)
	}
	c := crc32.Update(crc32.Checksum(b[:24], crcTable), crcTable, b[zHdrLen:end])
	if c != binary.BigEndian.Uint32(b[24:]) {
		return nil, fmt.Errorf("compressed index: checksum: %w", ErrCorrupt)
	}
	z := &zindex{usize: usize, frameSize: fs, offs: make([]int64, n+1)}
	off := int64(end)
	for i := range n {
		z.offs[i] = off
		l := int64(binary.BigEndian.Uint32(b[zHdrLen+4*i:]))
		if l == 0 || l > fs+fs/8+zFrameSlack {
			return nil, fmt.Errorf("compressed index: frame %d length %d: %w", i, l, ErrCorrupt)
		}
		off += l
	}
	z.offs[n] = off
	if off != fileSize {
		return nil, fmt.Errorf("compressed index: frames end at %d, file has %d bytes: %w", off, fileSize, ErrCorrupt)
	}
	return z, nil
}

// frameLen is the uncompressed length of frame i.
func (z *zindex) frameLen(i int) int64 {
	return min(z.frameSize, z.usize-int64(i)*z.frameSize)
}

// zdecodeFrame decompresses frame i (its compressed bytes in src) into dst
// (reused when large enough) and checks its length.
func (z *zindex) decodeFrame(i int, src, dst []byte) ([]byte, error) {
	dec := zdecoder()
	want := z.frameLen(i)
	out, err := dec.DecodeAll(src, dst[:0])
	if err != nil {
		return nil, fmt.Errorf("frame %d: %v: %w", i, err, ErrCorrupt)
	}
	if int64(len(out)) != want {
		return nil, fmt.Errorf("frame %d: %d bytes, want %d: %w", i, len(out), want, ErrCorrupt)
	}
	return out, nil
}

// zdecodeAll decompresses a whole compressed file held in b. The output
// grows frame by frame as frames decode: the header's uncompressed size is
// only a claim (up to zMaxUSize, a terabyte, in a file of a few MiB) until
// the frames bear it out.
func zdecodeAll(b []byte) ([]byte, error) {
	z, err := zparseIndex(b, int64(len(b)))
	if err != nil {
		return nil, err
	}
	var out []byte
	for i := range z.frames() {
		out = slices.Grow(out, int(z.frameLen(i)))
		p, err := z.decodeFrame(i, b[z.offs[i]:z.offs[i+1]], out[len(out):])
		if err != nil {
			return nil, err
		}
		out = append(out, p...) // right whether or not p was decoded in place
	}
	return out, nil
}

// zxattrValue encodes the marker xattr: "Z2" with the rewrite id, or the
// older "Z1" when id is 0.
func zxattrValue(usize, csize int64, id uint64) []byte {
	n := zXattrLen
	if id == 0 {
		n = zXattrLen1
	}
	v := make([]byte, n)
	v[0], v[1] = 'Z', '1'
	binary.BigEndian.PutUint64(v[2:], uint64(usize))
	binary.BigEndian.PutUint64(v[10:], uint64(csize))
	if id != 0 {
		v[1] = '2'
		binary.BigEndian.PutUint64(v[18:], id)
	}
	return v
}

// zparseXattr decodes the marker xattr (id 0: a "Z1" marker).
func zparseXattr(v []byte) (usize, csize int64, id uint64, ok bool) {
	switch {
	case len(v) == zXattrLen1 && v[0] == 'Z' && v[1] == '1':
	case len(v) == zXattrLen && v[0] == 'Z' && v[1] == '2':
		id = binary.BigEndian.Uint64(v[18:])
		if id == 0 {
			return 0, 0, 0, false
		}
	default:
		return 0, 0, 0, false
	}
	usize = int64(binary.BigEndian.Uint64(v[2:]))
	csize = int64(binary.BigEndian.Uint64(v[10:]))
	if usize < 0 || usize > zMaxUSize || csize < zHdrLen || csize > zMaxUSize {
		return 0, 0, 0, false
	}
	return usize, csize, id, true
}
