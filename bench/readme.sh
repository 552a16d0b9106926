#!/usr/bin/env bash
# bench/readme.sh: put the tables of the last `make bench` into README.md,
# between the lines "<!-- make bench: begin -->" and "<!-- make bench: end -->":
# the header and median tables of bench/out/latest.md (the server comparison)
# and bench/out/suite-deliver.txt (the suite's deliver run with a local
# directory as the physical-limit reference), if present.
set -euo pipefail
cd "$(dirname "$0")/.."

latest=bench/out/latest.md
suite=bench/out/suite-deliver.txt
block=$(mktemp)
trap 'rm -f "$block"' EXIT
{
	if [[ -f $latest ]]; then
		# Title, command and machine lines, the median table and the listing
		# table; every round's rows stay in bench/out.
		awk '
			/^## / && !seen { sub(/^## /, "#### "); print; seen = 1; next }
			/^Command:|^Machine:/ { print; print ""; next }
			/^Median over/ { on = 1 }
			/^Every round:/ { on = 0 }
			/^Listing a / { on = 1 }
			/^Run took/ { print; on = 0; next }
			on { print }
		' "$latest"
	fi
	if [[ -f $suite ]]; then
		echo
		echo "Suite run (\`mailnfs bench ... deliver\`, size mix, with a local directory as the physical limit):"
		echo
		echo '```'
		cat "$suite"
		echo '```'
	fi
} >"$block"

awk -v block="$block" '
	/^<!-- make bench: begin -->$/ { print; while ((getline l < block) > 0) print l; skip = 1; next }
	/^<!-- make bench: end -->$/ { skip = 0 }
	!skip { print }
' README.md >README.md.new
if ! grep -q '^<!-- make bench: begin -->$' README.md.new; then
	rm -f README.md.new
	echo "bench/readme.sh: README.md has no '<!-- make bench: begin -->' marker" >&2
	exit 1
fi
mv README.md.new README.md
echo "bench/readme.sh: README.md updated from the files in bench/out" >&2
