#!/usr/bin/env bash
# staticcheck.sh runs staticcheck (pinned version) over every package and
# fails on any finding. The tool is built into bin/ from the Go module
# proxy the first time; if it cannot be fetched (no proxy), the check is
# skipped with a warning rather than failing the build on the network.
set -euo pipefail
cd "$(dirname "$0")/.."
version=v0.8.2
tool="bin/staticcheck-$version"
if [ ! -x "$tool" ]; then
	mkdir -p bin
	tmp="$(mktemp -d)"
	trap 'rm -rf "$tmp"' EXIT
	if ! GOBIN="$tmp" GOFLAGS=-mod=mod go install "honnef.co/go/tools/cmd/staticcheck@$version" 2>"$tmp/err"; then
		echo "staticcheck: SKIPPED, could not build honnef.co/go/tools@$version:" >&2
		sed 's/^/  /' "$tmp/err" >&2
		exit 0
	fi
	mv "$tmp/staticcheck" "$tool"
fi
"$tool" ./...
