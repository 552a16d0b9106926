// Package interop holds end-to-end tests of the built mailnfsd binary
// against real peers: rpcinfo and showmount (portmapper, MOUNT), the libnfs
// tools nfs-ls, nfs-cp and nfs-cat, a raw-RPC Maildir deliverer built on the
// shared wire codecs, and strace for the durability of replies.
//
// Each test builds bin/mailnfsd once (go build into a temporary directory)
// and runs it in a fresh network namespace (internal/netnstest), so the
// server owns 127.0.0.1:111 there without disturbing the host. The tests need
// root and skip without it, unless MAILNFS_REQUIRE_ROOT_TESTS=1 (CI), in
// which case they fail. The package has no non-test code.
package interop
