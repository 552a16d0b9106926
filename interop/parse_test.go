package interop

import (
	"strings"
	"testing"
)

// The parsers run without root: they are checked against captured output of
// the tools they read.

func TestParseStraceCapture(t *testing.T) {
	// Captured from strace 6.1 (-f -qq -yy -xx -s 64) tracing a Go program
	// that receives a record with xid a1b2c3d4 over TCP, writes and fsyncs
	// /tmp/stt/x, renames it to /tmp/stt/y, fsyncs /tmp/stt and replies with
	// writev.
	events := parseStrace(t, "testdata/strace-6.1-go-tcp-fsync-rename.log")
	in := window(t, events, 0xa1b2c3d4, "capture")
	var names []string
	for _, ev := range in {
		names = append(names, ev.name)
	}
	if got, want := strings.Join(names, " "), "write fsync renameat fsync"; got != want {
		t.Fatalf("calls between request and reply: %q, want %q\n%s", got, want, describe(in))
	}
	if !isSyncOf(in[1], "/tmp/stt/x") || isSyncOf(in[1], "/tmp/stt") {
		t.Errorf("file fsync misread: %+v", in[1])
	}
	if !isSyncOf(in[3], "/tmp/stt") {
		t.Errorf("directory fsync misread: %+v", in[3])
	}
	if in[2].fdPath != "/tmp/stt" {
		t.Errorf("renameat fd path %q", in[2].fdPath)
	}
	// The resumed read is joined to its start.
	for _, ev := range events {
		if ev.end < 0 {
			t.Errorf("unfinished call never resumed: %+v", ev)
		}
	}
}

func TestParseNfsLs(t *testing.T) {
	// libnfs-utils 4.0 nfs-ls output shape (from its manual page).
	out := "-rwxrwxr-x  1  1000  1000      1190802 a.out\n" +
		"drwxr-x---  2  1000  1001         4096 private dir\n" +
		"\n"
	got := parseNfsLs(out)
	if e := got["a.out"]; e != (lsEntry{mode: "-rwxrwxr-x", uid: 1000, gid: 1000, size: 1190802}) {
		t.Errorf("a.out: %+v", e)
	}
	if e := got["private dir"]; e != (lsEntry{mode: "drwxr-x---", uid: 1000, gid: 1001, size: 4096}) {
		t.Errorf("private dir: %+v", e)
	}
	if len(got) != 2 {
		t.Errorf("parsed %d entries, want 2", len(got))
	}
	if m := lsMode(0o750 | 1<<31); m != "drwxr-x---" {
		t.Errorf("lsMode(dir 0750) = %q", m)
	}
	if m := lsMode(0o640); m != "-rw-r-----" {
		t.Errorf("lsMode(0640) = %q", m)
	}
}

func TestParseRpcinfo(t *testing.T) {
	out := "   program vers proto   port  service\n" +
		"    100000    2   tcp    111  portmapper\n" +
		"    100003    3   udp   2049  nfs\n"
	got := parseRpcinfoP(out)
	want := []rpcinfoEntry{{100000, 2, "tcp", 111}, {100003, 3, "udp", 2049}}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Fatalf("parseRpcinfoP = %+v, want %+v", got, want)
	}
}
