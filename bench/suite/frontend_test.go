package suite

import (
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestFrontendProcesses runs deliveries and sessions from two re-executed
// front-end processes (this test binary, through TestMain's WorkerMain) and
// checks their figures and ledgers came back and verify.
func TestFrontendProcesses(t *testing.T) {
	t.Parallel()
	targets := []string{"dir:" + t.TempDir()}
	if hasRoot() {
		targets = append(targets, "self")
	}
	rep := runSmall(t, Config{Workload: WorkMixed, Frontends: 2, Duration: 600 * time.Millisecond, Rounds: 1, Targets: targets})
	for _, r := range rep.Results {
		d := opByName(r, "deliver")
		if d == nil || d.Count == 0 || opByName(r, "session") == nil {
			t.Fatalf("%s: front ends reported no deliveries or sessions: %+v", r.Target, r.Ops)
		}
		// Every acknowledged delivery came back in a ledger and was checked.
		if want := int(d.Count) + 4*smallParams().Preload; r.Verify.Expected+countDeleted(r) < want {
			t.Errorf("%s: %d expected + deleted, want at least %d", r.Target, r.Verify.Expected, want)
		}
	}
}

func countDeleted(r *Result) int {
	if d := opByName(r, "delete"); d != nil {
		return int(d.Count)
	}
	return 0
}

func hasRoot() bool { return os.Geteuid() == 0 }

// TestFrontendsInNetNS puts two front ends in their own network namespaces
// on a private 10.x net and checks they reached the self server and the
// namespaces and bridge are gone afterwards.
func TestFrontendsInNetNS(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command")
	}
	rep := runSmall(t, Config{Workload: WorkDeliver, Frontends: 2, NetNS: true, Duration: 500 * time.Millisecond, Rounds: 1, Targets: []string{"self"}})
	if d := opByName(rep.Results[0], "deliver"); d == nil || d.Count == 0 {
		t.Fatalf("no deliveries from the namespaces: %+v", rep.Results[0].Ops)
	}
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(out), "mnfs-suite-") {
		t.Errorf("namespaces left behind:\n%s", out)
	}
	links, _ := exec.Command("ip", "-o", "link").Output()
	if strings.Contains(string(links), "mnsbr") {
		t.Errorf("bridge left behind:\n%s", links)
	}
}
