package nfsd_test

import "golang.org/x/sys/unix"

// errNoXattr is the errno of getxattr for a missing attribute.
const errNoXattr = unix.ENODATA
