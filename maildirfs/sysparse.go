package maildirfs

import "encoding/binary"

// Pure helpers of the system interfaces (sys_*.go), compiled on every
// system so that each is tested everywhere.

// Directory record parsers for ReadDir. Both are pure functions compiled on
// every system, so each is tested everywhere; parseDirent (sys_*.go) picks
// the one of the running system.
//
// A parser takes the unread rest of a getdents buffer and returns the
// record's inode (0: a deleted entry to skip), its d_off (the cookie that
// resumes after it), its length, and its name (aliasing rec). ok is false
// when the bytes do not form a valid record.

// linuxDirentHdr is the offset of d_name in struct linux_dirent64:
// u64 d_ino; s64 d_off; u16 d_reclen; u8 d_type; char d_name[].
const linuxDirentHdr = 19

func parseLinuxDirent(rec []byte) (ino, next uint64, reclen int, name []byte, ok bool) {
	if len(rec) < linuxDirentHdr {
		return 0, 0, 0, nil, false
	}
	ino = binary.NativeEndian.Uint64(rec[0:8])
	next = binary.NativeEndian.Uint64(rec[8:16])
	reclen = int(binary.NativeEndian.Uint16(rec[16:18]))
	if reclen < linuxDirentHdr || reclen > len(rec) {
		return 0, 0, 0, nil, false
	}
	name = rec[linuxDirentHdr:reclen]
	for i, ch := range name {
		if ch == 0 {
			name = name[:i]
			break
		}
	}
	return ino, next, reclen, name, true
}

// freebsdDirentHdr is the offset of d_name in FreeBSD's struct dirent
// (sys/dirent.h, FreeBSD 12+): ino_t d_fileno (8); off_t d_off (8);
// u16 d_reclen; u8 d_type; u8 d_pad0; u16 d_namlen; u16 d_pad1; then
// d_name, NUL-terminated, the record padded to 8 bytes.
const freebsdDirentHdr = 24

func parseFreeBSDDirent(rec []byte) (ino, next uint64, reclen int, name []byte, ok bool) {
	if len(rec) < freebsdDirentHdr {
		return 0, 0, 0, nil, false
	}
	ino = binary.NativeEndian.Uint64(rec[0:8])
	next = binary.NativeEndian.Uint64(rec[8:16])
	reclen = int(binary.NativeEndian.Uint16(rec[16:18]))
	namlen := int(binary.NativeEndian.Uint16(rec[20:22]))
	if reclen < freebsdDirentHdr || reclen > len(rec) || freebsdDirentHdr+namlen > reclen {
		return 0, 0, 0, nil, false
	}
	return ino, next, reclen, rec[freebsdDirentHdr : freebsdDirentHdr+namlen], true
}

// fsStatOf builds FSStat from BSD statfs fields (f_bsize, f_blocks,
// f_bfree, f_bavail, f_files, f_ffree; the signed counts go negative when
// the reserve is in use, and report as 0).
func fsStatOf(bsize, blocks, bfree uint64, bavail int64, files uint64, ffree int64) FSStat {
	avail := uint64(max(bavail, 0))
	freeFiles := uint64(max(ffree, 0))
	return FSStat{
		TotalBytes: blocks * bsize, FreeBytes: bfree * bsize, AvailBytes: avail * bsize,
		TotalFiles: files, FreeFiles: freeFiles, AvailFiles: freeFiles,
	}
}

// clampLinkMax fits a _PC_LINK_MAX value into PATHCONF's 32 bits (at most
// 1<<31-1, as for XFS and tmpfs on Linux).
func clampLinkMax(v int64) uint32 {
	if v > 1<<31-1 {
		return 1<<31 - 1
	}
	return uint32(v)
}

// fsTypeName returns a NUL-terminated filesystem type name (f_fstypename)
// as a string.
func fsTypeName(b []byte) string {
	for i, c := range b {
		if c == 0 {
			return string(b[:i])
		}
	}
	return string(b)
}
