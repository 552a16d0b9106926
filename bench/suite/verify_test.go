package suite

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// deliverSome delivers n messages into mailbox through t with the
// workload's own delivery path and returns the ledger.
func deliverSome(t *testing.T, tg Target, mailbox string, n int) []Delivery {
	t.Helper()
	ctx := context.Background()
	if err := tg.MakeMaildir(ctx, mailbox); err != nil {
		t.Fatal(err)
	}
	s := &jobState{job: &Job{Params: DefaultParams()}, t: tg, rec: NewRecorder(), res: JobResult{Extra: map[string]float64{}}}
	for i := range n {
		if err := s.deliver(ctx, mailbox, s.idFor("t", 0, i)); err != nil {
			t.Fatal(err)
		}
	}
	return s.res.Acked
}

func newFiles(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for _, e := range es {
		out = append(out, filepath.Join(dir, e.Name()))
	}
	if len(out) == 0 {
		t.Fatalf("%s is empty", dir)
	}
	return out
}

// TestVerifyCatchesPlantedFaults plants, one at a time, a loss, a
// duplicate (same message under a second name), a corruption, a stray tmp
// file and a resurrected deleted message, and checks each is caught.
func TestVerifyCatchesPlantedFaults(t *testing.T) {
	ctx := context.Background()
	dt, err := OpenDir(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	acked := deliverSome(t, dt, "box", 12)
	newDir := filepath.Join(dt.LocalRoot(), "box", "new")
	v, err := Verify(ctx, dt, []string{"box"}, acked, nil)
	if err != nil || !v.OK || v.Expected != 12 || v.Found != 12 {
		t.Fatalf("clean run: %+v, %v", v, err)
	}

	check := func(name string, plant, undo func(), field func(*Verification) int, deleted []string) {
		t.Helper()
		plant()
		v, err := Verify(ctx, dt, []string{"box"}, acked, deleted)
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if v.OK || field(v) != 1 {
			t.Errorf("%s not caught: %+v", name, v)
		}
		if len(v.Problems) == 0 {
			t.Errorf("%s: no problem described", name)
		}
		undo()
		if v, err := Verify(ctx, dt, []string{"box"}, acked, nil); err != nil || !v.OK {
			t.Fatalf("after undoing %s: %+v %v", name, v, err)
		}
	}
	files := newFiles(t, newDir)
	victim := files[3]
	saved, err := os.ReadFile(victim)
	if err != nil {
		t.Fatal(err)
	}
	restore := func() {
		if err := os.WriteFile(victim, saved, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	check("loss", func() {
		if err := os.Remove(victim); err != nil {
			t.Fatal(err)
		}
	}, restore, func(v *Verification) int { return v.Lost }, nil)

	dup := filepath.Join(dt.LocalRoot(), "box", "cur", "1700000000.M1P1Q1.dup,S="+strings.Split(filepath.Base(victim), ",S=")[1]+":2,S")
	check("duplicate", func() {
		if err := os.WriteFile(dup, saved, 0o600); err != nil {
			t.Fatal(err)
		}
	}, func() { os.Remove(dup) }, func(v *Verification) int { return v.Duplicated }, nil)

	check("corruption", func() {
		bad := bytes.Clone(saved)
		bad[len(bad)-2] ^= 1
		if err := os.WriteFile(victim, bad, 0o600); err != nil {
			t.Fatal(err)
		}
	}, restore, func(v *Verification) int { return v.Corrupt }, nil)

	stray := filepath.Join(dt.LocalRoot(), "box", "tmp", "1700000000.M2P2Q2.stray")
	check("stray tmp", func() {
		if err := os.WriteFile(stray, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
	}, func() { os.Remove(stray) }, func(v *Verification) int { return v.StrayTmp }, nil)

	var victimID string
	for _, d := range acked {
		if strings.HasPrefix(filepath.Base(victim), d.Key) {
			victimID = d.ID
		}
	}
	if victimID == "" {
		t.Fatal("victim not in the ledger")
	}
	check("resurrection", func() {}, func() {}, func(v *Verification) int { return v.Resurrected }, []string{victimID})
}

// TestRunFailsLoudly plants a loss and a duplicate between a real run and its
// verification: the command must exit 1 and say FAILED, whatever the speed.
func TestRunFailsLoudly(t *testing.T) {
	for _, fault := range []string{"loss", "duplicate"} {
		t.Run(fault, func(t *testing.T) {
			testHookBeforeVerify = func(tg Target, boxes []string) {
				root := tg.(localRooted).LocalRoot()
				files := newFiles(t, filepath.Join(root, boxes[0], "new"))
				switch fault {
				case "loss":
					if err := os.Remove(files[0]); err != nil {
						t.Fatal(err)
					}
				case "duplicate":
					b, err := os.ReadFile(files[0])
					if err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(filepath.Join(root, boxes[0], "new", "1700000000.M9P9Q9.planted"), b, 0o600); err != nil {
						t.Fatal(err)
					}
				}
			}
			defer func() { testHookBeforeVerify = nil }()
			var out, errb bytes.Buffer
			dir := t.TempDir()
			code := Main(context.Background(), "mailnfs-bench", []string{"-target", "dir:" + dir, "-duration", "300ms",
				"-rounds", "1", "-mailboxes", "1", "-concurrency", "2", "-count", "5", "-progress", "off", "deliver"}, &out, &errb)
			if code != ExitFailed {
				t.Fatalf("exit %d, want %d\n%s\n%s", code, ExitFailed, out.String(), errb.String())
			}
			if !strings.Contains(errb.String(), "FAILED") || !strings.Contains(out.String(), "verification dir:") {
				t.Errorf("no loud failure:\n%s\n%s", out.String(), errb.String())
			}
			want := map[string]string{"loss": "lost 1", "duplicate": "duplicated 1"}[fault]
			if !strings.Contains(out.String(), want) {
				t.Errorf("table does not say %q:\n%s", want, out.String())
			}
			// The run directory, the evidence, is kept.
			if kept, _ := filepath.Glob(filepath.Join(dir, "suite-*")); len(kept) != 1 || !strings.Contains(errb.String(), "kept for inspection") {
				t.Errorf("after a failed verification: run directories %v; stderr:\n%s", kept, errb.String())
			}
		})
	}
}

// TestVerifySeesSameKeyTwice plants, on a server verified over NFS (an
// nfs:// target), a message left in cur/ as well as in new/ under the same
// unique name, as a server that renamed without removing the old name
// would: the verification lists new/ and cur/ as they are (client.List
// shows such a key once, taking it for a message renamed during the
// listing) and fails.
func TestVerifySeesSameKeyTwice(t *testing.T) {
	s := nfsdtest.StartServer(t)
	testHookBeforeVerify = func(_ Target, boxes []string) {
		box := filepath.Join(s.Root, boxes[0])
		files := newFiles(t, filepath.Join(box, "new"))
		b, err := os.ReadFile(files[0])
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(box, "cur", filepath.Base(files[0])+":2,S"), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	defer func() { testHookBeforeVerify = nil }()
	var out, errb bytes.Buffer
	code := Main(context.Background(), "mailnfs-bench", []string{"-target", s.URL("") + "&uid=0&gid=0", "-duration", "300ms",
		"-rounds", "1", "-mailboxes", "1", "-concurrency", "2", "-count", "5", "-progress", "off", "deliver"}, &out, &errb)
	if code != ExitFailed || !strings.Contains(out.String(), "duplicated 1") {
		t.Fatalf("exit %d, want %d and duplicated 1\n%s\n%s", code, ExitFailed, out.String(), errb.String())
	}
}
