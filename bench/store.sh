#!/usr/bin/env bash
# The store, as the console uses it: how fast events go in, and how fast activity searches
# come back over many events. Events are invented (`haven events generate`: the demo's people,
# sites, blocks and searches, spread over 30 days) and written in the event writer's batches.
#
#   bench/store.sh [EVENTS]                 default 10,000,000 into SQLite
#   HAVEN_STORE_URL=postgres://… bench/store.sh 1000000    the same against PostgreSQL
set -euo pipefail
cd "$(dirname "$0")/.."
EVENTS=${1:-10000000}
cargo build --release -q -p haven
HAVEN=$PWD/target/release/haven
WORK=$(mktemp -d /tmp/haven-bench-store.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "== machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "== store: ${HAVEN_STORE_URL:-SQLite file in $WORK}"
"$HAVEN" --data-dir "$WORK" people import pupils config/demo-people/pupils.csv >/dev/null
"$HAVEN" --data-dir "$WORK" people import staff config/demo-people/staff.csv >/dev/null

echo "== ingestion: $EVENTS events in time order over 30 days, as they arrive (rate per million)"
"$HAVEN" --data-dir "$WORK" events generate --count "$EVENTS" --days 30
echo "== events stored: $("$HAVEN" --data-dir "$WORK" events count)"
[ -z "${HAVEN_STORE_URL:-}" ] && echo "== database size: $(du -sh "$WORK"/haven.db* | awk '{print $1}' | paste -sd+)"

echo "== activity searches (first page of 50 and the next page; per page)"
"$HAVEN" --data-dir "$WORK" events bench-search --rounds 100
