package nfsd

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/mailnfs/mailnfs/internal/logtest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
	"github.com/mailnfs/mailnfs/internal/rpc"
	"github.com/mailnfs/mailnfs/maildirfs"
)

// openTestExports opens exports over two temp directories: a (Linux
// syntax, 127.0.0.1 rw root squashed, 10.0.0.0/8 ro all squashed) and b
// (FreeBSD syntax, -maproot=0:0 for 127.0.0.2 only).
func openTestExports(t *testing.T) (x *Exports, a, b string) {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("maildirfs needs root (CAP_DAC_READ_SEARCH)")
	}
	dir := t.TempDir()
	a, b = filepath.Join(dir, "a"), filepath.Join(dir, "b")
	for _, d := range []string{a, b} {
		if err := os.Mkdir(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	text := fmt.Sprintf("%s 127.0.0.1(rw) 10.0.0.0/8(ro,all_squash,anonuid=5000,anongid=5001)\n%s -maproot=0:0 127.0.0.2\n", a, b)
	tab, err := ParseExports("exports", []byte(text), nil)
	exNoErr(t, err)
	x, err = OpenExports(tab, ExportsOptions{StateDir: filepath.Join(dir, "state")})
	exNoErr(t, err)
	t.Cleanup(func() { exNoErr(t, x.Close()) })
	return x, a, b
}

func TestAuthorize(t *testing.T) {
	x, a, b := openTestExports(t)
	var denied []string
	x.opts.Denied = func(rule string) { denied = append(denied, rule) }
	ha, hb := x.Store(a).Root(), x.Store(b).Root()
	id, ok := maildirfs.ExportIDOf(ha)
	exTrue(t, ok)
	exEqual(t, ExportID(a), id, "stores are opened with the export's id")

	root := &rpc.AuthSysParms{UID: 0, GID: 0, GIDs: []uint32{0, 7}}
	user := &rpc.AuthSysParms{UID: 1000, GID: 100, GIDs: []uint32{100}}
	nobody := maildirfs.Cred{UID: Nobody, GID: Nobody}
	cases := []struct {
		name   string
		addr   string
		sys    *rpc.AuthSysParms
		h      []byte
		err    error
		cred   maildirfs.Cred
		ro     bool
		export string
	}{
		{"UserRW", "127.0.0.1", user, ha, nil, maildirfs.Cred{UID: 1000, GID: 100, GIDs: []uint32{100}}, false, a},
		{"RootSquashed", "127.0.0.1", root, ha, nil, maildirfs.Cred{UID: Nobody, GID: Nobody, GIDs: []uint32{Nobody, 7}}, false, a},
		{"AuthNoneAnonymous", "127.0.0.1", nil, ha, nil, nobody, false, a},
		{"NetworkAllSquashRO", "10.1.2.3", user, ha, nil, maildirfs.Cred{UID: 5000, GID: 5001}, true, a},
		{"MappedIPv4", "::ffff:10.1.2.3", root, ha, nil, maildirfs.Cred{UID: 5000, GID: 5001}, true, a},
		{"HostDenied", "127.0.0.2", user, ha, ErrAccess, maildirfs.Cred{}, false, ""},
		{"IPv6Denied", "::1", user, ha, ErrAccess, maildirfs.Cred{}, false, ""},
		{"MaprootRoot", "127.0.0.2", root, hb, nil, maildirfs.Cred{UID: 0, GID: 0}, false, b},
		{"OtherExportDenied", "127.0.0.1", user, hb, ErrAccess, maildirfs.Cred{}, false, ""},
		{"NotAHandle", "127.0.0.1", user, []byte{1, 2, 3}, maildirfs.ErrBadHandle, maildirfs.Cred{}, false, ""},
		{"UnknownExport", "127.0.0.1", user, append([]byte{ha[0], 0xde, 0xad, 0xbe, 0xef}, ha[5:]...), maildirfs.ErrStale, maildirfs.Cred{}, false, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req := &Request{Addr: netip.AddrPortFrom(netip.MustParseAddr(tc.addr), 800), AuthSys: tc.sys}
			acc, err := x.Authorize(req, tc.h)
			if tc.err != nil {
				exTrue(t, errors.Is(err, tc.err), "want", tc.err, "got", err)
				return
			}
			exNoErr(t, err)
			exEqual(t, tc.cred, acc.Cred)
			exEqual(t, tc.ro, acc.ReadOnly)
			exEqual(t, tc.export, acc.Export)
			exTrue(t, acc.Store == x.Store(tc.export), "access carries the export's store")
		})
	}
	// Host refusals reach Denied with their export; bad and stale handles
	// are not denials.
	exEqual(t, []string{"nfs:host:" + a, "nfs:host:" + a, "nfs:host:" + b}, denied)
}

// TestAuthorizeSecurePort: a rule with an explicit Linux "secure" refuses
// NFS calls from port 1024 and above with NFS3ERR_PERM, logs the client
// once and reports each refusal to Denied; rules without it do not look at
// the port.
func TestAuthorizeSecurePort(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("maildirfs needs root (CAP_DAC_READ_SEARCH)")
	}
	dir := t.TempDir()
	a := filepath.Join(dir, "a")
	exNoErr(t, os.Mkdir(a, 0o755))
	text := a + " -secure 127.0.0.1(rw) 127.0.0.2(rw,insecure) 10.0.0.0/8(ro)\n"
	tab, err := ParseExports("exports", []byte(text), nil)
	exNoErr(t, err)
	var logs logtest.Buffer
	var denied []string
	x, err := OpenExports(tab, ExportsOptions{StateDir: filepath.Join(dir, "state"),
		Logger: slog.New(slog.NewTextHandler(&logs, nil)), Denied: func(rule string) { denied = append(denied, rule) }})
	exNoErr(t, err)
	defer x.Close()
	h := x.Store(a).Root()
	call := func(addr string) error {
		_, err := x.Authorize(&Request{Addr: netip.MustParseAddrPort(addr), AuthSys: &rpc.AuthSysParms{UID: 1000, GID: 100}}, h)
		return err
	}
	for _, addr := range []string{"127.0.0.1:1023", "127.0.0.1:0", "127.0.0.2:40000", "10.1.2.3:1023"} {
		exNoErr(t, call(addr), addr)
	}
	for _, addr := range []string{"127.0.0.1:1024", "127.0.0.1:40000", "[::ffff:127.0.0.1]:50000", "10.1.2.3:2049"} {
		err := call(addr)
		exTrue(t, errors.Is(err, ErrInsecurePort), addr, err)
		exEqual(t, nfs3.StatusPerm, statusFromError(err), addr)
	}
	exEqual(t, []string{"nfs:insecure_port:" + a, "nfs:insecure_port:" + a, "nfs:insecure_port:" + a, "nfs:insecure_port:" + a}, denied)
	out := logs.String()
	exEqual(t, 2, strings.Count(out, "unreserved source port"), "one line per client:\n", out)
	exTrue(t, strings.Contains(out, "client=127.0.0.1 port=1024") && strings.Contains(out, "client=10.1.2.3 port=2049") &&
		strings.Contains(out, "rule=exports:1:"), out)
}

func TestExportsReload(t *testing.T) {
	x, a, b := openTestExports(t)
	ha := x.Store(a).Root()
	storeA := x.Store(a)
	req := &Request{Addr: netip.MustParseAddrPort("127.0.0.1:900"), AuthSys: &rpc.AuthSysParms{UID: 1}}

	// Calls racing with reloads see either table, never a torn one.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := x.Authorize(req, ha); err != nil && !errors.Is(err, ErrAccess) {
				t.Errorf("authorize during reload: %v", err)
				return
			}
		}
	}()
	for i := range 50 {
		text := fmt.Sprintf("%s 127.0.0.1(rw)\n", a)
		if i%2 == 1 {
			text = fmt.Sprintf("%s 10.0.0.1(rw)\n%s\n", a, b)
		}
		tab, err := ParseExports("exports", []byte(text), nil)
		exNoErr(t, err)
		exNoErr(t, x.Reload(tab))
	}
	close(stop)
	wg.Wait()
	exTrue(t, x.Store(a) == storeA, "a kept its store across reloads")

	// Drop a: its handles are stale; the table of the last reload is in force.
	tab, err := ParseExports("exports", []byte(b+"\n"), nil)
	exNoErr(t, err)
	exNoErr(t, x.Reload(tab))
	_, err = x.Authorize(req, ha)
	exTrue(t, errors.Is(err, maildirfs.ErrStale), err)

	// A missing directory fails the reload and keeps the table.
	tab, err = ParseExports("exports", []byte(a+"/missing\n"+a+"\n"), nil)
	exNoErr(t, err)
	err = x.Reload(tab)
	exTrue(t, err != nil, "reload with a missing directory")
	exEqual(t, "exports:1:1: export "+a+"/missing: open "+a+"/missing: no such file or directory", err.Error())
	exEqual(t, 1, len(x.Table().Exports))

	exNoErr(t, x.Close())
	exTrue(t, errors.Is(x.Reload(tab), ErrExportsClosed))
}
