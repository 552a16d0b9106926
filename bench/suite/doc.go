// Package suite is the Maildir-cluster benchmark operators run to size a
// cluster: it points workloads at one or more targets, measures them
// interleaved, verifies that nothing acknowledged was lost or duplicated,
// and writes a table, JSON and a self-contained HTML report.
//
// # Targets
//
//   - nfs://host[:port]/export: any NFSv3 server, through package client
//     (no kernel mount). Query parameters as in client.ParseURL.
//   - dir:/path: a local Maildir driven with plain system calls, fsync of
//     the file and of the directory after a delivery: the physical limit of
//     the same disk.
//   - self: mailnfsd started in this process (nfsd.Start) over a temporary
//     directory, reached over loopback through package client; verified on
//     disk. Needs root (the store opens files by handle).
//   - server:mailnfsd, server:gonfs, server:ganesha: a server started by
//     package bench's runners in its own network namespace (ServerTarget),
//     the workers running inside it and reaching it over its loopback;
//     verified on disk. Needs root.
//
// Every run works below a fresh directory "suite-<random>" of the target and
// removes it afterwards (unless Config.Keep, or the target's verification
// failed: the evidence stays, except for self, whose directory goes with
// its server).
//
// # Workloads
//
//   - deliver: lock-free Maildir deliveries (tmp -> fsync -> new) of messages
//     of the mail-like size mix of bench.MixSize (about 2 KiB median, 10%
//     attachments, tail to 1 MiB), into Mailboxes mailboxes by Concurrency
//     deliverers spread over Frontends front ends.
//   - pop3: sessions as a POP3/IMAP server over NFS runs them: list new/
//     and cur/, read every message, mark the new ones seen (rename into cur/
//     with ":2,S"), delete a DeleteFraction of them. Mailboxes start with
//     Preload messages and are refilled by deliveries when half empty.
//     Each mailbox belongs to one session worker at a time, as a POP3 lock
//     would ensure.
//   - postmark: the PostMark 1.51 transaction mix (NetApp TR-3022): a pool
//     of PMFiles files of PMLow..PMHigh bytes, PMTransactions transactions of
//     read-or-append plus create-or-delete (bias 5 each), seed PMSeed; the
//     figure is transactions per second of the transaction phase. One
//     PostMark per worker (Concurrency, default 1 for this workload) in its
//     own directory. Over NFS every write is FILE_SYNC (no client cache, like
//     the NFSv2 of 1997); on dir: PostMark's own semantics (no fsync) unless
//     PMSync.
//   - bigdir: one mailbox of BigDirN messages (default 100,000) listed with
//     READDIRPLUS (ReadDir of the target) repeatedly; populated directly on
//     disk for dir: and self, through NFS deliveries otherwise.
//   - mixed: Concurrency deliverers and Sessions session workers at the
//     same time over the same mailboxes: the ISP day.
//
// # Front ends
//
// With Frontends F > 0 the workers run in F separate processes: the same
// binary re-executed (WorkerMain must be called first thing in main and in
// TestMain), each given its job as JSON on stdin and answering with JSON on
// stdout. With NetNS each front end runs in its own network namespace
// joined by veth pairs to a bridge on a private 10.x net the bench creates and
// removes; only the self target can be reached there (its server listens on
// the bridge address).
//
// # Verification
//
// Every message body is bench.MessageBody(id, size): its header names the
// delivery id and its bytes can be regenerated. After each workload every
// target is listed: each acknowledged, undeleted delivery must be present
// exactly once with its size and SHA-256, no deleted one may reappear, tmp/
// must be empty. Any failure makes the run fail, whatever its speed.
package suite
