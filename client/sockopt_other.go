//go:build !linux

package client

import (
	"syscall"
	"time"
)

// userTimeout: there is no TCP_USER_TIMEOUT here; a dead path is
// noticed when TCP gives up retransmitting.
func userTimeout(time.Duration) func(network, address string, rc syscall.RawConn) error {
	return nil
}
