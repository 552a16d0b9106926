#!/usr/bin/env bash
# bench/run.sh: the standard comparison behind `make bench`. Builds mailnfsd,
# the go-nfs baseline and the driver, installs NFS-Ganesha (and rpcbind,
# strace) from apt when missing, then runs nfsbench as root: deliveries at 1,
# 8 and 32 concurrent deliverers (three interleaved rounds) and a
# 100,000-entry READDIRPLUS listing. The report goes to stdout and bench/out/.
# Extra arguments are passed to nfsbench (e.g. -duration 10s -rounds 2).
set -euo pipefail
cd "$(dirname "$0")/.."

if [[ $(id -u) -ne 0 ]]; then
	echo "bench/run.sh: must run as root (network namespaces)" >&2
	exit 2
fi

missing=()
for pkg in nfs-ganesha nfs-ganesha-vfs rpcbind strace linux-perf iproute2; do
	dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
done
if ((${#missing[@]})); then
	echo "bench/run.sh: installing ${missing[*]}" >&2
	apt-get install -y -o DPkg::Lock::Timeout=600 "${missing[@]}" >&2 ||
		{ apt-get update >&2 && apt-get install -y -o DPkg::Lock::Timeout=600 "${missing[@]}" >&2; }
fi

bin=bench/out/bin
mkdir -p "$bin"
go build -o "$bin/mailnfsd" ./cmd/mailnfsd
go build -o "$bin/gonfs-baseline" ./cmd/gonfs-baseline
go build -o "$bin/nfsbench" ./bench/cmd/nfsbench

cmdline="make bench"
if (($#)); then
	cmdline="bench/run.sh $*"
fi
# Three rounds: the tables report the median of each figure per server and
# concurrency (and every round). Later flags override these.
exec "$bin/nfsbench" -mailnfsd "$bin/mailnfsd" -gonfs "$bin/gonfs-baseline" \
	-rounds 3 -out bench/out -command "$cmdline" -v "$@"
