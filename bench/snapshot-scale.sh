#!/usr/bin/env bash
# Snapshot size and load time at scale: the real UT1 lists padded with synthetic names (say so
# in any result) to NAMES listed names, then imported; the snapshot is loaded by `haven check`.
#
#   bench/snapshot-scale.sh [NAMES]      default 5,000,000
set -euo pipefail
cd "$(dirname "$0")/.."
NAMES=${1:-5000000}
UT1=${UT1:-$(cd ../shared/data/ut1 2>/dev/null && pwd || true)}
[ -d "$UT1" ] || { echo "UT1 lists not found (set UT1=/path/to/ut1)"; exit 1; }
command -v /usr/bin/time >/dev/null || { apt-get update -qq && apt-get install -y -qq time >/dev/null; }
cargo build --release -q -p haven
HAVEN=$PWD/target/release/haven
WORK=$(mktemp -d /tmp/haven-bench-scale.XXXXXX)
trap 'rm -rf "$WORK"' EXIT

mkdir -p "$WORK/tree"
for d in "$UT1"/*/; do
  c=$(basename "$d"); mkdir -p "$WORK/tree/$c"
  for f in domains urls; do [ -f "$d/$f" ] && ln -s "$d/$f" "$WORK/tree/$c/$f"; done
done
REAL=$(cat "$UT1"/*/domains | sort -u | wc -l)
PAD=$(( NAMES > REAL ? NAMES - REAL : 0 ))
mkdir -p "$WORK/tree/synthetic"
python3 - "$PAD" > "$WORK/tree/synthetic/domains" <<'PY'
import random, sys
rng = random.Random(5)
words = ["blue", "cloud", "north", "river", "stone", "pixel", "lucky", "prime", "swift", "green", "maple", "solar"]
tlds = ["com", "net", "org", "info", "xyz", "top", "co.uk", "de", "fr", "ru", "io", "online"]
for i in range(int(sys.argv[1])):
    print(f"{rng.choice(words)}{i}{rng.choice(words)}.{rng.choice(tlds)}")
PY
echo "== $NAMES names: $REAL unique real UT1 domains + $PAD synthetic"
/usr/bin/time -f "import: %e s, peak %M KB" "$HAVEN" --data-dir "$WORK/h" lists import "$WORK/tree" --mapping ut1 | tail -2
SNAP=$(stat -c %s "$WORK/h/lists/snapshot.hvn")
HOSTS=$("$HAVEN" --data-dir "$WORK/h" lists info --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["hosts"])')
echo "   snapshot $((SNAP / 1000000)) MB for $HOSTS hosts: $((SNAP / HOSTS)) bytes a listed name"
echo "== load: haven check (process start, read, checksum, validate, compile policy), 5 runs"
for i in 1 2 3 4 5; do
  /usr/bin/time -f "%e %M" "$HAVEN" --data-dir "$WORK/h" check www.example.com --group ks2 2>&1 >/dev/null | tail -1
done | sort -n | awk '{ t[NR]=$1; m=$2 } END { printf "   median %.2f s (min %.2f, max %.2f), resident %d MB\n", t[3], t[1], t[5], m/1024 }'
