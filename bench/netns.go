package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
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

// CleanStale removes the namespaces a killed run left behind: it kills the
// processes still inside each (by PID, from `ip netns pids`) and deletes the
// namespace. Do not call it while another run is active: its namespaces
// look the same.
func CleanStale() ([]string, error) {
	names, err := StaleNetNS()
	if err != nil {
		return nil, err
	}
	var errs []error
	for _, n := range names {
		if err := removeNetNS(n); err != nil {
			errs = append(errs, err)
		}
	}
	return names, errors.Join(errs...)
}

// removeNetNS kills the processes inside namespace name and deletes it.
func removeNetNS(name string) error {
	out, err := exec.Command("ip", "netns", "pids", name).Output()
	if err != nil {
		return fmt.Errorf("ip netns pids %s: %w", name, err)
	}
	for f := range strings.FieldsSeq(string(out)) {
		if pid, err := strconv.Atoi(f); err == nil && pid > 1 {
			_ = syscall.Kill(pid, syscall.SIGKILL)
		}
	}
	return (&NetNS{Name: name}).Close()
}
