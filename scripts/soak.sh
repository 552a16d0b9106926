#!/usr/bin/env bash
# Soak test (make soak): a mixed Maildir workload (deliveries, listings,
# verified reads, flag changes, deletions) through package client against
# one in-process mailnfsd for SOAK_DURATION (default 30m); fails on any
# error, on goroutines or fds left behind, or on RSS still growing. Needs
# root. Extra arguments go to `go test` (e.g. -race).
set -euo pipefail
cd "$(dirname "$0")/.."
duration=${SOAK_DURATION:-30m}
exec go test -count=1 -v -run '^TestSoak$' -timeout 0 "$@" ./reliability -args -soak.duration="$duration"
