// Command mailnfs-bench runs the Maildir-cluster benchmark suite (package
// bench/suite): workloads against nfs://, dir: and self targets, verified,
// with table, JSON and HTML reports, and a compare mode.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/mailnfs/mailnfs/bench/suite"
)

func main() {
	suite.WorkerMain() // a front-end process returns only through os.Exit
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := suite.Main(ctx, "mailnfs-bench", os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
