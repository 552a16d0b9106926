#!/usr/bin/env bash
# bench-writeonly.sh: what honest durability costs. Runs the delivery
# benchmark (bench/cmd/nfsbench, as make bench) with three servers side by
# side: mailnfsd as shipped; mailnfsd-alt, the same tree built with the tag
# mailnfs_unsafe_writeonly, which syncs only stable WRITEs and COMMITs
# (one sync per delivery, the schedule NFS-Ganesha's VFS backend follows;
# maildirfs/unsafe_writeonly.go); and NFS-Ganesha. The difference between
# the first two is the price of making CREATE and RENAME durable; the one
# between the last two is the rest of the server. The unsafe binary lives
# only in bench/out/bin for the run. Root; extra arguments go to nfsbench.
#
# Usage: scripts/bench-writeonly.sh [-rounds 3] [-duration 5s]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
	echo "bench-writeonly.sh: must run as root (network namespaces)" >&2
	exit 2
fi
bin=bench/out/bin
mkdir -p "$bin"
go build -o "$bin/mailnfsd" ./cmd/mailnfsd
go build -tags mailnfs_unsafe_writeonly -o "$bin/mailnfsd-unsafe-writeonly" ./cmd/mailnfsd
go build -o "$bin/nfsbench" ./bench/cmd/nfsbench
trap 'rm -f "$bin/mailnfsd-unsafe-writeonly"' EXIT
"$bin/nfsbench" -mailnfsd "$bin/mailnfsd" -alt-bin "$bin/mailnfsd-unsafe-writeonly" \
	-servers mailnfsd,mailnfsd-alt,ganesha -rounds 3 -list -1 -out bench/out/writeonly \
	-command "scripts/bench-writeonly.sh $*" "$@"
