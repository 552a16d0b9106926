//go:build !linux

package suite

import "golang.org/x/sys/unix"

// ioctlGetTermios is the ioctl that reads a terminal's settings (BSD name).
const ioctlGetTermios = unix.TIOCGETA
