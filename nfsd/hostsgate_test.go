package nfsd

import (
	"log/slog"
	"net/netip"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/internal/logtest"
)

// TestHostsGateAcceptConn: a connection is refused at accept only when the
// rules refuse every call its host could make: the portmapper (never for
// loopback), MOUNT and NFS (only checked when mountd and nfsd are named).
func TestHostsGateAcceptConn(t *testing.T) {
	var logs logtest.Buffer
	g := NewHostsGate(nil, slog.New(slog.NewTextHandler(&logs, nil)), nil)
	var rules []string
	g.OnDenied = func(rule string) { rules = append(rules, rule) }
	local := netip.MustParseAddrPort("10.1.2.1:2049")
	accept := func(client string) bool {
		return g.AcceptConn(netip.AddrPortFrom(netip.MustParseAddr(client), 800), local)
	}
	if !accept("10.9.9.9") {
		t.Fatal("no rules: connection refused")
	}

	all := "rpcbind mountd nfsd : 10.1.2.0/24 : allow\nALL : ALL : deny\n"
	for _, tc := range []struct {
		name, allow string
		client      string
		want        bool
	}{
		{"AllDeny", all, "10.9.9.9", false},
		{"AllDenyMapped", all, "::ffff:10.9.9.9", false},
		{"Allowed", all, "10.1.2.5", true},
		{"LoopbackPortmapOpen", all, "127.0.0.2", true},
		// nfsd not named: NFS calls are left to the exports.
		{"NFSNotNamed", "rpcbind mountd : 10.1.2.0/24 : allow\nALL : ALL : deny\n", "10.9.9.9", true},
		// Only NFS is allowed: the host may connect and make NFS calls.
		{"NFSAllowed", "nfsd : 10.9.9.9 : allow\n" + all, "10.9.9.9", true},
		// daemon@address: the server address the connection arrived on counts.
		{"OtherServerAddress", "ALL@10.1.3.1 : ALL : allow\n" + all, "10.9.9.9", false},
		{"ThisServerAddress", "ALL@10.1.2.1 : ALL : allow\n" + all, "10.9.9.9", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g.Set(mustHosts(t, tc.allow, ""))
			if got := accept(tc.client); got != tc.want {
				t.Errorf("AcceptConn(%s) = %v, want %v", tc.client, got, tc.want)
			}
		})
	}
	if g.Denied() != 3 || len(rules) != 3 || rules[0] != "hosts_access:hosts.allow:2:1" {
		t.Errorf("Denied %d, OnDenied %v; want 3 refusals by hosts.allow:2:1", g.Denied(), rules)
	}
	// Logged once a minute per host, like refused calls.
	if n := strings.Count(logs.String(), "connection from unauthorized host closed"); n != 1 {
		t.Errorf("%d log lines for 3 refusals of one host, want 1:\n%s", n, logs.String())
	}
}
