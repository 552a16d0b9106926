#!/usr/bin/env bash
# bench-dirsync.sh: mailnfsd against an honest NFS-Ganesha. Ganesha's VFS
# backend syncs the written file only; its CREATE and RENAME are durable
# only if the file system makes directory changes synchronous (mount -o
# dirsync). This script makes two ext4 images (with a journal, as on a
# production box) on the disk under TMPDIR (default /var/tmp), mounts one
# plainly for mailnfsd and stock Ganesha and one with -o dirsync for a
# second Ganesha, and runs the delivery benchmark on the three side by
# side (bench/cmd/nfsbench, 3 rounds, no listing: a listing moves one
# directory between the servers' exports). Root; extra arguments go to
# nfsbench. The images are removed afterwards.
#
# Usage: scripts/bench-dirsync.sh [-rounds 3] [-duration 5s]
set -euo pipefail
cd "$(dirname "$0")/.."
if [[ $(id -u) -ne 0 ]]; then
	echo "bench-dirsync.sh: must run as root (loop mounts, network namespaces)" >&2
	exit 2
fi
work=$(mktemp -d "${TMPDIR:-/var/tmp}/mnfs-dirsync.XXXXXX")
cleanup() {
	umount "$work/plain" "$work/dirsync" 2>/dev/null || true
	rm -rf "$work"
}
trap cleanup EXIT
for fs in plain dirsync; do
	truncate -s 3G "$work/$fs.img"
	mkfs.ext4 -q -F "$work/$fs.img"
	mkdir "$work/$fs"
done
mount -o loop "$work/plain.img" "$work/plain"
mount -o loop,dirsync "$work/dirsync.img" "$work/dirsync"
findmnt -no TARGET,OPTIONS "$work/dirsync" | grep -qw dirsync ||
	{ echo "bench-dirsync.sh: $work/dirsync is not mounted dirsync" >&2; exit 1; }
bin=bench/out/bin
mkdir -p "$bin"
go build -o "$bin/mailnfsd" ./cmd/mailnfsd
go build -o "$bin/nfsbench" ./bench/cmd/nfsbench
"$bin/nfsbench" -mailnfsd "$bin/mailnfsd" -servers mailnfsd,ganesha,ganesha-dirsync \
	-dir "$work/plain" -dirsync-dir "$work/dirsync" -rounds 3 -list -1 \
	-out bench/out/dirsync -command "scripts/bench-dirsync.sh $*" "$@"
