// Package bench measures NFSv3 servers the way a Maildir cluster uses them:
// durable deliveries (tmp/ -> write + commit -> rename into new/) at several
// concurrencies, and the listing of a large mailbox with READDIRPLUS.
//
// # Model
//
// The orchestrator (Run) starts every server under test as a separate
// process in its own network namespace (mnfs-bench-<kind>-<random>), so that each
// may own ports 111 and 2049 on its own loopback and NFS-Ganesha can run with
// its own rpcbind. The measuring driver is the same binary re-executed inside
// the server's namespace (`ip netns exec NS nfsbench step`), one process per
// step, talking to the server through package client (or, with -client raw,
// the bench's own one-call-at-a-time client) over loopback only. The
// orchestrator samples the server's CPU time (utime+stime, with reaped
// children, from /proc/PID/stat) and peak RSS (VmHWM, reset through
// /proc/PID/clear_refs before each step) around every step, and verifies on
// disk afterwards that every acknowledged delivery is in new/ exactly once,
// intact, and that tmp/ is empty.
//
// Servers are interleaved: at each concurrency every server runs once before
// the next concurrency starts, because fsync latency on shared machines drifts
// by several times within minutes. Each step also records the local disk's
// fsync latency just before it ran, the driver's own CPU time, and the
// server's sync system calls (perf stat on the syscalls tracepoints, switched
// on and off through perf's control pipe at the edges of the measured part);
// an optional strace census does the same where perf is missing.
//
// # Servers
//
// mailnfsd (this repository), the stock go-nfs server (cmd/gonfs-baseline:
// osfs with BoundOS and go-nfs's CachingHandler, no fsync at all) and
// NFS-Ganesha with FSAL_VFS (apt: nfs-ganesha nfs-ganesha-vfs), NFSv3 only.
//
// # Caveats
//
// Client and servers share the machine's CPUs, so deliveries/s is bounded by
// the client as well; server CPU time per delivery is the figure that carries
// over to a dedicated storage box. Everything here needs root (namespaces,
// clear_refs of another process).
package bench
