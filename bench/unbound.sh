#!/usr/bin/env bash
# Haven's DNS filter against Unbound, side by side, with the same blocklist and the same queries.
#
#   bench/unbound.sh [--pad NAMES]     e.g. --pad 4600000 pads the list with synthetic names
#
# Each server is pinned to core 1; dnsperf and the upstream share core 0. The upstream is a second
# Unbound that answers every name with 192.0.2.1, so nothing leaves the machine. Prints queries
# per second, latency, resident memory, start time, and queries lost while each reloads its lists.
# Needs: unbound, dnsperf (Debian; installed if missing and run as root), python3, taskset, and
# the UT1 lists at ../shared/data/ut1 (or UT1=/path).
set -euo pipefail
cd "$(dirname "$0")/.."
PAD=0
[ "${1:-}" = "--pad" ] && PAD=${2:?names}
UT1=${UT1:-$(cd ../shared/data/ut1 2>/dev/null && pwd || true)}
[ -d "$UT1" ] || { echo "UT1 lists not found (set UT1=/path/to/ut1)"; exit 1; }
CATS=(adult agressif chat dating doh drogue gambling games hacking malware mixed_adult phishing redirector social_networks vpn warez)
DURATION=${DURATION:-15}

for pkg in unbound:unbound dnsperf:dnsperf; do
  command -v "${pkg#*:}" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkg%%:*}" >/dev/null; }
done
# Debian starts its own unbound on install; it is not part of this run.
systemctl stop unbound 2>/dev/null || true
cargo build --release -q -p haven
HAVEN=$PWD/target/release/haven
WORK=$(mktemp -d /tmp/haven-bench-dns.XXXXXX)
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
UP=$(port); UB=$(port); HV=$(port)

echo "== lists: ${#CATS[@]} UT1 categories$([ "$PAD" -gt 0 ] && echo ", padded with synthetic names to $PAD")"
mkdir -p "$WORK/tree"
for c in "${CATS[@]}"; do
  [ -f "$UT1/$c/domains" ] && { mkdir -p "$WORK/tree/$c"; ln -s "$UT1/$c/domains" "$WORK/tree/$c/domains"; }
done
python3 - "$WORK" "$PAD" "$UT1" "${CATS[@]}" <<'PY'
import random, sys, os
work, pad, ut1, cats = sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4:]
def names(path):
    try:
        for l in open(path, encoding="utf-8", errors="replace"):
            l = l.strip().lower().lstrip(".").rstrip(".")
            if l.startswith("www.") and l.count(".") > 1: l = l[4:]
            if l and not l.replace(".", "").isdigit() and all(c.isalnum() or c in "-_." for c in l) and "." in l:
                yield l
    except FileNotFoundError:
        return
blocked = set()
for c in cats: blocked.update(names(f"{ut1}/{c}/domains"))
if pad > len(blocked):
    rng = random.Random(46)
    words = ["blue","cloud","north","river","stone","pixel","lucky","prime","swift","green"]
    tlds = ["com","net","org","info","xyz","top","de","fr","ru","io"]
    os.makedirs(f"{work}/tree/synthetic", exist_ok=True)
    with open(f"{work}/tree/synthetic/domains", "w") as f:
        for i in range(pad - len(blocked)):
            n = f"{rng.choice(words)}{i}{rng.choice(words)}.{rng.choice(tlds)}"
            f.write(n + "\n"); blocked.add(n)
with open(f"{work}/blocklist.conf", "w") as f:
    for n in sorted(blocked):
        f.write(f'local-zone: "{n}." always_nxdomain\n')
others = set()
for c in sorted(os.listdir(ut1)):
    if c not in cats and os.path.isdir(f"{ut1}/{c}"):
        others.update(n for n in names(f"{ut1}/{c}/domains") if n not in blocked)
listed = sorted(blocked)
others = sorted(others)
rng = random.Random(20261122)
with open(f"{work}/queries", "w") as f:
    for i in range(200000):
        if rng.random() < 0.4:
            f.write(f"{rng.choice(['', 'www.', 'cdn.'])}{rng.choice(listed)} A\n")
        else:
            f.write(f"{rng.choice(['', 'www.'])}{rng.choice(others)} {rng.choice(['A', 'A', 'AAAA'])}\n")
print(f"   {len(blocked):,} blocked names; 200,000 queries (40% blocked names, 60% from {len(others):,} others)")
PY
# The synthetic folder maps to nothing: block it explicitly for the benchmark's group.
cat > "$WORK/policy.toml" <<'EOF'
[groups.bench]
default = "allow"
categories = { pornography = "block", hate-speech = "block", chat = "block", dating = "block",
  doh = "block", drugs = "block", gambling = "block", games = "block", hacking = "block",
  malware = "block", adult-themes = "block", phishing = "block", vpn-proxy = "block",
  social-networks = "block", piracy = "block", "ut1:synthetic" = "block" }
EOF

unbound_server() { # unbound_server PORT NAME: the server: lines both Unbounds share
  printf 'server:\n  interface: 127.0.0.1@%s\n  do-ip6: no\n  access-control: 127.0.0.0/8 allow\n' "$1"
  printf '  num-threads: 1\n  username: ""\n  chroot: ""\n  directory: "%s"\n' "$WORK"
  printf '  pidfile: "%s/%s.pid"\n  use-syslog: no\n  logfile: ""\n' "$WORK" "$2"
}

echo "== the upstream: an Unbound answering every name (core 0)"
unbound_server "$UP" upstream > "$WORK/upstream.conf"
cat >> "$WORK/upstream.conf" <<EOF
  local-zone: "." redirect
  local-data: ". 3600 IN A 192.0.2.1"
  local-data: ". 3600 IN AAAA 2001:db8::1"
EOF
taskset -c 0 unbound -d -c "$WORK/upstream.conf" & PIDS+=($!)

echo "== Unbound with the blocklist (core 1)"
unbound_server "$UB" unbound > "$WORK/unbound.conf"
cat >> "$WORK/unbound.conf" <<EOF
  do-not-query-localhost: no
  msg-cache-size: 128m
  rrset-cache-size: 256m
  # The same socket buffer Haven asks for (Unbound's tuning guide recommends it too).
  so-rcvbuf: 4m
  include: "$WORK/blocklist.conf"
remote-control:
  control-enable: yes
  control-use-cert: no
  control-interface: 127.0.0.1
  control-port: $(port)
forward-zone:
  name: "."
  forward-addr: 127.0.0.1@$UP
EOF

echo "== Haven with the same lists (core 1)"
"$HAVEN" --data-dir "$WORK/haven" lists import "$WORK/tree" --name ut1 --mapping ut1 | tail -2
cp "$WORK/policy.toml" "$WORK/haven/policy.toml"
HM=$((HV + 1))
cat > "$WORK/haven/haven.toml" <<EOF
default_group = "bench"
[dns]
listen = ["127.0.0.1:$HV"]
upstreams = ["127.0.0.1:$UP"]
cache_entries = 1000000
# dnsperf asks from one address; Unbound has no per-address limit by default either.
rate_limit_qps = 0
[metrics]
listen = "127.0.0.1:$HM"
EOF
# The same with no events recorded, to show what recording every query into the store costs.
sed 's/^\[metrics\]/[events]\nlog = false\n[metrics]/' "$WORK/haven/haven.toml" > "$WORK/haven-nolog.toml"

wait_answer() { # wait_answer PORT -> seconds until the first answer
  python3 - "$1" <<'PY'
import socket, sys, time
port = int(sys.argv[1]); t0 = time.time()
q = bytes.fromhex("abcd01000001000000000000") + b"\x07example\x03com\x00\x00\x01\x00\x01"
while time.time() - t0 < 120:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); s.settimeout(0.05)
    try:
        s.sendto(q, ("127.0.0.1", port)); s.recv(512); print(f"{time.time() - t0:.2f}"); sys.exit(0)
    except OSError:
        time.sleep(0.02)
print("never"); sys.exit(1)
PY
}
rss_mb() { echo $(( $(ps -o rss= -p "$1") / 1024 )); }
# Resident memory that is the process's own (RssAnon): without file pages mapped in, such as
# SQLite's memory-mapped database, which the kernel can drop and read back at will.
anon_mb() { echo $(( $(awk '/^RssAnon/ {print $2}' "/proc/$1/status") / 1024 )); }
perf() { # perf PORT SECONDS [extra dnsperf args] -> "qps latency lost"
  taskset -c 0 dnsperf -s 127.0.0.1 -p "$1" -d "$WORK/queries" -l "$2" -c 8 -q 500 -t 2 "${@:3}" 2>/dev/null \
    | awk '/Queries per second/ {q=$4} /Average Latency/ {l=$4} /Queries lost/ {lost=$3} END {print q, l, lost}'
}

declare -A QPS LAT MEM ANON START LOST
run_server() { # NAME PORT START-CMD... (the server's pid is the last background job)
  local name=$1 p=$2; shift 2
  local t0; t0=$(date +%s.%N)
  taskset -c 1 "$@" >"$WORK/$name.out" 2>&1 & local pid=$!; PIDS+=("$pid")
  local waited; waited=$(wait_answer "$p")
  START[$name]=$(python3 -c "print(f'{$(date +%s.%N) - $t0:.2f}')")
  echo "   $name answering after ${START[$name]} s (probe: $waited s)"
  perf "$p" 5 >/dev/null                      # warm the caches
  read -r q l _ < <(perf "$p" "$DURATION")
  QPS[$name]=$q; LAT[$name]=$l; MEM[$name]=$(rss_mb "$pid"); ANON[$name]=$(anon_mb "$pid")
  echo "   $name: $q queries/s, average latency $l s, resident ${MEM[$name]} MB (own ${ANON[$name]} MB)"
  # Reload under load: a steady 20,000 queries/s for 8 s, reloading the lists at 2 s.
  (sleep 2; if [ "$name" = unbound ]; then unbound-control -c "$WORK/unbound.conf" reload >/dev/null; else kill -HUP "$pid"; fi) &
  read -r _ _ lost < <(perf "$p" 8 -Q 20000)
  LOST[$name]=$lost
  echo "   $name: $lost queries lost during a reload"
  if [ "$name" = haven ]; then
    curl -s "http://127.0.0.1:$HM/metrics" | awk '/^haven_events_(stored|dropped)_total/ {printf "   haven: %s %s\n", $1, $2}'
  fi
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

run_server unbound "$UB" unbound -d -c "$WORK/unbound.conf"
run_server haven "$HV" "$HAVEN" --data-dir "$WORK/haven" serve
run_server haven-nolog "$HV" "$HAVEN" --data-dir "$WORK/haven" serve --config "$WORK/haven-nolog.toml"

echo "== results"
python3 - "${QPS[unbound]}" "${QPS[haven]}" "${MEM[unbound]}" "${MEM[haven]}" "${START[unbound]}" "${START[haven]}" "${LOST[unbound]}" "${LOST[haven]}" "${LAT[unbound]}" "${LAT[haven]}" "${QPS[haven-nolog]}" <<'PY'
import sys
qu, qh, mu, mh, su, sh, lu, lh, latu, lath, qn = sys.argv[1:]
print(f"   {'':10} {'queries/s':>12} {'latency ms':>11} {'resident MB':>12} {'start s':>8} {'lost in reload':>15}")
print(f"   {'Unbound':10} {float(qu):>12,.0f} {float(latu)*1000:>11.3f} {int(mu):>12} {float(su):>8.2f} {lu:>15}")
print(f"   {'Haven':10} {float(qh):>12,.0f} {float(lath)*1000:>11.3f} {int(mh):>12} {float(sh):>8.2f} {lh:>15}")
print(f"   Haven: {float(qh)/float(qu):.2f}x Unbound's queries/s, {int(mh)/int(mu):.2f}x its memory")
print(f"   Haven recording no events: {float(qn):,.0f} queries/s, {float(qn)/float(qu):.2f}x Unbound's")
PY
echo "   own memory (RssAnon, no mapped files): Unbound ${ANON[unbound]} MB, Haven ${ANON[haven]} MB, Haven recording no events ${ANON[haven-nolog]} MB"
