#!/usr/bin/env bash
# Haven's policy decisions against squidGuard's, side by side, on the same UT1 categories and the
# same URL mix, each pinned to one core. Prints decisions/s, peak memory and the ratio, and checks
# that both gave the same verdicts (explaining each kind of difference).
#
#   bench/squidguard.sh [LINES]        default 1,000,000 lines
#
# Needs: squidguard and time (Debian; installed if missing and run as root), python3, taskset,
# and the UT1 lists at ../shared/data/ut1 (or UT1=/path).
set -euo pipefail
cd "$(dirname "$0")/.."
LINES=${1:-1000000}
UT1=${UT1:-$(cd ../shared/data/ut1 2>/dev/null && pwd || true)}
[ -d "$UT1" ] || { echo "UT1 lists not found (set UT1=/path/to/ut1)"; exit 1; }
# The categories a primary school blocks that UT1 has; squidGuard's reference figure used 16.
CATS=(adult agressif chat dating doh drogue gambling games hacking malware mixed_adult phishing redirector social_networks vpn warez)

for pkg in squidguard:squidGuard time:/usr/bin/time; do
  cmd=${pkg#*:}
  if ! command -v "$cmd" >/dev/null 2>&1; then
    echo "installing ${pkg%%:*}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkg%%:*}" >/dev/null
  fi
done

cargo build --release -q -p haven
HAVEN=$PWD/target/release/haven
WORK=$(mktemp -d /tmp/haven-bench-sg.XXXXXX)
trap 'rm -rf "$WORK"' EXIT
CORE=$(( $(nproc) > 1 ? 1 : 0 ))

echo "== the same lists for both: ${#CATS[@]} UT1 categories (domains and urls files)"
mkdir -p "$WORK/tree" "$WORK/sgdb"
for c in "${CATS[@]}"; do
  mkdir -p "$WORK/tree/$c" "$WORK/sgdb/$c"
  for f in domains urls; do
    if [ -f "$UT1/$c/$f" ]; then
      ln -s "$UT1/$c/$f" "$WORK/tree/$c/$f"
      cp "$UT1/$c/$f" "$WORK/sgdb/$c/$f"
    fi
  done
done
cat "$WORK"/tree/*/domains | wc -l | xargs printf "   %s domain lines\n"

echo "== URL mix"
python3 bench/urlmix.py generate "$UT1" "$WORK/mix" "$LINES" "${CATS[@]}"

echo "== squidGuard: build its databases (not timed as decisions)"
{
  echo "dbhome $WORK/sgdb"
  echo "logdir $WORK"
  for c in "${CATS[@]}"; do
    echo "dest $c {"
    [ -f "$WORK/sgdb/$c/domains" ] && echo "  domainlist $c/domains"
    [ -f "$WORK/sgdb/$c/urls" ] && echo "  urllist $c/urls"
    echo "}"
  done
  echo "acl { default { pass $(printf '!%s ' "${CATS[@]}")all"
  echo "  redirect http://haven.invalid/blocked } }"
} > "$WORK/squidGuard.conf"
/usr/bin/time -f "   built in %e s" squidGuard -c "$WORK/squidGuard.conf" -C all 2>&1 | grep built

echo "== Haven: import the same tree, a policy that blocks what it maps to"
"$HAVEN" --data-dir "$WORK/haven" lists import "$WORK/tree" --name ut1 --mapping ut1 | tail -2
cat > "$WORK/haven/policy.toml" <<'EOF'
[groups.bench]
default = "allow"
categories = { pornography = "block", hate-speech = "block", chat = "block", dating = "block",
  doh = "block", drugs = "block", gambling = "block", games = "block", hacking = "block",
  malware = "block", adult-themes = "block", phishing = "block", vpn-proxy = "block",
  social-networks = "block", piracy = "block" }
EOF
"$HAVEN" --data-dir "$WORK/haven" policy check

run() { # run NAME OUT CMD... ; prints "seconds peak-KiB"
  local name=$1 out=$2; shift 2
  taskset -c "$CORE" /usr/bin/time -o "$WORK/$name.time" -f "%e %M" "$@" < "$WORK/mix" > "$out"
  cat "$WORK/$name.time"
}

echo "== decisions, each pinned to core $CORE"
read -r SG_S SG_KB < <(run squidguard "$WORK/sg.out" squidGuard -c "$WORK/squidGuard.conf")
read -r HV_S HV_KB < <(run haven "$WORK/hv.out" "$HAVEN" --data-dir "$WORK/haven" check --batch --group bench --at 2026-11-23T10:00)

python3 - "$LINES" "$SG_S" "$SG_KB" "$HV_S" "$HV_KB" <<'EOF'
import sys
n, sg_s, sg_kb, hv_s, hv_kb = int(sys.argv[1]), *map(float, sys.argv[2:])
sg_s, hv_s = max(sg_s, 0.01), max(hv_s, 0.01)
print(f"   {'':12} {'decisions/s':>14} {'seconds':>9} {'peak MiB':>9}")
print(f"   {'squidGuard':12} {n/sg_s:>14,.0f} {sg_s:>9.2f} {sg_kb/1024:>9.1f}")
print(f"   {'Haven':12} {n/hv_s:>14,.0f} {hv_s:>9.2f} {hv_kb/1024:>9.1f}")
print(f"   ratio: Haven {sg_s/hv_s:.1f}x squidGuard's decisions/s, {hv_kb/sg_kb:.2f}x its memory")
EOF

echo "== verdicts"
python3 bench/urlmix.py compare "$UT1" "$WORK/mix" "$WORK/hv.out" "$WORK/sg.out" "${CATS[@]}"

echo "== the two failures the issue names, on a four-line list, both programs"
mkdir -p "$WORK/tiny/db/gamb" "$WORK/tiny/tree/gambling"
printf 'casino.example\nsub.casino.example\n' | tee "$WORK/tiny/db/gamb/domains" > "$WORK/tiny/tree/gambling/domains"
printf 'news.example//bet/\nnews.example/caf%%C3%%A9/\n' | tee "$WORK/tiny/db/gamb/urls" > "$WORK/tiny/tree/gambling/urls"
cat > "$WORK/tiny/sg.conf" <<CONF
dbhome $WORK/tiny/db
logdir $WORK/tiny
dest gamb {
  domainlist gamb/domains
  urllist gamb/urls
}
acl { default { pass !gamb all
  redirect http://haven.invalid/blocked } }
CONF
squidGuard -c "$WORK/tiny/sg.conf" -C all 2>/dev/null
"$HAVEN" --data-dir "$WORK/tiny/h" lists import "$WORK/tiny/tree" --name tiny >/dev/null
printf '[groups.bench]\ncategories = { gambling = "block" }\n' > "$WORK/tiny/h/policy.toml"
printf '%s 10.0.0.1/- - GET\n' http://www.casino.example/ http://a.sub.casino.example/ http://news.example//bet/x \
  http://news.example/bet/x http://news.example/caf%C3%A9/menu > "$WORK/tiny/mix"
paste -d' ' <(cut -d' ' -f1 "$WORK/tiny/mix") \
  <(squidGuard -c "$WORK/tiny/sg.conf" < "$WORK/tiny/mix" | sed 's/^OK.*/block/; s/^ERR.*/pass/; s/^/squidGuard:/') \
  <("$HAVEN" --data-dir "$WORK/tiny/h" check --batch --group bench < "$WORK/tiny/mix" | sed 's/^OK.*/block/; s/^ERR.*/pass/; s/^/Haven:/') \
  | column -t | sed 's/^/   /'
