// Package nfsd is the mailnfs server: the ONC RPC transport, and the
// programs it serves (NFSv3, MOUNT v1 to v3, the portmapper), with exports,
// access control and credential mapping in front of a maildirfs store.
//
// # Programs
//
// A Program (program.go) serves one RPC program number over a range of
// versions. The transport decodes the record, the call header and the
// credential and answers RPC-level errors itself; the Program decodes its
// arguments from Request.Args and appends results to the reply encoder.
// Results are encoded in place after the reply header, so a Program only
// appends to the encoder it is given (it never calls Reset, and offsets it
// keeps come from Len or Reserve). Request.Args, the bytes it returns and
// Request.Cred.Body alias a buffer that is reused once Serve returns: copy
// what must outlive the call.
//
// # Transport
//
// Server serves TCP (Serve) and UDP (ServeUDP) with one bounded worker pool
// (Server.Workers) shared by all connections and datagrams.
//
// Each TCP connection has one reader goroutine. It reassembles record-marked records (RFC 5531 §11; several
// fragments, zero-length ones included, up to Server.MaxRecord, beyond which
// the connection is closed before anything is allocated for the record) and
// starts a call on a worker for each. A connection has at most
// Server.MaxInFlightPerConn calls running or waiting to be written, and at
// most Server.MaxQueuedPerConn bytes of replies waiting to be written or
// reserved by its running READs and READDIRs (ReplySizer: their counts);
// at either bound its reader stops reading, which pushes back on the
// client through TCP. Replies leave in the order calls finish, matched by XID, each as one
// record built in a pooled buffer with its record mark in place. A call
// whose reply is ready writes it under the connection's write lock, along
// with any replies that queued up meanwhile (one writev), after giving its
// worker back: a client slow to read holds up only its own connection.
//
// Calls are answered in the order of reference §1.5: a record that is not
// a CALL closes the connection (a UDP datagram is dropped); RPC version
// other than 2 gets RPC_MISMATCH 2..2; AUTH_SYS credentials are decoded
// (malformed: AUTH_BADCRED), flavors other than AUTH_NONE and AUTH_SYS get
// AUTH_TOOWEAK except for procedure 0 (NULL); an unknown program gets
// PROG_UNAVAIL and an unserved version PROG_MISMATCH with the program's
// range; then Server.Gate, if set, and the duplicate request cache are
// consulted and the Program runs. A panic in a Program is recovered, its
// stack logged once, and answered with SYSTEM_ERR; the connection and the
// server go on.
//
// Slow or idle peers are bounded in time: a record must complete within
// Server.RecordTimeout of its first byte, a connection with no call in
// flight is closed after Server.IdleTimeout, and replies not taken within
// Server.WriteTimeout close the connection. Server.MaxConns bounds open
// connections and Server.MaxConnsPerHost those of one client address; at
// either bound a new connection closes the connection idle longest (the
// host's own at the per-host bound), or is refused when none is idle.
// Server.ConnGate refuses a connection at accept (HostsGate.AcceptConn: a
// host the hosts_access rules refuse every call).
//
// Shutdown closes the listeners, stops the readers at a record boundary,
// lets calls in flight finish and their replies go out, then closes the
// connections; Serve and ServeUDP return ErrServerClosed.
//
// # Duplicate request cache
//
// Replies of calls a Program marks non-idempotent (Cacheable) are kept for
// Server.DRCTTL, keyed by client IP (not port: a client retransmits on a
// new connection after a reconnect), XID, program, version, procedure and a
// CRC-32C and length of the argument bytes. A duplicate of a call still
// running is dropped; a duplicate of a finished call gets the cached reply
// bytes. The cache is bounded by entries and bytes (the entries of calls
// still running are never evicted); eviction takes the oldest entry of a
// client address holding more than its share, so one host's flood of calls
// evicts its own replies. It expires lazily on access with Server.Clock;
// it has no goroutine. An entry evicted for room (the entry
// bound holds about a second of a busy server's calls, and a Linux client
// retransmits seconds later, after it reconnects) leaves its key, a 64-bit
// digest with no reply, for the TTL; a retransmission that finds only its
// key runs again marked Request.MayHaveRun, as one begun before a restart
// is; a call the Program refused (Request.Refused) leaves no key, so its
// retransmission runs as new and meets its refusal again. The cache is
// volatile: after a restart, a
// retransmitted non-idempotent call runs again. Server.DRCLog
// (DRCLog, drc.log in mailnfsd's state directory) remembers which calls
// the earlier process began (less those it refused), and marks such a
// retransmission Request.MayHaveRun; NFS3 then answers the NOENT or EXIST that the call's
// own earlier effect causes as success (nfs3_retry.go).
//
// # Concurrency and lock order
//
// Server.mu guards the sets of listeners, UDP sockets and connections and
// the connection counts; it is taken before a connection's mu (Shutdown
// stops readers while holding it). A connection's write lock, the duplicate
// request cache's mutex, the connection-limit log's mutex (taken after
// Server.mu is released) and the DRCLog's two locks are leaves, and no lock is held while a Program runs or a socket is
// written. Exports.mu serialises Reload and Close and is never held by a
// call; Exports.insecure, the set of clients already logged as refused for
// an unreserved source port, is a leaf taken only on such a refusal.
// Every goroutine has an owner: Serve owns its accept loop; each
// connection's reader owns the connection's calls and waits for them
// before it closes the socket; ServeUDP waits for its calls; Shutdown waits
// for all readers and UDP loops.
package nfsd
