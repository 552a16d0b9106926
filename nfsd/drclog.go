package nfsd

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// DRCLog remembers, across a restart of the server, which non-idempotent
// calls an earlier run began. The duplicate request cache lives in memory,
// so without it a client that retransmits after the server was restarted
// or killed (a Linux client resends every unanswered call, same XID, on
// its new connection) has a RENAME that already moved tmp/x to new/x run
// again and answered NFS3ERR_NOENT: the delivery agent sees a failure and
// delivers the message a second time. With it, such a call reaches the
// Program marked Request.MayHaveRun, and the Program answers the error
// its own first run would cause as the success it was.
//
// Each call is recorded before it runs, as one 64-byte record in a ring of
// slots in a file mapped shared into memory: a record costs a copy, not a
// system call, and is in the page cache, so it survives the process being
// killed. It does not survive a crash of the machine (nothing syncs it);
// NFS servers generally lose their duplicate cache then, and so does this
// one. A record names the call as the cache does (client address, XID,
// program, version, procedure, checksum and length of the arguments) with
// the time it began; a torn record fails its checksum and is ignored.
//
// A new DRCLog reads the records an earlier run left that are younger than
// the TTL, keeps them in memory for begin, and writes them back into the
// fresh ring (so that a second restart soon after still knows them). One
// DRCLog holds the file at a time (an exclusive flock); another server
// sharing the state directory gets ErrDRCLogBusy.
//
// Measured side by side with the build before it (5 rounds of make bench's
// delivery steps, 2026-11-29): deliveries/s 1.04x, 1.07x and 0.96x at 1, 8
// and 32 deliverers, server CPU per delivery 0.98x, 0.96x and 1.03x: within
// this machine's noise. The ring adds its 4 MiB to the resident set once
// it has filled.
type DRCLog struct {
	f     *os.File
	slots uint64
	next  atomic.Uint64 // next slot to write, modulo slots

	// memMu guards mem against Close: a call that began after a Shutdown
	// gave up waiting may still record.
	memMu sync.RWMutex
	mem   []byte // the mapping: header, then slots records; nil once closed

	faulted atomic.Bool // a store into the mapping faulted; no more records

	// Logger, if set, reports a fault of the mapping.
	Logger *slog.Logger

	// checkMu serialises Check; checkFailed (guarded by it) says its
	// last attempt to create the file again failed and was logged.
	checkMu     sync.Mutex
	checkFailed bool

	mu   sync.Mutex
	prev map[drcKey]time.Time // calls an earlier run began; guarded by mu
	// prevUntil is when the youngest of prev is older than ttl; after it,
	// prev is dropped. Guarded by mu.
	prevUntil time.Time
	// prevLive is false once prev is dropped or empty, so that begin then
	// takes no lock.
	prevLive atomic.Bool
	ttl      time.Duration
}

// DRCLogFile is the log's name in mailnfsd's state directory.
const DRCLogFile = "drc.log"

// ErrDRCLogBusy is returned by OpenDRCLog when another open log (in this
// process or another) holds the file.
var ErrDRCLogBusy = errors.New("in use by another server")

// ErrDRCLogUnwritable is wrapped by the error OpenDRCLog returns, with a
// usable log, when the file cannot be created or written (its file system
// full or read-only): the log then knows the calls an earlier run left
// (as far as they could be read) and records none.
var ErrDRCLogUnwritable = errors.New("cannot be written; calls of this run are not recorded")

// drcLogNoRoom reports whether err is the state directory's file system
// refusing to store the log (full, over quota, read-only), which a server
// can serve through.
func drcLogNoRoom(err error) bool {
	return errors.Is(err, unix.ENOSPC) || errors.Is(err, unix.EDQUOT) || errors.Is(err, unix.EROFS)
}

// readOnlyDRCLog is the log OpenDRCLog returns with ErrDRCLogUnwritable:
// it knows prev, the calls an earlier run left, and records nothing.
func readOnlyDRCLog(path string, prev map[drcKey]time.Time, ttl time.Duration, cause error) (*DRCLog, int, error) {
	l := &DRCLog{slots: 1, prev: prev, ttl: ttl}
	l.faulted.Store(true) // no ring to store into
	l.setPrevUntil()
	return l, len(prev), fmt.Errorf("duplicate request log %s: %w: %w", path, ErrDRCLogUnwritable, cause)
}

// setPrevUntil sets prevUntil and prevLive from prev.
func (l *DRCLog) setPrevUntil() {
	for _, at := range l.prev {
		if u := at.Add(l.ttl); u.After(l.prevUntil) {
			l.prevUntil = u
		}
	}
	l.prevLive.Store(len(l.prev) > 0)
}

const (
	drcLogMagic      = "MNFSDRC1"
	drcLogRecordSize = 64
	drcLogHeaderSize = drcLogRecordSize // magic, slots; padded to a record

	// DefaultDRCLogSlots is the ring's size in records: 4 MiB, the last
	// 65,536 non-idempotent calls (at 4,500 a second, 14 s of them).
	DefaultDRCLogSlots = 1 << 16
)

// OpenDRCLog opens or creates the log at path with slots records (0 means
// DefaultDRCLogSlots) and loads what an earlier run recorded within ttl
// of now. loaded is the number of calls it found. If the file cannot be
// created or written for want of room or a read-only file system, it
// returns a log that knows those calls and records none, with an error
// wrapping ErrDRCLogUnwritable.
func OpenDRCLog(path string, slots int, ttl time.Duration, now time.Time) (_ *DRCLog, loaded int, err error) {
	if slots <= 0 {
		slots = DefaultDRCLogSlots
	}
	if ttl <= 0 {
		ttl = DefaultDRCTTL
	}
	f, err := openDRCLogFile(path, false)
	if err != nil {
		if drcLogNoRoom(err) {
			return readOnlyDRCLog(path, readDRCLog(path, now, ttl), ttl, err)
		}
		return nil, 0, fmt.Errorf("duplicate request log: %w", err)
	}
	prev := readDRCLog(path, now, ttl)
	mem, err := mapRing(f, slots)
	if err != nil {
		f.Close()
		if drcLogNoRoom(err) {
			// The earlier run's calls were read above: keep them.
			return readOnlyDRCLog(path, prev, ttl, err)
		}
		return nil, 0, fmt.Errorf("duplicate request log: %s: %w", path, err)
	}
	l := &DRCLog{f: f, mem: mem, slots: uint64(slots), prev: prev, ttl: ttl}
	for k, at := range prev {
		l.record(k, at)
	}
	l.setPrevUntil()
	return l, len(prev), nil
}

// openDRCLogFile opens or creates the log's file at path and locks it.
// The file is then truncated to a fresh ring: so it refuses a symbolic link (whoever may
// write the state directory could point it at any file root may write)
// and anything but a regular file. planted says the name was found
// replaced while the log ran (DRCLog.Check): then it also refuses a file
// with other links (a hard link planted to another file) or of another
// owner. At start a hard link is taken, as a backup made with cp -al
// leaves one.
func openDRCLogFile(path string, planted bool) (*os.File, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|unix.O_NOFOLLOW|unix.O_NONBLOCK, 0o600)
	if err != nil {
		if st, lerr := os.Lstat(path); lerr == nil && st.Mode()&os.ModeSymlink != 0 {
			return nil, fmt.Errorf("%s is a symbolic link, not followed: %w", path, unix.ELOOP)
		}
		return nil, err
	}
	var st unix.Stat_t
	if err := unix.Fstat(int(f.Fd()), &st); err != nil {
		f.Close()
		return nil, err
	}
	switch {
	case st.Mode&unix.S_IFMT != unix.S_IFREG:
		err = fmt.Errorf("%s is not a regular file (mode %#o): %w", path, st.Mode, unix.EINVAL)
	case planted && st.Nlink != 1:
		err = fmt.Errorf("%s has %d links, not made by mailnfsd: %w", path, st.Nlink, unix.EEXIST)
	case planted && int(st.Uid) != os.Geteuid():
		err = fmt.Errorf("%s is owned by uid %d, not made by mailnfsd: %w", path, st.Uid, unix.EPERM)
	}
	if err != nil {
		f.Close()
		return nil, err
	}
	// One process maps the file at a time: another's truncation would
	// fault our mapping, and both would write the same slots. The lock
	// goes with the process, however it ends.
	if err := unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, unix.EWOULDBLOCK) {
			return nil, fmt.Errorf("%s: %w", path, ErrDRCLogBusy)
		}
		return nil, fmt.Errorf("lock %s: %w", path, err)
	}
	return f, nil
}

// mapRing makes f a fresh ring of slots records and maps it shared. The
// zeros are written through the file rather than left as a hole: a store
// into a mapped hole must allocate a block, and on a full disk that is a
// fault (SIGBUS), not an error.
func mapRing(f *os.File, slots int) ([]byte, error) {
	size := drcLogHeaderSize + slots*drcLogRecordSize
	if err := writeZeros(f, size); err != nil {
		return nil, err
	}
	mem, err := unix.Mmap(int(f.Fd()), 0, size, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED)
	if err != nil {
		return nil, fmt.Errorf("mmap: %w", err)
	}
	copy(mem, drcLogMagic)
	binary.LittleEndian.PutUint64(mem[8:], uint64(slots))
	return mem, nil
}

// DefaultDRCLogCheck is how often a Daemon checks that its drc.log is
// still in the state directory (DRCLog.Check).
const DefaultDRCLogCheck = 30 * time.Second

// Check makes sure the file the log records into still has its name. An
// operator who removes drc.log, or the whole state directory while
// cleaning up, leaves the ring recording into a file no name reaches, and
// the next start would find no calls to protect. Check then creates the
// file again (and its directory, 0700), copies the ring into it, records
// there from then on and logs it once; it reports whether it did. A
// failure is logged once until a check succeeds. It costs an fstat and a
// stat; a Daemon calls it every DefaultDRCLogCheck and on Reload, never on
// the call path (a store waits for the new mapping only during the
// ring's copy, 4 MiB by default).
func (l *DRCLog) Check() (recreated bool) {
	l.checkMu.Lock()
	defer l.checkMu.Unlock()
	l.memMu.RLock()
	f, open := l.f, l.mem != nil
	l.memMu.RUnlock()
	if !open || l.faulted.Load() {
		return false
	}
	path := f.Name()
	err := l.recreate(f, path)
	if err == nil || errors.Is(err, errDRCLogUnchanged) {
		if err == nil && l.Logger != nil {
			l.Logger.Warn("duplicate request log: drc.log was removed or replaced while mailnfsd ran (the state directory cleaned up?); created it again with the calls recorded so far",
				"path", path)
		}
		l.checkFailed = false
		return err == nil
	}
	if !l.checkFailed && l.Logger != nil {
		l.Logger.Error("duplicate request log: drc.log was removed or replaced while mailnfsd ran, and creating it again failed: calls retransmitted after the next restart may fail with NOENT or EXIST; will try again",
			"path", path, "err", err)
	}
	l.checkFailed = true
	return false
}

// errDRCLogUnchanged is recreate's answer when the log's file is still at
// its path, or the log was closed meanwhile.
var errDRCLogUnchanged = errors.New("unchanged")

// recreate gives the log a new file at path, with the ring copied in,
// unless f (the log's file) is still there.
func (l *DRCLog) recreate(f *os.File, path string) error {
	ours, err := f.Stat()
	if err != nil {
		return err
	}
	st, err := os.Stat(path)
	switch {
	case err == nil && os.SameFile(ours, st):
		return errDRCLogUnchanged
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return err
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	nf, err := openDRCLogFile(path, true)
	if err != nil {
		return err
	}
	mem, err := mapRing(nf, int(l.slots))
	if err != nil {
		nf.Close()
		return err
	}
	l.memMu.Lock()
	if l.mem == nil { // closed meanwhile
		l.memMu.Unlock()
		unix.Munmap(mem)
		nf.Close()
		return errDRCLogUnchanged
	}
	copy(mem, l.mem)
	old, oldF := l.mem, l.f
	l.mem, l.f = mem, nf
	l.memMu.Unlock()
	// The old file has no name left: nothing of it is needed.
	unix.Munmap(old)
	oldF.Close()
	return nil
}

// writeZeros makes f size bytes of zeros, written (allocated).
func writeZeros(f *os.File, size int) error {
	if err := f.Truncate(0); err != nil {
		return err
	}
	zero := make([]byte, 64<<10)
	for off := 0; off < size; off += len(zero) {
		if _, err := f.WriteAt(zero[:min(len(zero), size-off)], int64(off)); err != nil {
			return err
		}
	}
	return nil
}

// drcLogMaxSlots bounds the ring readDRCLog reads, whatever the file's
// header or size claim: 64 MiB, sixteen times the default ring.
const drcLogMaxSlots = 16 * DefaultDRCLogSlots

// readDRCLog returns the calls recorded at path within ttl of now; a
// missing, short or foreign file has none. It reads the ring its header
// names (at most drcLogMaxSlots records), not the whole file: a file grown
// or extended past that (damaged, or not mailnfsd's) must not take the
// memory of the start.
func readDRCLog(path string, now time.Time, ttl time.Duration) map[drcKey]time.Time {
	prev := map[drcKey]time.Time{}
	f, err := os.Open(path)
	if err != nil {
		return prev
	}
	defer f.Close()
	var hdr [drcLogHeaderSize]byte
	if _, err := io.ReadFull(f, hdr[:]); err != nil || !bytes.Equal(hdr[:8], []byte(drcLogMagic)) {
		return prev
	}
	slots := min(binary.LittleEndian.Uint64(hdr[8:]), drcLogMaxSlots)
	b := make([]byte, drcLogHeaderSize+slots*drcLogRecordSize)
	copy(b, hdr[:])
	n, _ := io.ReadFull(f, b[drcLogHeaderSize:])
	b = b[:drcLogHeaderSize+n]
	refused := map[drcKey]time.Time{}
	for off := drcLogHeaderSize; off+drcLogRecordSize <= len(b); off += drcLogRecordSize {
		k, at, wasRefused, ok := decodeDRCRecord(b[off : off+drcLogRecordSize])
		// Records from the future (a clock stepped back) count as now.
		if !ok || now.Sub(at) >= ttl {
			continue
		}
		m := prev
		if wasRefused {
			m = refused
		}
		if old, dup := m[k]; !dup || at.After(old) {
			m[k] = at
		}
	}
	// A call whose latest run was refused is not one that may have run.
	for k, at := range refused {
		if began, ok := prev[k]; ok && !began.After(at) {
			delete(prev, k)
		}
	}
	return prev
}

// Record layout (little endian): 0 time in Unix nanoseconds, 8 client
// address (16 bytes, IPv4 as mapped IPv6), 24 xid, 28 prog, 32 vers, 36
// proc, 40 checksum, 44 length, 48 flags (bit 0: the call was refused,
// Request.Refused; set when its reply is sent), 52 zero, 60 CRC-32C of
// bytes 0-59.
func encodeDRCRecord(b []byte, k drcKey, at time.Time, refused bool) {
	clear(b[:drcLogRecordSize])
	binary.LittleEndian.PutUint64(b[0:], uint64(at.UnixNano()))
	a := k.addr.As16()
	copy(b[8:24], a[:])
	binary.LittleEndian.PutUint32(b[24:], k.xid)
	binary.LittleEndian.PutUint32(b[28:], k.prog)
	binary.LittleEndian.PutUint32(b[32:], k.vers)
	binary.LittleEndian.PutUint32(b[36:], k.proc)
	binary.LittleEndian.PutUint32(b[40:], k.sum)
	binary.LittleEndian.PutUint32(b[44:], k.n)
	if refused {
		binary.LittleEndian.PutUint32(b[48:], drcLogRefused)
	}
	binary.LittleEndian.PutUint32(b[60:], crc32.Checksum(b[:60], castagnoli))
}

// drcLogRefused is the flag of a refused call's record.
const drcLogRefused = 1

func decodeDRCRecord(b []byte) (k drcKey, at time.Time, refused, ok bool) {
	if len(b) < drcLogRecordSize || binary.LittleEndian.Uint32(b[60:]) != crc32.Checksum(b[:60], castagnoli) ||
		binary.LittleEndian.Uint64(b[0:]) == 0 {
		return drcKey{}, time.Time{}, false, false
	}
	addr := netip.AddrFrom16([16]byte(b[8:24])).Unmap()
	k = drcKey{
		addr: addr,
		xid:  binary.LittleEndian.Uint32(b[24:]),
		prog: binary.LittleEndian.Uint32(b[28:]),
		vers: binary.LittleEndian.Uint32(b[32:]),
		proc: binary.LittleEndian.Uint32(b[36:]),
		sum:  binary.LittleEndian.Uint32(b[40:]),
		n:    binary.LittleEndian.Uint32(b[44:]),
	}
	refused = binary.LittleEndian.Uint32(b[48:])&drcLogRefused != 0
	return k, time.Unix(0, int64(binary.LittleEndian.Uint64(b[0:]))), refused, true
}

// drcLogSlot names the slot a call was recorded in, plus one (0: none).
type drcLogSlot uint64

// record writes k into the next slot and returns it. Slots are claimed
// atomically, so concurrent calls write different slots.
func (l *DRCLog) record(k drcKey, at time.Time) drcLogSlot {
	if l.faulted.Load() {
		return 0
	}
	slot := (l.next.Add(1) - 1) % l.slots
	var rec [drcLogRecordSize]byte
	encodeDRCRecord(rec[:], k, at, false)
	l.store(slot, rec[:], nil)
	return drcLogSlot(slot + 1)
}

// refused marks k's record, in slot, as a refused call's, if the slot
// still holds it (the ring may have come round).
func (l *DRCLog) refused(slot drcLogSlot, k drcKey) {
	if slot == 0 || l.faulted.Load() {
		return
	}
	l.store(uint64(slot-1), nil, func(rec []byte) bool {
		got, at, _, ok := decodeDRCRecord(rec)
		if !ok || got != k {
			return false
		}
		encodeDRCRecord(rec, k, at, true)
		return true
	})
}

// store copies rec into slot of the mapping, or with rec nil has edit
// change a copy of the slot's record and writes it back if edit says it
// changed it (only a record still of the same call is changed). The
// file's blocks were written at open, so a store into the mapping needs
// no allocation; should one fault all the same (a copy-on-write file
// system that is full), the log turns itself off instead of the fault
// killing the server. An edit races a new claim of its slot only if the
// whole ring (65,536 calls by default) comes round between its read and
// its write, nanoseconds apart.
func (l *DRCLog) store(slot uint64, rec []byte, edit func([]byte) bool) {
	off := drcLogHeaderSize + slot*drcLogRecordSize
	l.memMu.RLock()
	defer l.memMu.RUnlock()
	if l.mem == nil {
		return
	}
	defer debug.SetPanicOnFault(debug.SetPanicOnFault(true))
	defer func() {
		if r := recover(); r != nil {
			if l.faulted.CompareAndSwap(false, true) && l.Logger != nil {
				l.Logger.Error("duplicate request log: writing the mapping faulted; the log is off until mailnfsd restarts", "path", l.f.Name(), "fault", fmt.Sprint(r))
			}
		}
	}()
	dst := l.mem[off : off+drcLogRecordSize]
	if rec != nil {
		copy(dst, rec)
		return
	}
	var b [drcLogRecordSize]byte
	copy(b[:], dst)
	if edit(b[:]) {
		copy(dst, b[:])
	}
}

// begin records a call about to run for the first time in this process
// and reports whether an earlier run began it too (within the TTL). Each
// earlier call is reported once: a later duplicate meets the in-memory
// cache. Once each was reported, or the youngest is older than the TTL,
// the earlier run's calls are dropped and begin takes no lock.
func (l *DRCLog) begin(k drcKey, now time.Time) (mayHaveRun bool, slot drcLogSlot) {
	if l.prevLive.Load() {
		l.mu.Lock()
		if at, ok := l.prev[k]; ok {
			delete(l.prev, k)
			mayHaveRun = now.Sub(at) < l.ttl
		}
		if len(l.prev) == 0 || !now.Before(l.prevUntil) {
			l.prev = nil
			l.prevLive.Store(false)
		}
		l.mu.Unlock()
	}
	return mayHaveRun, l.record(k, now)
}

// Close unmaps and closes the log; calls recorded after it are not kept.
// The records stay in the file for the next run.
func (l *DRCLog) Close() error {
	l.memMu.Lock()
	defer l.memMu.Unlock()
	if l.mem == nil || l.f == nil {
		return nil
	}
	err := unix.Munmap(l.mem)
	l.mem = nil
	return errors.Join(err, l.f.Close())
}
