package nfsd_test

import (
	"context"
	"encoding/binary"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/client"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
	"golang.org/x/sys/unix"
)

// TestExclusiveCreateTakeover: root's own empty file made by an EXCLUSIVE
// CREATE (a root front end not squashed) carries its verifier in its times,
// which any caller who can look it up reads with GETATTR. Another user's
// EXCLUSIVE CREATE with that verifier, in a sticky directory both may
// write, was taken for a first run of theirs cut short before the chown,
// and the server gave them root's file. The file stays root's; so does an
// empty file of root's with whole-second times and mode 0644 (touch -d).
func TestExclusiveCreateTakeover(t *testing.T) {
	s := nfsdtest.StartServer(t, nfsdtest.WithSetup(func(t testing.TB, root string) {
		if err := os.Mkdir(filepath.Join(root, "shared"), 0o777); err != nil {
			t.Fatal(err)
		}
		if err := os.Chmod(filepath.Join(root, "shared"), 0o1777); err != nil {
			t.Fatal(err)
		}
	}))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	dial := func(uid uint32) *client.Client {
		c, err := client.Dial(ctx, s.URL("")+fmt.Sprintf("&uid=%d&gid=%d", uid, uid), client.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	root, user := dial(0), dial(2000)
	dir, _, err := root.Lookup(ctx, root.Root(), "shared")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := root.Create(ctx, dir, "lock", client.Exclusive, client.SetAttr{}, [8]byte{1, 2, 3, 4, 5, 6, 7, 8}); err != nil {
		t.Fatal(err)
	}
	_, a, err := user.Lookup(ctx, dir, "lock")
	if err != nil {
		t.Fatal(err)
	}
	var verf [8]byte
	binary.BigEndian.PutUint32(verf[0:], a.Mtime.Seconds)
	binary.BigEndian.PutUint32(verf[4:], a.Atime.Seconds)
	// It may succeed, as knfsd answers a matching verifier, but with
	// root's file as it is.
	if _, got, err := user.Create(ctx, dir, "lock", client.Exclusive, client.SetAttr{}, verf); err == nil && (got == nil || got.UID != 0) {
		t.Errorf("another user's EXCLUSIVE CREATE with the verifier read from root's file: %+v", got)
	}
	// An empty file of root's made on the box with whole-second times.
	touched := filepath.Join(s.Root, "shared", "touched")
	if err := os.WriteFile(touched, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	stamp := time.Unix(1_700_000_000, 0)
	if err := os.Chtimes(touched, stamp, stamp); err != nil {
		t.Fatal(err)
	}
	binary.BigEndian.PutUint32(verf[0:], uint32(stamp.Unix()))
	binary.BigEndian.PutUint32(verf[4:], uint32(stamp.Unix()))
	if _, got, err := user.Create(ctx, dir, "touched", client.Exclusive, client.SetAttr{}, verf); err == nil && (got == nil || got.UID != 0) {
		t.Errorf("another user's EXCLUSIVE CREATE over root's touched file: %+v", got)
	}
	for _, name := range []string{"lock", "touched"} {
		var st unix.Stat_t
		if err := unix.Stat(filepath.Join(s.Root, "shared", name), &st); err != nil {
			t.Fatal(err)
		}
		if st.Uid != 0 {
			t.Errorf("root's %s now owned by uid %d (mode %o)", name, st.Uid, st.Mode&0o7777)
		}
	}
}
