package suite

import (
	"encoding/json"
	"fmt"
	"html"
	"io"
	"math"
	"os"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// headline is the operation whose rate compares targets in a workload.
func headline(work string) string {
	switch work {
	case WorkPOP3:
		return "session"
	case WorkPostMark:
		return "transactions"
	case WorkBigDir:
		return "readdirplus"
	}
	return "deliver"
}

// Rate is the number of op per second of measured time; "transactions"
// is PostMark's figure (transactions over transaction-phase seconds).
func (r *Result) Rate(op string) float64 {
	if op == "transactions" {
		if s := r.Extra["tx_seconds"]; s > 0 {
			return r.Extra["transactions"] / s
		}
		return 0
	}
	for i := range r.Ops {
		if r.Ops[i].Op == op && r.Elapsed > 0 {
			return float64(r.Ops[i].Count) / r.Elapsed.Seconds()
		}
	}
	return 0
}

func fmtDur(d time.Duration) string {
	switch {
	case d <= 0:
		return "-"
	case d < time.Millisecond:
		return fmt.Sprintf("%.0fµs", float64(d)/1e3)
	case d < time.Second:
		return fmt.Sprintf("%.2fms", float64(d)/1e6)
	}
	return fmt.Sprintf("%.2fs", d.Seconds())
}

// WriteTable writes the end-of-run table: per target and operation ops/s,
// MB/s, latency quantiles and errors, the headline ratios and the
// verification verdicts.
func WriteTable(w io.Writer, rep *Report) error {
	fmt.Fprintf(w, "workload %s, %d target(s), %s in %d interleaved round(s), front ends %d%s\n\n",
		rep.Workload, len(rep.Results), rep.Duration, rep.Rounds, rep.Frontends, map[bool]string{true: " (netns)"}[rep.NetNS])
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\top\tcount\tops/s\tMB/s\tp50\tp95\tp99\tmax\terrors\t")
	for _, r := range rep.Results {
		for i := range r.Ops {
			s := &r.Ops[i]
			secs := max(r.Elapsed.Seconds(), 1e-9)
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.2f\t%s\t%s\t%s\t%s\t%d\t\n", r.Target, s.Op, s.Count,
				float64(s.Count)/secs, float64(s.Bytes)/secs/1e6,
				fmtDur(s.Quantile(.50)), fmtDur(s.Quantile(.95)), fmtDur(s.Quantile(.99)), fmtDur(time.Duration(s.MaxNs)), s.Errors)
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	heads := []string{headline(rep.Workload)}
	if rep.Workload == WorkMixed {
		heads = append(heads, "session")
	}
	fmt.Fprintln(w)
	for _, h := range heads {
		writeHeadline(w, rep, h)
	}
	fmt.Fprintln(w)
	for _, r := range rep.Results {
		v := r.Verify
		if v == nil {
			fmt.Fprintf(w, "verification %s: NOT RUN\n", r.Target)
			continue
		}
		verdict := "OK"
		if !v.OK {
			verdict = "FAILED"
		}
		fmt.Fprintf(w, "verification %s: %s: %d expected, %d found, lost %d, duplicated %d, corrupt %d, resurrected %d, stray tmp %d, workload errors %d, unacknowledged %d\n",
			r.Target, verdict, v.Expected, v.Found, v.Lost, v.Duplicated, v.Corrupt, v.Resurrected, v.StrayTmp, v.WorkloadErrs, v.Unacked)
		for _, p := range v.Problems {
			fmt.Fprintf(w, "  %s\n", p)
		}
	}
	return nil
}

// writeHeadline prints each target's rate of op h with its ratio to the
// first target.
func writeHeadline(w io.Writer, rep *Report, h string) {
	base := 0.0
	for i, r := range rep.Results {
		rate := r.Rate(h)
		if i == 0 {
			base = rate
		}
		ratio := ""
		if i > 0 && base > 0 {
			ratio = fmt.Sprintf("  (%.2fx %s)", rate/base, rep.Results[0].Target)
		}
		unit := h + "/s"
		if rep.Workload == WorkBigDir {
			unit = fmt.Sprintf("listings/s of %d entries (%.0f entries/s)", rep.Params.BigDirN, r.Extra["entries"]/max(r.Elapsed.Seconds(), 1e-9))
		}
		fmt.Fprintf(w, "%-40s %10.1f %s%s\n", r.Target, rate, unit, ratio)
	}
}

// WriteJSONFile writes rep to name.
func WriteJSONFile(name string, rep *Report) error {
	b, err := json.MarshalIndent(rep, "", " ")
	if err != nil {
		return err
	}
	return os.WriteFile(name, append(b, '\n'), 0o644)
}

// ReadJSONFile reads a report written by WriteJSONFile.
func ReadJSONFile(name string) (*Report, error) {
	b, err := os.ReadFile(name)
	if err != nil {
		return nil, err
	}
	var rep Report
	if err := json.Unmarshal(b, &rep); err != nil {
		return nil, fmt.Errorf("%s: %w", name, err)
	}
	if rep.Version != 1 {
		return nil, fmt.Errorf("%s: report version %d, want 1", name, rep.Version)
	}
	for _, r := range rep.Results {
		if r == nil {
			return nil, fmt.Errorf("%s: null result", name)
		}
	}
	return &rep, nil
}

// Compare prints, for every target and operation in both reports, the
// change from a to b of ops/s, p50 and p99, and of the headline rates.
func Compare(w io.Writer, a, b *Report) error {
	fmt.Fprintf(w, "a: %s %s (%s)\nb: %s %s (%s)\n\n", a.Workload, a.Started.Format(time.RFC3339), a.Host, b.Workload, b.Started.Format(time.RFC3339), b.Host)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "target\top\tops/s a\tops/s b\tdelta\tp50 a\tp50 b\tdelta\tp99 a\tp99 b\tdelta\t")
	pct := func(x, y float64) string {
		if x == 0 {
			return "-"
		}
		return fmt.Sprintf("%+.1f%%", (y-x)/x*100)
	}
	matched := 0
	for _, ra := range a.Results {
		for _, rb := range b.Results {
			if ra.Target != rb.Target {
				continue
			}
			for i := range ra.Ops {
				sa := &ra.Ops[i]
				var sb *OpStats
				for j := range rb.Ops {
					if rb.Ops[j].Op == sa.Op {
						sb = &rb.Ops[j]
					}
				}
				if sb == nil {
					continue
				}
				matched++
				xa, xb := ra.Rate(sa.Op), rb.Rate(sb.Op)
				pa, pb := sa.Quantile(.5), sb.Quantile(.5)
				qa, qb := sa.Quantile(.99), sb.Quantile(.99)
				fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", ra.Target, sa.Op, xa, xb, pct(xa, xb),
					fmtDur(pa), fmtDur(pb), pct(float64(pa), float64(pb)), fmtDur(qa), fmtDur(qb), pct(float64(qa), float64(qb)))
			}
			if h := headline(a.Workload); h == "transactions" {
				xa, xb := ra.Rate(h), rb.Rate(h)
				fmt.Fprintf(tw, "%s\t%s\t%.1f\t%.1f\t%s\t\t\t\t\t\t\t\n", ra.Target, h, xa, xb, pct(xa, xb))
			}
		}
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if matched == 0 {
		return fmt.Errorf("suite: the reports share no target and operation")
	}
	return nil
}

// ---------------------------------------------------------------- HTML

var palette = []string{"#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#e377c2", "#17becf"}

// histogramSVG draws the latency histogram of s: bars over log-spaced
// buckets, x axis labelled in time units.
func histogramSVG(s *OpStats, colour string) string {
	const W, H, L, B = 520, 200, 50, 30
	lo, hi := -1, -1
	var top uint64
	for i, v := range s.Hist {
		if v > 0 {
			if lo < 0 {
				lo = i
			}
			hi = i
			top = max(top, v)
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="latency histogram %s">`, W, H, W, H, html.EscapeString(s.Op))
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#fafafa" stroke="#ccc"/>`, W, H)
	if lo < 0 {
		b.WriteString(`<text x="20" y="100" font-size="14">no samples</text></svg>`)
		return b.String()
	}
	lo, hi = max(lo-2, 0), min(hi+2, len(s.Hist)-1)
	n := hi - lo + 1
	pw := float64(W - L - 10)
	bw := pw / float64(n)
	ph := float64(H - B - 10)
	for i := lo; i <= hi; i++ {
		v := s.Hist[i]
		if v == 0 {
			continue
		}
		h := math.Max(1, ph*float64(v)/float64(top))
		fmt.Fprintf(&b, `<rect x="%.1f" y="%.1f" width="%.1f" height="%.1f" fill="%s"><title>%s-%s: %d</title></rect>`,
			float64(L)+float64(i-lo)*bw, 10+ph-h, math.Max(bw-1, 1), h, colour, fmtDur(BucketLow(i)), fmtDur(BucketLow(i+1)), v)
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#333"/>`, L, 10+ph, W-10, 10+ph)
	for k := 0; k <= 4; k++ {
		i := lo + k*(n-1)/4
		x := float64(L) + float64(i-lo)*bw
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" font-size="11" text-anchor="middle" font-family="sans-serif">%s</text>`, x, H-12, fmtDur(BucketLow(i)))
	}
	fmt.Fprintf(&b, `<text x="4" y="20" font-size="11" font-family="sans-serif">%d</text><text x="4" y="%.0f" font-size="11" font-family="sans-serif">0</text>`, top, 10+ph)
	for _, q := range []struct {
		name string
		v    float64
	}{{"p50", .5}, {"p99", .99}} {
		d := s.Quantile(q.v)
		x := float64(L) + (8*math.Log2(float64(d))-float64(lo))*bw
		fmt.Fprintf(&b, `<line x1="%.1f" y1="10" x2="%.1f" y2="%.0f" stroke="#000" stroke-dasharray="4 3"/><text x="%.1f" y="22" font-size="11" font-family="sans-serif">%s %s</text>`, x, x, 10+ph, x+3, q.name, fmtDur(d))
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// timelineSVG draws ops/s over time for every op of several results (one
// line per target), the throughput chart of the report.
func timelineSVG(op string, results []*Result) string {
	const W, H, L, B = 1040, 220, 60, 30
	var top float64
	var length int
	series := make([][]float64, len(results))
	for k, r := range results {
		for i := range r.Ops {
			if r.Ops[i].Op != op {
				continue
			}
			for _, v := range r.Ops[i].Timeline {
				x := float64(v) / TimelineStep.Seconds()
				series[k] = append(series[k], x)
				top = max(top, x)
			}
		}
		length = max(length, len(series[k]))
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" viewBox="0 0 %d %d" role="img" aria-label="throughput over time %s">`, W, H, W, H, html.EscapeString(op))
	fmt.Fprintf(&b, `<rect x="0" y="0" width="%d" height="%d" fill="#fafafa" stroke="#ccc"/>`, W, H)
	if length < 1 || top == 0 {
		b.WriteString(`<text x="20" y="100" font-size="14">no samples</text></svg>`)
		return b.String()
	}
	pw, ph := float64(W-L-10), float64(H-B-10)
	dx := pw / math.Max(float64(length-1), 1)
	for k, s := range series {
		if len(s) == 0 {
			continue
		}
		var pts strings.Builder
		for i, v := range s {
			fmt.Fprintf(&pts, "%.1f,%.1f ", float64(L)+float64(i)*dx, 10+ph-ph*v/top)
		}
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"><title>%s</title></polyline>`, palette[k%len(palette)], pts.String(), html.EscapeString(results[k].Target))
	}
	fmt.Fprintf(&b, `<line x1="%d" y1="%.0f" x2="%d" y2="%.0f" stroke="#333"/><line x1="%d" y1="10" x2="%d" y2="%.0f" stroke="#333"/>`, L, 10+ph, W-10, 10+ph, L, L, 10+ph)
	fmt.Fprintf(&b, `<text x="4" y="20" font-size="11" font-family="sans-serif">%.0f/s</text><text x="4" y="%.0f" font-size="11" font-family="sans-serif">0</text>`, top, 10+ph)
	for k := 0; k <= 4; k++ {
		i := k * (length - 1) / 4
		fmt.Fprintf(&b, `<text x="%.0f" y="%d" font-size="11" text-anchor="middle" font-family="sans-serif">%.1fs</text>`, float64(L)+float64(i)*dx, H-12, float64(i)*TimelineStep.Seconds())
	}
	b.WriteString(`</svg>`)
	return b.String()
}

// WriteHTML writes a self-contained report (inline CSS and SVG, no scripts,
// no external resources): the table, per operation a throughput-over-time
// chart with one line per target, and per target and operation a latency
// histogram.
func WriteHTML(w io.Writer, rep *Report) error {
	var b strings.Builder
	esc := html.EscapeString
	b.WriteString(`<!DOCTYPE html><html lang="en"><head><meta charset="utf-8"><title>mailnfs bench: ` + esc(rep.Workload) + `</title><style>
body{font-family:sans-serif;margin:20px;color:#222;background:#fff}
table{border-collapse:collapse;margin:10px 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:right}
th{background:#eee}.ok{color:#080;font-weight:bold}.bad{color:#c00;font-weight:bold}
.charts{display:flex;flex-wrap:wrap;gap:12px}.key span{display:inline-block;width:14px;height:14px;margin:0 4px 0 12px;vertical-align:middle}
pre{background:#f4f4f4;padding:8px;overflow-x:auto}
</style></head><body>`)
	fmt.Fprintf(&b, `<h1>mailnfs bench: %s</h1><p>%s on %s; %s per target in %d interleaved round(s); front ends %d%s.</p>`,
		esc(rep.Workload), rep.Started.Format(time.RFC3339), esc(rep.Host), esc(rep.Duration), rep.Rounds, rep.Frontends, map[bool]string{true: " (network namespaces)"}[rep.NetNS])
	var table strings.Builder
	if err := WriteTable(&table, rep); err != nil {
		return err
	}
	b.WriteString(`<h2>Summary</h2><pre>` + esc(table.String()) + `</pre>`)
	b.WriteString(`<h2>Verification</h2><table><tr><th>target</th><th>verdict</th><th>expected</th><th>found</th><th>lost</th><th>duplicated</th><th>corrupt</th><th>stray tmp</th></tr>`)
	for _, r := range rep.Results {
		v := r.Verify
		if v == nil {
			v = &Verification{}
		}
		cls, verdict := "ok", "OK"
		if !v.OK {
			cls, verdict = "bad", "FAILED"
		}
		fmt.Fprintf(&b, `<tr><td>%s</td><td class="%s">%s</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td><td>%d</td></tr>`,
			esc(r.Target), cls, verdict, v.Expected, v.Found, v.Lost, v.Duplicated, v.Corrupt, v.StrayTmp)
	}
	b.WriteString(`</table><p class="key">`)
	for k, r := range rep.Results {
		fmt.Fprintf(&b, `<span style="background:%s"></span>%s`, palette[k%len(palette)], esc(r.Target))
	}
	b.WriteString(`</p>`)
	var ops []string
	seen := map[string]bool{}
	for _, r := range rep.Results {
		for i := range r.Ops {
			if !seen[r.Ops[i].Op] {
				seen[r.Ops[i].Op] = true
				ops = append(ops, r.Ops[i].Op)
			}
		}
	}
	sort.Strings(ops)
	for _, op := range ops {
		fmt.Fprintf(&b, `<h2>%s</h2><h3>throughput over time (ops/s, %s buckets)</h3>%s<h3>latency histograms</h3><div class="charts">`, esc(op), TimelineStep, timelineSVG(op, rep.Results))
		for k, r := range rep.Results {
			for i := range r.Ops {
				if r.Ops[i].Op == op {
					fmt.Fprintf(&b, `<figure><figcaption>%s</figcaption>%s</figure>`, esc(r.Target), histogramSVG(&r.Ops[i], palette[k%len(palette)]))
				}
			}
		}
		b.WriteString(`</div>`)
	}
	b.WriteString(`</body></html>` + "\n")
	_, err := io.WriteString(w, b.String())
	return err
}
