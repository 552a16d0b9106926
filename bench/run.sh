#!/usr/bin/env bash
# bench/run.sh: the standard comparison behind `make bench`. Builds mailnfsd,
# the go-nfs baseline and the driver, installs NFS-Ganesha (and rpcbind,
# strace) from apt when missing, then runs nfsbench as root: deliveries at 1,
# 8 and 32 concurrent deliverers (three interleaved rounds) and a
# 100,000-entry READDIRPLUS listing; then the suite's deliver workload with a
# local directory beside the servers. The reports go to stdout and
# bench/out/, and bench/readme.sh puts the tables into README.md.
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
"$bin/nfsbench" -mailnfsd "$bin/mailnfsd" -gonfs "$bin/gonfs-baseline" \
	-rounds 3 -out bench/out -command "$cmdline" -v "$@"

# The suite's deliver workload (mail-like size mix) on the same servers plus
# a local directory on the same disk: the physical limit. Skipped with
# BENCH_SUITE=0.
if [[ ${BENCH_SUITE:-1} != 0 ]]; then
	go build -o "$bin/mailnfs" ./cmd/mailnfs
	dir=$(mktemp -d /var/tmp/mailnfs-bench-dir.XXXXXX)
	trap 'rm -rf "$dir"' EXIT
	targets=(-target server:mailnfsd -target server:gonfs -target "dir:$dir")
	if command -v ganesha.nfsd >/dev/null 2>&1; then
		targets=(-target server:mailnfsd -target server:ganesha -target server:gonfs -target "dir:$dir")
	fi
	"$bin/mailnfs" bench "${targets[@]}" -size mix -duration 12s -rounds 3 -progress off \
		-json bench/out/suite-deliver.json deliver | tee bench/out/suite-deliver.txt
fi

bench/readme.sh
