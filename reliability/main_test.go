package reliability

import (
	"os"
	"testing"
)

// TestMain turns the test binary into a delivery driver when the crash test
// re-executes it (see driver_test.go); otherwise it runs the tests.
func TestMain(m *testing.M) {
	if cfg := os.Getenv(envDriver); cfg != "" {
		os.Exit(runDriver(cfg))
	}
	if cfg := os.Getenv(envFlood); cfg != "" {
		os.Exit(runFlood(cfg))
	}
	os.Exit(m.Run())
}
