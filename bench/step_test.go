package bench

import (
	"testing"
	"time"
)

// TestSummarize checks the latency percentiles by nearest rank: of 100
// deliveries taking 1..100 ms, p99 is 99 ms (one delivery was slower), not
// the maximum, and p50 is 50 ms.
func TestSummarize(t *testing.T) {
	var d []time.Duration
	for i := 100; i >= 1; i-- {
		d = append(d, time.Duration(i)*time.Millisecond)
	}
	want := Latency{P50: 50 * time.Millisecond, P90: 90 * time.Millisecond, P99: 99 * time.Millisecond, Max: 100 * time.Millisecond}
	if got := summarize(d); got != want {
		t.Errorf("summarize(1..100 ms) = %+v, want %+v", got, want)
	}
	if got := summarize([]time.Duration{3, 1}); got != (Latency{P50: 1, P90: 3, P99: 3, Max: 3}) {
		t.Errorf("summarize(3, 1) = %+v", got)
	}
	if got := summarize([]time.Duration{7}); got != (Latency{P50: 7, P90: 7, P99: 7, Max: 7}) {
		t.Errorf("summarize(7) = %+v", got)
	}
}
