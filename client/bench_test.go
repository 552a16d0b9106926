package client

import (
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/nfsd/nfsdtest"
)

// BenchmarkDeliver4KiB delivers 4 KiB messages through one client with 32
// deliveries in flight, into 20 mailboxes of a real in-process mailnfsd.
// Each delivery is GUARDED CREATE (with the mode), WRITE FILE_SYNC and
// RENAME.
func BenchmarkDeliver4KiB(b *testing.B) {
	for _, conns := range []int{1, 4} {
		b.Run(fmt.Sprintf("inflight=32/conns=%d", conns), func(b *testing.B) {
			var boxes []string
			for i := range 20 {
				boxes = append(boxes, fmt.Sprintf("u%02d/Maildir", i))
			}
			s := startServer(b, maildirSetup(boxes...), nfsdtest.WithLogLevel(slog.LevelWarn))
			c := dialServer(b, s, "", Options{RPC: RPCOptions{Conns: conns}})
			benchDeliver(b, c, boxes, 32)
		})
	}
}

func benchDeliver(b *testing.B, c *Client, boxes []string, inflight int) {
	msg := bytes.Repeat([]byte("x"), 4096)
	var next atomic.Int64
	var wg sync.WaitGroup
	ctx := context.Background()
	b.SetBytes(int64(len(msg)))
	b.ResetTimer()
	start := time.Now()
	for w := 0; w < inflight; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := next.Add(1) - 1
				if i >= int64(b.N) {
					return
				}
				if _, err := c.Deliver(ctx, boxes[i%int64(len(boxes))], bytes.NewReader(msg)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}
