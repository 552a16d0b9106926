//go:build mailnfs_unsafe_writeonly

package maildirfs

// UnsafeWriteOnly is true in a build with the tag mailnfs_unsafe_writeonly:
// the store then skips the syncs that make CREATE, MKDIR, RENAME, REMOVE,
// LINK and the like durable and keeps only those of stable WRITEs and
// COMMIT, the schedule NFS-Ganesha's VFS backend was seen to follow (one
// sync per Maildir delivery). It exists to measure what honest durability
// costs (scripts/bench-writeonly.sh), never to serve mail: an acknowledged
// delivery can vanish in a crash.
const UnsafeWriteOnly = true
