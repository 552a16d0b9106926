#!/usr/bin/env bash
# gofmt-check.sh fails, listing the files, when any Go file is not gofmt'ed.
set -euo pipefail
cd "$(dirname "$0")/.."
bad="$(find . \( -path ./.git -o -path ./var -o -path ./bin -o -path ./bench/out \) -prune -o -name '*.go' -print0 |
	xargs -0 -r gofmt -l)"
if [ -n "$bad" ]; then
	echo "gofmt needed on:" >&2
	echo "$bad" >&2
	exit 1
fi
