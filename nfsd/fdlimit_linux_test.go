package nfsd_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/xdr"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// TestStoresShareFdLimit: two exports whose node caches (1024 nodes each,
// two fds per file read) together need more descriptors than the process
// may open. Each cache evicts only beyond its own bound, so once the
// first export's cache held its fds, every LOOKUP in the second failed
// with SERVERFAULT ("too many open files"), for good. Now an open that
// finds no descriptor closes unused cached nodes of every store and tries
// again: the second export is served.
func TestStoresShareFdLimit(t *testing.T) {
	const files = 1500
	srv := nfsdtest.StartServer(t, nfsdtest.WithSetup(func(t testing.TB, root string) {
		for x := range 2 {
			d := filepath.Join(root, fmt.Sprint("box", x))
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			for i := range files {
				if err := os.WriteFile(filepath.Join(d, fmt.Sprint(i)), []byte("mail\n"), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		}
	}), nfsdtest.WithExports(func(root string) string {
		var b strings.Builder
		for x := range 2 {
			fmt.Fprintf(&b, "%s/box%d 127.0.0.0/8(rw,no_root_squash)\n", root, x)
		}
		return b.String()
	}))
	c := nfsdtest.Dial(t, "tcp", srv.NFSAddr)
	var roots [2][]byte
	for x := range 2 {
		r3, _ := mnt(t, c, nfs3.MountV3, fmt.Sprintf("%s/box%d", srv.Root, x))
		if r3.Status != nfs3.MountOK {
			t.Fatalf("MNT box%d: %v", x, r3.Status)
		}
		roots[x] = r3.Handle
	}

	// Room for one export's cache and a half.
	limitFds(t, 3000)

	for x := range 2 {
		failed := map[string]int{}
		for i := range files {
			ls, rs := lookupRead(t, c, roots[x], fmt.Sprint(i), 100)
			switch {
			case ls != nfs3.StatusOK:
				failed["LOOKUP "+ls.String()]++
			case rs != nfs3.StatusOK:
				failed["READ "+rs.String()]++
			}
		}
		if len(failed) > 0 {
			t.Errorf("box%d: %d files looked up and read, failures: %v", x, files, failed)
		}
	}
}

// TestAcceptShedsStoreFds: when the stores' caches (with everything else
// the process holds) fill the file table, a new front end's connection
// cannot be accepted (EMFILE). The accept loop used to back off and retry
// for as long as the table stayed full, which only a store's own failed
// open would end; it now sheds the stores' unused cached files first.
func TestAcceptShedsStoreFds(t *testing.T) {
	const files = 1000
	srv := nfsdtest.StartServer(t, nfsdtest.WithSetup(func(t testing.TB, root string) {
		for i := range files {
			if err := os.WriteFile(filepath.Join(root, fmt.Sprint(i)), []byte("mail\n"), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}))
	c := nfsdtest.Dial(t, "tcp", srv.NFSAddr)
	r3, _ := mnt(t, c, nfs3.MountV3, srv.Root)
	if r3.Status != nfs3.MountOK {
		t.Fatalf("MNT: %v", r3.Status)
	}
	// Fill the store's cache: each file read holds its descriptors.
	for i := range files {
		if ls, rs := lookupRead(t, c, r3.Handle, fmt.Sprint(i), 10); ls != nfs3.StatusOK || rs != nfs3.StatusOK {
			t.Fatalf("LOOKUP and READ %d: %v, %v", i, ls, rs)
		}
	}

	// Lower the limit to what is open now plus some, and take the rest
	// ourselves (the server runs in this process), keeping one for the
	// client's socket.
	limitFds(t, 64)
	var held []int
	defer func() {
		for _, fd := range held {
			syscall.Close(fd)
		}
	}()
	for {
		fd, err := syscall.Open("/dev/null", syscall.O_RDONLY|syscall.O_CLOEXEC, 0)
		if err != nil {
			if err != syscall.EMFILE {
				t.Fatal(err)
			}
			break
		}
		held = append(held, fd)
	}
	if len(held) == 0 {
		t.Fatal("took no descriptor")
	}
	syscall.Close(held[len(held)-1])
	held = held[:len(held)-1]

	// The client's socket takes the last descriptor; the server's accept
	// finds none.
	c2 := nfsdtest.Dial(t, "tcp", srv.NFSAddr)
	if _, err := c2.Call(nfs3.Program, nfs3.Version, 0, nfsdtest.AuthNone, nil); err != nil {
		t.Fatalf("NULL on a connection made while the file table was full: %v", err)
	}
}

// limitFds sets this process's RLIMIT_NOFILE to the descriptors open now
// plus room (the server runs in this process) until the test ends.
func limitFds(t *testing.T, room int) {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	var old syscall.Rlimit
	if err := syscall.Getrlimit(syscall.RLIMIT_NOFILE, &old); err != nil {
		t.Fatal(err)
	}
	lim := old
	lim.Cur = uint64(len(ents) + room)
	if lim.Cur > old.Max {
		t.Skipf("RLIMIT_NOFILE hard limit %d too low", old.Max)
	}
	if err := syscall.Setrlimit(syscall.RLIMIT_NOFILE, &lim); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { syscall.Setrlimit(syscall.RLIMIT_NOFILE, &old) })
}

// lookupRead looks name up in dir and reads count bytes of it, as root,
// and returns the two statuses (READ's is zero when LOOKUP failed).
func lookupRead(t *testing.T, c *nfsdtest.Caller, dir []byte, name string, count uint32) (lookup, read nfs3.Status) {
	t.Helper()
	d, err := c.Call(nfs3.Program, nfs3.Version, uint32(nfs3.ProcLookup), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
		(&nfs3.DirOpArgs{Dir: dir, Name: name}).Encode(e)
	})
	if err != nil {
		t.Fatal(err)
	}
	var lr nfs3.LookupRes
	lr.Decode(d)
	if lr.Status != nfs3.StatusOK {
		return lr.Status, 0
	}
	fh := append([]byte(nil), lr.Object...)
	d, err = c.Call(nfs3.Program, nfs3.Version, uint32(nfs3.ProcRead), nfsdtest.AuthSys(0, 0), func(e *xdr.Encoder) {
		(&nfs3.ReadArgs{File: fh, Count: count}).Encode(e)
	})
	if err != nil {
		t.Fatal(err)
	}
	var rr nfs3.ReadRes
	rr.Decode(d)
	return lr.Status, rr.Status
}
