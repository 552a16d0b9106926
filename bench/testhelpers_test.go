package bench

import (
	"strconv"
	"sync"
	"testing"
)

var (
	binMu    sync.Mutex
	binDir   string
	binBuilt = map[string]string{}
)

func itoa(n int) string { return strconv.Itoa(n) }

// testServerBin returns the binary for a server kind ("" for Ganesha: PATH).
func testServerBin(t *testing.T, kind string) string {
	switch kind {
	case KindMailnfsd:
		return testBinary(t, "./cmd/mailnfsd")
	case KindGoNFS:
		return testBinary(t, "./cmd/gonfs-baseline")
	}
	return ""
}
