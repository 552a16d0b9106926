package nfsd_test

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// udpDirFiles is the number of files in the test's big directory: their
// READDIRPLUS entries take several datagrams.
const udpDirFiles = 2000

// nfsCall makes one NFSv3 call as root and decodes its results into res.
func nfsCall(t *testing.T, c *nfsdtest.Caller, proc nfs3.Proc, args interface{ Encode(*xdr.Encoder) }, res interface{ Decode(*xdr.Decoder) }) {
	t.Helper()
	d, err := c.Call(nfs3.Program, nfs3.Version, uint32(proc), nfsdtest.AuthSys(0, 0), args.Encode)
	if err != nil {
		t.Fatalf("%v over %s: %v", proc, c, err)
	}
	res.Decode(d)
	if err := d.Done(); err != nil {
		t.Fatalf("%v over %s: reply: %v", proc, c, err)
	}
}

// TestNFS3UDPSizes checks that every reply over UDP fits one datagram:
// FSINFO advertises UDP sizes, and READ, READDIR and READDIRPLUS return
// less than a count too large for a datagram instead of a reply the
// transport must drop. Over TCP the 1 MiB sizes stay.
func TestNFS3UDPSizes(t *testing.T) {
	content := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	s := nfsdtest.StartServer(t, nfsdtest.WithSetup(func(t testing.TB, root string) {
		if err := os.WriteFile(filepath.Join(root, "big.bin"), content, 0o644); err != nil {
			t.Fatal(err)
		}
		dir := filepath.Join(root, "big")
		if err := os.Mkdir(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		for i := range udpDirFiles {
			name := fmt.Sprintf("%d.M%dP%d.mx1.example.org%s", 1700000000+i, i, i%97, strings.Repeat("x", i%13))
			if err := os.WriteFile(filepath.Join(dir, name), nil, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}))
	mc := nfsdtest.Dial(t, "udp", s.MountAddr)
	r, _ := mnt(t, mc, 3, s.Export)
	if r.Status != nfs3.MountOK {
		t.Fatalf("MNT over UDP: %v", r.Status)
	}
	root := r.Handle

	udp := nfsdtest.Dial(t, "udp", s.NFSAddr)
	tcp := nfsdtest.Dial(t, "tcp", s.NFSAddr)
	lookup := func(name string) []byte {
		var l nfs3.LookupRes
		nfsCall(t, udp, nfs3.ProcLookup, &nfs3.LookupArgs{Dir: root, Name: name}, &l)
		if l.Status != nfs3.StatusOK {
			t.Fatalf("LOOKUP %s: %v", name, l.Status)
		}
		return l.Object
	}
	file, dir := lookup("big.bin"), lookup("big")

	t.Run("Fsinfo", func(t *testing.T) {
		for _, tc := range []struct {
			c                   *nfsdtest.Caller
			iomax, pref, dtpref uint32
		}{
			{udp, 60 << 10, 32 << 10, 32 << 10},
			{tcp, nfs3.MaxIO, nfs3.MaxIO, 64 << 10},
		} {
			var f nfs3.FsinfoRes
			nfsCall(t, tc.c, nfs3.ProcFsinfo, &nfs3.FsinfoArgs{Object: root}, &f)
			if f.Status != nfs3.StatusOK || f.Rtmax != tc.iomax || f.Wtmax != tc.iomax ||
				f.Rtpref != tc.pref || f.Wtpref != tc.pref || f.Dtpref != tc.dtpref || f.Rtmult != 4096 || f.Wtmult != 4096 {
				t.Errorf("FSINFO over %s: %v rtmax %d rtpref %d wtmax %d wtpref %d dtpref %d; want max %d pref %d dtpref %d",
					tc.c, f.Status, f.Rtmax, f.Rtpref, f.Wtmax, f.Wtpref, f.Dtpref, tc.iomax, tc.pref, tc.dtpref)
			}
		}
	})

	t.Run("ReadShort", func(t *testing.T) {
		for _, count := range []uint32{32 << 10, 60 << 10, 64 << 10, 1 << 20, 1<<32 - 1} {
			var rd nfs3.ReadRes
			nfsCall(t, udp, nfs3.ProcRead, &nfs3.ReadArgs{File: file, Offset: 4096, Count: count}, &rd)
			want := min(count, 60<<10)
			if rd.Status != nfs3.StatusOK || rd.Count != want || rd.EOF || !bytes.Equal(rd.Data, content[4096:4096+want]) {
				t.Errorf("READ count %d over UDP: %v count %d (%d bytes) eof %v; want %d bytes of the file",
					count, rd.Status, rd.Count, len(rd.Data), rd.EOF, want)
			}
		}
		var rd nfs3.ReadRes
		nfsCall(t, tcp, nfs3.ProcRead, &nfs3.ReadArgs{File: file, Count: 1 << 20}, &rd)
		if rd.Status != nfs3.StatusOK || !rd.EOF || !bytes.Equal(rd.Data, content) {
			t.Errorf("READ 1 MiB over TCP: %v count %d eof %v", rd.Status, rd.Count, rd.EOF)
		}
	})

	// Pages through the directory with a huge count: every page arrives
	// (so it fit a datagram), none is empty, and all names are listed once.
	t.Run("ReaddirplusPages", func(t *testing.T) {
		seen := map[string]bool{}
		var cookie uint64
		pages := 0
		for eof := false; !eof; pages++ {
			if pages > udpDirFiles {
				t.Fatal("READDIRPLUS never reached eof")
			}
			var rp nfs3.ReaddirplusRes
			nfsCall(t, udp, nfs3.ProcReaddirplus, &nfs3.ReaddirplusArgs{Dir: dir, Cookie: cookie, DirCount: 1 << 30, MaxCount: 1 << 30}, &rp)
			if rp.Status != nfs3.StatusOK || len(rp.Entries) == 0 {
				t.Fatalf("READDIRPLUS page %d: %v, %d entries", pages, rp.Status, len(rp.Entries))
			}
			for _, en := range rp.Entries {
				if seen[en.Name] || en.Attr == nil || en.Handle == nil {
					t.Fatalf("READDIRPLUS entry %q: repeated or without attributes and handle", en.Name)
				}
				seen[en.Name] = true
				cookie = en.Cookie
			}
			eof = rp.EOF
		}
		if len(seen) != udpDirFiles+2 || pages < 2 {
			t.Errorf("READDIRPLUS listed %d names in %d pages, want %d in several", len(seen), pages, udpDirFiles+2)
		}
	})

	t.Run("ReaddirPages", func(t *testing.T) {
		seen := map[string]bool{}
		var cookie uint64
		pages := 0
		for eof := false; !eof; pages++ {
			if pages > udpDirFiles {
				t.Fatal("READDIR never reached eof")
			}
			var rd nfs3.ReaddirRes
			nfsCall(t, udp, nfs3.ProcReaddir, &nfs3.ReaddirArgs{Dir: dir, Cookie: cookie, Count: 1 << 30}, &rd)
			if rd.Status != nfs3.StatusOK || len(rd.Entries) == 0 {
				t.Fatalf("READDIR page %d: %v, %d entries", pages, rd.Status, len(rd.Entries))
			}
			for _, en := range rd.Entries {
				if seen[en.Name] {
					t.Fatalf("READDIR entry %q repeated", en.Name)
				}
				seen[en.Name] = true
				cookie = en.Cookie
			}
			eof = rd.EOF
		}
		if len(seen) != udpDirFiles+2 {
			t.Errorf("READDIR listed %d names in %d pages, want %d", len(seen), pages, udpDirFiles+2)
		}
	})

	if st := s.Daemon.Server.Stats(); st.UDPReplyTooLong != 0 {
		t.Errorf("%d UDP replies dropped as too long", st.UDPReplyTooLong)
	}
}
