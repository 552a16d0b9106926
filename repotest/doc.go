// Package repotest holds tests that enforce the repository's shape: every
// package has a package comment, imports point only downward (maildirfs
// knows nothing of NFS, the client knows nothing of the server), non-test
// code never imports "testing" except in *test helper packages, and every Go
// file is gofmt clean. It has no non-test code beyond this comment.
package repotest
