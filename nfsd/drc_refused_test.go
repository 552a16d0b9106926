package nfsd

import (
	"bytes"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// A retransmitted EXCLUSIVE CREATE or MKDIR whose first run was refused
// EXIST (another process held the name: a lock file, a lock directory)
// keeps its EXIST when its reply has left the duplicate request cache
// for room, or when the server restarted in between: it is run again as
// new, not answered as done, which would hand one lock to two holders.
// The first holder's own retransmission is still answered as done.
func TestRefusedCallRetransmittedKeepsError(t *testing.T) {
	for _, restart := range []bool{false, true} {
		name := "evicted"
		if restart {
			name = "restart"
		}
		t.Run(name, func(t *testing.T) {
			st := mdtest.NewOpts(t, maildirfs.Options{ExportID: 1})
			auth := &n3Auth{exports: map[uint32]*n3Export{1: {store: st}}}
			logPath := filepath.Join(t.TempDir(), DRCLogFile)
			openLog := func() *DRCLog {
				l, _, err := OpenDRCLog(logPath, 0, 0, time.Now())
				if err != nil {
					t.Fatal(err)
				}
				t.Cleanup(func() { l.Close() })
				return l
			}
			log := openLog()
			addr, stop := n3Serve(t, &Server{DRCSize: 4, DRCLog: log}, &NFS3{Auth: auth})
			root := st.Root()
			c := n3Dial(t, addr, 0, 0)
			md := c.lookup(root, "Maildir")
			var sa nfs3.SetattrRes
			c.call(nfs3.ProcSetattr, &nfs3.SetattrArgs{Object: md, NewAttr: nfs3.SetAttr{Mode: ptr[uint32](0o777)}}, &sa)
			c.ok("SETATTR", sa.Status)

			holder, other := n3Dial(t, addr, 1000, 1000), n3Dial(t, addr, 1000, 1000)
			lockArgs := func(verf byte) *nfs3.CreateArgs {
				return &nfs3.CreateArgs{Where: nfs3.DirOpArgs{Dir: md, Name: "x.lock"}, Mode: nfs3.Exclusive, Verf: [8]byte{0, 0, 0, verf, 0, 0, 0, verf}}
			}
			dirArgs := &nfs3.MkdirArgs{Where: nfs3.DirOpArgs{Dir: md, Name: "dirlock"}, Attr: nfs3.SetAttr{Mode: ptr[uint32](0o700)}}
			const holderCreate, holderMkdir, otherCreate, otherMkdir = 0x4000, 0x4001, 0x5000, 0x5001
			var p1 nfs3.CreateRes
			if err := holder.callXID(holderCreate, nfs3.ProcCreate, lockArgs(1), &p1); err != nil {
				t.Fatal(err)
			}
			holder.ok("holder's CREATE", p1.Status)
			var d1 nfs3.MkdirRes
			if err := holder.callXID(holderMkdir, nfs3.ProcMkdir, dirArgs, &d1); err != nil {
				t.Fatal(err)
			}
			holder.ok("holder's MKDIR", d1.Status)
			var p2 nfs3.CreateRes
			if err := other.callXID(otherCreate, nfs3.ProcCreate, lockArgs(2), &p2); err != nil || p2.Status != nfs3.StatusExist {
				t.Fatalf("other's CREATE: %v %v, want NFS3ERR_EXIST", p2.Status, err)
			}
			var d2 nfs3.MkdirRes
			if err := other.callXID(otherMkdir, nfs3.ProcMkdir, dirArgs, &d2); err != nil || d2.Status != nfs3.StatusExist {
				t.Fatalf("other's MKDIR: %v %v, want NFS3ERR_EXIST", d2.Status, err)
			}

			if restart {
				stop()
				log.Close()
				log = openLog()
				addr, _ = n3Serve(t, &Server{DRCSize: 4, DRCLog: log}, &NFS3{Auth: auth})
				holder, other = n3Dial(t, addr, 1000, 1000), n3Dial(t, addr, 1000, 1000)
			} else {
				for range 8 { // push the four replies out of the 4-entry cache
					var r nfs3.RemoveRes
					c.call(nfs3.ProcRemove, &nfs3.RemoveArgs{Dir: md, Name: "nothing"}, &r)
				}
			}

			var again nfs3.CreateRes
			if err := other.callXID(otherCreate, nfs3.ProcCreate, lockArgs(2), &again); err != nil {
				t.Fatal(err)
			}
			if again.Status != nfs3.StatusExist {
				t.Errorf("other's retransmitted CREATE: %v (same file as the holder's: %v), want NFS3ERR_EXIST", again.Status, bytes.Equal(again.Object, p1.Object))
			}
			var dagain nfs3.MkdirRes
			if err := other.callXID(otherMkdir, nfs3.ProcMkdir, dirArgs, &dagain); err != nil {
				t.Fatal(err)
			}
			if dagain.Status != nfs3.StatusExist {
				t.Errorf("other's retransmitted MKDIR: %v, want NFS3ERR_EXIST", dagain.Status)
			}
			var hagain nfs3.CreateRes
			if err := holder.callXID(holderCreate, nfs3.ProcCreate, lockArgs(1), &hagain); err != nil {
				t.Fatal(err)
			}
			if hagain.Status != nfs3.StatusOK || !bytes.Equal(hagain.Object, p1.Object) {
				t.Errorf("holder's retransmitted CREATE: %v, want NFS3_OK and its file", hagain.Status)
			}
		})
	}
}

// The log marks a refused call's record in its own slot only: once the
// ring has come round and the slot holds another call, the mark is not
// made, and the other call is still one an earlier run began.
func TestDRCLogRefused(t *testing.T) {
	path := filepath.Join(t.TempDir(), DRCLogFile)
	now := time.Now()
	l, _, err := OpenDRCLog(path, 4, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	_, s2 := l.begin(testKey(2), now) // slot 0
	_, s1 := l.begin(testKey(1), now) // slot 1
	l.refused(s1, testKey(1))
	l.begin(testKey(3), now) // slot 2
	l.begin(testKey(4), now) // slot 3
	l.begin(testKey(6), now) // slot 0 again: key 2's record is gone
	l.refused(s2, testKey(2))
	l.Close()
	l, n, err := OpenDRCLog(path, 4, time.Minute, now)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if n != 3 || began(l, testKey(1), now) || !began(l, testKey(6), now) || !began(l, testKey(3), now) {
		t.Errorf("after reopening: %d calls, want 3 (keys 3, 4, 6): the refused key 1 must be left out, key 6 (in a slot marked too late) kept", n)
	}
}
