package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os/exec"
	"strings"
)

// NetNSPrefix starts the name of every network namespace the bench creates.
const NetNSPrefix = "mnfs-bench-"

// NetNS is a named network namespace (ip netns) with only loopback, up.
type NetNS struct {
	Name string
}

// NewNetNS creates a namespace named NetNSPrefix + label + random suffix and
// brings its loopback up. The caller must Close it.
func NewNetNS(ctx context.Context, label string) (*NetNS, error) {
	var b [4]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, err
	}
	name := NetNSPrefix + label + "-" + hex.EncodeToString(b[:])
	if out, err := exec.CommandContext(ctx, "ip", "netns", "add", name).CombinedOutput(); err != nil {
		return nil, fmt.Errorf("ip netns add %s: %v: %s", name, err, strings.TrimSpace(string(out)))
	}
	ns := &NetNS{Name: name}
	if out, err := exec.CommandContext(ctx, "ip", "-n", name, "link", "set", "lo", "up").CombinedOutput(); err != nil {
		err = fmt.Errorf("ip -n %s link set lo up: %v: %s", name, err, strings.TrimSpace(string(out)))
		if cerr := ns.Close(); cerr != nil {
			err = fmt.Errorf("%w; cleanup also failed: %v", err, cerr)
		}
		return nil, err
	}
	return ns, nil
}

// Command returns a command that runs name with args inside the namespace.
// `ip netns exec` execs the program in place, so the started process's PID
// is the program's own.
func (ns *NetNS) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", ns.Name, name}, args...)...)
}

// Close deletes the namespace. Processes still inside keep it alive
// anonymously, so stop them first.
func (ns *NetNS) Close() error {
	if out, err := exec.Command("ip", "netns", "del", ns.Name).CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns del %s: %v: %s", ns.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// StaleNetNS lists namespaces with NetNSPrefix left behind by a killed run.
func StaleNetNS() ([]string, error) {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return nil, err
	}
	var names []string
	for line := range strings.SplitSeq(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], NetNSPrefix) {
			names = append(names, f[0])
		}
	}
	return names, nil
}
