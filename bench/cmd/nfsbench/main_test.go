package main

import (
	"os"
	"strings"
	"testing"
)

// TestServersFlag: the second-server names of -servers are checked before
// anything starts (no server, namespace or build is needed to fail).
func TestServersFlag(t *testing.T) {
	if os.Geteuid() != 0 {
		t.Skip("nfsbench refuses to run as non-root before it reads -servers")
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"-servers", "ganesha-dirsync", "-list", "-1"}, "needs -dirsync-dir"},
		{[]string{"-servers", "ganesha-dirsync", "-dirsync-dir", t.TempDir()}, "-list -1"},
		{[]string{"-servers", "nfsd-of-the-future"}, "unknown server"},
	} {
		code, err := run(tc.args)
		if code != 2 || err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("run(%q) = %d, %v; want 2 and an error containing %q", tc.args, code, err, tc.want)
		}
	}
}
