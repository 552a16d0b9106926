package nfsd_test

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// compressTestMail is a text message of about size bytes: headers and
// lines of words, compressible as real mail is.
func compressTestMail(size int) []byte {
	r := rand.New(rand.NewPCG(8, 8))
	words := []string{"mail", "storage", "delivery", "server", "the", "of", "and", "message",
		"Maildir", "compression", "reader", "client", "lorem", "ipsum", "dolor", "sit", "amet"}
	var b bytes.Buffer
	b.WriteString("Return-Path: <a@example.org>\r\nFrom: A <a@example.org>\r\nTo: b@example.net\r\n" +
		"Subject: compressed at rest\r\nMessage-ID: <1@example.org>\r\n\r\n")
	for b.Len() < size {
		for i := range 12 {
			if i > 0 {
				b.WriteByte(' ')
			}
			b.WriteString(words[r.IntN(len(words))])
		}
		fmt.Fprintf(&b, " %d\r\n", r.IntN(1000))
	}
	return b.Bytes()[:size]
}

// TestServerCompressAtRest delivers a message over NFS to an export with
// the compress option (each dialect), waits for the background worker to
// compress it on disk (xattr user.mailnfs.z, smaller st_size), and checks
// that READ returns the exact bytes at several offsets and GETATTR the
// original size.
func TestServerCompressAtRest(t *testing.T) {
	for name, exports := range map[string]func(root string) string{
		"Linux": func(root string) string {
			return root + " 127.0.0.0/8(rw,no_root_squash,compress=zstd)\n"
		},
		"FreeBSD": func(root string) string {
			return root + " -maproot=0:0 -compress zstd -network 127.0.0.0/8\n"
		},
	} {
		t.Run(name, func(t *testing.T) { testServerCompress(t, exports) })
	}
}

func testServerCompress(t *testing.T, exports func(root string) string) {
	srv := nfsdtest.StartServer(t, nfsdtest.WithExports(exports), nfsdtest.WithSetup(func(t testing.TB, root string) {
		for _, d := range []string{"tmp", "new", "cur"} {
			if err := os.Mkdir(filepath.Join(root, d), 0o700); err != nil {
				t.Fatal(err)
			}
		}
	}))
	if e := srv.Daemon.Exports.Table().Lookup(srv.Export); e == nil || e.Compress != "zstd" {
		t.Fatalf("export %s: Compress not zstd in the loaded table: %+v", srv.Export, e)
	}
	root := nfsdtest.AuthSys(0, 0)
	mnt := nfsdtest.Dial(t, "tcp", srv.MountAddr)
	dec, err := mnt.Call(nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcMnt), root, func(e *xdr.Encoder) {
		(&nfs3.DirPath{Path: srv.Export}).Encode(e)
	})
	if err != nil {
		t.Fatalf("MNT: %v", err)
	}
	var mr nfs3.MountRes3
	mr.Decode(dec)
	if dec.Err() != nil || mr.Status != nfs3.MountOK {
		t.Fatalf("MNT %s: %v %v", srv.Export, mr.Status, dec.Err())
	}
	c := nfsdtest.Dial(t, "tcp", srv.NFSAddr)
	call := func(proc nfs3.Proc, args interface{ Encode(*xdr.Encoder) }, res interface{ Decode(*xdr.Decoder) }) {
		t.Helper()
		dec, err := c.Call(nfs3.Program, nfs3.Version, uint32(proc), root, args.Encode)
		if err != nil {
			t.Fatalf("%v: %v", proc, err)
		}
		res.Decode(dec)
		if err := dec.Done(); err != nil {
			t.Fatalf("%v reply: %v", proc, err)
		}
	}
	lookup := func(name string) []byte {
		t.Helper()
		var r nfs3.LookupRes
		call(nfs3.ProcLookup, &nfs3.LookupArgs{Dir: mr.Handle, Name: name}, &r)
		if r.Status != nfs3.StatusOK {
			t.Fatalf("LOOKUP %s: %v", name, r.Status)
		}
		return r.Object
	}
	tmp, newDir := lookup("tmp"), lookup("new")

	const name = "1700000000.M1P1.mx1"
	body := compressTestMail(200_000) // several 64 KiB frames
	var cr nfs3.CreateRes
	call(nfs3.ProcCreate, &nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: tmp, Name: name}, Mode: nfs3.Guarded,
		Attr: nfs3.SetAttr{Mode: ptrU32(0o600)}}, &cr)
	if cr.Status != nfs3.StatusOK {
		t.Fatalf("CREATE: %v", cr.Status)
	}
	fh := cr.Object
	for off := 0; off < len(body); off += 32 << 10 {
		chunk := body[off:min(off+32<<10, len(body))]
		var w nfs3.WriteRes
		call(nfs3.ProcWrite, &nfs3.WriteArgs{File: fh, Offset: uint64(off), Count: uint32(len(chunk)), Stable: nfs3.FileSync, Data: chunk}, &w)
		if w.Status != nfs3.StatusOK || int(w.Count) != len(chunk) {
			t.Fatalf("WRITE at %d: %v count %d", off, w.Status, w.Count)
		}
	}
	var rn nfs3.RenameRes
	call(nfs3.ProcRename, &nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: tmp, Name: name}, To: nfs3.DirOpArgs{Dir: newDir, Name: name}}, &rn)
	if rn.Status != nfs3.StatusOK {
		t.Fatalf("RENAME: %v", rn.Status)
	}

	// The background worker compresses the delivered file in place: the
	// mark ("Z2", uncompressed size, compressed size, rewrite id) is set
	// first, and the file is compressed once its size is the one the
	// mark names.
	path := filepath.Join(srv.Root, "new", name)
	deadline := time.Now().Add(10 * time.Second)
	var st os.FileInfo
	for {
		xattr := make([]byte, 256)
		n, err := unix.Getxattr(path, "user.mailnfs.z", xattr)
		if err != nil && err != errNoXattr {
			t.Fatalf("getxattr %s: %v", path, err)
		}
		if err == nil {
			xattr = xattr[:n]
			if !bytes.HasPrefix(xattr, []byte("Z2")) || len(xattr) != 26 {
				t.Fatalf("user.mailnfs.z = %q, want a Z2 mark", xattr)
			}
			if st, err = os.Stat(path); err != nil {
				t.Fatal(err)
			}
			if uint64(st.Size()) == binary.BigEndian.Uint64(xattr[10:]) {
				break
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not compressed after 10 s", path)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if st.Size() >= int64(len(body))/2 {
		t.Errorf("on disk %d bytes for a %d byte text message: not compressed", st.Size(), len(body))
	}
	if raw, err := os.ReadFile(path); err != nil || bytes.Equal(raw, body) {
		t.Errorf("on-disk bytes equal the message (err %v): not compressed", err)
	}

	var ga nfs3.GetattrRes
	call(nfs3.ProcGetattr, &nfs3.GetattrArgs{Object: fh}, &ga)
	if ga.Status != nfs3.StatusOK || ga.Attr.Size != uint64(len(body)) {
		t.Fatalf("GETATTR: %v size %d, want %d", ga.Status, ga.Attr.Size, len(body))
	}
	read := func(off uint64, count uint32) nfs3.ReadRes {
		t.Helper()
		var r nfs3.ReadRes
		call(nfs3.ProcRead, &nfs3.ReadArgs{File: fh, Offset: off, Count: count}, &r)
		if r.Status != nfs3.StatusOK {
			t.Fatalf("READ %d+%d: %v", off, count, r.Status)
		}
		if r.Attr != nil && r.Attr.Size != uint64(len(body)) {
			t.Fatalf("READ %d+%d: attr size %d, want %d", off, count, r.Attr.Size, len(body))
		}
		return r
	}
	var got []byte
	for off := 0; ; {
		r := read(uint64(off), 48<<10)
		got = append(got, r.Data...)
		off += len(r.Data)
		if r.EOF || len(r.Data) == 0 {
			break
		}
	}
	if !bytes.Equal(got, body) {
		t.Fatalf("READ returned %d bytes, that differ from the %d written", len(got), len(body))
	}
	for _, off := range []int{0, 1, 65535, 65536, 100_001, len(body) - 10} {
		r := read(uint64(off), 5000)
		want := body[off:min(off+5000, len(body))]
		if !bytes.Equal(r.Data, want) || r.EOF != (off+len(want) == len(body)) {
			t.Errorf("READ at %d: %d bytes eof %v, want %d bytes eof %v", off, len(r.Data), r.EOF, len(want), off+len(want) == len(body))
		}
	}
}

func ptrU32(v uint32) *uint32 { return &v }
