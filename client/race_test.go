//go:build race

package client

// raceEnabled shrinks the heaviest load test under the race detector, which
// slows it about tenfold; the full size runs without -race.
const raceEnabled = true
