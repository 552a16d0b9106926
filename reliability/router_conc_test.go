package reliability

import (
	"context"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/mailnfs/mailnfs/client"
)

// TestRouterConcurrentRestart: users on two boxes get deliveries without
// pause while one box is SIGKILLed and started again four times, twice
// with a fresh state directory: a CREATE or RENAME that ran before a kill
// is answered BADHANDLE by the next process. Every delivery succeeds or
// is temporary, each acknowledged one is in new/ once, none twice, and
// tmp/ is empty.
func TestRouterConcurrentRestart(t *testing.T) {
	rb := newRouterBoxes(t, false)
	defer rb.r.Close()
	var mu sync.Mutex
	stop := make(chan struct{})
	var wg sync.WaitGroup
	fails := 0
	for name := range rb.users {
		wg.Go(func() {
			for {
				select {
				case <-stop:
					return
				default:
				}
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				_, err := rb.r.Deliver(ctx, name, strings.NewReader("x\n"))
				cancel()
				mu.Lock()
				if err == nil {
					rb.sent[name]++
				} else {
					fails++
					if !client.Temporary(err) {
						t.Errorf("%s: %v", name, err)
					}
				}
				mu.Unlock()
			}
		})
	}
	box := rb.boxes[0]
	for i := range 4 {
		time.Sleep(500 * time.Millisecond)
		box.kill(t)
		if i%2 == 1 {
			os.RemoveAll(box.stateDir)
		}
		box.start(t)
	}
	time.Sleep(time.Second)
	close(stop)
	wg.Wait()
	t.Logf("sent %v, %d temporary failures", rb.sent, fails)
	for name := range rb.users {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		if _, err := rb.r.Deliver(ctx, name, strings.NewReader("last\n")); err != nil {
			t.Errorf("last delivery to %s: %v", name, err)
		} else {
			rb.sent[name]++
		}
		cancel()
	}
	rb.check(t)
}
