//go:build !linux

package netnstest

import (
	"errors"
	"fmt"
)

// Do would run fn inside the namespace; network namespaces are Linux-only
// (New skips a test elsewhere, as the ip tool is missing), so it fails.
func (ns *NS) Do(fn func() error) error {
	return fmt.Errorf("netnstest: namespace %s: %w", ns.Name, errors.ErrUnsupported)
}
