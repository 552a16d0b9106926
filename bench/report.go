package bench

import (
	"fmt"
	"io"
	"os"
	"runtime"
	"sort"
	"strings"
	"time"
)

// Ganesha is the reference the ratio columns divide by.
const ratioBase = KindGanesha

// WriteMarkdown writes the report as markdown: the command, the machine, the
// delivery table, the listing table, the sync census and any failures.
func (r *Report) WriteMarkdown(w io.Writer, command string) error {
	var b strings.Builder
	cfg := r.Config
	fmt.Fprintf(&b, "## mailnfs benchmark, %s\n\n", r.Started.UTC().Format("2006-01-02 15:04 UTC"))
	fmt.Fprintf(&b, "Command: `%s`\n\n", command)
	fmt.Fprintf(&b, "Machine: %s, %d CPUs (%s), Linux %s, %s, load average %s at the start and %s at the end. "+
		"Servers and driver share the CPUs.\n\n",
		hostName(), runtime.NumCPU(), cpuModel(), kernelRelease(), runtime.Version(), r.LoadBefore, r.LoadAfter)
	dur := cfg.Duration.String()
	if cfg.Count > 0 {
		dur = fmt.Sprintf("%d messages", cfg.Count)
	}
	conn := "one mount (TCP connection) per deliverer"
	if cfg.SharedSession {
		conn = "one mount shared by all deliverers"
	}
	sizes := fmt.Sprintf("%d-byte messages", cfg.Size)
	if cfg.Size == SizeMix {
		sizes = "messages of a mail-like size mix (median ~2.3 KiB, 10% around 64 KiB, up to 1 MiB)"
	}
	fmt.Fprintf(&b, "Deliveries: %s, tmp/ -> write+commit -> rename into new/ over NFSv3 "+
		"through %s, %d Maildirs per step, %s per step, %s, servers interleaved "+
		"(each concurrency runs on every server before the next), %d round(s). Every step verified on disk: "+
		"each acknowledged message in new/ exactly once with the bytes sent, tmp/ empty. Server syncs/delivery: "+
		"fsync, fdatasync, sync_file_range, syncfs, sync and msync calls of the server process during the step "+
		"(perf tracepoints); disk fsync: median 4 KiB write+fsync on the same disk just before the step.\n\n",
		sizes, cfg.Client, cfg.Mailboxes, dur, conn, cfg.Rounds)

	b.WriteString("| server | deliverers | deliveries/s | p50 ms | p99 ms | server CPU ms/delivery | deliveries/s vs Ganesha | CPU/delivery vs Ganesha | server syncs/delivery | server peak RSS MiB | disk fsync µs | verified |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, d := range r.Deliver {
		base := r.deliverBase(d.Round, d.Concurrency)
		rateRatio, cpuRatio := "-", "-"
		if base != nil && base.Server != d.Server {
			if base.Rate() > 0 {
				rateRatio = fmt.Sprintf("%.2fx", d.Rate()/base.Rate())
			}
			if base.CPUPerDelivery() > 0 {
				cpuRatio = fmt.Sprintf("%.2fx", float64(d.CPUPerDelivery())/float64(base.CPUPerDelivery()))
			}
		}
		name := d.Server
		if cfg.Rounds > 1 {
			name = fmt.Sprintf("%s (round %d)", d.Server, d.Round)
		}
		syncs := "-"
		if v := d.SyncsPerDelivery(); v >= 0 {
			syncs = fmt.Sprintf("%.2f", v)
		}
		fmt.Fprintf(&b, "| %s | %d | %.0f | %.2f | %.2f | %.3f | %s | %s | %s | %.1f | %.0f | %s |\n",
			name, d.Concurrency, d.Rate(), ms(d.Latency.P50), ms(d.Latency.P99),
			ms(d.CPUPerDelivery()), rateRatio, cpuRatio, syncs, mib(d.PeakRSS),
			float64(d.DiskFsync)/float64(time.Microsecond), d.Verify)
	}
	b.WriteString("\n")

	if len(r.List) > 0 {
		fmt.Fprintf(&b, "Listing a %d-entry directory (cur/ of a Maildir, created on disk) with READDIRPLUS through the same client, "+
			"one mount; pass 1 is the server's first look at it, pass 2 repeats it.\n\n", cfg.ListEntries)
		b.WriteString("| server | entries | pass 1 s | pass 2 s | pass 1 vs Ganesha | server CPU s (all passes) | server peak RSS MiB |\n")
		b.WriteString("|---|---:|---:|---:|---:|---:|---:|\n")
		var base *ListRow
		for i := range r.List {
			if r.List[i].Server == ratioBase {
				base = &r.List[i]
			}
		}
		for _, l := range r.List {
			t := func(i int) string {
				if i < len(l.Times) {
					return fmt.Sprintf("%.2f", l.Times[i].Seconds())
				}
				return "-"
			}
			ratio := "-"
			if base != nil && base.Server != l.Server && len(base.Times) > 0 && len(l.Times) > 0 {
				ratio = fmt.Sprintf("%.2fx", l.Times[0].Seconds()/base.Times[0].Seconds())
			}
			seen := "-"
			if len(l.Seen) > 0 {
				seen = fmt.Sprint(l.Seen[0])
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s | %s | %.2f | %.1f |\n", l.Server, seen, t(0), t(1), ratio,
				l.ServerCPU.Seconds(), mib(l.PeakRSS))
		}
		b.WriteString("\n")
	}

	if len(r.Census) > 0 {
		fmt.Fprintf(&b, "Sync census: one extra step of %d deliveries at 8 deliverers per server with `strace -f -c` attached "+
			"(counts only; strace slows every system call, which can change how much a server batches).\n\n", cfg.CensusCount)
		b.WriteString("| server | deliveries | " + strings.Join(syncCalls, " | ") + " | syncs/delivery |\n")
		b.WriteString("|---|---:|" + strings.Repeat("---:|", len(syncCalls)) + "---:|\n")
		for _, c := range r.Census {
			fmt.Fprintf(&b, "| %s | %d |", c.Server, c.Deliveries)
			for _, s := range syncCalls {
				fmt.Fprintf(&b, " %d |", c.Calls[s])
			}
			fmt.Fprintf(&b, " %.2f |\n", c.PerDelivery())
		}
		b.WriteString("\n")
	}

	if len(r.Failures) > 0 {
		b.WriteString("**FAILURES** (this run does not count):\n\n")
		for _, f := range r.Failures {
			fmt.Fprintf(&b, "- %s\n", strings.ReplaceAll(strings.TrimSpace(f), "\n", " "))
		}
		b.WriteString("\n")
	}
	fmt.Fprintf(&b, "Run took %s.\n", r.Finished.Sub(r.Started).Round(time.Second))
	_, err := io.WriteString(w, b.String())
	return err
}

// deliverBase is the Ganesha row of the same round and concurrency.
func (r *Report) deliverBase(round, c int) *DeliverRow {
	for i := range r.Deliver {
		d := &r.Deliver[i]
		if d.Server == ratioBase && d.Round == round && d.Concurrency == c {
			return d
		}
	}
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mib(b int64) float64        { return float64(b) / (1 << 20) }

func hostName() string {
	h, _ := os.Hostname()
	return h
}

func kernelRelease() string {
	b, err := os.ReadFile("/proc/sys/kernel/osrelease")
	if err != nil {
		return "?"
	}
	return strings.TrimSpace(string(b))
}

func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return "?"
	}
	models := map[string]bool{}
	for line := range strings.SplitSeq(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			models[strings.TrimSpace(v)] = true
		}
	}
	var l []string
	for m := range models {
		l = append(l, m)
	}
	sort.Strings(l)
	if len(l) == 0 {
		return "?"
	}
	return strings.Join(l, ", ")
}
