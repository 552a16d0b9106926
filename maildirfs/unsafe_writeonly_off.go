//go:build !mailnfs_unsafe_writeonly

package maildirfs

// UnsafeWriteOnly is false: every namespace operation is durable before
// it returns (see unsafe_writeonly.go for the measuring build).
const UnsafeWriteOnly = false
