package client

import (
	"errors"
	"testing"
)

func TestParseURL(t *testing.T) {
	u32 := func(v uint32) *uint32 { return &v }
	for _, tc := range []struct {
		in   string
		want Target
	}{
		{"nfs://storage1/usr/mail1", Target{Host: "storage1", PortmapPort: 111, Path: "/usr/mail1"}},
		{"nfs://127.0.0.1:2111/e/12/34-tevie/Maildir?version=3&nfsport=2049&mountport=20048&uid=2001&gid=2002&nconnect=4",
			Target{Host: "127.0.0.1", PortmapPort: 2111, Path: "/e/12/34-tevie/Maildir", NFSPort: 2049, MountPort: 20048, UID: u32(2001), GID: u32(2002), Conns: 4}},
		{"nfs://[::1]/srv/", Target{Host: "::1", PortmapPort: 111, Path: "/srv"}},
		// libnfs's form: the whole host is an IPv6 address.
		{"nfs://::1/srv", Target{Host: "::1", PortmapPort: 111, Path: "/srv"}},
		{"nfs://fd00::1/srv?nfsport=2049", Target{Host: "fd00::1", PortmapPort: 111, Path: "/srv", NFSPort: 2049}},
		{"nfs://[fd00::1]:2111/srv", Target{Host: "fd00::1", PortmapPort: 2111, Path: "/srv"}},
		{"nfs://h", Target{Host: "h", PortmapPort: 111, Path: "/"}},
	} {
		got, err := ParseURL(tc.in)
		if err != nil {
			t.Errorf("ParseURL(%q): %v", tc.in, err)
			continue
		}
		same := got.Host == tc.want.Host && got.PortmapPort == tc.want.PortmapPort && got.Path == tc.want.Path &&
			got.NFSPort == tc.want.NFSPort && got.MountPort == tc.want.MountPort && got.Conns == tc.want.Conns &&
			(got.UID == nil) == (tc.want.UID == nil) && (got.UID == nil || *got.UID == *tc.want.UID) &&
			(got.GID == nil) == (tc.want.GID == nil) && (got.GID == nil || *got.GID == *tc.want.GID)
		if !same {
			t.Errorf("ParseURL(%q) = %+v, want %+v", tc.in, got, tc.want)
		}
	}
	for _, bad := range []string{"http://h/x", "nfs:///x", "nfs://h:0/x", "nfs://h/x?version=4", "nfs://h/x?uid=-1",
		"nfs://h/x?nfsport=70000", "nfs://h/x?colour=blue", "nfs://h:port/x"} {
		_, err := ParseURL(bad)
		if !errors.Is(err, ErrBadURL) || Temporary(err) {
			t.Errorf("ParseURL(%q) = %v, want a permanent ErrBadURL", bad, err)
		}
	}
}

func FuzzParseURL(f *testing.F) {
	f.Add("nfs://127.0.0.1:2111/e/x?version=3&nfsport=2049&mountport=1&uid=1&gid=2")
	f.Add("nfs://[::1]/")
	f.Fuzz(func(t *testing.T, s string) {
		tg, err := ParseURL(s)
		if err != nil {
			return
		}
		if tg.Host == "" || tg.PortmapPort <= 0 || tg.PortmapPort > 65535 || tg.Path == "" || tg.Path[0] != '/' {
			t.Fatalf("ParseURL(%q) = %+v", s, tg)
		}
	})
}
