package netnstest

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"

	"golang.org/x/sys/unix"
)

// Do runs fn on an OS thread switched into the namespace, then switches the
// thread back. Sockets created inside fn belong to the namespace for their
// whole life, so this is how the test process itself dials (or listens on)
// 127.0.0.1 inside ns. fn must not start goroutines that create sockets: they
// run on other threads, in the host namespace.
func (ns *NS) Do(fn func() error) error {
	target, err := os.Open(filepath.Join(netnsDir, ns.Name))
	if err != nil {
		return err
	}
	defer target.Close()
	runtime.LockOSThread()
	orig, err := os.Open(fmt.Sprintf("/proc/self/task/%d/ns/net", unix.Gettid()))
	if err != nil {
		runtime.UnlockOSThread()
		return err
	}
	defer orig.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		return fmt.Errorf("setns %s: %w", ns.Name, err)
	}
	fnErr := fn()
	if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
		// Leave the thread locked: the runtime discards it when this
		// goroutine exits, so no other goroutine runs in the wrong namespace.
		return errors.Join(fnErr, fmt.Errorf("setns back: %w", err))
	}
	runtime.UnlockOSThread()
	return fnErr
}
