// Package reliability holds end-to-end fault tests of mailnfs: the real
// mailnfsd binary killed with SIGKILL under delivery load (crash_test.go),
// a power-loss model of the store that checks every acknowledged change was
// covered by a sync before the acknowledgement (maildirfs/crashfs), the
// write-back error path, hostile clients, a soak, and the access-control
// matrix. It has no non-test code; `go test ./reliability` runs everything
// at CI scale and the flags in the test files select the long versions
// (scripts/crashtest.sh, scripts/soak.sh).
//
// The tests need root (open_by_handle_at) and talk only to 127.0.0.1.
package reliability
