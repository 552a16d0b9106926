package maildirfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/dict"
	"github.com/klauspost/compress/zstd"
	"golang.org/x/sys/unix"
)

// Trained dictionaries: the store learns a zstd dictionary from the mail it
// compresses, so messages get the strings that this box's mail shares
// (its senders' header blocks, mailing list footers, the local MTA's
// Received lines, the language of its users) instead of only the generic
// built-in dictionary. See doc.go, "Trained dictionaries".
//
// A dictionary is part of the format of every frame written with it (a
// frame names its dictionary by ID), so it is made durable before the
// first message uses it and never changes or goes away. Each is kept
// twice: in the export, in the directory zDictDir at its root (so it
// travels with the mail: backups, moves to another box), and in the
// store's state directory; Open loads both and copies a dictionary missing
// from one place back from the other.
const (
	// zDictDir: no leading dot, so that a Maildir++ reader whose Maildir
	// is the export root does not take it for a folder.
	zDictDir  = "mailnfs-zdict"
	zDictSub  = "dicts" // in the journal directory (state)
	zDictExt  = ".zdict"
	zDictSize = 64 << 10 // content of a trained dictionary, at most
	zDictMax  = 1 << 20  // larger files are not dictionaries of ours
	// zSampleLen: a sample is the start of a message: its header and
	// first text, where the shared strings are (zsampleOf).
	zSampleLen = 8 << 10
	// zDictMagic starts a dictionary in zstd's format (RFC 8878 §5).
	zDictMagic = 0xec30a437
)

// Training schedule. Variables so that tests can train on a few messages.
var (
	// zTrainMsgs samples (or zTrainBytes of them) make a training. On
	// real mail (SpamAssassin's easy_ham_1, trained on its first half,
	// measured on the second) 1 MiB of samples gave 2.84x, 4 MiB 2.85x;
	// the builder allocates about 30 times the sample bytes, and takes
	// 0.2 to 0.7 s of CPU for 1 to 2 MiB.
	zTrainMsgs  = 1000
	zTrainBytes = 2 << 20
	// After a training (adopted or not), the next waits for zRetrainMsgs
	// compressed messages and zRetrainAge, so a busy box adds about one
	// 64 KiB dictionary a week (the decoder keeps all of them).
	zRetrainMsgs = 50000
	zRetrainAge  = 7 * 24 * time.Hour
	// zDictGain: a new dictionary is adopted only if it stores the
	// held-out samples in at most 1-zDictGain of what the current one
	// takes.
	zDictGain = 0.01
)

// zlearn is the training state of a store.
type zlearn struct {
	mu      sync.Mutex
	want    bool     // gathering samples for a training
	samples [][]byte // starts of compressed messages, while want
	bytes   int
	since   int       // messages compressed since the last training
	last    time.Time // of the last training; zero: none yet

	enc    atomic.Pointer[zstd.Encoder] // nil: the built-in dictionary
	dictID atomic.Uint32                // of enc; 0 with the built-in
	dicts  atomic.Int32                 // trained dictionaries loaded
	trains atomic.Uint64                // trainings adopted by this process
}

// zencoder returns the encoder new messages are compressed with.
func (f *FS) zencoder() *zstd.Encoder {
	if e := f.z.learn.enc.Load(); e != nil {
		return e
	}
	enc, _ := zcodecs()
	return enc
}

// zsample notes one message the store compresses (its plain content): a
// sample while a training is gathering them.
func (z *zstore) zsample(plain []byte) {
	l := &z.learn
	l.mu.Lock()
	defer l.mu.Unlock()
	l.since++
	if !l.want {
		retrain := l.last.IsZero() || (l.since >= zRetrainMsgs && time.Since(l.last) >= zRetrainAge)
		if !retrain || !z.compress {
			return
		}
		l.want = true
	}
	if s := zsampleOf(plain); len(s) > 0 && len(l.samples) < zTrainMsgs && l.bytes < zTrainBytes {
		l.samples = append(l.samples, slices.Clone(s))
		l.bytes += len(s)
	}
}

// zsampleOf returns the part of a message that a dictionary should learn
// from: its first zSampleLen bytes, cut before the first line of base64
// (an attachment: random to a compressor, and matches into it only slow
// the encoder down; measured on the "mixed" corpus: 1.5x the CPU per
// message for 1% less space).
func zsampleOf(plain []byte) []byte {
	s := plain[:min(len(plain), zSampleLen)]
	for off := 0; off < len(s); {
		end := bytes.IndexByte(s[off:], '\n')
		if end < 0 {
			end = len(s) - off
		}
		if isBase64Line(s[off : off+end]) {
			return s[:off]
		}
		off += end + 1
	}
	return s
}

// isBase64Line reports whether line (without its newline) looks like a line
// of a base64 body: 40 characters or more, all of the base64 alphabet.
func isBase64Line(line []byte) bool {
	line = bytes.TrimSuffix(line, []byte{'\r'})
	if len(line) < 40 {
		return false
	}
	for _, c := range line {
		if !('A' <= c && c <= 'Z' || 'a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '+' || c == '/' || c == '=') {
			return false
		}
	}
	return true
}

// ztakeSamples returns the samples once there are enough for a training,
// and starts the wait for the next one.
func (z *zstore) ztakeSamples() [][]byte {
	l := &z.learn
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.want || (len(l.samples) < zTrainMsgs && l.bytes < zTrainBytes) {
		return nil
	}
	s := l.samples
	l.samples, l.bytes, l.want = nil, 0, false
	l.since, l.last = 0, time.Now()
	return s
}

// zmaybeTrain trains a dictionary when enough samples are gathered, and
// adopts it if it does better than the current one on samples it was not
// trained on. It runs where messages are compressed (the background
// worker, Compact), after a group.
func (f *FS) zmaybeTrain() {
	samples := f.z.ztakeSamples()
	if samples == nil {
		return
	}
	t0 := time.Now()
	id, gain, err := f.ztrain(samples)
	switch {
	case err != nil:
		f.log.Warn("maildirfs: training a compression dictionary failed; the current one stays", "samples", len(samples), "err", err)
	case id == 0:
		f.log.Info("maildirfs: trained a compression dictionary, not better than the current one; not adopted", "samples", len(samples), "gain", fmt.Sprintf("%.3f", gain), "took", time.Since(t0).Round(time.Millisecond))
	default:
		f.log.Info("maildirfs: trained and adopted a compression dictionary", "id", fmt.Sprintf("%08x", id), "samples", len(samples), "gain", fmt.Sprintf("%.3f", gain), "took", time.Since(t0).Round(time.Millisecond))
	}
}

// ztrain builds a dictionary from nine in ten samples, measures it against
// the current one on the tenth, and, when it saves at least zDictGain,
// stores it durably and makes it the current one. It returns the new ID
// (0: not adopted) and the share of the held-out bytes it saves over the
// current dictionary.
func (f *FS) ztrain(samples [][]byte) (id uint32, gain float64, err error) {
	defer func() {
		// The trainer is a library run on whatever mail arrives: a
		// panic in it must not take the server down.
		if r := recover(); r != nil {
			id, err = 0, fmt.Errorf("dictionary builder panicked: %v", r)
		}
	}()
	var train, test [][]byte
	for i, s := range samples {
		if i%10 == 9 {
			test = append(test, s)
		} else {
			train = append(train, s)
		}
	}
	if len(test) == 0 {
		return 0, 0, errors.New("too few samples")
	}
	id = znewDictID()
	d, err := dict.BuildZstdDict(train, dict.Options{
		MaxDictSize:    zDictSize,
		HashBytes:      6,
		ZstdDictID:     id,
		ZstdDictCompat: true, // readable by the zstd tool of any version
		ZstdLevel:      zstd.SpeedBetterCompression,
	})
	if err != nil {
		return 0, 0, err
	}
	if err := zcheckDict(d, id); err != nil {
		return 0, 0, err
	}
	enc, err := zdictEncoder(d)
	if err != nil {
		return 0, 0, err
	}
	cur, next := 0, 0
	curEnc := f.zencoder()
	for _, s := range test {
		cur += len(curEnc.EncodeAll(s, nil))
		next += len(enc.EncodeAll(s, nil))
	}
	gain = 1 - float64(next)/float64(cur)
	if gain < zDictGain {
		return 0, gain, nil
	}
	// Registered first (a dictionary the decoder refuses is never
	// written; an unused registration is harmless), then made durable in
	// both places, then used.
	if err := zregisterDict(id, d); err != nil {
		return 0, gain, err
	}
	if err := f.zsaveDict(zdictName(time.Now(), id), d); err != nil {
		return 0, gain, err
	}
	f.z.learn.enc.Store(enc)
	f.z.learn.dictID.Store(id)
	f.z.learn.dicts.Add(1)
	f.z.learn.trains.Add(1)
	return id, gain, nil
}

// znewDictID picks an ID for a new dictionary: random, in the range RFC
// 8878 leaves to private use (32768..2^31-1), and not one registered.
func znewDictID() uint32 {
	for {
		id := uint32(32768 + rand.N(1<<31-32768))
		if id != zdictID && id != zdict2ID && !zdictKnown(id) {
			return id
		}
	}
}

// zdictName is a dictionary's file name: the training time (Unix
// nanoseconds, 19 digits) and the ID, so that names sort by age.
func zdictName(t time.Time, id uint32) string {
	return fmt.Sprintf("%019d-%08x%s", t.UnixNano(), id, zDictExt)
}

// zparseDictName returns the time and ID of a dictionary file name.
func zparseDictName(name string) (time.Time, uint32, bool) {
	base, ok := strings.CutSuffix(name, zDictExt)
	ts, hid, ok2 := strings.Cut(base, "-")
	if !ok || !ok2 || len(hid) != 8 {
		return time.Time{}, 0, false
	}
	ns, err := strconv.ParseInt(ts, 10, 64)
	id, err2 := strconv.ParseUint(hid, 16, 32)
	if err != nil || err2 != nil || ns < 0 || len(ts) != 19 {
		return time.Time{}, 0, false
	}
	return time.Unix(0, ns), uint32(id), true
}

// zcheckDict checks that d is a zstd-format dictionary with the given ID,
// one a training can have made (in the private range, not built in).
func zcheckDict(d []byte, id uint32) error {
	if id < 32768 || id >= 1<<31 || id == zdictID || id == zdict2ID {
		return fmt.Errorf("dictionary ID %08x is not one of a trained dictionary: %w", id, ErrCorrupt)
	}
	if len(d) < 8 || len(d) > zDictMax || binary.LittleEndian.Uint32(d) != zDictMagic {
		return fmt.Errorf("not a zstd dictionary: %w", ErrCorrupt)
	}
	if got := binary.LittleEndian.Uint32(d[4:]); got != id {
		return fmt.Errorf("dictionary ID %08x, its name says %08x: %w", got, id, ErrCorrupt)
	}
	return nil
}

// zsaveDict stores dictionary d as name in the state directory and in the
// export, durably (file and directory entries), before its first use.
// The export's copy is skipped on a read-only store; a failure to write
// it is logged, not fatal: Open copies it over from the state directory.
func (f *FS) zsaveDict(name string, d []byte) error {
	sfd, err := f.zopenStateDicts()
	if err != nil {
		return err
	}
	err = zwriteFileAt(sfd, name, d)
	unix.Close(sfd)
	if err == nil {
		err = unix.Fsync(f.z.jdirFd) // the entry of dicts/, if new
	}
	if err != nil {
		return fmt.Errorf("saving dictionary %s in the state directory: %w", name, err)
	}
	if f.opts.ReadOnly {
		return nil
	}
	if err := f.zsaveExportDict(name, d); err != nil {
		f.log.Error("maildirfs: cannot keep a compression dictionary in the export; it is in the state directory only until the next start", "dir", filepath.Join(f.root, zDictDir), "name", name, "err", err)
	}
	return nil
}

// zopenStateDicts opens (making it if needed) the state directory's
// dictionary directory.
func (f *FS) zopenStateDicts() (int, error) {
	sdir := filepath.Join(f.z.jdir, zDictSub)
	if err := os.MkdirAll(sdir, 0o700); err != nil {
		return -1, err
	}
	return unix.Open(sdir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0)
}

// zdictEncoder returns an encoder with the server's settings and
// dictionary d.
func zdictEncoder(d []byte) (*zstd.Encoder, error) {
	return zstd.NewWriter(nil, zencOptions(zstd.WithEncoderDict(d))...)
}

// zsaveExportDict writes d as name into zDictDir at the export root,
// making the directory (mode 0700) if needed. A name there that is not a
// directory (a symlink, a file a client made) is refused.
func (f *FS) zsaveExportDict(name string, d []byte) error {
	made := false
	if err := unix.Mkdirat(f.rootFd, zDictDir, 0o700); err == nil {
		made = true
	} else if err != unix.EEXIST {
		return err
	}
	dfd, err := zopenExportDicts(f.rootFd)
	if err != nil {
		return err
	}
	defer unix.Close(dfd)
	if err := zwriteFileAt(dfd, name, d); err != nil {
		return err
	}
	if made {
		return unix.Fsync(f.rootFd)
	}
	return nil
}

// zopenExportDicts opens zDictDir at the export root, or returns -1 and an
// error: ENOENT when there is none, else it is not a directory the server
// alone may write (a symlink, or made or opened up by a client), and
// nothing in it is trusted.
func zopenExportDicts(rootFd int) (int, error) {
	fd, err := unix.Openat(rootFd, zDictDir, unix.O_RDONLY|unix.O_DIRECTORY|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return -1, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		unix.Close(fd)
		return -1, err
	}
	if int(st.Uid) != os.Geteuid() || st.Mode&0o022 != 0 {
		unix.Close(fd)
		return -1, fmt.Errorf("owned by uid %d with mode %o, not by the server (uid %d) and writable by it alone", st.Uid, st.Mode&0o7777, os.Geteuid())
	}
	return fd, nil
}

// zwriteFileAt creates name in directory dirFd with content b (mode 0400),
// through a temporary name, durably: a crash leaves either no file of
// that name or the whole of it.
func zwriteFileAt(dirFd int, name string, b []byte) error {
	tmp := name + ".tmp"
	unix.Unlinkat(dirFd, tmp, 0)
	fd, err := unix.Openat(dirFd, tmp, unix.O_WRONLY|unix.O_CREAT|unix.O_EXCL|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o400)
	if err != nil {
		return err
	}
	err = pwriteFull(fd, b, 0)
	if err == nil {
		err = unix.Fsync(fd)
	}
	unix.Close(fd)
	if err == nil {
		err = unix.Renameat(dirFd, tmp, dirFd, name)
	}
	if err == nil {
		err = unix.Fsync(dirFd)
	}
	if err != nil {
		unix.Unlinkat(dirFd, tmp, 0)
	}
	return err
}

// zreadDictAt reads dictionary file name from dirFd: a regular file (not
// followed if a symlink) of at most zDictMax bytes.
func zreadDictAt(dirFd int, name string) ([]byte, error) {
	fd, err := unix.Openat(dirFd, name, unix.O_RDONLY|unix.O_NOFOLLOW|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, err
	}
	defer unix.Close(fd)
	var st unix.Stat_t
	if err := unix.Fstat(fd, &st); err != nil {
		return nil, err
	}
	if st.Mode&unix.S_IFMT != unix.S_IFREG || st.Size > zDictMax {
		return nil, fmt.Errorf("not a dictionary file (mode %o, %d bytes): %w", st.Mode, st.Size, ErrCorrupt)
	}
	b := make([]byte, st.Size)
	if err := preadFull(fd, b, 0); err != nil {
		return nil, err
	}
	return b, nil
}

// zdictNames lists the dictionary file names in dirFd (-1: none), reading
// it once from its current position; with dropTemps it also removes the
// temporary files a crash in zwriteFileAt left.
func zdictNames(dirFd int, dropTemps bool) map[string]bool {
	names := make(map[string]bool)
	if dirFd < 0 {
		return names
	}
	var temps []string
	eachDirent(dirFd, make([]byte, direntBuf), func(_, _ uint64, name []byte) bool {
		if _, _, ok := zparseDictName(string(name)); ok {
			names[string(name)] = true
		} else if base, ok := strings.CutSuffix(string(name), ".tmp"); ok {
			if _, _, ok := zparseDictName(base); ok {
				temps = append(temps, string(name))
			}
		}
		return true
	})
	if dropTemps {
		for _, n := range temps {
			unix.Unlinkat(dirFd, n, 0)
		}
	}
	return names
}

// zloadDicts registers the store's trained dictionaries for decoding (Open)
// and makes the newest the one new messages get. The state directory's
// copy is preferred (the export's could have been changed by a client
// with root access), the export's taken when it is missing or damaged;
// a copy missing or different in either place is rewritten.
func (f *FS) zloadDicts() error {
	z := f.z
	sfd, err := f.zopenStateDicts()
	if err != nil {
		return fmt.Errorf("maildirfs: dictionary dir: %w", err)
	}
	defer unix.Close(sfd)
	efd, err := zopenExportDicts(f.rootFd)
	if err != nil {
		if err != unix.ENOENT {
			f.log.Warn("maildirfs: ignoring the export's dictionary directory", "dir", filepath.Join(f.root, zDictDir), "err", err)
		}
	} else {
		defer unix.Close(efd)
	}
	inState, inExport := zdictNames(sfd, true), zdictNames(efd, !f.opts.ReadOnly)
	var all []string
	for n := range inState {
		all = append(all, n)
	}
	for n := range inExport {
		if !inState[n] {
			all = append(all, n)
		}
	}
	slices.Sort(all) // oldest first: the last registered is the newest
	var newest string
	var newestDict []byte
	for _, name := range all {
		t, id, _ := zparseDictName(name)
		// The state copy first; the export's when that one is missing
		// or damaged.
		load := func(fd int, ok bool) []byte {
			if !ok {
				return nil
			}
			d, err := zreadDictAt(fd, name)
			if err == nil {
				err = zcheckDict(d, id)
			}
			if err == nil {
				err = zregisterDict(id, d)
			}
			if err != nil {
				f.log.Error("maildirfs: damaged compression dictionary copy", "name", name, "err", err)
				return nil
			}
			return d
		}
		d := load(sfd, inState[name])
		fromState := d != nil
		if !fromState {
			d = load(efd, inExport[name])
		}
		if d == nil {
			// Messages written with it fail to read (EIO, logged) until
			// a good copy is put back; everything else is served.
			f.log.Error("maildirfs: no usable copy of a compression dictionary; messages compressed with it cannot be read", "name", name)
			continue
		}
		// Repair a copy that is missing or differs: the state's when d
		// came from the export, the export's (unless it is where d came
		// from) when it does not hold the same bytes.
		if !fromState {
			if err := zwriteFileAt(sfd, name, d); err != nil {
				f.log.Error("maildirfs: cannot repair a compression dictionary in the state directory", "name", name, "err", err)
			} else {
				f.log.Warn("maildirfs: compression dictionary repaired in the state directory from the export", "name", name)
			}
		}
		if fromState && !f.opts.ReadOnly {
			var b []byte
			var err error = unix.ENOENT
			if efd >= 0 {
				b, err = zreadDictAt(efd, name)
			}
			if err != nil || string(b) != string(d) {
				if err := f.zsaveExportDict(name, d); err != nil {
					f.log.Error("maildirfs: cannot repair a compression dictionary in the export", "name", name, "err", err)
				} else {
					f.log.Warn("maildirfs: compression dictionary repaired in the export from the state directory", "name", name)
				}
			}
		}
		z.learn.dicts.Add(1)
		newest, newestDict = name, d
		z.learn.mu.Lock()
		z.learn.last = t
		z.learn.mu.Unlock()
	}
	if newest == "" {
		return nil
	}
	_, id, _ := zparseDictName(newest)
	enc, err := zdictEncoder(newestDict)
	if err != nil {
		return fmt.Errorf("maildirfs: dictionary %s: %w", newest, err)
	}
	z.learn.enc.Store(enc)
	z.learn.dictID.Store(id)
	return nil
}

// zloadDictsAbove registers for decoding the dictionaries in zDictDir of
// dirFd, a compressed tree's root above the export root (zmarkedAbove):
// its messages under the export may use them. Nothing there is written.
func (f *FS) zloadDictsAbove(dirFd int) {
	efd, err := zopenExportDicts(dirFd)
	if err != nil {
		if err != unix.ENOENT {
			f.log.Warn("maildirfs: ignoring the dictionary directory of the compressed tree above the export", "err", err)
		}
		return
	}
	defer unix.Close(efd)
	for name := range zdictNames(efd, false) {
		_, id, _ := zparseDictName(name)
		d, err := zreadDictAt(efd, name)
		if err == nil {
			err = zcheckDict(d, id)
		}
		if err == nil {
			err = zregisterDict(id, d)
		}
		if err != nil {
			f.log.Error("maildirfs: damaged compression dictionary in the compressed tree above the export", "name", name, "err", err)
		}
	}
}

// The decoder knows every dictionary of every store in the process (IDs
// are random and checked unique when made; a frame names its own), so the
// read path needs no store to decode.
var zreg struct {
	mu    sync.Mutex
	dicts map[uint32][]byte // trained dictionaries, guarded by mu
	dec   atomic.Pointer[zstd.Decoder]
}

// zdictKnown reports whether a trained dictionary with this ID is
// registered.
func zdictKnown(id uint32) bool {
	zreg.mu.Lock()
	defer zreg.mu.Unlock()
	_, ok := zreg.dicts[id]
	return ok
}

// zregisterDict adds a trained dictionary to the decoder. The same bytes
// under the same ID again are fine; other bytes under a known ID are not.
func zregisterDict(id uint32, d []byte) error {
	zreg.mu.Lock()
	defer zreg.mu.Unlock()
	if old, ok := zreg.dicts[id]; ok {
		if string(old) != string(d) {
			return fmt.Errorf("dictionary %08x: another dictionary with this ID is loaded: %w", id, ErrCorrupt)
		}
		return nil
	}
	all := [][]byte{zdict2}
	for _, o := range zreg.dicts {
		all = append(all, o)
	}
	dec, err := newZDecoder(append(all, d))
	if err != nil {
		return fmt.Errorf("dictionary %08x: %v: %w", id, err, ErrCorrupt)
	}
	if zreg.dicts == nil {
		zreg.dicts = make(map[uint32][]byte)
	}
	zreg.dicts[id] = d
	zreg.dec.Store(dec)
	return nil
}

// newZDecoder returns a decoder for the built-in dictionaries and the
// zstd-format dictionaries dicts.
func newZDecoder(dicts [][]byte) (*zstd.Decoder, error) {
	return zstd.NewReader(nil, zstd.WithDecoderConcurrency(0), zstd.WithDecoderMaxMemory(zMaxFrameSz*2), zstd.WithDecoderDictRaw(zdictID, zdict), zstd.WithDecoderDicts(dicts...))
}

// zdecoder returns the decoder that knows every registered dictionary.
func zdecoder() *zstd.Decoder {
	if d := zreg.dec.Load(); d != nil {
		return d
	}
	_, dec := zcodecs()
	return dec
}
