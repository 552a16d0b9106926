package nfsd_test

import (
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/internal/logtest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// mountServer starts a server with three exports: the test root for
// 127.0.0.1 (with -alldirs), root/noall for 127.0.0.1 without -alldirs,
// and root/other for 10.0.0.0/8 only.
func mountServer(t *testing.T, opts ...nfsdtest.Option) *nfsdtest.TestServer {
	return nfsdtest.StartServer(t, append([]nfsdtest.Option{
		nfsdtest.WithSetup(func(t testing.TB, root string) {
			for _, d := range []string{"sub/deeper", "noall/sub", "other"} {
				if err := os.MkdirAll(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
			if err := os.WriteFile(filepath.Join(root, "file"), []byte("x"), 0o644); err != nil {
				t.Fatal(err)
			}
		}),
		nfsdtest.WithExports(func(root string) string {
			return fmt.Sprintf("# test exports\n%s -alldirs -maproot=0:0 127.0.0.1\n%s/noall 127.0.0.1\n%s/other -network 10.0.0.0/8\n", root, root, root)
		})}, opts...)...)
}

// withLog sends the server's log to l.
func withLog(l *logtest.Buffer) nfsdtest.Option {
	return nfsdtest.WithConfig(func(c *nfsd.Config) { c.Logger = slog.New(slog.NewTextHandler(l, nil)) })
}

func mnt(t *testing.T, c *nfsdtest.Caller, vers uint32, path string) (nfs3.MountRes3, nfs3.FHStatus) {
	t.Helper()
	d, err := c.Call(nfs3.MountProgram, vers, uint32(nfs3.MountProcMnt), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
		(&nfs3.DirPath{Path: path}).Encode(e)
	})
	if err != nil {
		t.Fatalf("MNT v%d %q: %v", vers, path, err)
	}
	var r3 nfs3.MountRes3
	var r1 nfs3.FHStatus
	if vers == nfs3.MountV3 {
		r3.Decode(d)
	} else {
		r1.Decode(d)
	}
	if err := d.Done(); err != nil {
		t.Fatalf("MNT v%d %q reply: %v", vers, path, err)
	}
	return r3, r1
}

func dump(t *testing.T, c *nfsdtest.Caller, vers uint32) nfs3.MountList {
	t.Helper()
	d, err := c.Call(nfs3.MountProgram, vers, uint32(nfs3.MountProcDump), nfsdtest.AuthNone, nil)
	if err != nil {
		t.Fatalf("DUMP: %v", err)
	}
	var l nfs3.MountList
	l.Decode(d)
	if err := d.Done(); err != nil {
		t.Fatalf("DUMP reply: %v", err)
	}
	return l
}

func TestMount(t *testing.T) {
	s := mountServer(t)
	root := s.Root
	rootHandle := []byte(s.Daemon.Exports.Store(root).Root())
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			c := nfsdtest.Dial(t, network, s.MountAddr)
			for _, v := range []uint32{1, 2, 3} {
				c.Null(t, nfs3.MountProgram, v)
			}

			t.Run("MntExport", func(t *testing.T) {
				r, _ := mnt(t, c, 3, root)
				want := nfs3.MountRes3{Status: nfs3.MountOK, Handle: rootHandle, AuthFlavors: []uint32{rpc.AuthSys, rpc.AuthNone}}
				if !reflect.DeepEqual(want, r) {
					t.Fatalf("MNT %s:\nwant %+v\ngot  %+v", root, want, r)
				}
				// The path is normalised: "." and doubled slashes.
				r2, _ := mnt(t, c, 3, root+"/./")
				if !reflect.DeepEqual(want, r2) {
					t.Fatalf("MNT %s/./: got %+v", root, r2)
				}
			})
			t.Run("MntAllDirs", func(t *testing.T) {
				r, _ := mnt(t, c, 3, root+"/sub/deeper")
				if r.Status != nfs3.MountOK || len(r.Handle) == 0 || reflect.DeepEqual(r.Handle, rootHandle) {
					t.Fatalf("MNT sub/deeper: %+v", r)
				}
			})
			cases := []struct {
				name, path string
				want       nfs3.MountStat
			}{
				{"Unexported", "/etc", nfs3.MountAcces},
				{"ClientNotAllowed", root + "/other", nfs3.MountAcces},
				{"BelowExportWithoutAllDirs", root + "/noall/sub", nfs3.MountAcces},
				{"DotDot", root + "/sub/../..", nfs3.MountAcces},
				{"Relative", "export", nfs3.MountInval},
				{"Missing", root + "/nosuch", nfs3.MountNoEnt},
				{"NotDir", root + "/file", nfs3.MountNotDir},
			}
			for _, tc := range cases {
				t.Run("Mnt"+tc.name, func(t *testing.T) {
					r, _ := mnt(t, c, 3, tc.path)
					if r.Status != tc.want || r.Handle != nil {
						t.Fatalf("MNT %q: want %v, got %+v", tc.path, tc.want, r)
					}
				})
			}
			t.Run("MntV1NotSupported", func(t *testing.T) {
				_, r := mnt(t, c, 1, root)
				if r.Status != nfs3.MountNotSupp {
					t.Fatalf("MNT v1: %+v", r)
				}
			})
			t.Run("Export", func(t *testing.T) {
				want := nfs3.Exports{
					{Dir: root, Groups: []string{"127.0.0.1"}},
					{Dir: root + "/noall", Groups: []string{"127.0.0.1"}},
					{Dir: root + "/other", Groups: []string{"10.0.0.0/8"}},
				}
				for _, v := range []uint32{1, 3} {
					d, err := c.Call(nfs3.MountProgram, v, uint32(nfs3.MountProcExport), nfsdtest.AuthNone, nil)
					if err != nil {
						t.Fatal(err)
					}
					var got nfs3.Exports
					got.Decode(d)
					if err := d.Done(); err != nil {
						t.Fatal(err)
					}
					if !reflect.DeepEqual(want, got) {
						t.Fatalf("EXPORT v%d:\nwant %+v\ngot  %+v", v, want, got)
					}
				}
				// EXPORTALL exists in v1 only.
				if _, err := c.Call(nfs3.MountProgram, 1, uint32(nfs3.MountProcExportAll), nfsdtest.AuthNone, nil); err != nil {
					t.Fatalf("EXPORTALL v1: %v", err)
				}
				_, err := c.Call(nfs3.MountProgram, 3, uint32(nfs3.MountProcExportAll), nfsdtest.AuthNone, nil)
				var re *rpc.ReplyError
				if !errors.As(err, &re) || re.Accept != rpc.ProcUnavail {
					t.Fatalf("EXPORTALL v3: want PROC_UNAVAIL, got %v", err)
				}
			})
			t.Run("DumpUmnt", func(t *testing.T) {
				c.Call(nfs3.MountProgram, 3, uint32(nfs3.MountProcUmntAll), nfsdtest.AuthNone, nil)
				if l := dump(t, c, 3); len(l) != 0 {
					t.Fatalf("DUMP after UMNTALL: %+v", l)
				}
				mnt(t, c, 3, root)
				mnt(t, c, 3, root+"/sub")
				mnt(t, c, 3, root) // again: listed once, last
				mnt(t, c, 3, "/etc")
				want := nfs3.MountList{{Hostname: "127.0.0.1", Directory: root + "/sub"}, {Hostname: "127.0.0.1", Directory: root}}
				if got := dump(t, c, 1); !reflect.DeepEqual(want, got) {
					t.Fatalf("DUMP:\nwant %+v\ngot  %+v", want, got)
				}
				if _, err := c.Call(nfs3.MountProgram, 3, uint32(nfs3.MountProcUmnt), nfsdtest.AuthNone, func(e *xdr.Encoder) {
					(&nfs3.DirPath{Path: root + "/sub"}).Encode(e)
				}); err != nil {
					t.Fatal(err)
				}
				if got := dump(t, c, 3); !reflect.DeepEqual(want[1:], got) {
					t.Fatalf("DUMP after UMNT: %+v", got)
				}
				if _, err := c.Call(nfs3.MountProgram, 3, uint32(nfs3.MountProcUmntAll), nfsdtest.AuthNone, nil); err != nil {
					t.Fatal(err)
				}
				if got := dump(t, c, 3); len(got) != 0 {
					t.Fatalf("DUMP after UMNTALL: %+v", got)
				}
			})
			t.Run("Garbage", func(t *testing.T) {
				_, err := c.Call(nfs3.MountProgram, 3, uint32(nfs3.MountProcMnt), nfsdtest.AuthNone, func(e *xdr.Encoder) {
					e.Uint32(2000) // dirpath longer than MNTPATHLEN, no bytes
				})
				var re *rpc.ReplyError
				if !errors.As(err, &re) || re.Accept != rpc.GarbageArgs {
					t.Fatalf("MNT with a bad path: want GARBAGE_ARGS, got %v", err)
				}
				_, err = c.Call(nfs3.MountProgram, 3, 99, nfsdtest.AuthNone, nil)
				if !errors.As(err, &re) || re.Accept != rpc.ProcUnavail {
					t.Fatalf("proc 99: want PROC_UNAVAIL, got %v", err)
				}
				_, err = c.Call(nfs3.MountProgram, 4, 0, nfsdtest.AuthNone, nil)
				if !errors.As(err, &re) || re.Accept != rpc.ProgMismatch || re.Low != 1 || re.High != 3 {
					t.Fatalf("MOUNT v4: want PROG_MISMATCH 1..3, got %v", err)
				}
			})
		})
	}
}

// TestMountV1MntRefused: a MOUNT v1 or v2 MNT of a path the caller may
// mount is refused with MNT3ERR_NOTSUPP and leaves no trace: no DUMP entry
// and no "mount: granted" log line.
func TestMountV1MntRefused(t *testing.T) {
	var logs logtest.Buffer
	s := mountServer(t, withLog(&logs))
	for _, network := range []string{"tcp", "udp"} {
		c := nfsdtest.Dial(t, network, s.MountAddr)
		for _, v := range []uint32{1, 2} {
			if _, r := mnt(t, c, v, s.Root); r.Status != nfs3.MountNotSupp {
				t.Errorf("MNT v%d over %s: %+v, want NOTSUPP", v, network, r)
			}
			// A path the caller may not mount keeps its own answer.
			if _, r := mnt(t, c, v, s.Root+"/other"); r.Status != nfs3.MountAcces {
				t.Errorf("MNT v%d of a denied export over %s: %+v, want ACCES", v, network, r)
			}
		}
		for _, v := range []uint32{1, 3} {
			if got := dump(t, c, v); len(got) != 0 {
				t.Errorf("DUMP v%d after refused v1 MNTs: %+v", v, got)
			}
		}
	}
	if strings.Contains(logs.String(), "mount: granted") {
		t.Errorf("a refused v1 MNT was logged as granted:\n%s", logs.String())
	}
	// The same path over v3 is granted, listed and logged.
	c := nfsdtest.Dial(t, "tcp", s.MountAddr)
	if r, _ := mnt(t, c, 3, s.Root); r.Status != nfs3.MountOK {
		t.Fatalf("MNT v3: %+v", r)
	}
	want := nfs3.MountList{{Hostname: "127.0.0.1", Directory: s.Root}}
	if got := dump(t, c, 3); !reflect.DeepEqual(want, got) {
		t.Errorf("DUMP after MNT v3: %+v", got)
	}
	if n := strings.Count(logs.String(), "mount: granted"); n != 1 {
		t.Errorf("%d \"mount: granted\" lines after one v3 MNT, want 1", n)
	}
}

// TestMountExportTruncated: an EXPORT reply over the 60,000-byte limit
// lists exports whole, never one with a cut group list (an empty list reads
// as "(everyone)" in showmount), and the cut is logged once.
func TestMountExportTruncated(t *testing.T) {
	const hosts = 5000 // about 100 KB of groups
	var logs logtest.Buffer
	s := nfsdtest.StartServer(t, withLog(&logs),
		nfsdtest.WithSetup(func(t testing.TB, root string) {
			for _, d := range []string{"a", "big", "c"} {
				if err := os.Mkdir(filepath.Join(root, d), 0o755); err != nil {
					t.Fatal(err)
				}
			}
		}),
		nfsdtest.WithExports(func(root string) string {
			var b strings.Builder
			fmt.Fprintf(&b, "%s/a 127.0.0.1\n%s/big", root, root)
			for i := range hosts {
				fmt.Fprintf(&b, " 10.0.%d.%d", i/250, i%250+1)
			}
			fmt.Fprintf(&b, "\n%s/c 127.0.0.1\n", root)
			return b.String()
		}))
	want := nfs3.Exports{{Dir: s.Root + "/a", Groups: []string{"127.0.0.1"}}}
	for _, network := range []string{"tcp", "udp"} {
		c := nfsdtest.Dial(t, network, s.MountAddr)
		for _, v := range []uint32{1, 3} {
			d, err := c.Call(nfs3.MountProgram, v, uint32(nfs3.MountProcExport), nfsdtest.AuthNone, nil)
			if err != nil {
				t.Fatalf("EXPORT v%d over %s: %v", v, network, err)
			}
			var got nfs3.Exports
			got.Decode(d)
			if err := d.Done(); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(want, got) {
				for i := range got {
					got[i].Groups = got[i].Groups[:min(len(got[i].Groups), 3)]
				}
				t.Errorf("EXPORT v%d over %s: got (groups cut to 3 here) %+v, want %+v", v, network, got, want)
			}
		}
	}
	if n := strings.Count(logs.String(), "EXPORT reply truncated"); n != 1 {
		t.Errorf("%d truncation warnings after 4 EXPORTs, want 1", n)
	}
}

func TestMountReload(t *testing.T) {
	s := mountServer(t)
	c := nfsdtest.Dial(t, "tcp", s.MountAddr)
	if r, _ := mnt(t, c, 3, s.Root+"/other"); r.Status != nfs3.MountAcces {
		t.Fatalf("before reload: %+v", r)
	}
	// A broken file keeps the old rules.
	if err := os.WriteFile(s.ExportsFile, []byte(s.Root+"/other -mask foo\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	err := s.Daemon.Reload()
	if err == nil || err.Error() != s.ExportsFile+":1:"+fmt.Sprint(len(s.Root+"/other ")+1)+": -mask needs a -network on the same line" {
		t.Fatalf("reload of a bad file: %v", err)
	}
	if r, _ := mnt(t, c, 3, s.Root); r.Status != nfs3.MountOK {
		t.Fatalf("after failed reload: %+v", r)
	}
	// A good file replaces them: root is gone, other is open to us.
	if err := os.WriteFile(s.ExportsFile, []byte(s.Root+"/other 127.0.0.1(rw)\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Daemon.Reload(); err != nil {
		t.Fatal(err)
	}
	if r, _ := mnt(t, c, 3, s.Root+"/other"); r.Status != nfs3.MountOK {
		t.Fatalf("after reload: %+v", r)
	}
	if r, _ := mnt(t, c, 3, s.Root); r.Status != nfs3.MountAcces {
		t.Fatalf("old export after reload: %+v", r)
	}
	// An export whose directory is missing fails the reload as a whole.
	if err := os.WriteFile(s.ExportsFile, []byte(s.Root+"/nosuch\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := s.Daemon.Reload(); err == nil {
		t.Fatal("reload with a missing export directory succeeded")
	}
	if r, _ := mnt(t, c, 3, s.Root+"/other"); r.Status != nfs3.MountOK {
		t.Fatalf("after failed reload: %+v", r)
	}
}

func TestRestartKeepsHandles(t *testing.T) {
	s := nfsdtest.StartServer(t, nfsdtest.WithSetup(func(t testing.TB, root string) {
		if err := os.MkdirAll(filepath.Join(root, "new"), 0o755); err != nil {
			t.Fatal(err)
		}
	}))
	mntSub := func() []byte {
		c := nfsdtest.Dial(t, "tcp", s.MountAddr)
		defer c.Close()
		r, _ := mnt(t, c, 3, s.Export+"/new")
		if r.Status != nfs3.MountOK {
			t.Fatalf("MNT: %v", r.Status)
		}
		return r.Handle
	}
	getattr := func(h []byte) uint32 {
		c := nfsdtest.Dial(t, "tcp", s.NFSAddr)
		defer c.Close()
		d, err := c.Call(nfs3.Program, nfs3.Version, 1, nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) { e.Opaque(h) })
		if err != nil {
			t.Fatal(err)
		}
		return d.Uint32()
	}
	before := mntSub()
	if st := getattr(before); st != 0 {
		t.Fatalf("GETATTR before restart: status %d", st)
	}
	s.Restart(t)
	if after := mntSub(); !reflect.DeepEqual(before, after) {
		t.Fatalf("MNT handle changed across restart:\n%x\n%x", before, after)
	}
	if st := getattr(before); st != 0 {
		t.Fatalf("GETATTR with the old handle after restart: status %d", st)
	}
}

// TestMountRefusalsRateLimited: a host that sends MNT after MNT it may not
// make gets each one refused, but the log gets one line a minute for it
// and each reason (held_back counts the rest): a line per refusal let any host that
// reaches the port write the log at the rate it sends datagrams. Granted
// MNTs too are logged once a minute per client and export.
func TestMountRefusalsRateLimited(t *testing.T) {
	var logs logtest.Buffer
	s := mountServer(t, withLog(&logs))
	// TCP: a UDP retransmission would log a second "granted".
	c := nfsdtest.Dial(t, "tcp", s.MountAddr)
	const n = 50
	for i := range n {
		path := s.Root + "/other" // 10.0.0.0/8 only
		if i%2 == 1 {
			path = "/not/exported"
		}
		if r, _ := mnt(t, c, nfs3.MountV3, path); r.Status != nfs3.MountAcces {
			t.Fatalf("MNT %s: %v, want ACCES", path, r.Status)
		}
	}
	for _, why := range []string{"mount: refused: client not allowed", "mount: refused: path is not exported"} {
		if got := strings.Count(logs.String(), why); got != 1 {
			t.Errorf("%d %q lines for %d refused MNTs from one host, want 1:\n%s", got, why, n/2, logs.String())
		}
	}
	for range 2 {
		if r, _ := mnt(t, c, nfs3.MountV3, s.Root); r.Status != nfs3.MountOK {
			t.Fatalf("MNT %s: %v", s.Root, r.Status)
		}
	}
	if got := strings.Count(logs.String(), "mount: granted"); got != 1 {
		t.Errorf("%d \"mount: granted\" lines for 2 MNTs of one export, want 1 a minute", got)
	}
}
