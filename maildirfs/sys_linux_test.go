package maildirfs_test

import "golang.org/x/sys/unix"

// errNoXattr is the errno of getxattr for a missing attribute.
const errNoXattr = unix.ENODATA

// mountTmpfs mounts a small tmpfs on dir (needs root).
func mountTmpfs(dir string) error { return unix.Mount("tmpfs", dir, "tmpfs", 0, "size=1m") }

// mountRamfs mounts a ramfs, a file system without exportable file
// handles, on dir (needs root).
func mountRamfs(dir string) error { return unix.Mount("ramfs", dir, "ramfs", 0, "") }

// unmountDetach unmounts dir lazily.
func unmountDetach(dir string) { unix.Unmount(dir, unix.MNT_DETACH) }
