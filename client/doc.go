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
// # Concurrency
//
// Lock order inside an rpcConn: wmu (writes) before mu (state). Close stops
// every goroutine the package starts and waits for them.
package client
