// Package maildirfs is the store behind mailnfsd: one FS per exported
// directory tree, reached only through directory file descriptors, with
// signed inode-identity file handles, user-space permission checks, honest
// durability and group commit. It knows nothing of NFS; nfsd maps its
// errors (syscall.Errno values and the Err* sentinels) to NFS statuses.
//
// # Model
//
// Every operation starts from a Handle, resolved with open_by_handle_at
// against the export root's fd, and then works relative to that fd
// (openat, mkdirat, renameat, unlinkat, linkat, symlinkat, fstatat with
// AT_SYMLINK_NOFOLLOW, O_NOFOLLOW). No path string is ever joined under
// the root, and Lookup never follows symlinks, so "..", absolute and
// relative symlinks cannot reach outside the export. ".." of the export
// root is the root. Names are at most 255 bytes and contain no "/" or NUL.
//
// # Handles
//
// A handle is: version byte | export id (4 bytes) | kernel handle type
// (1 byte) | kernel handle from name_to_handle_at | HMAC-SHA256 over the
// preceding bytes truncated to 16 bytes; at most 64 bytes (ext4: 30). The
// key is 32 random bytes in Options.StateDir (maildirfs-handle.key,
// created 0600 on first Open and reused after restarts). The kernel handle
// names the inode (ext4: inode + generation), so handles survive renames
// (tmp -> new -> cur) and restarts, and go stale (ErrStale) once the inode
// is freed; a forged, edited, truncated or other-export handle is
// ErrBadHandle and never resolves to another file. A resolved object must
// be on the export's filesystem (same st_dev). A directory must also be
// inside the export, as knfsd requires (nfsd_acceptable, even with
// no_subtree_check): when its handle is resolved (not cached), its
// ancestors are opened one from the other and stated ("..", then its
// "..": an openat and an fstat a level, at most 4096 levels, maxDirDepth)
// until the export root's inode, or a cached
// directory node found inside within the last second (dirRecheck), and a
// directory a local process moved out of the export, or one deeper than
// that, is ErrStale. LOOKUP of ".." does the same walk from the directory
// each time (a moved one is ErrStale, never its parent's handle), and so
// does READDIRPLUS for its ".." entry (no handle or attributes if
// outside). A cached directory node is walked again by the first request
// that uses it a second or more after its last walk, and dropped if it is
// outside. The residual, for up to a second after a local process moves
// a cached directory out of the export: requests that name it or a
// cached directory below it by handle (READDIR, LOOKUP of a name in it,
// CREATE and the like) still work, and ".." of such a directory below it
// may give the moved directory's handle; ".." never leads above the moved
// directory, to what was never inside. A file (not a directory) moved out
// of the export by a local process on the same filesystem still resolves,
// as with knfsd's no_subtree_check (the MAC proves we handed the handle
// out, not where the file is now).
//
// open_by_handle_at needs CAP_DAC_READ_SEARCH: Open fails with a clear
// error when it is not permitted, unless Options.HandleSearch (mailnfsd
// -demo, so that make run works for any user): then a handle whose node
// is not cached is found by walking the export and comparing kernel
// handles (search.go), which suits a demo's few files, not a mail store;
// there is no inode index. Run mailnfsd as root, or as an unprivileged user that owns
// the export and holds only CAP_DAC_READ_SEARCH (setcap
// cap_dac_read_search+ep, or an ambient capability) with Options.NoChown;
// both are tested. With NoChown every object belongs to the server's user,
// so the permission checks only fit exports that squash all clients to
// that user (all_squash, anonuid = the server's uid).
//
// # Platforms
//
// The system calls above are Linux's (sys_linux.go). On FreeBSD
// (sys_freebsd.go) the kernel handle is the 28-byte fhandle_t of
// getfhat(2), resolved with fhstat(2) and fhopen(2), which need root
// outside a jail; a directory or regular file node holds an O_RDONLY fd
// instead of an O_PATH one, and symlinks, fifos, sockets and device nodes
// hold none (fhreadlink, fhlinkat), so a SETATTR of one fails with
// EOPNOTSUPP. The FreeBSD code compiles and vets but has not run on
// FreeBSD; docs/operations.md (Portability) lists every difference.
//
// # Errors
//
// Errors are ErrBadHandle (malformed, wrong MAC, other export or key),
// ErrStale (the object is gone), ErrNotSync (SETATTR guard), ErrBadCookie
// (never produced on ext4, whose cookies always resume), or wrap a
// syscall.Errno: ENOENT, EEXIST (also CREATE over a non-regular file and
// creating "." or ".."), ENOTDIR, EISDIR, ENOTEMPTY, EINVAL (bad name
// byte, rename into own subtree, READ/WRITE/READLINK of the wrong type,
// MKNOD of a non-special type), ENAMETOOLONG, EACCES (mode), EPERM
// (owner-only or root-only changes, device nodes, protected hard links,
// and the sticky bit, for which Linux's may_delete answers EPERM too),
// EROFS (Options.ReadOnly), EXDEV (mount point inside the export: Lookup),
// EBUSY (REMOVE, RMDIR or RENAME of a mount point; nfsd answers ACCES,
// as knfsd does), EFBIG,
// and whatever the system call returned (ENOSPC, EDQUOT, EIO, ...).
// A failed sync returns its error after the change was made: the client
// learns that it may not be durable, and the write verifier changes.
//
// # Permissions
//
// The server runs as root; permissions of the caller's Cred are checked in
// user space with the owner/group/other rules and the sticky bit. As in
// knfsd, the owner of a file may READ, WRITE and COMMIT it regardless of
// its mode (a file created 0444 must still take its first writes); Access
// reports the plain mode rules. On Linux a file's POSIX access ACL
// (system.posix_acl_access) decides instead of the group and other bits
// for callers other than root and the owner, as in the kernel's
// acl_permission_check (acl.go): read only then, and cached per node by
// ctime, so deliveries by the mailbox owner never read it. Default ACLs
// apply through the kernel when files are created. FreeBSD: mode bits
// only. Created objects are chowned to the credential unless
// Options.NoChown (setgid directories pass their group on). Modes are set as root, so the kernel's rules for an unprivileged
// caller are applied by the store: a new directory in a setgid directory
// is setgid; a new non-directory that would be setgid and
// group-executable is not when the caller is outside its group
// (mode_strip_sgid); a chmod by an owner outside the group drops S_ISGID
// from files and directories (setattr_copy); a WRITE by another user
// drops setuid and setgid (file_remove_privs), and so does a size change
// by a caller other than root (do_truncate). On Linux a WRITE for a caller other than root runs on a thread
// with the caller's fsuid and without CAP_SYS_RESOURCE, so that a full
// file system or a quota stops users with ENOSPC or EDQUOT before the
// blocks kept for root are used (UserWriteLimits tells whether it can).
//
// # Durability
//
// Which syncs an operation needs depends on the file system (CommitModel).
// On a journalling one where every operation is one transaction and an
// fsync of any inode it changed commits it (ext4 with a journal, XFS:
// OneSync), each namespace operation syncs one inode: CREATE, MKDIR,
// SYMLINK and MKNOD the new one (changed last, by the chown after the
// create; for SYMLINK and MKNOD, having no fd, that is a syncfs), RENAME
// the target directory, LINK, REMOVE and RMDIR the parent. Elsewhere (ext4
// without a journal, btrfs, tmpfs, anything unknown, and every file system
// on FreeBSD) every inode the operation changed is synced: CREATE
// and MKDIR the new inode (owner, mode, and for EXCLUSIVE CREATE the
// verifier kept in the times) and the parent (at the same time when no
// other sync runs); LINK the
// inode (link count) and the parent; SYMLINK and MKNOD the parent and,
// having no fd to fsync, the file system (syncfs; FreeBSD has none and
// syncs the parent only); REMOVE and RMDIR the
// parent; RENAME the target directory, then the source directory if
// different (both at once where the file system commits a rename as one
// unit: btrfs, ZFS), so a crash in between leaves two names, never none.
// SETATTR fsyncs the object. WRITE UNSTABLE only pwrites; DATA_SYNC
// fdatasyncs; FILE_SYNC and COMMIT fsync.
//
// Syncs of one object are coalesced (group commit): a caller needs a sync
// that starts after its change; while one runs, all arrivals wait for the
// next, which one of them runs for all. Options.SyncWindow lets the leader
// wait to gather more. A failed sync returns its error to every caller it
// covered and rotates the write verifier. Linux reports a writeback error
// to one fsync of a file only, so the sync after a failed one may succeed
// though it covers data the failed one lost: COMMIT therefore reads the
// verifier after its sync (a failure before it has rotated it, and the
// client resends its UNSTABLE writes), and a DATA_SYNC or FILE_SYNC WRITE
// fails with EIO if any sync of the file failed while it ran.
//
// # Concurrency and locks
//
// Open objects live in a bounded LRU cache (Options.MaxOpenNodes) of nodes
// keyed by kernel handle; a node holds an O_PATH fd plus, when needed, an
// fd for I/O and up to four directory cursors (fds whose offset is a
// READDIR position), and is closed only when unused. The bound is per FS,
// so several FSs may together reach the process's descriptor limit: an
// open of a node, or of a file being created, that fails with EMFILE or
// ENFILE closes the least recently used half of the unused nodes of every
// FS of the process and is tried once more. ShedUnused does the same for
// others that run out (mailnfsd's accept loop). Every two seconds the
// unused nodes are stated and those whose object has no link left are
// closed: a file a local process removed (rm, an IMAP server on the box
// expunging) would otherwise stay allocated while its node is cached.
//
// A namespace change (CREATE, MKDIR, SYMLINK, MKNOD, LINK, REMOVE, RMDIR,
// RENAME) stats its directory just before and just after its system call
// (dirchange.go), and those are its wcc data. A client that finds the
// before attributes equal to its cache takes the difference as the
// operation's own change (RFC 1813 §2.6), so the before attributes are
// sent only when no other change of that directory by the server was in
// progress, or began or ended, between the two stats (each directory node
// counts them in one atomic word); otherwise none are sent, which the RFC
// allows, and the client revalidates. Nothing is locked for it, so
// deliveries into one new/ never wait for each other in the store (a
// mutex held around the three calls cost BenchmarkDeliver32 about 20%).
// A change by a local process is not seen, as before. WRITE and SETATTR
// count their changes of a file (SETATTR: of any object) the same way, as
// does an UNCHECKED CREATE that truncates an existing file,
// and a COMMIT sends its before attributes only if no WRITE or SETATTR
// of the file began or ended between its two stats.
//
// A creation (CREATE, MKDIR, SYMLINK, MKNOD) claims its name in the
// directory from before its system call until its object is set up
// (owner, mode, sync) or removed again, and a RENAME claims its target
// name across its system call; a claim of a claimed name waits (node.cmu
// guards the claims, a leaf lock). So an UNCHECKED CREATE never answers
// another's half-made file (root-owned, 0600, unsynced), and no RENAME of
// the server puts another object under a name between its creation and
// its chown. A creation that fails after making its object removes it
// again if the name still names it: nothing half made is left in tmp/,
// and a GUARDED retry is not EEXIST.
//
// Lock order: dirCursor.mu (held for a whole ReadDir call, including the
// emit callbacks) -> node.curMu, node.ioMu, nodeCache.mu, node.sync's
// mutex, node.cmu, each of which is a leaf taken without holding another,
// except that an open failing with EMFILE or ENFILE, wherever it runs
// (under node.ioMu, node.curMu or a claim), sheds unused nodes of every
// store: caches -> nodeCache.mu (node.go), which hold nothing else.
// An operation holds at most one claim of a name (dirchange.go), across
// system calls and syncs; nothing waits for a claim while holding one.
// No mutex is held across an fsync (node.sync, a groupcommit.Syncer,
// releases its mutex while the leader syncs). The emit
// callback of ReadDir must not call ReadDir on the same directory more than
// three times concurrently (it would wait for its own cursor).
// node.attrMu (SETATTR from its guard's check to its change; an UNCHECKED
// CREATE's truncation, under the name's claim) comes before node.zmu and
// the leaves above; it is released before the change's fsync, but held
// across the expansion of a compressed file a size change needs first.
//
// # Compression
//
// With Options.Compress = "zstd" a regular file renamed from a directory
// named tmp into one named new or cur (or hard-linked into new or cur) is
// queued for a background worker, which rewrites it compressed IN PLACE:
// same inode, so the handle a client got from CREATE in tmp/ keeps naming
// it. Files written elsewhere stay plain; files of under 512 bytes, over
// 64 MiB, or that would shrink by less than 1/8 stay plain. A WRITE, or a
// SETATTR of the size, to a compressed file first rewrites it plain
// (journaled, six syncs), so NFS semantics hold for every file.
//
// On disk (zformat.go): a 32-byte header (magic, uncompressed size, frame
// size, frame count, CRC-32C), an index of compressed frame lengths, and
// independent zstd frames of 64 KiB each (built-in dictionaries of mail
// boilerplate, zdict.go: new frames use the newest, every older one stays
// registered for reading), so a READ decodes only the frames it covers.
// The xattr user.mailnfs.z ("Z2", uncompressed size, compressed size,
// rewrite id; "Z1" without the id on files compressed before ids existed)
// is the authority: a file is compressed only when it parses and st_size
// equals the compressed size it names; the magic alone never counts. A Z2
// marker naming another size marks a rewrite that stopped part way. A
// marker that does not parse (a newer version's format, met after a
// downgrade) makes the file answer EIO, never its bytes as the message.
// Expanding a file (for a WRITE, SETATTR or Expand) also fails with EIO
// when its marker names more than 64 MiB (zMaxFile: no larger file is
// compressed) or its header another size than the marker, before the file
// is read into memory.
// GETATTR, LOOKUP, READDIRPLUS and wcc data report the uncompressed size;
// used (st_blocks) is the real allocation. The state per inode is cached,
// validated by ctime and st_size, so the xattr is read once per file.
//
// Times: the rewrite restores atime and mtime (utimensat), so the mtime a
// client sees (Dovecot's INTERNALDATE) never changes. ctime does change and
// is reported as it is: it is what the kernel has, and the SETATTR guard
// compares against it. Linux's NFSv3 client takes ctime as its change
// attribute, so a client that still caches a message's pages when it is
// compressed drops them and reads the message once more (the kernel test
// measures it: 6.1 fetched every cached byte again); the content and the
// times it sees are unchanged.
// The write verifier is untouched (a failed sync of a group rotates it, as
// any failed sync).
//
// Crash safety: the worker takes a group of up to 64 files, locks each
// (node.zmu; READ holds it shared, so it never sees a half-rewritten file),
// reads and compresses them, writes one journal record per file (kernel
// handle, inode, a random 64-bit rewrite id, times, final content, CRC) to
// worker.j in StateDir/maildirfs-z/<fsid>-<root handle>/, fdatasyncs it,
// stamps each file's marker with its record's id (the file is pending from
// here: the marker names the compressed size, st_size is still the plain
// one), syncs the markers (one fsync where one sync commits every earlier
// operation, OneSync; else syncfs), rewrites each inode (pwrite,
// ftruncate, utimensat), syncs the filesystem once (syncfs; on FreeBSD,
// which has none, each file is fsynced), and empties the journal with a
// second fdatasync before unlocking. An expansion (before a WRITE) journals
// its record in a file of its own, stamps its id and fsyncs, extends the
// file, writes, restores the times, fsyncs, removes the marker and fsyncs.
// Every stat the store reports is taken under the node's zmu (shared) when
// the node is cached, and a rewrite keeps its node cached, so no client
// sees a rewrite half done (not even a passing mtime).
//
// Open redoes a journal record only if its inode still exists and its
// marker carries the record's id (zmatch), then retires every journal. The
// id is durable before the content changes, so a crash at any point
// leaves every message readable: a rewrite that touched the content is
// redone, one that did not is left alone. And a record is never redone
// over newer data: everything that changes a file's content or times
// first deals with its last rewrite and replaces or removes its id (WRITE
// and SETATTR of the size expand the file, which stamps a new id and ends
// by removing the marker; SETATTR of the times gives the marker a new id),
// so a record left behind (by a failure, or a journal that could not be
// emptied) matches nothing once a client changed the file. Records from
// before ids (MNFSZJ01) are redone as before, when a Z1 marker names
// their sizes. A record of a version Open does not know (a newer
// mailnfsd's, after a downgrade) fails Open and the journal is kept.
//
// A rewrite that fails without a crash does not stop the server. The files
// it may have damaged (the rewrite failed, or the group's sync failed and
// then the file's own fsync) keep their records: the worker journal is
// renamed failed-N.j (an expansion's stays as e-INODE-N.j) and remembered
// by inode, so the state survives the node leaving the cache. Before such
// a file is next read, written or has its times set, its record is redone
// and synced (zresolve): it reads intact, and a WRITE then proceeds on
// known content; if the redo fails, that request fails with EIO. A file
// left pending whose record is gone (a lost StateDir) answers EIO. Files of
// the group that completed need nothing, and their records change nothing
// if ever redone. If the worker journal cannot be renamed, compression
// stops until a restart (its records are never overwritten). A failed
// sync of a rewrite counts as a failed sync of the file (the verifier
// rotates, waiting stable WRITEs fail). The export root carries
// user.mailnfs.z = "tree" once anything may be compressed: a marked tree is
// always decoded, even with Compress off (Expand removes the mark), and
// so is a subdirectory of it opened as an export of its own (exported
// alone later, or nested in the compressing export): Open looks for the
// mark on the directories above the root, up to the filesystem's root,
// and loads the trained dictionaries of the marked one for reading.
//
// Cost: after a group during which messages were delivered, the worker
// idles nine times as long as it worked, so while deliveries run it takes
// at most a tenth of a CPU and of the disk's time, and deliveries keep
// their rate; with no deliveries it catches up at full speed. The queue
// holds 4096 files; a message that finds it full (Stats.CompressDropped)
// is left for a sweep: its directory (and, for new/, the sibling cur/,
// where a reader may have moved it) is remembered, and once the queue is
// empty the worker compresses every regular file there that is not yet
// (Stats.CompressBacklog counts the directories waiting). Close stops the
// worker; queued files and remembered directories stay plain.
// Compact and Expand convert a tree offline, crash-safe and idempotent,
// with the server's StateDir (the journal's place). They hold an
// exclusive flock on the export root and every store a shared one, so
// they fail (EBUSY) on a tree a store has open, and a store does not open
// a tree they are converting. The journal directory is flocked too, by the
// first store of a process to open it (a process's stores share it): a
// second process started with the same StateDir on the same tree (a
// second mailnfsd, which opens its stores before it finds the ports
// taken) fails with EBUSY instead of redoing and retiring the running
// worker's journals.
//
// # Trained dictionaries
//
// The built-in dictionaries know mail in general; the store also learns
// its own (zlearn.go). While compressing, it keeps the first 8 KiB of each
// message as a sample; after 1,000 samples (or 2 MiB) it builds a 64 KiB
// zstd dictionary from nine in ten of them and compresses the tenth with
// it and with the current dictionary: it adopts the new one only if that
// saves at least 1%. The next training waits for 50,000 more messages and
// a week, so a busy box adds about one dictionary a week. A dictionary is
// part of the format of every frame written with it (frames name theirs
// by a random ID), so before its first use it is written durably twice: as
// TIME-ID.zdict (mode 0400) in mailnfs-zdict/ (mode 0700) at the export
// root, where it travels with the mail, and in dicts/ of the store's state
// directory. Open loads both places, prefers the state copy (the
// export's when that one is damaged), rewrites a copy that is missing or
// damaged from the other, and makes the newest current. A
// dictionary directory in the export that the server does not own alone
// (a symlink, a directory a client made or can write) is neither read nor
// written. Every loaded dictionary is registered with the process's one
// decoder. A frame whose dictionary is lost from both places cannot be
// decoded: its READs fail with EIO (logged); the reference zstd tool
// decodes any frame given its dictionary (zstd -d -D FILE).
//
// Lock order: node.zmu -> node.zfmu, node.ioMu, nodeCache.mu, zstore.mu
// (the state cache and the records kept by inode); the worker
// holds the zmu of every file of its group (distinct files), then
// zstore.jmu. Request paths hold at most one zmu, and never take it twice
// (a shared zmu is not reentrant while a rewrite waits).
//
// # Testing
//
// Options.Inject fails chosen storage steps (fsync, rename, link, write,
// create, unlink); maildirfs/mdtest wires it to Faults.FailNth and
// provides New (a temporary export, closed and checked with Check at
// cleanup). Check is the Maildir invariant checker also meant for a
// "check DIR" command.
//
// # Caveats
//
// Another filesystem mounted inside the export is not crossed: Lookup of
// its mount point fails with EXDEV, and READDIRPLUS omits its handle and
// attributes and gives the fileid of the directory it covers, as READDIR
// and knfsd do.
//
// READDIR cookies are the filesystem's d_off values: ext4 hash cookies are
// stable across changes and restarts; a listing concurrent with renames
// may miss an entry or show it twice, which Maildir readers tolerate.
package maildirfs
