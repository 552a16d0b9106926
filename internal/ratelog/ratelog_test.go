package ratelog

import (
	"testing"
	"time"
)

func TestLimiter(t *testing.T) {
	var l Limiter[int]
	t0 := time.Unix(1000, 0)
	type step struct {
		key  int
		at   time.Duration
		n    int
		ok   bool
		held int
	}
	for i, s := range []step{
		{1, 0, 1, true, 0},
		{1, time.Second, 1, false, 0},
		{1, 2 * time.Second, 1, false, 0},
		{2, 2 * time.Second, 1, true, 0}, // another key has its own minute
		{1, Every, 1, true, 2},           // a new minute reports the two held back
		{3, 0, 2, true, 0},
		{3, time.Second, 2, true, 0}, // AllowN: a second line in the minute
		{3, 2 * time.Second, 2, false, 0},
	} {
		ok, held := l.AllowN(s.key, t0.Add(s.at), s.n)
		if ok != s.ok || held != s.held {
			t.Errorf("step %d: AllowN(%d, +%v, %d) = %v, %d; want %v, %d", i, s.key, s.at, s.n, ok, held, s.ok, s.held)
		}
	}
}

// TestLimiterFull: more keys in a minute than MaxKeys get no lines until
// the oldest key's minute is over, rather than a line each.
func TestLimiterFull(t *testing.T) {
	var l Limiter[int]
	t0 := time.Unix(1000, 0)
	lines := 0
	for k := range 3 * MaxKeys {
		if ok, _ := l.Allow(k, t0.Add(time.Duration(k)*time.Millisecond)); ok {
			lines++
		}
	}
	if lines != MaxKeys {
		t.Errorf("%d keys within a minute: %d lines, want %d", 3*MaxKeys, lines, MaxKeys)
	}
	if ok, _ := l.Allow(-1, t0.Add(Every)); !ok {
		t.Error("no room once the oldest key's minute is over")
	}
}
