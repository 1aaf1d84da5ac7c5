#!/usr/bin/env bash
# Pages through the real proxy as a key stage 2 pupil: each page under DIR/harmful should be
# blocked (403), each under DIR/proper allowed (200). Prints one line a page and the totals.
# Runs in its own network namespace (loopback only), with the built-in policy and lists.
#
#   bench/pages-eval.sh DIR [HAVEN_BINARY]
set -euo pipefail
cd "$(dirname "$0")/.."
DIR=$(realpath "$1")
HAVEN=$(realpath "${2:-target/release/haven}")
if [ "${HAVEN_IN_NETNS:-}" != 1 ]; then
  exec unshare -n env HAVEN_IN_NETNS=1 bash -c 'ip link set lo up && exec "$0" "$@"' "$0" "$@"
fi
WORK=$(mktemp -d /tmp/haven-pages-eval.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
sed -e 's/^allow_loopback = false/allow_loopback = true/' \
    -e 's/^# hosts = .*/hosts = { "pages.test" = "127.0.0.1" }/' config/haven.toml > "$WORK/haven.toml"
(cd "$DIR" && exec python3 -m http.server 8099 --bind 127.0.0.1 >/dev/null 2>&1) &
"$HAVEN" --data-dir "$WORK/data" serve --config "$WORK/haven.toml" > "$WORK/serve.log" 2>&1 &
for _ in $(seq 100); do
  curl -sf -o /dev/null -x http://127.0.0.1:3128 http://pages.test:8099/ && break
  sleep 0.2
done
blocked=0; allowed=0; nh=0; np=0
for kind in harmful proper; do
  for f in "$DIR/$kind"/*.html; do
    name=$(basename "$f")
    code=$(curl -s -o "$WORK/body" -w '%{http_code}' -x http://127.0.0.1:3128 "http://pages.test:8099/$kind/$name")
    if [ "$kind" = harmful ]; then nh=$((nh+1)); [ "$code" = 403 ] && blocked=$((blocked+1)); else np=$((np+1)); [ "$code" = 200 ] && allowed=$((allowed+1)); fi
    why=""
    [ "$code" = 403 ] && why=$(grep -o 'classified as [a-z-]*\|content score [0-9]*\|read as [a-z-]*' "$WORK/body" | head -1 || true)
    printf '%-8s %s %-50s %s\n' "$kind" "$code" "$name" "$why"
  done
done
echo "harmful pages blocked: $blocked of $nh; proper pages allowed: $allowed of $np"
