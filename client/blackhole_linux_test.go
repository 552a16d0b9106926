package client

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/netnstest"
)

// inNetnsEnv marks the copy of the test binary that a test re-runs inside
// a network namespace of its own.
const inNetnsEnv = "MAILNFS_CLIENT_TEST_IN_NETNS"

// A connection whose packets are all dropped (a firewall that forgot it,
// a NAT that was reset), to a server that is fine: the client drops it
// after WriteTimeout without an acknowledgement and redials, and the
// deliveries after that succeed. Before, every call timed out on the dead
// connection until TCP gave up retransmitting (about 15 minutes).
// The test re-runs itself in a network namespace, where it may add an
// nftables rule on the loopback.
func TestBlackholedConnectionRedialled(t *testing.T) {
	if os.Getenv(inNetnsEnv) == "" {
		netnstest.RequireRoot(t)
		nft := netnstest.RequireTool(t, "nft")
		ns := netnstest.New(t, "blackhole")
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := ns.Command(ctx, os.Args[0], "-test.run", "^TestBlackholedConnectionRedialled$", "-test.v", "-test.count=1")
		cmd.Env = append(os.Environ(), inNetnsEnv+"="+nft)
		out, err := cmd.CombinedOutput()
		if err != nil || !strings.Contains(string(out), "--- PASS") {
			t.Fatalf("in namespace %s: %v\n%s", ns.Name, err, out)
		}
		return
	}
	nft := os.Getenv(inNetnsEnv)
	s := startServer(t, maildirSetup("box"))
	c := dialServer(t, s, "", Options{RPC: RPCOptions{WriteTimeout: 2 * time.Second}})
	if _, err := c.Deliver(context.Background(), "box", strings.NewReader("before")); err != nil {
		t.Fatal(err)
	}
	rc := c.rpc.conns[0]
	rc.mu.Lock()
	port := rc.nc.LocalAddr().(*net.TCPAddr).Port
	rc.mu.Unlock()
	for _, cmd := range []string{
		"add table inet mailnfs_blackhole",
		"add chain inet mailnfs_blackhole in { type filter hook input priority 0 ; }",
		fmt.Sprintf("add rule inet mailnfs_blackhole in tcp sport %d drop", port),
		fmt.Sprintf("add rule inet mailnfs_blackhole in tcp dport %d drop", port),
	} {
		if out, err := exec.Command(nft, strings.Fields(cmd)...).CombinedOutput(); err != nil {
			t.Fatalf("nft %s: %v\n%s", cmd, err, out)
		}
	}
	start := time.Now()
	var err error
	for time.Since(start) < 30*time.Second {
		ctx, cancel := context.WithTimeout(context.Background(), 4*time.Second)
		_, err = c.Deliver(ctx, "box", strings.NewReader("after"))
		cancel()
		if err == nil {
			break
		}
	}
	if err != nil {
		t.Fatalf("deliveries for %v after the connection went dead: last %v", time.Since(start).Round(time.Second), err)
	}
	if got := dirNames(t, filepath.Join(s.Root, "box", "new")); len(got) != 2 {
		t.Errorf("new/ = %v, want the two messages", got)
	}
}
