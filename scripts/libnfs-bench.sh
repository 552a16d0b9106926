#!/usr/bin/env bash
# libnfs-bench.sh compares one Go client process (32 Deliver calls in
# flight through one Client) with 32 synchronous libnfs workers
# (client/libnfsbench/libnfs_deliver.c), 4 KiB messages, against the same
# mailnfsd binary on 127.0.0.1, alternating for ROUNDS rounds of SECONDS_RUN
# seconds each and printing the medians (go-msgs/s, libnfs-msgs/s,
# go/libnfs). Needs root (mailnfsd opens files by handle), cc and
# libnfs-dev, which it installs with apt-get when missing.
#
# Usage: [SECONDS_RUN=10] [ROUNDS=3] scripts/libnfs-bench.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! [ -e /usr/include/nfsc/libnfs.h ]; then
	echo "libnfs-bench.sh: installing libnfs-dev"
	apt-get install -y libnfs-dev
fi
command -v cc >/dev/null || { echo "libnfs-bench.sh: no C compiler (cc)" >&2; exit 1; }

MAILNFS_LIBNFS_BENCH=1 \
MAILNFS_LIBNFS_BENCH_SECONDS="${SECONDS_RUN:-10}" \
MAILNFS_LIBNFS_BENCH_ROUNDS="${ROUNDS:-3}" \
	go test ./client/ -run '^$' -bench '^BenchmarkLibnfsVsClient$' -benchtime 1x -timeout 30m -v
