#!/usr/bin/env bash
# fuzz.sh runs every Go fuzz target (func FuzzX) in the module, one at a
# time, each for FUZZTIME (default 10s). Usage: scripts/fuzz.sh [packages...]
set -euo pipefail
cd "$(dirname "$0")/.."
fuzztime="${FUZZTIME:-10s}"
pkgs=("$@")
[ ${#pkgs[@]} -gt 0 ] || pkgs=(./...)

n=0
while IFS= read -r pkg; do
	[ -n "$pkg" ] || continue
	# go test -list prints the matching names, then "ok <pkg> ...".
	while IFS= read -r name; do
		case "$name" in
		Fuzz*) ;;
		*) continue ;;
		esac
		echo "== $pkg $name ($fuzztime)"
		go test -run='^$' -fuzz="^${name}\$" -fuzztime="$fuzztime" "$pkg"
		n=$((n + 1))
	done < <(go test -list '^Fuzz' "$pkg" 2>/dev/null || true)
done < <(go list "${pkgs[@]}")
echo "fuzz.sh: ran $n fuzz targets for $fuzztime each"
