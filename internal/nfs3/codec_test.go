package nfs3

import (
	"bytes"
	"encoding/binary"
	"errors"
	"reflect"
	"testing"

	"github.com/mailnfs/mailnfs/internal/xdr"
)

// codec is what every wire type here implements.
type codec[T any] interface {
	*T
	Encode(*xdr.Encoder)
	Decode(*xdr.Decoder)
}

func encode[T any, P codec[T]](v *T) []byte {
	e := xdr.NewEncoder(nil)
	P(v).Encode(e)
	return e.Bytes()
}

// fuzzCodec seeds f with the encodings of seeds and checks, for any input
// that decodes: no panic, encode(decode(x)) reproduces exactly the bytes
// consumed (XDR is canonical once padding and bools are strict), and
// decode(encode(v)) == v.
func fuzzCodec[T any, P codec[T]](f *testing.F, seeds ...T) {
	f.Helper()
	for i := range seeds {
		b := encode[T, P](&seeds[i])
		f.Add(b)
		if len(b) > 4 {
			f.Add(b[:len(b)-3]) // truncated
		}
	}
	f.Add([]byte{})
	f.Add(bytes.Repeat([]byte{0xff}, 64))
	f.Fuzz(func(t *testing.T, in []byte) {
		var v T
		d := xdr.NewDecoder(in)
		P(&v).Decode(d)
		if d.Err() != nil {
			return
		}
		used := in[:d.Offset()]
		out := encode[T, P](&v)
		if !bytes.Equal(out, used) {
			t.Fatalf("re-encoding differs:\n in  %x\n out %x", used, out)
		}
		var w T
		d2 := xdr.NewDecoder(out)
		P(&w).Decode(d2)
		if err := d2.Done(); err != nil {
			t.Fatalf("decoding own encoding: %v", err)
		}
		if !reflect.DeepEqual(v, w) {
			t.Fatalf("round trip differs:\n %+v\n %+v", v, w)
		}
	})
}

func u32(v uint32) *uint32 { return &v }
func u64(v uint64) *uint64 { return &v }

var (
	fh1   = []byte{1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29}
	fh2   = bytes.Repeat([]byte{0xab}, FHSize)
	attr1 = Fattr{Type: TypeReg, Mode: 0644, Nlink: 1, UID: 1000, GID: 100, Size: 12345, Used: 16384,
		Rdev: SpecData{1, 2}, FSID: 0xdeadbeef, FileID: 424242,
		Atime: Time{1700000000, 1}, Mtime: Time{1700000001, 2}, Ctime: Time{1700000002, 999999999}}
	attr2 = Fattr{Type: TypeDir, Mode: 0755, Nlink: 5, Size: 4096, FileID: 2}
	wcc1  = WccData{Before: &WccAttr{Size: 7, Mtime: Time{1, 2}, Ctime: Time{3, 4}}, After: &attr1}
	sa1   = SetAttr{Mode: u32(0600), UID: u32(0), GID: u32(12), Size: u64(0),
		Atime: SetToServerTime, Mtime: SetToClientTime, MtimeVal: Time{5, 6}}
	verf1 = [VerfSize]byte{1, 2, 3, 4, 5, 6, 7, 8}
)

func FuzzHandleArgs(f *testing.F) {
	fuzzCodec[HandleArgs](f, HandleArgs{fh1}, HandleArgs{fh2}, HandleArgs{[]byte{}})
}

func FuzzSetattrArgs(f *testing.F) {
	fuzzCodec[SetattrArgs](f, SetattrArgs{fh1, sa1, Guard{true, Time{9, 8}}}, SetattrArgs{Object: fh2})
}

func FuzzDirOpArgs(f *testing.F) {
	fuzzCodec[DirOpArgs](f, DirOpArgs{fh1, "cur"}, DirOpArgs{fh2, "1700000000.M1P2.host,S=5:2,S"})
}

func FuzzAccessArgs(f *testing.F) {
	fuzzCodec[AccessArgs](f, AccessArgs{fh1, 0x3f})
}

func FuzzReadArgs(f *testing.F) {
	fuzzCodec[ReadArgs](f, ReadArgs{fh1, 1 << 40, 65536})
}

func FuzzWriteArgs(f *testing.F) {
	fuzzCodec[WriteArgs](f, WriteArgs{fh1, 0, 5, FileSync, []byte("hello")}, WriteArgs{fh1, 0, 3, FileSync, []byte("hello")},
		WriteArgs{fh2, 99, 0, Unstable, []byte{}})
}

func FuzzCreateArgs(f *testing.F) {
	fuzzCodec[CreateArgs](f, CreateArgs{Where: DirOpArgs{fh1, "x"}, Mode: Guarded, Attr: sa1},
		CreateArgs{Where: DirOpArgs{fh1, "y"}, Mode: Exclusive, Verf: verf1},
		CreateArgs{Where: DirOpArgs{fh1, "z"}, Mode: Unchecked})
}

func FuzzMkdirArgs(f *testing.F) {
	fuzzCodec[MkdirArgs](f, MkdirArgs{DirOpArgs{fh1, "new"}, SetAttr{Mode: u32(0700)}})
}

func FuzzSymlinkArgs(f *testing.F) {
	fuzzCodec[SymlinkArgs](f, SymlinkArgs{DirOpArgs{fh1, "l"}, SetAttr{}, "../target"})
}

func FuzzMknodArgs(f *testing.F) {
	fuzzCodec[MknodArgs](f, MknodArgs{DirOpArgs{fh1, "c"}, TypeChr, sa1, SpecData{4, 5}},
		MknodArgs{Where: DirOpArgs{fh1, "p"}, Type: TypeFifo, Attr: sa1},
		MknodArgs{Where: DirOpArgs{fh1, "r"}, Type: TypeReg})
}

func FuzzRenameArgs(f *testing.F) {
	fuzzCodec[RenameArgs](f, RenameArgs{DirOpArgs{fh1, "tmp/a"}, DirOpArgs{fh2, "a"}})
}

func FuzzLinkArgs(f *testing.F) {
	fuzzCodec[LinkArgs](f, LinkArgs{fh1, DirOpArgs{fh2, "hard"}})
}

func FuzzReaddirArgs(f *testing.F) {
	fuzzCodec[ReaddirArgs](f, ReaddirArgs{fh1, 77, verf1, 4096})
}

func FuzzReaddirplusArgs(f *testing.F) {
	fuzzCodec[ReaddirplusArgs](f, ReaddirplusArgs{fh1, 77, verf1, 8192, 65536})
}

func FuzzGetattrRes(f *testing.F) {
	fuzzCodec[GetattrRes](f, GetattrRes{StatusOK, attr1}, GetattrRes{Status: StatusStale})
}

func FuzzWccRes(f *testing.F) {
	fuzzCodec[WccRes](f, WccRes{StatusOK, wcc1}, WccRes{StatusNotSync, WccData{After: &attr2}})
}

func FuzzLookupRes(f *testing.F) {
	fuzzCodec[LookupRes](f, LookupRes{StatusOK, fh1, &attr1, &attr2}, LookupRes{Status: StatusNoEnt, DirAttr: &attr2})
}

func FuzzAccessRes(f *testing.F) {
	fuzzCodec[AccessRes](f, AccessRes{StatusOK, &attr1, 0x1f}, AccessRes{Status: StatusAcces})
}

func FuzzReadlinkRes(f *testing.F) {
	fuzzCodec[ReadlinkRes](f, ReadlinkRes{StatusOK, &attr1, "/x/y"}, ReadlinkRes{Status: StatusInval})
}

func FuzzReadRes(f *testing.F) {
	fuzzCodec[ReadRes](f, ReadRes{StatusOK, &attr1, 3, true, []byte("abc")}, ReadRes{Status: StatusIO})
}

func FuzzWriteRes(f *testing.F) {
	fuzzCodec[WriteRes](f, WriteRes{StatusOK, wcc1, 5, FileSync, verf1}, WriteRes{Status: StatusNoSpc, Wcc: wcc1})
}

func FuzzCreateRes(f *testing.F) {
	fuzzCodec[CreateRes](f, CreateRes{StatusOK, fh1, &attr1, wcc1}, CreateRes{Status: StatusOK, DirWcc: wcc1},
		CreateRes{Status: StatusExist, DirWcc: wcc1})
}

func FuzzRenameRes(f *testing.F) {
	fuzzCodec[RenameRes](f, RenameRes{StatusOK, wcc1, WccData{}}, RenameRes{StatusXDev, WccData{}, wcc1})
}

func FuzzLinkRes(f *testing.F) {
	fuzzCodec[LinkRes](f, LinkRes{StatusOK, &attr1, wcc1}, LinkRes{Status: StatusExist})
}

func FuzzReaddirRes(f *testing.F) {
	fuzzCodec[ReaddirRes](f, ReaddirRes{StatusOK, &attr2, verf1, []Entry{{1, ".", 1}, {2, "..", 2}, {77, "abcde", 99}}, true},
		ReaddirRes{Status: StatusOK}, ReaddirRes{Status: StatusBadCookie, DirAttr: &attr2})
}

func FuzzReaddirplusRes(f *testing.F) {
	fuzzCodec[ReaddirplusRes](f, ReaddirplusRes{StatusOK, &attr2, verf1,
		[]EntryPlus{{1, ".", 1, &attr2, fh1}, {77, "abcde", 99, nil, nil}, {78, "f", 100, &attr1, fh2}}, false},
		ReaddirplusRes{Status: StatusTooSmall})
}

func FuzzFsstatRes(f *testing.F) {
	fuzzCodec[FsstatRes](f, FsstatRes{StatusOK, &attr2, 1, 2, 3, 4, 5, 6, 7}, FsstatRes{Status: StatusIO})
}

func FuzzFsinfoRes(f *testing.F) {
	fuzzCodec[FsinfoRes](f, FsinfoRes{StatusOK, &attr2, MaxIO, MaxIO, 4096, MaxIO, MaxIO, 4096, 65536, 1<<63 - 1, Time{0, 1}, 0x1b},
		FsinfoRes{Status: StatusStale})
}

func FuzzPathconfRes(f *testing.F) {
	fuzzCodec[PathconfRes](f, PathconfRes{StatusOK, &attr2, 32000, 255, true, true, false, true}, PathconfRes{Status: StatusBadHandle})
}

func FuzzCommitRes(f *testing.F) {
	fuzzCodec[CommitRes](f, CommitRes{StatusOK, wcc1, verf1}, CommitRes{Status: StatusIO, Wcc: wcc1})
}

func FuzzDirPath(f *testing.F) {
	fuzzCodec[DirPath](f, DirPath{"/export/mail"})
}

func FuzzMountRes3(f *testing.F) {
	fuzzCodec[MountRes3](f, MountRes3{MountOK, fh1, []uint32{1}}, MountRes3{Status: MountAcces})
}

func FuzzFHStatus(f *testing.F) {
	fuzzCodec[FHStatus](f, FHStatus{Status: MountOK, Handle: [FHSizeV1]byte{1, 2, 3}}, FHStatus{Status: MountNoEnt})
}

func FuzzMountList(f *testing.F) {
	fuzzCodec[MountList](f, MountList{{"client1", "/export"}, {"10.0.0.1", "/export/sub"}}, MountList{})
}

func FuzzExports(f *testing.F) {
	fuzzCodec[Exports](f, Exports{{"/export", nil}, {"/other", []string{"10.0.0.0/8", "host"}}})
}

// TestFattrLayout checks field offsets against RFC 1813 §2.5 (reference
// §4.3): the round trips above cannot catch a field order mistake.
func TestFattrLayout(t *testing.T) {
	b := encode[Fattr](&attr1)
	if len(b) != FattrSize {
		t.Fatalf("fattr3 is %d bytes, want %d", len(b), FattrSize)
	}
	be32 := func(off int) uint32 { return binary.BigEndian.Uint32(b[off:]) }
	be64 := func(off int) uint64 { return binary.BigEndian.Uint64(b[off:]) }
	checks := []struct {
		name      string
		got, want uint64
	}{
		{"type", uint64(be32(0)), 1}, {"mode", uint64(be32(4)), 0644}, {"nlink", uint64(be32(8)), 1},
		{"uid", uint64(be32(12)), 1000}, {"gid", uint64(be32(16)), 100}, {"size", be64(20), 12345},
		{"used", be64(28), 16384}, {"rdev1", uint64(be32(36)), 1}, {"rdev2", uint64(be32(40)), 2},
		{"fsid", be64(44), 0xdeadbeef}, {"fileid", be64(52), 424242},
		{"atime", uint64(be32(60)), 1700000000}, {"atime.ns", uint64(be32(64)), 1},
		{"mtime", uint64(be32(68)), 1700000001}, {"ctime", uint64(be32(76)), 1700000002},
		{"ctime.ns", uint64(be32(80)), 999999999},
	}
	for _, c := range checks {
		if c.got != c.want {
			t.Errorf("%s = %d, want %d", c.name, c.got, c.want)
		}
	}
}

// TestKnownEncodings pins exact bytes for a few structures, written by hand
// from the RFC's XDR.
func TestKnownEncodings(t *testing.T) {
	w := func(vs ...uint32) []byte {
		var b []byte
		for _, v := range vs {
			b = binary.BigEndian.AppendUint32(b, v)
		}
		return b
	}
	cat := func(bs ...[]byte) []byte { return bytes.Join(bs, nil) }
	tests := []struct {
		name string
		got  []byte
		want []byte
	}{
		{"sattr3", encode[SetAttr](&sa1), w(1, 0600, 1, 0, 1, 12, 1, 0, 0, 1, 2, 5, 6)},
		{"sattr3-empty", encode[SetAttr](&SetAttr{}), w(0, 0, 0, 0, 0, 0)},
		{"wcc_data-empty", encode[WccData](&WccData{}), w(0, 0)},
		{"wcc_data-before", encode[WccData](&WccData{Before: &WccAttr{Size: 7, Mtime: Time{1, 2}, Ctime: Time{3, 4}}}),
			w(1, 0, 7, 1, 2, 3, 4, 0)},
		{"write3args", encode[WriteArgs](&WriteArgs{File: []byte{9}, Offset: 1, Count: 5, Stable: DataSync, Data: []byte("hello")}),
			cat(w(1), []byte{9, 0, 0, 0}, w(0, 1, 5, 1, 5), []byte("hello\x00\x00\x00"))},
		{"create3args-exclusive", encode[CreateArgs](&CreateArgs{Where: DirOpArgs{[]byte{}, "ab"}, Mode: Exclusive, Verf: verf1}),
			cat(w(0, 2), []byte("ab\x00\x00"), w(2), verf1[:])},
		{"mknod3args-fifo", encode[MknodArgs](&MknodArgs{Where: DirOpArgs{[]byte{}, "p"}, Type: TypeFifo}),
			cat(w(0, 1), []byte("p\x00\x00\x00"), w(7, 0, 0, 0, 0, 0, 0))},
		{"readdir3res", encode[ReaddirRes](&ReaddirRes{Status: StatusOK, Verf: verf1, Entries: []Entry{{5, "a", 6}}, EOF: true}),
			cat(w(0, 0), verf1[:], w(1, 0, 5, 1), []byte("a\x00\x00\x00"), w(0, 6, 0, 1))},
		{"lookup3res-fail", encode[LookupRes](&LookupRes{Status: StatusNoEnt}), w(2, 0)},
		{"mountres3", encode[MountRes3](&MountRes3{Status: MountOK, Handle: []byte{1, 2, 3, 4}, AuthFlavors: []uint32{1}}),
			w(0, 4, 0x01020304, 1, 1)},
		{"exports", encode[Exports](&Exports{{"/e", []string{"h"}}}), cat(w(1, 2), []byte("/e\x00\x00"), w(1, 1), []byte("h\x00\x00\x00"), w(0, 0))},
	}
	for _, tt := range tests {
		if !bytes.Equal(tt.got, tt.want) {
			t.Errorf("%s:\n got  %x\n want %x", tt.name, tt.got, tt.want)
		}
	}
}

// TestEntrySizes checks the READDIR budgeting helpers against real encodings.
func TestEntrySizes(t *testing.T) {
	for _, n := range []int{0, 1, 3, 4, 5, 255} {
		name := string(bytes.Repeat([]byte{'x'}, n))
		r := ReaddirRes{DirAttr: &attr2, Entries: []Entry{{1, name, 2}}}
		if got, want := len(encode[ReaddirRes](&r)), ReaddirFixedSize(true)+EntrySize(n); got != want {
			t.Errorf("readdir name %d: encoded %d, helpers say %d", n, got, want)
		}
		for _, fh := range [][]byte{nil, fh1, fh2} {
			for _, withAttr := range []bool{false, true} {
				en := EntryPlus{FileID: 1, Name: name, Cookie: 2, Handle: fh}
				if withAttr {
					en.Attr = &attr1
				}
				rp := ReaddirplusRes{Entries: []EntryPlus{en}}
				if got, want := len(encode[ReaddirplusRes](&rp)), ReaddirFixedSize(false)+EntryPlusSize(n, withAttr, fh); got != want {
					t.Errorf("readdirplus name %d fh %d attr %v: encoded %d, helpers say %d", n, len(fh), withAttr, got, want)
				}
			}
		}
	}
}

// TestDecodeBounds checks the limits the package documents.
func TestDecodeBounds(t *testing.T) {
	long := func(n int) []byte { return bytes.Repeat([]byte{'a'}, n) }
	tests := []struct {
		name string
		in   []byte
		dec  func(*xdr.Decoder)
		ok   bool
	}{
		{"handle-64", encode[HandleArgs](&HandleArgs{fh2}), func(d *xdr.Decoder) { new(HandleArgs).Decode(d) }, true},
		{"handle-65", encode[HandleArgs](&HandleArgs{long(65)}), func(d *xdr.Decoder) { new(HandleArgs).Decode(d) }, false},
		{"name-4096", encode[DirOpArgs](&DirOpArgs{fh1, string(long(4096))}), func(d *xdr.Decoder) { new(DirOpArgs).Decode(d) }, true},
		{"name-4097", encode[DirOpArgs](&DirOpArgs{fh1, string(long(4097))}), func(d *xdr.Decoder) { new(DirOpArgs).Decode(d) }, false},
		{"mntpath-1025", encode[DirPath](&DirPath{string(long(1025))}), func(d *xdr.Decoder) { new(DirPath).Decode(d) }, false},
		{"stable-3", encode[WriteArgs](&WriteArgs{File: fh1, Stable: 3}), func(d *xdr.Decoder) { new(WriteArgs).Decode(d) }, false},
		{"createmode-3", encode[CreateArgs](&CreateArgs{Mode: 3}), func(d *xdr.Decoder) { new(CreateArgs).Decode(d) }, false},
		{"timehow-3", encode[SetAttr](&SetAttr{Atime: 3}), func(d *xdr.Decoder) { new(SetAttr).Decode(d) }, false},
		{"data-over-max", encode[WriteArgs](&WriteArgs{File: fh1, Count: MaxData + 1, Data: long(MaxData + 1)}), func(d *xdr.Decoder) { new(WriteArgs).Decode(d) }, false},
		{"data-max", encode[WriteArgs](&WriteArgs{File: fh1, Count: MaxData, Data: long(MaxData)}), func(d *xdr.Decoder) { new(WriteArgs).Decode(d) }, true},
		{"write-count-mismatch", encode[WriteArgs](&WriteArgs{File: fh1, Count: 4, Data: long(5)}), func(d *xdr.Decoder) { new(WriteArgs).Decode(d) }, false},
		{"bool-2", []byte{0, 0, 0, 2}, func(d *xdr.Decoder) { new(Guard).Decode(d) }, false},
		{"flavors-huge", []byte{0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 60}, func(d *xdr.Decoder) { new(MountRes3).Decode(d) }, false},
	}
	for _, tt := range tests {
		d := xdr.NewDecoder(tt.in)
		tt.dec(d)
		if err := d.Done(); (err == nil) != tt.ok {
			t.Errorf("%s: err = %v, want ok=%v", tt.name, err, tt.ok)
		}
	}
	// enum errors are identifiable
	d := xdr.NewDecoder(encode[SetAttr](&SetAttr{Mtime: 9}))
	new(SetAttr).Decode(d)
	if !errors.Is(d.Err(), ErrEnum) {
		t.Errorf("time_how 9: err = %v, want ErrEnum", d.Err())
	}
}

func TestStrings(t *testing.T) {
	for _, c := range []struct{ got, want string }{
		{StatusNoEnt.String(), "NFS3ERR_NOENT"}, {StatusJukebox.String(), "NFS3ERR_JUKEBOX"},
		{Status(4242).String(), "NFS3ERR_4242"}, {ProcReaddirplus.String(), "READDIRPLUS"},
		{TypeLnk.String(), "NF3LNK"}, {FileSync.String(), "FILE_SYNC"}, {Guarded.String(), "GUARDED"},
		{MountAcces.String(), "MNT3ERR_ACCES"}, {MountProcExport.String(), "EXPORT"},
		{StatusStale.Error(), "nfs3: NFS3ERR_STALE"},
	} {
		if c.got != c.want {
			t.Errorf("got %q, want %q", c.got, c.want)
		}
	}
}
