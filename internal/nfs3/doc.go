// Package nfs3 holds the NFSv3 (RFC 1813) and MOUNT v1/v3 wire types and
// their XDR codecs, for both directions: the server decodes arguments and
// encodes results, the client encodes arguments and decodes results.
//
// # Model
//
// Every procedure has an Args and a Res struct with Encode and Decode
// methods working on internal/xdr. Errors are sticky in the xdr.Decoder:
// callers decode, then check d.Done() (no trailing bytes) or d.Err(). A Res
// struct carries the fields of both arms of its result union; Encode writes
// the resok arm when Status is StatusOK and the resfail arm otherwise, and
// Decode fills whichever arm the status selects.
//
// Optional XDR data (post_op_attr, pre_op_attr, post_op_fh3) are pointers or
// nil slices: nil means "not present".
//
// # Bounds
//
// Decoding never allocates what the peer merely claims: handles are at most
// FHSize (64) bytes, names at most MaxNameDecode, paths MaxPathDecode,
// WRITE/READ data MaxData, MOUNT paths MNTPathLen. Linked lists (dirlist3,
// exports, mountlist) grow only as entries are actually decoded, so their
// length is bounded by the input. Booleans must be 0 or 1, padding zero, and
// enumerations whose arms matter (stable_how, createmode3, time_how) in
// range. Semantic limits (a name longer than MaxName is NFS3ERR_NAMETOOLONG,
// not GARBAGE_ARGS) are left to the server.
//
// # Aliasing
//
// Decoded handles and strings are copies. Bulk data (WriteArgs.Data,
// ReadRes.Data) aliases the decoder's buffer to avoid copying up to 1 MiB;
// copy it if the buffer is reused.
//
// # Reuse
//
// The constants are written from RFC 1813 rather than taken from go-nfs,
// so that they are typed here (Status, FileType, ...) and carry String
// methods; their values match go-nfs's NFSStatus*, NFSProcedure* and
// FileType* constants.
package nfs3
