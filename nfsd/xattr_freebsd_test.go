package nfsd_test

import "golang.org/x/sys/unix"

// errNoXattr is the errno of getxattr (extattr_get_file) for a missing
// attribute.
const errNoXattr = unix.ENOATTR
