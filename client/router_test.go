package client

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/mailnfs/mailnfs/client/userdb"
	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

func TestRouterDeliversAsEachUser(t *testing.T) {
	checkGoroutines(t)
	users := map[string]uint32{"tevie": 2001, "golde": 2002}
	s := startServer(t, nfsdtest.WithSetup(func(t testing.TB, root string) {
		for name, uid := range users {
			home := filepath.Join(root, userdb.HashedHome(name))
			os.MkdirAll(filepath.Dir(home), 0o755)
			for _, d := range []string{"", "/Maildir", "/Maildir/tmp", "/Maildir/new", "/Maildir/cur"} {
				os.Mkdir(home+d, 0o700)
				os.Chown(home+d, int(uid), int(uid))
			}
		}
	}))
	var text strings.Builder
	for name, uid := range users {
		fmt.Fprintf(&text, "%s\tuid=%d|gid=%d|home=%s/%s|server=127.0.0.1:%s", name, uid, uid, s.Export, userdb.HashedHome(name), s.Export)
		if name == "golde" {
			text.WriteString("|quota=10S") // room for one "hi golde"
		}
		text.WriteString("\n")
	}
	es, err := userdb.Parse(strings.NewReader(text.String()), "test")
	if err != nil {
		t.Fatal(err)
	}
	db := mustDB(t, es)
	r := NewRouter(db, Options{})
	r.Adjust = func(tg *Target) { tg.PortmapPort = int(s.PortmapAddr.Port()) }
	defer r.Close()
	ctx := context.Background()
	for name, uid := range users {
		n, err := r.Deliver(ctx, name, strings.NewReader("hi "+name))
		if err != nil {
			t.Fatal(err)
		}
		fi, err := os.Stat(filepath.Join(s.Root, userdb.HashedHome(name), "Maildir/new", n))
		if err != nil {
			t.Fatal(err)
		}
		if st := fi.Sys().(*syscall.Stat_t); st.Uid != uid {
			t.Errorf("%s's message owned by uid %d", name, st.Uid)
		}
	}
	// golde's quota= field holds: a second message does not fit, and her
	// maildirsize is hers.
	if _, err := r.Deliver(ctx, "golde", strings.NewReader("hi again")); !errors.Is(err, ErrOverQuota) {
		t.Errorf("golde's second message over quota=10S: %v, want ErrOverQuota", err)
	}
	if fi, err := os.Stat(filepath.Join(s.Root, userdb.HashedHome("golde"), "Maildir/maildirsize")); err != nil || fi.Sys().(*syscall.Stat_t).Uid != 2002 {
		t.Errorf("golde's maildirsize: %v", err)
	}
	if len(r.clients) != 1 {
		t.Errorf("router opened %d clients for one export", len(r.clients))
	}
	// tevie may not write into golde's Maildir (mode 0700, other owner).
	c, _, err := r.Resolve(ctx, "tevie")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Deliver(ctx, userdb.HashedHome("golde")+"/Maildir", strings.NewReader("x")); err == nil {
		t.Errorf("tevie delivered into golde's Maildir")
	}
	if _, err := r.Deliver(ctx, "nobody", strings.NewReader("x")); err == nil {
		t.Errorf("delivery to an unknown user succeeded")
	}
}

func mustDB(t *testing.T, es []userdb.Entry) *userdb.DB {
	t.Helper()
	var b strings.Builder
	if err := userdb.Encode(&b, es); err != nil {
		t.Fatal(err)
	}
	db, err := userdb.Decode([]byte(b.String()))
	if err != nil {
		t.Fatal(err)
	}
	return db
}
