package maildirfs

import (
	"encoding/binary"
	"hash/crc32"
	"time"

	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

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

// SetZQueueLen sets the capacity of the background compression queue of
// stores opened afterwards and returns a function restoring it.
func SetZQueueLen(n int) func() {
	old := zQueueLen
	zQueueLen = n
	return func() { zQueueLen = old }
}

// ReadMail reads mail files, one message each, without a leading mbox
// "From " line (for the benchmarks' real corpus).
var ReadMail = readMail

// CompressNow compresses the files of hs synchronously (what the
// background worker does).
func (f *FS) CompressNow(hs []Handle) (int, error) { return f.zcompress(hs) }

// ZXattr is the name of the marker xattr.
const ZXattr = zXattr

// ZEncoder returns a function compressing a file into the on-disk layout
// with the encoder at level and dictionary dict: "none", "v1" (zdict, the
// first format) or "v2" (zdict2, what the server writes).
func ZEncoder(level zstd.EncoderLevel, dict string) (func([]byte) []byte, error) {
	var d zstd.EOption
	switch dict {
	case "v1":
		d = zstd.WithEncoderDictRaw(zdictID, zdict)
	case "v2":
		d = zstd.WithEncoderDict(zdict2)
	default:
		d = zstd.WithEncoderCRC(true) // no dictionary
	}
	o := zencOptions(d)
	o[0] = zstd.WithEncoderLevel(level)
	enc, err := zstd.NewWriter(nil, o...)
	if err != nil {
		return nil, err
	}
	return func(p []byte) []byte { return zencodeWith(enc, p) }, nil
}

// ZDecode decompresses a whole file of the on-disk layout.
func ZDecode(b []byte) ([]byte, error) { return zdecodeAll(b) }

// ZZeros returns a file of the on-disk layout (valid checksum) holding n
// frames of zMaxFrameSz zero bytes each: a few hundred bytes a frame.
func ZZeros(n int) []byte {
	enc, _ := zcodecs()
	frame := enc.EncodeAll(make([]byte, zMaxFrameSz), nil)
	b := make([]byte, zHdrLen+4*n, zHdrLen+(4+len(frame))*n)
	copy(b, zMagic)
	binary.BigEndian.PutUint64(b[8:], uint64(n)*zMaxFrameSz)
	binary.BigEndian.PutUint32(b[16:], zMaxFrameSz)
	binary.BigEndian.PutUint32(b[20:], uint32(n))
	for i := range n {
		binary.BigEndian.PutUint32(b[zHdrLen+4*i:], uint32(len(frame)))
		b = append(b, frame...)
	}
	c := crc32.Update(crc32.Checksum(b[:24], crcTable), crcTable, b[zHdrLen:zHdrLen+4*n])
	binary.BigEndian.PutUint32(b[24:], c)
	return b
}

// SetZTrain sets the training schedule (samples per training, their
// bytes, messages and age before a retraining, minimum gain) and returns
// a function restoring it.
func SetZTrain(msgs, bytes, retrainMsgs int, age time.Duration, gain float64) func() {
	a, b, c, d, e := zTrainMsgs, zTrainBytes, zRetrainMsgs, zRetrainAge, zDictGain
	zTrainMsgs, zTrainBytes, zRetrainMsgs, zRetrainAge, zDictGain = msgs, bytes, retrainMsgs, age, gain
	return func() { zTrainMsgs, zTrainBytes, zRetrainMsgs, zRetrainAge, zDictGain = a, b, c, d, e }
}

// ForgetZDicts unregisters every trained dictionary from the decoder (a
// process that never loaded them).
func ForgetZDicts() {
	zreg.mu.Lock()
	zreg.dicts = nil
	zreg.dec.Store(nil)
	zreg.mu.Unlock()
}

// ZDictDir is the name of the dictionary directory at an export's root.
const ZDictDir = zDictDir

// ZJournalDir is the store's state subdirectory for compression.
const ZJournalDir = zJournalDir

// FrameDictIDs returns the dictionary ID of each frame of a compressed file.
func FrameDictIDs(c []byte) ([]uint32, error) {
	z, err := zparseIndex(c, int64(len(c)))
	if err != nil {
		return nil, err
	}
	var ids []uint32
	for i := range z.frames() {
		var h zstd.Header
		if err := h.Decode(c[z.offs[i]:z.offs[i+1]]); err != nil {
			return nil, err
		}
		ids = append(ids, h.DictionaryID)
	}
	return ids, nil
}

// SetUnlinkedSweep sets how often stores opened after the call look for
// cached objects a local process removed, and returns a function
// restoring the default.
func SetUnlinkedSweep(d time.Duration) func() {
	old := unlinkedSweep
	unlinkedSweep = d
	return func() { unlinkedSweep = old }
}

// SetDirRecheck sets how long a cached directory node is trusted to be
// inside the export and returns a function restoring the default.
func SetDirRecheck(d time.Duration) func() {
	old := dirRecheck
	dirRecheck = d
	return func() { dirRecheck = old }
}

// ACLReads returns how many times an access ACL xattr was read.
func ACLReads() uint64 { return aclReads.Load() }
