#!/bin/sh
# crossbuild.sh: build every command (go build ./cmd/...) for the platforms
# mailnfsd ships on: freebsd/amd64, linux/amd64 and linux/arm64. CGO is off,
# as for the release binaries, so no C cross toolchain is needed.
#
# Usage: scripts/crossbuild.sh [OUTDIR]
#   OUTDIR (default: a temporary directory, removed afterwards) receives
#   OUTDIR/GOOS-GOARCH/<command>.
#   TARGETS="linux/amd64 ..." overrides the platform list.
#
# Every target is tried even if an earlier one fails; the exit status is
# the number of failed targets (0 = all built), and a summary names them.
set -u

cd "$(dirname "$0")/.." || exit 1
targets=${TARGETS:-"freebsd/amd64 linux/amd64 linux/arm64"}
keep=1
if [ $# -ge 1 ]; then
	out=$1
else
	out=$(mktemp -d "${TMPDIR:-/tmp}/crossbuild.XXXXXX") || exit 1
	keep=0
fi

failed=""
nfail=0
for t in $targets; do
	goos=${t%/*}
	goarch=${t#*/}
	dir="$out/$goos-$goarch"
	mkdir -p "$dir" || exit 1
	log="$dir/build.log"
	printf '%-14s ' "$t"
	if CGO_ENABLED=0 GOOS=$goos GOARCH=$goarch go build -trimpath -o "$dir/" ./cmd/... >"$log" 2>&1; then
		echo "ok ($(cd "$dir" && ls | grep -v '^build.log$' | tr '\n' ' '))"
	else
		echo "FAILED"
		sed 's/^/    /' "$log"
		failed="$failed $t"
		nfail=$((nfail + 1))
	fi
done

if [ "$keep" -eq 0 ]; then
	rm -rf "$out"
fi
if [ "$nfail" -ne 0 ]; then
	echo "crossbuild: $nfail target(s) failed:$failed"
else
	echo "crossbuild: all targets built"
fi
exit "$nfail"
