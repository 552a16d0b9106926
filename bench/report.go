package bench

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
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
	var srv []string
	for _, so := range cfg.Servers {
		d := so.Kind
		if so.Name != "" && so.Name != so.Kind {
			d = so.Name + ": " + so.Kind
		}
		switch so.Kind {
		case KindMailnfsd:
			d += " (cmd/mailnfsd of this tree"
			if b := filepath.Base(so.Bin); b != "mailnfsd" && so.Bin != "" {
				d += ", binary " + b
			}
		case KindGoNFS:
			limit := so.GoNFSHandleLimit
			if limit == 0 {
				limit = defaultGoNFSHandleLimit
			}
			d += fmt.Sprintf(" (stock go-nfs v0.0.4, osfs BoundOS, CachingHandler limit %d, no fsync", limit)
		case KindGanesha:
			d += " (apt nfs-ganesha, FSAL_VFS, NFSv3 only"
		}
		if len(so.Args) > 0 {
			d += ", flags `" + strings.Join(so.Args, " ") + "`"
		}
		srv = append(srv, d+")")
	}
	fmt.Fprintf(&b, "Servers, each in its own network namespace on loopback: %s.", strings.Join(srv, "; "))
	if cfg.Nice != 0 {
		fmt.Fprintf(&b, " Servers and drivers ran under `nice -n %d`.", cfg.Nice)
	}
	b.WriteString("\n\n")
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
		"(perf tracepoints); client CPU: the driver process's, which shares the machine; disk fsync: median 4 KiB write+fsync on the same disk just before the step.\n\n",
		sizes, cfg.Client, cfg.Mailboxes, dur, conn, cfg.Rounds)

	if cfg.Rounds > 1 {
		fmt.Fprintf(&b, "Median over the %d rounds (peak RSS: the largest; verified: all rounds):\n\n", cfg.Rounds)
		writeDeliverTable(&b, r.medianCells())
		b.WriteString("Every round:\n\n")
	}
	writeDeliverTable(&b, r.roundCells())

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

// deliverCell is one line of a delivery table.
type deliverCell struct {
	label, server string
	round, c      int
	rate          float64
	p50, p99, cpu time.Duration // cpu: per delivery
	clientCPU     time.Duration // per delivery
	syncs         float64       // per delivery, < 0: not counted
	rss           int64
	fsync         time.Duration
	verify        string
}

func (r *Report) roundCells() []deliverCell {
	var cells []deliverCell
	for _, d := range r.Deliver {
		label := d.Server
		if r.Config.Rounds > 1 {
			label = fmt.Sprintf("%s (round %d)", d.Server, d.Round)
		}
		cells = append(cells, deliverCell{label: label, server: d.Server, round: d.Round, c: d.Concurrency,
			rate: d.Rate(), p50: d.Latency.P50, p99: d.Latency.P99, cpu: d.CPUPerDelivery(), clientCPU: d.ClientCPUPerDelivery(),
			syncs: d.SyncsPerDelivery(), rss: d.PeakRSS, fsync: d.DiskFsync, verify: d.Verify.String()})
	}
	return cells
}

// medianCells folds the rounds: the median of each figure per server and
// concurrency, in first-round order.
func (r *Report) medianCells() []deliverCell {
	type key struct {
		server string
		c      int
	}
	groups := map[key][]DeliverRow{}
	var order []key
	for _, d := range r.Deliver {
		k := key{d.Server, d.Concurrency}
		if _, ok := groups[k]; !ok {
			order = append(order, k)
		}
		groups[k] = append(groups[k], d)
	}
	var cells []deliverCell
	for _, k := range order {
		rows := groups[k]
		med := func(f func(DeliverRow) float64) float64 {
			v := make([]float64, len(rows))
			for i, d := range rows {
				v[i] = f(d)
			}
			sort.Float64s(v)
			if len(v)%2 == 1 {
				return v[len(v)/2]
			}
			return (v[len(v)/2-1] + v[len(v)/2]) / 2
		}
		c := deliverCell{label: k.server, server: k.server, c: k.c, verify: "ok"}
		c.rate = med(func(d DeliverRow) float64 { return d.Rate() })
		c.p50 = time.Duration(med(func(d DeliverRow) float64 { return float64(d.Latency.P50) }))
		c.p99 = time.Duration(med(func(d DeliverRow) float64 { return float64(d.Latency.P99) }))
		c.cpu = time.Duration(med(func(d DeliverRow) float64 { return float64(d.CPUPerDelivery()) }))
		c.clientCPU = time.Duration(med(func(d DeliverRow) float64 { return float64(d.ClientCPUPerDelivery()) }))
		c.syncs = med(func(d DeliverRow) float64 { return d.SyncsPerDelivery() })
		c.fsync = time.Duration(med(func(d DeliverRow) float64 { return float64(d.DiskFsync) }))
		n := 0
		for _, d := range rows {
			c.rss = max(c.rss, d.PeakRSS)
			n += d.Verify.Found
			if !d.Verify.OK() {
				c.verify = "FAILED"
			}
		}
		if c.verify == "ok" {
			c.verify = fmt.Sprintf("ok (%d)", n)
		}
		cells = append(cells, c)
	}
	return cells
}

// writeDeliverTable writes cells as a markdown table, with ratios to the
// Ganesha cell of the same round (0 for medians) and concurrency.
func writeDeliverTable(b *strings.Builder, cells []deliverCell) {
	b.WriteString("| server | deliverers | deliveries/s | p50 ms | p99 ms | server CPU ms/delivery | deliveries/s vs Ganesha | CPU/delivery vs Ganesha | server syncs/delivery | server peak RSS MiB | client CPU ms/delivery | disk fsync µs | verified |\n")
	b.WriteString("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|\n")
	for _, d := range cells {
		var base *deliverCell
		for i := range cells {
			if cells[i].server == ratioBase && cells[i].round == d.round && cells[i].c == d.c {
				base = &cells[i]
			}
		}
		rateRatio, cpuRatio := "-", "-"
		if base != nil && base.server != d.server {
			if base.rate > 0 {
				rateRatio = fmt.Sprintf("%.2fx", d.rate/base.rate)
			}
			if base.cpu > 0 {
				cpuRatio = fmt.Sprintf("%.2fx", float64(d.cpu)/float64(base.cpu))
			}
		}
		syncs := "-"
		if d.syncs >= 0 {
			syncs = fmt.Sprintf("%.2f", d.syncs)
		}
		fmt.Fprintf(b, "| %s | %d | %.0f | %.2f | %.2f | %.3f | %s | %s | %s | %.1f | %.3f | %.0f | %s |\n",
			d.label, d.c, d.rate, ms(d.p50), ms(d.p99), ms(d.cpu), rateRatio, cpuRatio, syncs, mib(d.rss),
			ms(d.clientCPU), float64(d.fsync)/float64(time.Microsecond), d.verify)
	}
	b.WriteString("\n")
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
