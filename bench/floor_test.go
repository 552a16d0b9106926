package bench

import (
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/mailnfs/mailnfs/internal/groupcommit"
	"golang.org/x/sys/unix"
)

// BenchmarkDurableFloor replays, with bare system calls on the local disk
// and no NFS at all, the sync schedule each server follows for one Maildir
// delivery (create in tmp/, write 4 KiB, rename into new/), at 1, 8 and 32
// concurrent deliverers over 8 Maildirs. It is the ceiling a server with
// that schedule cannot pass on this disk, whatever its RPC path costs, and
// the CPU those system calls take (cpu-ms/delivery: the process's user +
// system time; on this VM an fsync costs 0.1 to 0.3 ms of it):
//
//   - honest: what mailnfsd must do for an NFS client (RFC 1813: CREATE,
//     WRITE FILE_SYNC and RENAME durable before their replies): fsync the
//     new file and tmp/ after the create, the file after the write, new/
//     then tmp/ after the rename; 5 fsyncs;
//   - onesync: what mailnfsd does where one fsync commits a whole
//     operation (ext4 with a journal, XFS: maildirfs.CommitModel): the
//     file after the create and after the write, new/ after the rename;
//     3 fsyncs (on a file system without a journal the same calls are
//     not enough, but cost the same);
//   - localmda: a local delivery agent, which only promises the message
//     once it is in new/: fsync the file after the write, new/ after the
//     rename; 2 fsyncs;
//   - writeonly: the file after the write and nothing else (what
//     NFS-Ganesha's VFS backend was seen to do, bench/README.md); 1 fsync;
//   - groupfs: the honest promises kept by one file-system-wide group
//     commit instead of per-inode fsyncs: each of the three operations
//     waits for a syncfs (plus an fsync for the cache flush) that started
//     after it, shared by every deliverer waiting at the time;
//   - wal: the honest promises kept by a write-ahead log of one's own:
//     each operation appends a record (the write's carries the 4 KiB) to
//     a pre-written log file and waits for a group-committed fdatasync
//     of it; the files and directories themselves are left to writeback
//     (a real log would also need checkpoints, not counted here).
//
// groupfs and wal are the two designs that trade per-inode syncs for
// shared ones; they are here to measure whether either could beat
// writeonly on this disk.
//
// Run it with the directory on the disk the servers use (TMPDIR; for a
// journalling file system, a loop-mounted image works):
//
//	go test -run '^$' -bench DurableFloor -benchtime 3s ./bench
func BenchmarkDurableFloor(b *testing.B) {
	type schedule struct {
		name                       string
		create, write, renameSyncs bool
		createDir, renameBoth      bool
		group                      string // "syncfs" or "wal": shared commits instead
	}
	for _, sc := range []schedule{
		{name: "honest", create: true, createDir: true, write: true, renameSyncs: true, renameBoth: true},
		{name: "onesync", create: true, write: true, renameSyncs: true},
		{name: "localmda", write: true, renameSyncs: true},
		{name: "writeonly", write: true},
		{name: "groupfs", group: "syncfs"},
		{name: "wal", group: "wal"},
	} {
		for _, c := range []int{1, 8, 32} {
			b.Run(fmt.Sprintf("%s/c=%d", sc.name, c), func(b *testing.B) {
				root := b.TempDir()
				const boxes = 8
				var tmp, nw [boxes]int
				for i := range boxes {
					for _, d := range []string{"tmp", "new"} {
						if err := os.MkdirAll(filepath.Join(root, fmt.Sprint(i), d), 0o755); err != nil {
							b.Fatal(err)
						}
					}
					var err error
					if tmp[i], err = unix.Open(filepath.Join(root, fmt.Sprint(i), "tmp"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
						b.Fatal(err)
					}
					if nw[i], err = unix.Open(filepath.Join(root, fmt.Sprint(i), "new"), unix.O_RDONLY|unix.O_DIRECTORY|unix.O_CLOEXEC, 0); err != nil {
						b.Fatal(err)
					}
					defer unix.Close(tmp[i])
					defer unix.Close(nw[i])
				}
				body := make([]byte, 4096)
				var next, syncs atomic.Int64
				var firstErr error
				var errOnce sync.Once
				fail := func(err error) { errOnce.Do(func() { firstErr = err }) }
				fsync := func(fd int) {
					syncs.Add(1)
					if err := unix.Fsync(fd); err != nil {
						fail(err)
					}
				}
				var gc *sharedCommit
				switch sc.group {
				case "syncfs":
					gc = newSyncfsCommit(b, root)
				case "wal":
					gc = newLogCommit(b, root)
				}
				commit := func(record int) {
					if gc == nil {
						return
					}
					if err := gc.wait(record, &syncs); err != nil {
						fail(err)
					}
				}
				var ru0, ru1 unix.Rusage
				if err := unix.Getrusage(unix.RUSAGE_SELF, &ru0); err != nil {
					b.Fatal(err)
				}
				b.ResetTimer()
				var wg sync.WaitGroup
				for w := range c {
					wg.Go(func() {
						for {
							i := next.Add(1) - 1
							if i >= int64(b.N) {
								return
							}
							box := (w + int(i)) % boxes
							name := fmt.Sprintf("m%d", i)
							fd, err := unix.Openat(tmp[box], name, unix.O_CREAT|unix.O_EXCL|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
							if err != nil {
								fail(err)
								return
							}
							commit(128)
							if sc.create {
								fsync(fd)
							}
							if sc.createDir {
								fsync(tmp[box])
							}
							if _, err := unix.Pwrite(fd, body, 0); err != nil {
								fail(err)
							}
							if sc.write {
								fsync(fd)
							}
							commit(128 + len(body))
							unix.Close(fd)
							if err := unix.Renameat(tmp[box], name, nw[box], name); err != nil {
								fail(err)
							}
							commit(128)
							if sc.renameSyncs {
								fsync(nw[box])
								if sc.renameBoth {
									fsync(tmp[box])
								}
							}
						}
					})
				}
				wg.Wait()
				b.StopTimer()
				if err := unix.Getrusage(unix.RUSAGE_SELF, &ru1); err != nil {
					b.Fatal(err)
				}
				cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
				if firstErr != nil {
					b.Fatal(firstErr)
				}
				b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
				b.ReportMetric(float64(syncs.Load())/float64(b.N), "fsyncs/delivery")
				b.ReportMetric(float64(cpu)/1e6/float64(b.N), "cpu-ms/delivery")
			})
		}
	}
}

// sharedCommit is a file-system-wide group commit for the groupfs and wal
// schedules, through the store's own group commit (groupcommit.Syncer): a
// caller queues its record's bytes and waits for a commit that starts
// after it; that commit writes every byte queued by then.
type sharedCommit struct {
	s       groupcommit.Syncer
	pending atomic.Int64              // record bytes not yet written
	run     func(pending int64) error // one commit of pending bytes
}

// wait queues a record of the given size and waits for its commit; commits
// counts the commits run.
func (g *sharedCommit) wait(record int, commits *atomic.Int64) error {
	g.pending.Add(int64(record))
	return g.s.Do(0, true, func(bool) error {
		commits.Add(1)
		return g.run(g.pending.Swap(0))
	})
}

// newLogCommit commits by appending the pending records to a log file
// written in full beforehand (so an fdatasync writes data blocks only,
// no extent changes), wrapping at its end, and fdatasyncing it.
func newLogCommit(b *testing.B, root string) *sharedCommit {
	const size = 64 << 20
	fd, err := unix.Open(filepath.Join(root, "log"), unix.O_CREAT|unix.O_RDWR|unix.O_CLOEXEC, 0o600)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { unix.Close(fd) })
	chunk := make([]byte, 1<<20)
	for off := int64(0); off < size; off += int64(len(chunk)) {
		if _, err := unix.Pwrite(fd, chunk, off); err != nil {
			b.Fatal(err)
		}
	}
	if err := unix.Fsync(fd); err != nil {
		b.Fatal(err)
	}
	var off int64
	return &sharedCommit{run: func(pending int64) error {
		for pending > 0 {
			n := int(min(pending, int64(len(chunk)), size-off))
			if _, err := unix.Pwrite(fd, chunk[:n], off); err != nil {
				return err
			}
			pending -= int64(n)
			off = (off + int64(n)) % size
		}
		return fdatasync(fd)
	}}
}
