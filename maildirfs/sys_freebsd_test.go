package maildirfs_test

import (
	"errors"

	"golang.org/x/sys/unix"
)

// errNoXattr is the errno of getxattr (extattr_get_file) for a missing
// attribute.
const errNoXattr = unix.ENOATTR

// mountTmpfs is not implemented here (x/sys has no FreeBSD mount
// wrapper): the test that needs it skips.
func mountTmpfs(dir string) error { return errors.ErrUnsupported }

// mountRamfs is not implemented here either.
func mountRamfs(dir string) error { return errors.ErrUnsupported }

// unmountDetach unmounts dir.
func unmountDetach(dir string) { unix.Unmount(dir, unix.MNT_FORCE) }
