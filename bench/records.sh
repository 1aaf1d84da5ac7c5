#!/usr/bin/env bash
# Safeguarding records, as the DSL uses them: searching many concerns (whole words, a child's
# surname, two words among open records, a concern's number) and opening a chronology of 500
# entries in the console (its reads, the page and the audit entry, through the console's own
# router in this process). Concerns are invented (`haven records generate`: the demo's pupils,
# each concern written and audited as a member of staff writes one).
#
#   bench/records.sh [CONCERNS]                 default 100,000 into SQLite
#   HAVEN_STORE_URL=postgres://… bench/records.sh 100000    the same against PostgreSQL
#
# The aims (issue 15): a chronology of 500 entries renders in under 100 ms; searching 100,000
# concerns p99 under 50 ms. There is no open-source peer to run beside it (the schools' tools
# are commercial services), so the figures are absolute.
set -euo pipefail
cd "$(dirname "$0")/.."
CONCERNS=${1:-100000}
cargo build --release -q -p haven
HAVEN=$PWD/target/release/haven
WORK=$(mktemp -d /tmp/haven-bench-records.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== store: ${HAVEN_STORE_URL:-SQLite file in $WORK}"
"$HAVEN" --data-dir "$WORK" people import pupils config/demo-people/pupils.csv >/dev/null
"$HAVEN" --data-dir "$WORK" people import staff config/demo-people/staff.csv >/dev/null
echo "== writing $CONCERNS concerns (one transaction and audit entry each) and a chronology of 500"
out=$("$HAVEN" --data-dir "$WORK" records generate --count "$CONCERNS" --long 500)
echo "$out"
child=$(echo "$out" | sed -n 's/.*for pupil \([0-9]*\) .*/\1/p')
[ -z "${HAVEN_STORE_URL:-}" ] && echo "== database size: $(du -sh "$WORK"/haven.db* | awk '{print $1}' | paste -sd+)"
echo "== timings (200 of each)"
"$HAVEN" --data-dir "$WORK" records bench --child "$child" --rounds 200
