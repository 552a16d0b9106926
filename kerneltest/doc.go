// Package kerneltest proves mailnfsd against the real Linux kernel NFSv3
// client. This machine's kernel has no NFS, so the test boots Debian's own
// kernel (the package linux-image-amd64 depends on, fetched with apt-get
// download and cached under CacheDir, never committed) under QEMU with TCG,
// with an initramfs built here: the guest program in ./guest as /init, a
// static busybox for ip(8), and the NFS client modules.
//
// QEMU's user-mode network runs inside a network namespace made by the test,
// so the guest's 10.0.2.2 is that namespace's loopback, where mailnfsd serves
// NFS, MOUNT and its portmapper on the standard ports; nothing else is
// reachable. slirp rewrites source ports, so the server must accept calls from
// non-reserved ports (its default).
//
// The guest mounts the export through the portmapper (no port= options),
// delivers Maildir messages from concurrent writers (tmp/, fsync, rename or
// link+unlink into new/), reads them back with O_DIRECT, flags some by
// renaming into cur/ and deletes a few, writes and reads back a large file,
// and unmounts. A last run restarts the storage box under the mount: while
// the guest delivers and streams a 16 MiB file, the test stops mailnfsd,
// once with SIGTERM as an upgrade does and then three times with SIGKILL as
// a crash does, and starts it again with the same state directory; no
// system call in the guest may fail (calls the killed server had begun are
// answered as done by the next one: nfsd.DRCLog), and the file (whose
// uncommitted writes the kernel must send again when the new server's
// write verifier differs) and every message must read back intact. A
// full-disk run mounts a second export, on a 32 MiB ext4 of its own with
// 15% reserved for root, and delivers 256 KiB messages from two writers
// until deliveries fail: each failure must be ENOSPC (the kernel reports
// the server's NFS3ERR_NOSPC at fsync), the writer removes its tmp/ file,
// the guest's statfs must show the reserve still free (users' writes are
// made with the user's fsuid), and after 10 deletions 5 more deliveries
// must succeed. A POSIX run does, as uid 2001 and then as root (squashed
// to nobody), what a front end does besides delivering, with the export
// mounted a second time (nosharecache) as a second front end: cp of a
// 20 MiB file in and out (1 MiB READs with readahead, cmp through the
// other mount), four O_DIRECT readers of 4 MiB at once, O_APPEND from
// shells and held descriptors, ls -l of a 20000-entry directory, mv across
// directories and onto an existing name, hard links and their link counts,
// chmod and chown (and what squashed root is refused), mkdir -p 40 deep
// and rm -rf, symlinks, touch -d and utimensat with nanoseconds, flock and
// fcntl locks under nolock (local, never hanging), close-to-open between
// the mounts, statfs against the export's file system, truncation while
// the file is open, unlink of an open file (the kernel's .nfs silly
// rename), rename(2)'s errors (ENOTEMPTY, EISDIR, ENOTDIR, EXDEV), a file
// created read-only and written through its descriptor, a sparse file to
// 1 TiB and EFBIG past ext4's 16 TiB, 255-byte names and a FIFO; root
// mounts the export once more with MOUNT over UDP and reads the 20 MiB
// file back. A
// compressed run delivers into a third export (-compress=zstd), waits
// until the server has compressed the messages (their used space drops),
// and reads, flags, appends to, truncates, rewrites, touches and
// hard-links them: each reads back as a plain file would, with its
// delivery mtime unless the step set it. The guest reports a manifest that the test checks against the server's disk:
// every message once, intact, tmp/ empty, owned by the right uid.
package kerneltest
