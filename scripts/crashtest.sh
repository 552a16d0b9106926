#!/usr/bin/env bash
# Long crash test (make crashtest): the real mailnfsd is SIGKILLed
# CRASH_KILLS times (default 200) while CRASH_DRIVERS front-end processes
# (default 4) deliver through package client; every acknowledged delivery
# must be on disk once and intact afterwards. Needs root. Extra arguments go
# to `go test` (e.g. -race).
set -euo pipefail
cd "$(dirname "$0")/.."
kills=${CRASH_KILLS:-200}
drivers=${CRASH_DRIVERS:-4}
timeout=$(( kills * 3 + 300 ))s
exec go test -count=1 -v -run '^TestCrashSIGKILL$' -timeout "$timeout" "$@" ./reliability \
	-args -crash.kills="$kills" -crash.drivers="$drivers" ${CRASH_SEED:+-crash.seed="$CRASH_SEED"}
