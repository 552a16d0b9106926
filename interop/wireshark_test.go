package interop

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/internal/netnstest"
	"github.com/mailnfs/mailnfs/internal/nfs3"
)

// TestWiresharkDecodes captures the server's loopback traffic with dumpcap
// while real peers and the raw client work, and has Wireshark's own RPC,
// portmap, MOUNT and NFS dissectors (tshark) read it back: no packet may be
// malformed or carry an error-level expert note, every call must have a
// reply, and the replies must carry the statuses the peers saw. This checks
// our XDR against an independent decoder. tshark is optional (scripts/deps.sh
// installs it when it can); without it the test skips, also in CI.
func TestWiresharkDecodes(t *testing.T) {
	netnstest.RequireRoot(t)
	dumpcap, tshark := lookTool("dumpcap"), lookTool("tshark")
	if dumpcap == "" || tshark == "" {
		t.Skip("tshark/dumpcap not installed (optional; scripts/deps.sh installs them)")
	}
	nfsCp := netnstest.RequireTool(t, "nfs-cp")
	nfsCat := netnstest.RequireTool(t, "nfs-cat")
	nfsLs := netnstest.RequireTool(t, "nfs-ls")
	rpcinfo := netnstest.RequireTool(t, "rpcinfo")
	showmount := netnstest.RequireTool(t, "showmount")

	s := startServer(t, serverOpts{setup: func(t *testing.T, root string) { makeMaildir(t, root) }})
	capture := filepath.Join(s.base, "capture.pcapng")
	dc := s.ns.Start(dumpcap, "-i", "lo", "-w", capture)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(dc.Log(), "Capturing on") {
		if time.Now().After(deadline) {
			t.Fatalf("dumpcap did not start:\n%s", dc.Log())
		}
		select {
		case <-dc.Done():
			t.Fatalf("dumpcap exited: %v\n%s", dc.Err(), dc.Log())
		case <-time.After(50 * time.Millisecond):
		}
	}

	// Peers.
	s.exec(rpcinfo, "-p", "127.0.0.1")
	s.exec(rpcinfo, "127.0.0.1")
	s.exec(rpcinfo, "-u", "127.0.0.1", "100003", "3")
	s.exec(showmount, "-e", "127.0.0.1")
	local := filepath.Join(s.base, "payload")
	payload := make([]byte, 200<<10)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	if err := os.WriteFile(local, payload, 0o644); err != nil {
		t.Fatal(err)
	}
	s.exec(nfsCp, local, s.url("payload"))
	if got := s.exec(nfsCat, s.url("payload")); got != string(payload) {
		t.Fatal("nfs-cat returned different bytes")
	}
	s.exec(nfsLs, s.url(""))

	// The raw client: a Maildir delivery and a deliberate error reply.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	root, c := mountRaw(ctx, t, s)
	tmp, err := c.lookupPath(root, "Maildir", "tmp")
	if err != nil {
		t.Fatal(err)
	}
	newDir, err := c.lookupPath(root, "Maildir", "new")
	if err != nil {
		t.Fatal(err)
	}
	fh, err := c.create(tmp, "1700000000.M1P1.wire")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.write(fh, 0, []byte("Subject: wire\r\n\r\nhi\r\n"), nfs3.FileSync); err != nil {
		t.Fatal(err)
	}
	if err := c.rename(tmp, "1700000000.M1P1.wire", newDir, "1700000000.M1P1.wire"); err != nil {
		t.Fatal(err)
	}
	if _, err := c.getattr(fh); err != nil {
		t.Fatal(err)
	}
	if _, err := c.readAll(fh); err != nil {
		t.Fatal(err)
	}
	if _, err := c.lookup(newDir, "no-such-message"); !errors.Is(err, nfs3.StatusNoEnt) {
		t.Fatalf("LOOKUP of a missing name: %v, want NFS3ERR_NOENT", err)
	}
	c.Close()

	waitCaptured(t, s, capture)
	_ = dc.Stop()
	t.Cleanup(func() {
		if t.Failed() {
			keep := filepath.Join(os.TempDir(), fmt.Sprintf("mailnfs-%s-%d.pcapng", t.Name(), os.Getpid()))
			if b, err := os.ReadFile(capture); err == nil && os.WriteFile(keep, b, 0o600) == nil {
				t.Logf("capture kept as %s", keep)
			}
		}
	})

	read := func(filter string, fields ...string) []string {
		t.Helper()
		// libnfs binds reserved source ports, and Wireshark decodes a TCP
		// stream by its lower port first: a client on port 547 made the
		// NFS stream "DHCPv6 BulkLease". RPC's heuristic (record mark, CALL
		// or REPLY, RPC version 2, known program) must win instead.
		args := []string{"-2", "-o", "tcp.try_heuristic_first:TRUE", "-r", capture, "-Y", filter}
		if len(fields) > 0 {
			args = append(args, "-T", "fields", "-E", "separator=;")
			for _, f := range fields {
				args = append(args, "-e", f)
			}
		}
		cmd := exec.CommandContext(ctx, tshark, args...)
		out, err := cmd.Output()
		if err != nil {
			t.Fatalf("tshark %s: %v", strings.Join(args, " "), err)
		}
		var lines []string
		for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
			if l != "" {
				lines = append(lines, l)
			}
		}
		return lines
	}

	if bad := read(`_ws.malformed || _ws.expert.severity >= "Error"`); len(bad) > 0 {
		t.Errorf("Wireshark finds %d malformed or erroneous packets:\n%s", len(bad), strings.Join(bad, "\n"))
	}

	// Every call answered: match XIDs per TCP/UDP stream direction-free.
	calls := map[string]string{}
	replies := map[string]bool{}
	for _, l := range read("rpc", "rpc.msgtyp", "rpc.xid", "rpc.program", "rpc.procedure") {
		f := strings.Split(l, ";")
		if len(f) < 4 {
			continue
		}
		// A frame can hold several RPC messages; tshark joins them with ",".
		types, xids := strings.Split(f[0], ","), strings.Split(f[1], ",")
		for i := range types {
			if i >= len(xids) {
				break
			}
			switch types[i] {
			case "0":
				calls[xids[i]] = f[2] + "." + f[3]
			case "1":
				replies[xids[i]] = true
			}
		}
	}
	if len(calls) < 20 {
		t.Fatalf("only %d RPC calls decoded; the capture or the dissectors did not work", len(calls))
	}
	for xid, what := range calls {
		if !replies[xid] {
			t.Errorf("call xid %s (program.procedure %s) has no reply in the capture", xid, what)
		}
	}

	t.Logf("Wireshark decoded %d calls and %d replies", len(calls), len(replies))

	// The procedures the workload used were all decoded as such. A failing
	// run keeps its capture in the temp directory.
	seen := map[string]bool{}
	for _, l := range read("nfs && rpc.msgtyp == 1", "rpc.procedure", "nfs.status3") {
		f := strings.Split(l, ";")
		for i, p := range strings.Split(f[0], ",") {
			st := ""
			if len(f) > 1 {
				if ss := strings.Split(f[1], ","); i < len(ss) {
					st = ss[i]
				}
			}
			seen[p+":"+st] = true
		}
	}
	for _, want := range []nfs3.Proc{nfs3.ProcGetattr, nfs3.ProcSetattr, nfs3.ProcLookup, nfs3.ProcAccess,
		nfs3.ProcRead, nfs3.ProcWrite, nfs3.ProcCreate, nfs3.ProcRename, nfs3.ProcReaddirplus,
		nfs3.ProcFsinfo, nfs3.ProcCommit} {
		if !seen[fmt.Sprintf("%d:0", want)] {
			t.Errorf("no successful %v reply decoded by Wireshark; seen %v", want, keys(seen))
		}
	}
	t.Logf("NFS replies seen (procedure:status): %v", keys(seen))
	if !seen[fmt.Sprintf("%d:%d", nfs3.ProcLookup, nfs3.StatusNoEnt)] {
		t.Errorf("the NFS3ERR_NOENT LOOKUP reply was not decoded; seen %v", keys(seen))
	}
}

// waitCaptured sends a marker datagram to the namespace's discard port
// until it shows up in the capture file. dumpcap hands packets over in
// blocks, and one killed with a partly filled block loses it; once the
// marker is on disk, everything sent before it is too.
func waitCaptured(t *testing.T, s *server, capture string) {
	t.Helper()
	marker := fmt.Sprintf("mailnfs-capture-marker-%d", time.Now().UnixNano())
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := s.ns.Dial(ctx, "udp", "127.0.0.1:9")
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	deadline := time.Now().Add(20 * time.Second)
	for {
		_, _ = conn.Write([]byte(marker))
		time.Sleep(250 * time.Millisecond)
		if b, err := os.ReadFile(capture); err == nil && bytes.Contains(b, []byte(marker)) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("marker datagram not in the capture after 20 s")
		}
	}
}

func lookTool(name string) string {
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	for _, d := range []string{"/usr/sbin", "/usr/bin", "/sbin", "/bin"} {
		if _, err := os.Stat(filepath.Join(d, name)); err == nil {
			return filepath.Join(d, name)
		}
	}
	return ""
}

func keys(m map[string]bool) []string {
	var ks []string
	for k := range m {
		ks = append(ks, k)
	}
	sort.Strings(ks)
	return ks
}
