package maildirfs_test

import (
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// corpora are the mail mixes the benchmarks use: "text" is plain text
// mail, "html" adds an HTML copy to 70% of them (what most clients send),
// "mixed" additionally gives 15% a base64 attachment of incompressible
// bytes (1 KiB..256 KiB).
var corpora = []struct {
	name string
	o    mdtest.CorpusOptions
}{
	{"text", mdtest.CorpusOptions{Seed: 1}},
	{"html", mdtest.CorpusOptions{Seed: 2, HTMLRate: 0.7}},
	{"mixed", mdtest.CorpusOptions{Seed: 3, HTMLRate: 0.7, AttachmentRate: 0.15}},
}

// treeUsage sums logical sizes and allocated bytes (st_blocks) of the
// regular files under dir.
func treeUsage(tb testing.TB, dir string) (size, alloc int64) {
	tb.Helper()
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		var st syscall.Stat_t
		if err := syscall.Stat(p, &st); err != nil {
			return err
		}
		size += st.Size
		alloc += st.Blocks * 512
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return size, alloc
}

// BenchmarkCompressSpace compacts a Maildir of 1000 generated messages per
// corpus and reports the space saved: x-bytes is uncompressed bytes over
// stored bytes, x-blocks the same for allocated blocks (what df sees).
func BenchmarkCompressSpace(b *testing.B) {
	mdtest.RequireRoot(b)
	for _, c := range corpora {
		b.Run(c.name, func(b *testing.B) {
			msgs := mdtest.Corpus(1000, c.o)
			var total int64
			for _, m := range msgs {
				total += int64(len(m))
			}
			b.SetBytes(total)
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				exp := filepath.Join(dir, "export")
				for _, d := range []string{"", "Maildir", "Maildir/tmp", "Maildir/new", "Maildir/cur"} {
					os.Mkdir(filepath.Join(exp, d), 0o755)
				}
				writeTree(b, exp, msgs)
				_, plainAlloc := treeUsage(b, exp)
				b.StartTimer()
				rep, err := maildirfs.Compact(exp, maildirfs.Options{StateDir: filepath.Join(dir, "state")})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_, alloc := treeUsage(b, exp)
				b.ReportMetric(float64(rep.PlainBytes)/float64(rep.StoredBytes), "x-bytes")
				b.ReportMetric(float64(plainAlloc)/float64(alloc), "x-blocks")
				b.ReportMetric(float64(total)/float64(len(msgs)), "avg-msg-B")
				b.StartTimer()
			}
		})
	}
}

// BenchmarkDeliverCompress delivers the mixed corpus with 32 concurrent
// deliverers (create in tmp/, FILE_SYNC write, rename into new/), plain
// and with compression; the compressor runs in the background meanwhile.
// catchup-ms is how long the compressor needed after the last delivery.
func BenchmarkDeliverCompress(b *testing.B) {
	msgs := mdtest.Corpus(2000, corpora[2].o)
	for _, mode := range []string{"", "zstd"} {
		name := mode
		if name == "" {
			name = "plain"
		}
		b.Run(name, func(b *testing.B) {
			s := mdtest.NewOpts(b, maildirfs.Options{Compress: mode})
			tmp, nw := lookup(b, s, "Maildir", "tmp"), lookup(b, s, "Maildir", "new")
			var seq atomic.Int64
			b.SetParallelism(16)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := seq.Add(1)
					if err := deliver(s, tmp, nw, root, fmt.Sprintf("1700000000.M%dP1.bench", i), msgs[int(i)%len(msgs)]); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.StopTimer()
			el := b.Elapsed()
			b.ReportMetric(float64(b.N)/el.Seconds(), "msgs/s")
			if mode != "" {
				t0 := time.Now()
				for s.Stats().CompressPending > 0 {
					time.Sleep(time.Millisecond)
				}
				st := s.Stats()
				b.ReportMetric(float64(time.Since(t0).Milliseconds()), "catchup-ms")
				b.ReportMetric(float64(st.CompressDropped), "dropped")
				b.ReportMetric(float64(st.Compressed)/float64(b.N), "compressed/msg")
				if st.CompressStoredBytes > 0 {
					b.ReportMetric(float64(st.CompressPlainBytes)/float64(st.CompressStoredBytes), "x-bytes")
				}
			}
		})
	}
}

// BenchmarkReadMessages reads 300 messages of the mixed corpus whole in
// 32 KiB READs (a client fetching mail), plain and compressed.
func BenchmarkReadMessages(b *testing.B) {
	msgs := mdtest.Corpus(300, corpora[2].o)
	for _, mode := range []string{"plain", "zstd"} {
		b.Run(mode, func(b *testing.B) {
			s := mdtest.New(b)
			cur := lookup(b, s, "Maildir", "cur")
			var hs []maildirfs.Handle
			var total int64
			for i, m := range msgs {
				hs = append(hs, create(b, s, cur, root, fmt.Sprintf("m%d:2,S", i), m))
				total += int64(len(m))
			}
			if mode == "zstd" {
				s.Opts.Compress = "zstd"
				s.Reopen(b)
				if k, err := s.CompressNow(hs); err != nil || k == 0 {
					b.Fatalf("compress: %d %v", k, err)
				}
			}
			buf := make([]byte, 32<<10)
			b.SetBytes(total)
			for b.Loop() {
				for _, h := range hs {
					for off := uint64(0); ; {
						k, eof, _, err := s.Read(h, root, off, buf)
						if err != nil {
							b.Fatal(err)
						}
						off += uint64(k)
						if eof {
							break
						}
					}
				}
			}
		})
	}
}

// BenchmarkReadRandom4k reads 4 KiB at random offsets of a 10 MiB file
// (seekable frames: one 64 KiB frame decoded per READ at most).
func BenchmarkReadRandom4k(b *testing.B) {
	data := mixedData(newRand(), 10<<20)
	for _, mode := range []string{"plain", "zstd"} {
		b.Run(mode, func(b *testing.B) {
			s := mdtest.New(b)
			cur := lookup(b, s, "Maildir", "cur")
			h := create(b, s, cur, root, "big:2,", data)
			if mode == "zstd" {
				s.Opts.Compress = "zstd"
				s.Reopen(b)
				if k, err := s.CompressNow([]maildirfs.Handle{h}); err != nil || k != 1 {
					b.Fatalf("compress: %d %v", k, err)
				}
			}
			r := newRand()
			buf := make([]byte, 4096)
			b.SetBytes(4096)
			for b.Loop() {
				if _, _, _, err := s.Read(h, root, uint64(r.IntN(len(data)-4096)), buf); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
