package suite

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"strings"
)

// Net is a private 10.x.y.0/24 the bench creates for front ends: a bridge in
// this namespace holding HubAddr (.1) and one network namespace per front
// end, joined to the bridge by a veth pair, holding .10+i.
type Net struct {
	// NS are the front ends' namespaces.
	NS []string
	// HubAddr is the bridge's address, where a self target listens.
	HubAddr string
	bridge  string
}

func ipCmd(ctx context.Context, args ...string) error {
	out, err := exec.CommandContext(ctx, "ip", args...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("ip %s: %v: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// NewNet creates the bridge and n namespaces. The subnet is picked at
// random among 10.200-249.x.0/24 not already on an interface here.
func NewNet(ctx context.Context, n int) (*Net, error) {
	if _, err := exec.LookPath("ip"); err != nil {
		return nil, errors.New("suite: -netns needs the ip command (iproute2)")
	}
	used, _ := exec.CommandContext(ctx, "ip", "-4", "-o", "addr").Output()
	var prefix string
	for range 50 {
		p := fmt.Sprintf("10.%d.%d.", 200+rand.IntN(50), rand.IntN(256))
		if !strings.Contains(string(used), " "+p) {
			prefix = p
			break
		}
	}
	if prefix == "" {
		return nil, errors.New("suite: no free 10.x subnet for -netns")
	}
	tag := randHex(3)
	nt := &Net{HubAddr: prefix + "1", bridge: "mnsbr" + tag}
	fail := func(err error) (*Net, error) {
		if cerr := nt.Close(); cerr != nil {
			err = fmt.Errorf("%w; cleanup: %v", err, cerr)
		}
		return nil, err
	}
	if err := ipCmd(ctx, "link", "add", nt.bridge, "type", "bridge"); err != nil {
		return nil, err
	}
	for _, a := range [][]string{
		{"addr", "add", nt.HubAddr + "/24", "dev", nt.bridge},
		{"link", "set", nt.bridge, "up"},
	} {
		if err := ipCmd(ctx, a...); err != nil {
			return fail(err)
		}
	}
	for i := range n {
		ns := fmt.Sprintf("mnfs-suite-%s-%d", tag, i)
		veth := fmt.Sprintf("mnsv%s-%d", tag, i)
		if err := ipCmd(ctx, "netns", "add", ns); err != nil {
			return fail(err)
		}
		nt.NS = append(nt.NS, ns)
		for _, a := range [][]string{
			{"link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns},
			{"link", "set", veth, "master", nt.bridge},
			{"link", "set", veth, "up"},
			{"-n", ns, "addr", "add", fmt.Sprintf("%s%d/24", prefix, 10+i), "dev", "eth0"},
			{"-n", ns, "link", "set", "eth0", "up"},
			{"-n", ns, "link", "set", "lo", "up"},
		} {
			if err := ipCmd(ctx, a...); err != nil {
				return fail(err)
			}
		}
	}
	return nt, nil
}

// Close deletes the namespaces (their veth ends go with them) and the
// bridge.
func (nt *Net) Close() error {
	var errs []error
	for _, ns := range nt.NS {
		errs = append(errs, ipCmd(context.Background(), "netns", "del", ns))
	}
	nt.NS = nil
	if nt.bridge != "" {
		errs = append(errs, ipCmd(context.Background(), "link", "del", nt.bridge))
		nt.bridge = ""
	}
	return errors.Join(errs...)
}
