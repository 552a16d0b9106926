// Package client is a pure-Go NFSv3 client for mailnfs storage boxes, with a
// lock-free Maildir API on top and the userdb routing table that maps a mail
// user to a box, an export and AUTH_SYS ids. It never imports nfsd; it shares
// only the wire codecs in internal/.
//
// # Transport
//
// RPCClient speaks ONC RPC v2 over a small pool of TCP connections. Calls are
// pipelined: each connection carries many calls in flight, one reader
// goroutine per connection matches replies to callers by XID, and writes are
// serialised. A call's context bounds it; a caller that gives up removes its
// slot and the reader drops a late reply without blocking. When a connection
// breaks, it is redialled and every outstanding call is resent with the same
// XID (RFC 5531 §8; reference.md §1.6), so the server's duplicate request
// cache replays the reply of a non-idempotent call that already ran.
//
// # Errors
//
// A call that the server answered with a failure is an *Error carrying the
// nfsstat3 (or mountstat3) or the RPC-level *rpc.ReplyError. Everything else
// (dial failures, connection loss past RPCOptions.ReconnectTimeout, context
// deadlines) is a transport error. Temporary classifies both for callers
// such as an MTA that must choose between deferring and bouncing.
//
// # Mounting
//
// Dial takes a libnfs-style URL (nfs://host[:portmapper-port]/path?
// version=3&nfsport=P&mountport=P&uid=N&gid=N&nconnect=N). Ports not given
// come from the portmapper: portmap v2 GETPORT over TCP, then over UDP, then
// rpcbind v3 GETADDR (GetPort). MNT of the path is tried first; if refused,
// the longest exported prefix is mounted and the rest looked up. Every
// NFSv3 procedure is a method of Client; LookupPath, ReadFile, WriteFile,
// ReadDirAll and ReadDirPlusAll are path and paging helpers.
//
// # Maildir
//
// Deliver follows reference.md §7.6: unique name with ",S=<size>", CREATE
// GUARDED in tmp/ carrying mode 0600 (EXIST for an empty regular file of
// that name is its own retransmitted CREATE and is adopted: the name has
// 128 random bits), FILE_SYNC WRITE or UNSTABLE WRITEs + COMMIT with a
// verifier check, RENAME into new/ (its reply awaited up to 10 s past the
// deadline: a server replies once the rename is durable), and on NOENT (a
// retransmitted RENAME that ran twice) or still no answer a LOOKUP
// comparing the fileid. A failure removes the tmp file, after a CREATE
// without an answer too; a tmp file already gone then means a late RENAME
// moved it, and new/ is checked again. DeliverQuota adds a Maildir++ quota
// kept in maildirsize (reference.md §7.2). List, Open, SetFlags, Delete,
// Usage and CleanTmp complete the reader side; SetFlags and Delete follow
// a message another front end renamed under them (its own flag change),
// and List lists a message renamed during the listing once. Handles of
// tmp/, new/ and cur/ are cached per mailbox and refreshed on STALE or
// BADHANDLE; when the look-up from the root is answered so too (the box
// restarted with a new handle key, or its export directory was replaced)
// the Maildir methods mount the export again and retry, so a long-lived
// Client or Router needs no remaking. A refused remount is Temporary. A
// delivery whose CREATE or RENAME was answered so looks for its message in
// new/ with the fresh handles before trying again, and, if that look
// cannot be made in time, once more with a fresh deadline before it
// reports a failure.
//
// # Routing and other views
//
// Router maps users through a compiled userdb (package client/userdb) to
// one Client per storage box and export, calling as each user's AUTH_SYS
// uid and gid (Client.WithAuth); a box that does not answer holds up only
// its own users, and one whose portmapper names other ports once it cannot
// be reached (it came back on another port) is dialled anew. BillyFS is a go-billy Filesystem over a
// Client; it passes go-billy's own FilesystemSuite.
//
// # Concurrency
//
// Lock order inside an rpcConn: wsem (writes) before mu (state). Close stops
// every goroutine the package starts and waits for them.
package client
