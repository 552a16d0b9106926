package reliability

import (
	"context"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// rawCaller makes NFS and MOUNT calls over TCP from a chosen loopback
// source address, so one test can be several client hosts: all of
// 127.0.0.0/8 reaches the server over lo without a network namespace.
type rawCaller struct {
	conn net.Conn
	rr   *rpc.RecordReader
	xid  uint32
	cred rpc.OpaqueAuth
}

func dialFrom(t *testing.T, src string, server *net.TCPAddr, uid, gid uint32) *rawCaller {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}, Timeout: 5 * time.Second}
	c, err := d.Dial("tcp", server.String())
	if err != nil {
		t.Fatalf("dial from %s: %v", src, err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawCaller{conn: c, rr: rpc.NewRecordReader(c, 0), xid: uint32(time.Now().UnixNano()), cred: nfsdtest.AuthSys(uid, gid)}
}

// call returns the nfsstat3 (or mountstat3) of the reply and the decoder
// after it.
func (c *rawCaller) call(t *testing.T, prog, vers, proc uint32, args func(e *xdr.Encoder)) (uint32, *xdr.Decoder) {
	t.Helper()
	c.xid++
	var e xdr.Encoder
	rpc.CallHeader{XID: c.xid, Prog: prog, Vers: vers, Proc: proc, Cred: c.cred, Verf: nfsdtest.AuthNone}.Encode(&e)
	if args != nil {
		args(&e)
	}
	_ = c.conn.SetDeadline(time.Now().Add(10 * time.Second))
	if _, err := c.conn.Write(rpc.FrameRecord(e.Bytes())); err != nil {
		t.Fatalf("send: %v", err)
	}
	for {
		rec, err := c.rr.Next()
		if err != nil {
			t.Fatalf("proc %d: no reply: %v", proc, err)
		}
		d := xdr.NewDecoder(rec)
		xid, err := rpc.DecodeReply(d)
		if xid != c.xid {
			continue
		}
		if err != nil {
			t.Fatalf("proc %d: RPC error: %v", proc, err)
		}
		return d.Uint32(), d
	}
}

func (c *rawCaller) mnt(t *testing.T, path string) (uint32, []byte) {
	t.Helper()
	st, d := c.call(t, nfs3.MountProgram, nfs3.MountV3, uint32(nfs3.MountProcMnt), func(e *xdr.Encoder) { e.String(path) })
	if st != 0 {
		return st, nil
	}
	return 0, append([]byte(nil), d.Opaque(nfs3.FHSize)...)
}

// lookup returns the handle of name in dir (status must be OK).
func (c *rawCaller) lookup(t *testing.T, dir []byte, name string) []byte {
	t.Helper()
	st, d := c.call(t, nfs3.Program, nfs3.Version, uint32(nfs3.ProcLookup), func(e *xdr.Encoder) {
		(&nfs3.DirOpArgs{Dir: dir, Name: name}).Encode(e)
	})
	if st != 0 {
		t.Fatalf("LOOKUP %s: status %v", name, nfs3.Status(st))
	}
	return append([]byte(nil), d.Opaque(nfs3.FHSize)...)
}

// TestSecurityMatrix calls every NFSv3 procedure as each kind of client
// and checks the status: a host the export allows read-write (root not
// squashed), an outsider host, a host the export allows read-only, a host
// whose root is squashed, another uid on the allowed host, and the allowed
// host presenting a handle of another export it may not use.
func TestSecurityMatrix(t *testing.T) {
	var other string
	s := startInproc(t, inprocOpts{
		setup: func(t testing.TB, root string) {
			must := func(err error) {
				if err != nil {
					t.Fatal(err)
				}
			}
			must(os.WriteFile(filepath.Join(root, "file"), []byte("hello"), 0o644))
			must(os.Mkdir(filepath.Join(root, "dir"), 0o755))
			must(os.Symlink("file", filepath.Join(root, "link")))
			for _, p := range profiles {
				must(os.WriteFile(filepath.Join(root, "dir", "victim-"+p.name), nil, 0o644))
				must(os.WriteFile(filepath.Join(root, "dir", "r-"+p.name), nil, 0o644))
				must(os.Mkdir(filepath.Join(root, "dir", "sub-"+p.name), 0o755))
			}
			other = filepath.Join(filepath.Dir(root), "other")
			must(os.Mkdir(other, 0o755))
			must(os.WriteFile(filepath.Join(other, "file"), []byte("other export"), 0o644))
		},
		exports: func(root string) string {
			return fmt.Sprintf("%s 127.0.0.1(rw,no_root_squash) 127.0.0.3(ro,no_root_squash) 127.0.0.4(rw,root_squash)\n%s 127.0.0.5(rw,no_root_squash)\n",
				root, filepath.Join(filepath.Dir(root), "other"))
		},
	})
	admin := dialFrom(t, "127.0.0.1", s.Addr, 0, 0)
	st, root := admin.mnt(t, s.Root)
	if st != 0 {
		t.Fatalf("MNT from the allowed host: %d", st)
	}
	file := admin.lookup(t, root, "file")
	dir := admin.lookup(t, root, "dir")
	link := admin.lookup(t, root, "link")
	oc := dialFrom(t, "127.0.0.5", s.Addr, 0, 0)
	st, oroot := oc.mnt(t, other)
	if st != 0 {
		t.Fatalf("MNT of the other export from its host: %d", st)
	}
	ofile := oc.lookup(t, oroot, "file")

	// MNT itself.
	for _, tc := range []struct {
		src  string
		path string
		ok   bool
	}{
		{"127.0.0.1", s.Root, true}, {"127.0.0.2", s.Root, false}, {"127.0.0.3", s.Root, true},
		{"127.0.0.4", s.Root, true}, {"127.0.0.1", other, false}, {"127.0.0.5", other, true},
		{"127.0.0.1", "/etc", false}, {"127.0.0.1", s.Root + "/../other", false},
	} {
		st, _ := dialFrom(t, tc.src, s.Addr, 0, 0).mnt(t, tc.path)
		if (st == 0) != tc.ok {
			t.Errorf("MNT %s from %s: mountstat %d, want ok=%v", tc.path, tc.src, st, tc.ok)
		}
	}

	const (
		OK    = nfs3.StatusOK
		ACCES = nfs3.StatusAcces
		ROFS  = nfs3.StatusROFS
		PERM  = nfs3.StatusPerm
	)
	type proc struct {
		name   string
		num    nfs3.Proc
		mutate bool
		args   func(p profile, h handles) func(e *xdr.Encoder)
	}
	procs := []proc{
		{"GETATTR", nfs3.ProcGetattr, false, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) { e.Opaque(h.file) }
		}},
		{"SETATTR", nfs3.ProcSetattr, true, func(p profile, h handles) func(*xdr.Encoder) {
			mode := uint32(0o644)
			return func(e *xdr.Encoder) {
				(&nfs3.SetattrArgs{Object: h.file, NewAttr: nfs3.SetAttr{Mode: &mode}}).Encode(e)
			}
		}},
		{"LOOKUP", nfs3.ProcLookup, false, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) { (&nfs3.DirOpArgs{Dir: h.root, Name: "file"}).Encode(e) }
		}},
		{"ACCESS", nfs3.ProcAccess, false, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) { (&nfs3.AccessArgs{Object: h.file, Access: 0x3f}).Encode(e) }
		}},
		{"READLINK", nfs3.ProcReadlink, false, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) { e.Opaque(h.link) }
		}},
		{"READ", nfs3.ProcRead, false, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) { (&nfs3.ReadArgs{File: h.file, Count: 100}).Encode(e) }
		}},
		{"WRITE", nfs3.ProcWrite, true, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) {
				(&nfs3.WriteArgs{File: h.file, Count: 5, Stable: nfs3.FileSync, Data: []byte("hello")}).Encode(e)
			}
		}},
		{"CREATE", nfs3.ProcCreate, true, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) {
				(&nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: h.dir, Name: "c-" + p.name}, Mode: nfs3.Guarded}).Encode(e)
			}
		}},
		{"MKDIR", nfs3.ProcMkdir, true, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) {
				(&nfs3.MkdirArgs{Where: nfs3.DirOpArgs{Dir: h.dir, Name: "m-" + p.name}}).Encode(e)
			}
		}},
		{"SYMLINK", nfs3.ProcSymlink, true, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) {
				(&nfs3.SymlinkArgs{Where: nfs3.DirOpArgs{Dir: h.dir, Name: "s-" + p.name}, Target: "/etc/passwd"}).Encode(e)
			}
		}},
		{"MKNOD", nfs3.ProcMknod, true, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) {
				(&nfs3.MknodArgs{Where: nfs3.DirOpArgs{Dir: h.dir, Name: "n-" + p.name}, Type: nfs3.TypeFifo}).Encode(e)
			}
		}},
		{"REMOVE", nfs3.ProcRemove, true, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) { (&nfs3.DirOpArgs{Dir: h.dir, Name: "victim-" + p.name}).Encode(e) }
		}},
		{"RMDIR", nfs3.ProcRmdir, true, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) { (&nfs3.DirOpArgs{Dir: h.dir, Name: "sub-" + p.name}).Encode(e) }
		}},
		{"RENAME", nfs3.ProcRename, true, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) {
				(&nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: h.dir, Name: "r-" + p.name}, To: nfs3.DirOpArgs{Dir: h.dir, Name: "r2-" + p.name}}).Encode(e)
			}
		}},
		{"LINK", nfs3.ProcLink, true, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) {
				(&nfs3.LinkArgs{File: h.file, Link: nfs3.DirOpArgs{Dir: h.dir, Name: "l-" + p.name}}).Encode(e)
			}
		}},
		{"READDIR", nfs3.ProcReaddir, false, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) { (&nfs3.ReaddirArgs{Dir: h.root, Count: 4096}).Encode(e) }
		}},
		{"READDIRPLUS", nfs3.ProcReaddirplus, false, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) { (&nfs3.ReaddirplusArgs{Dir: h.root, DirCount: 4096, MaxCount: 8192}).Encode(e) }
		}},
		{"FSSTAT", nfs3.ProcFsstat, false, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) { e.Opaque(h.root) }
		}},
		{"FSINFO", nfs3.ProcFsinfo, false, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) { e.Opaque(h.root) }
		}},
		{"PATHCONF", nfs3.ProcPathconf, false, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) { e.Opaque(h.root) }
		}},
		{"COMMIT", nfs3.ProcCommit, true, func(p profile, h handles) func(*xdr.Encoder) {
			return func(e *xdr.Encoder) { e.Opaque(h.file); e.Uint64(0); e.Uint32(0) }
		}},
	}
	own := handles{root: root, file: file, dir: dir, link: link}
	foreign := handles{root: oroot, file: ofile, dir: oroot, link: ofile}
	for _, p := range profiles {
		c := dialFrom(t, p.src, s.Addr, p.uid, p.uid)
		h := own
		if p.foreign {
			h = foreign
		}
		for _, pr := range procs {
			want := OK
			switch {
			case p.name == "outsider" || p.foreign:
				want = ACCES
			case p.ro && pr.name == "COMMIT":
				// COMMIT changes nothing (it only syncs), and
				// mailnfsd lets a read-only client have it. knfsd
				// answers ROFS here; recorded, not a leak.
				want = OK
			case p.ro && pr.mutate:
				want = ROFS
			case p.unprivileged && pr.mutate:
				want = ACCES
				if pr.name == "SETATTR" {
					want = PERM // chmod of another user's file
				}
			}
			st, _ := c.call(t, nfs3.Program, nfs3.Version, uint32(pr.num), pr.args(p, h))
			if nfs3.Status(st) != want {
				t.Errorf("%-11s as %-12s: %v, want %v", pr.name, p.name, nfs3.Status(st), want)
			}
		}
	}
	// Nothing the refused clients asked for exists.
	for _, p := range profiles {
		if p.name == "admin" {
			continue
		}
		for _, n := range []string{"c-", "m-", "s-", "n-", "l-", "r2-"} {
			if _, err := os.Lstat(filepath.Join(s.Root, "dir", n+p.name)); err == nil {
				t.Errorf("%s%s exists although %s was refused", n, p.name, p.name)
			}
		}
	}
	if b, _ := os.ReadFile(filepath.Join(other, "file")); string(b) != "other export" {
		t.Errorf("the other export's file changed: %q", b)
	}
}

type handles struct{ root, file, dir, link []byte }

type profile struct {
	name, src    string
	uid          uint32
	ro           bool
	unprivileged bool // root squashed, or another uid: no write access to root's 0644/0755 objects
	foreign      bool // presents handles of an export its host may not use
}

var profiles = []profile{
	{name: "admin", src: "127.0.0.1"},
	{name: "outsider", src: "127.0.0.2"},
	{name: "ro-host", src: "127.0.0.3", ro: true},
	{name: "squashed", src: "127.0.0.4", unprivileged: true},
	{name: "other-uid", src: "127.0.0.1", uid: 1234, unprivileged: true},
	{name: "foreign", src: "127.0.0.1", foreign: true},
}

// TestSymlinkSwapRace: one client keeps replacing a directory with a
// symlink to a directory outside the export (and back), while another
// looks names up through it, lists it, reads and creates in it. No
// operation may reach outside: LOOKUP never follows a symlink, and a
// handle names an inode, not a path.
func TestSymlinkSwapRace(t *testing.T) {
	var secret string
	s := startInproc(t, inprocOpts{setup: func(t testing.TB, root string) {
		secret = filepath.Join(filepath.Dir(root), "secret")
		if err := os.Mkdir(secret, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(secret, "passwd"), []byte("SECRET"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Mkdir(filepath.Join(root, "d"), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(root, "d", "passwd"), []byte("inside"), 0o644); err != nil {
			t.Fatal(err)
		}
	}})
	swapper := dialFrom(t, "127.0.0.1", s.Addr, 0, 0)
	_, root := swapper.mnt(t, s.Root)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var swaps, probes, escapes atomic.Int64
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { // the attacker: d <-> symlink to the secret directory
		defer wg.Done()
		for ctx.Err() == nil {
			ren := func(from, to string) uint32 {
				st, _ := swapper.call(t, nfs3.Program, nfs3.Version, uint32(nfs3.ProcRename), func(e *xdr.Encoder) {
					(&nfs3.RenameArgs{From: nfs3.DirOpArgs{Dir: root, Name: from}, To: nfs3.DirOpArgs{Dir: root, Name: to}}).Encode(e)
				})
				return st
			}
			ren("d", "d.real")
			swapper.call(t, nfs3.Program, nfs3.Version, uint32(nfs3.ProcSymlink), func(e *xdr.Encoder) {
				(&nfs3.SymlinkArgs{Where: nfs3.DirOpArgs{Dir: root, Name: "d"}, Target: secret}).Encode(e)
			})
			swapper.call(t, nfs3.Program, nfs3.Version, uint32(nfs3.ProcRemove), func(e *xdr.Encoder) {
				(&nfs3.DirOpArgs{Dir: root, Name: "d"}).Encode(e)
			})
			ren("d.real", "d")
			swaps.Add(1)
		}
	}()
	for w := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c := dialFrom(t, "127.0.0.1", s.Addr, 0, 0)
			for i := 0; ctx.Err() == nil; i++ {
				probes.Add(1)
				// MNT of a path through the swapped name.
				if st, _ := c.mnt(t, s.Root+"/d"); st == 0 {
					// fine if d was the directory at that moment
				}
				st, d := c.call(t, nfs3.Program, nfs3.Version, uint32(nfs3.ProcLookup), func(e *xdr.Encoder) {
					(&nfs3.DirOpArgs{Dir: root, Name: "d"}).Encode(e)
				})
				if st != 0 {
					continue
				}
				dh := append([]byte(nil), d.Opaque(nfs3.FHSize)...)
				st, d = c.call(t, nfs3.Program, nfs3.Version, uint32(nfs3.ProcLookup), func(e *xdr.Encoder) {
					(&nfs3.DirOpArgs{Dir: dh, Name: "passwd"}).Encode(e)
				})
				if st == 0 {
					fh := append([]byte(nil), d.Opaque(nfs3.FHSize)...)
					st, d = c.call(t, nfs3.Program, nfs3.Version, uint32(nfs3.ProcRead), func(e *xdr.Encoder) {
						(&nfs3.ReadArgs{File: fh, Count: 100}).Encode(e)
					})
					if st == 0 {
						// post_op_attr, count, eof, data
						if d.Bool() {
							skipFattr(d)
						}
						d.Uint32()
						d.Bool()
						if data := d.Opaque(1000); strings.Contains(string(data), "SECRET") {
							escapes.Add(1)
						}
					}
				}
				c.call(t, nfs3.Program, nfs3.Version, uint32(nfs3.ProcCreate), func(e *xdr.Encoder) {
					(&nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: dh, Name: fmt.Sprintf("planted-%d-%d", w, i)}, Mode: nfs3.Unchecked}).Encode(e)
				})
			}
		}()
	}
	wg.Wait()
	if escapes.Load() > 0 {
		t.Fatalf("%d reads returned the secret outside the export", escapes.Load())
	}
	es, _ := os.ReadDir(secret)
	if len(es) != 1 {
		t.Fatalf("the directory outside the export has %d entries, want 1 (something was planted)", len(es))
	}
	if swaps.Load() < 10 || probes.Load() < 10 {
		t.Fatalf("race too short to mean anything: %d swaps, %d probes", swaps.Load(), probes.Load())
	}
	t.Logf("symlink swap race: %d swaps, %d probes; nothing outside the export was read or created", swaps.Load(), probes.Load())
}

// skipFattr skips a fattr3 (84 bytes).
func skipFattr(d *xdr.Decoder) { d.FixedOpaque(84) }
