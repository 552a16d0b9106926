package suite

import (
	"math"
	"sort"
	"sync"
	"time"
)

// histBuckets is the number of latency buckets: bucket i holds latencies in
// [2^(i/8), 2^((i+1)/8)) nanoseconds, about 9% wide, up to ~2^40 ns (18 min).
const histBuckets = 320

// TimelineStep is the width of one throughput-over-time bucket.
const TimelineStep = 250 * time.Millisecond

// OpStats are the figures of one operation kind (deliver, read, list, ...).
// They merge across workers, processes and rounds.
type OpStats struct {
	Op       string   `json:"op"`
	Count    uint64   `json:"count"`
	Errors   uint64   `json:"errors"`
	Bytes    uint64   `json:"bytes"`
	SumNs    int64    `json:"sum_ns"`
	MaxNs    int64    `json:"max_ns"`
	Hist     []uint64 `json:"hist"`     // histBuckets log buckets, see bucketOf
	Timeline []uint64 `json:"timeline"` // completed ops per TimelineStep since the start of measurement
	FirstErr string   `json:"first_error,omitempty"`
}

func bucketOf(d time.Duration) int {
	ns := float64(d.Nanoseconds())
	if ns < 1 {
		return 0
	}
	i := int(8 * math.Log2(ns))
	return min(max(i, 0), histBuckets-1)
}

// bucketMid is a representative latency of bucket i (geometric middle).
func bucketMid(i int) time.Duration {
	return time.Duration(math.Exp2((float64(i) + 0.5) / 8))
}

// BucketLow is the lower bound of histogram bucket i.
func BucketLow(i int) time.Duration { return time.Duration(math.Exp2(float64(i) / 8)) }

func (s *OpStats) observe(at time.Duration, d time.Duration, n int, err error) {
	if s.Hist == nil {
		s.Hist = make([]uint64, histBuckets)
	}
	if err != nil {
		s.Errors++
		if s.FirstErr == "" {
			s.FirstErr = err.Error()
		}
		return
	}
	s.Count++
	s.Bytes += uint64(max(n, 0))
	s.SumNs += d.Nanoseconds()
	s.MaxNs = max(s.MaxNs, d.Nanoseconds())
	s.Hist[bucketOf(d)]++
	t := int(at / TimelineStep)
	if t >= 0 && t < 1<<20 {
		for len(s.Timeline) <= t {
			s.Timeline = append(s.Timeline, 0)
		}
		s.Timeline[t]++
	}
}

// merge adds o into s; o's timeline is shifted by shift buckets (rounds are
// laid end to end).
func (s *OpStats) merge(o *OpStats, shift int) {
	if s.Hist == nil {
		s.Hist = make([]uint64, histBuckets)
	}
	s.Count += o.Count
	s.Errors += o.Errors
	s.Bytes += o.Bytes
	s.SumNs += o.SumNs
	s.MaxNs = max(s.MaxNs, o.MaxNs)
	for i, v := range o.Hist {
		if i < len(s.Hist) {
			s.Hist[i] += v
		}
	}
	for i, v := range o.Timeline {
		j := i + shift
		for len(s.Timeline) <= j {
			s.Timeline = append(s.Timeline, 0)
		}
		s.Timeline[j] += v
	}
	if s.FirstErr == "" {
		s.FirstErr = o.FirstErr
	}
}

// Quantile returns the latency below which a fraction q of the successful
// operations completed (histogram resolution, ~9%); the maximum is exact.
func (s *OpStats) Quantile(q float64) time.Duration {
	if s.Count == 0 {
		return 0
	}
	want := uint64(math.Ceil(q * float64(s.Count)))
	want = max(want, 1)
	var n uint64
	for i, v := range s.Hist {
		n += v
		if n >= want {
			return min(bucketMid(i), time.Duration(s.MaxNs))
		}
	}
	return time.Duration(s.MaxNs)
}

// Mean is the mean latency of the successful operations.
func (s *OpStats) Mean() time.Duration {
	if s.Count == 0 {
		return 0
	}
	return time.Duration(s.SumNs / int64(s.Count))
}

// Recorder collects OpStats from concurrent workers.
type Recorder struct {
	mu    sync.Mutex
	start time.Time
	ops   map[string]*OpStats
}

// NewRecorder starts a recorder; timelines count from now.
func NewRecorder() *Recorder {
	return &Recorder{start: time.Now(), ops: map[string]*OpStats{}}
}

// Observe records one operation of kind op that started at t0 and moved n
// bytes; err != nil counts it as an error.
func (r *Recorder) Observe(op string, t0 time.Time, n int, err error) {
	now := time.Now()
	r.mu.Lock()
	s := r.ops[op]
	if s == nil {
		s = &OpStats{Op: op}
		r.ops[op] = s
	}
	s.observe(now.Sub(r.start), now.Sub(t0), n, err)
	r.mu.Unlock()
}

// Total is the number of operations (successful and failed) so far.
func (r *Recorder) Total() (ok, failed uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, s := range r.ops {
		ok += s.Count
		failed += s.Errors
	}
	return ok, failed
}

// Snapshot returns copies of the stats, sorted by operation name.
func (r *Recorder) Snapshot() []OpStats {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]OpStats, 0, len(r.ops))
	for _, s := range r.ops {
		c := OpStats{Op: s.Op}
		c.merge(s, 0)
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Op < out[j].Op })
	return out
}

// mergeOps merges b into a by operation name, shifting b's timelines.
func mergeOps(a []OpStats, b []OpStats, shift int) []OpStats {
	for i := range b {
		found := false
		for j := range a {
			if a[j].Op == b[i].Op {
				a[j].merge(&b[i], shift)
				found = true
				break
			}
		}
		if !found {
			c := OpStats{Op: b[i].Op}
			c.merge(&b[i], shift)
			a = append(a, c)
		}
	}
	sort.Slice(a, func(i, j int) bool { return a[i].Op < a[j].Op })
	return a
}
