package suite

import (
	"os/exec"
	"testing"
	"time"
)

// TestServerTargets runs deliveries against stock go-nfs and, when
// installed, NFS-Ganesha, started by package bench's runners in their own
// namespaces, next to a dir: target: the acceptance run of the issue at a
// small scale.
func TestServerTargets(t *testing.T) {
	t.Parallel()
	requireRoot(t)
	if _, err := exec.LookPath("ip"); err != nil {
		t.Skip("no ip command")
	}
	targets := []string{"server:gonfs", "dir:" + t.TempDir()}
	if _, err := exec.LookPath("ganesha.nfsd"); err == nil {
		targets = append(targets, "server:ganesha")
	} else {
		t.Log("ganesha.nfsd not installed (apt: nfs-ganesha nfs-ganesha-vfs): Ganesha not tested")
	}
	rep := runSmall(t, Config{Workload: WorkDeliver, Duration: 600 * time.Millisecond, Rounds: 1, Targets: targets})
	for _, r := range rep.Results {
		d := opByName(r, "deliver")
		if d == nil || d.Count == 0 || d.Errors != 0 {
			t.Errorf("%s: deliveries %+v", r.Target, r.Ops)
		}
		if r.Verify.Expected != int(d.Count) {
			t.Errorf("%s: %d deliveries, %d verified", r.Target, d.Count, r.Verify.Expected)
		}
	}
}
