package client

import (
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// userTimeout returns a net.Dialer Control function that sets
// TCP_USER_TIMEOUT to d: data the peer's host has not acknowledged for
// that long makes the kernel drop the connection, so a path that loses
// every packet (a firewall that forgot the connection, a box gone without
// a reset) is noticed and redialled in d, not after the ~15 minutes of
// TCP's retransmissions.
func userTimeout(d time.Duration) func(network, address string, rc syscall.RawConn) error {
	ms := int(d / time.Millisecond)
	return func(network, address string, rc syscall.RawConn) error {
		var serr error
		if err := rc.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.IPPROTO_TCP, unix.TCP_USER_TIMEOUT, ms)
		}); err != nil {
			return err
		}
		return serr
	}
}
