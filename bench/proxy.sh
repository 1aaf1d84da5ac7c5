#!/usr/bin/env bash
# Haven's proxy against Squid, Squid + squidGuard, and e2guardian, side by side, on one local
# nginx origin with the same 1 KiB and 35 KiB pages.
#
#   bench/proxy.sh
#
# Each proxy is pinned to core 1; nginx and wrk share core 0. Squid does not cache (cache deny
# all), so every request reaches the origin as it does through Haven. Squid+squidGuard and Haven
# filter with the same UT1 categories as bench/squidguard.sh; e2guardian and Haven-with-scoring
# use e2guardian's packaged weighted phrase lists (imported into Haven) with the same limit (50).
# Haven-with-scoring also grades each page for monitoring (the default); it runs a second time
# with that off, and a third time also classifying each page with the learned model
# (classify_pages, as the shipped policy does for pupils). Prints requests per second for each
# page and the ratios.
# Needs: nginx-light, squid, squidguard, e2guardian, wrk (Debian; installed if missing and run as
# root), python3, taskset, and the UT1 lists at ../shared/data/ut1 (or UT1=/path).
set -euo pipefail
cd "$(dirname "$0")/.."
UT1=${UT1:-$(cd ../shared/data/ut1 2>/dev/null && pwd || true)}
[ -d "$UT1" ] || { echo "UT1 lists not found (set UT1=/path/to/ut1)"; exit 1; }
CATS=(adult agressif chat dating doh drogue gambling games hacking malware mixed_adult phishing redirector social_networks vpn warez)
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}

for pkg in nginx-light:nginx squid:squid squidguard:squidGuard e2guardian:e2guardian wrk:wrk; do
  command -v "${pkg#*:}" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkg%%:*}" >/dev/null; }
done
# Debian starts its own services on install; they are not part of this run.
systemctl stop nginx squid e2guardian 2>/dev/null || true
cargo build --release -q -p haven
HAVEN=$PWD/target/release/haven
WORK=$(mktemp -d /tmp/haven-bench-proxy.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; pkill -f "$WORK" 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
ORIGIN=$(port)

echo "== origin: nginx on core 0, pages of 1 KiB and 35 KiB (ordinary school-website text)"
mkdir -p "$WORK/www" "$WORK/nginx"
python3 - "$WORK/www" <<'PY'
import sys, random
out = sys.argv[1]
rng = random.Random(7)
words = ("the school library opens at nine and pupils may borrow two books each week for reading "
         "at home our year five class visited the science museum to learn about electricity and "
         "magnets the football team won their match on saturday parents evening is next thursday "
         "please remember to bring a coat because the weather is turning colder").split()
def page(size):
    head = "<!doctype html><html><head><title>Greenfield Primary news</title></head><body><h1>News</h1>"
    body = []
    n = len(head) + 20
    while n < size:
        p = "<p>" + " ".join(rng.choice(words) for _ in range(20)) + ".</p>"
        body.append(p); n += len(p)
    html = head + "".join(body) + "</body></html>"
    return html[:size - 14] + "</body></html>" if len(html) > size else html
open(f"{out}/1k.html", "w").write(page(1024))
open(f"{out}/35k.html", "w").write(page(35 * 1024))
PY
cat > "$WORK/nginx/nginx.conf" <<EOF
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log;
events { worker_connections 4096; }
http {
  access_log off;
  types { text/html html; }
  keepalive_requests 100000;
  server { listen 127.0.0.1:$ORIGIN; root $WORK/www; }
}
EOF
taskset -c 0 nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' & PIDS+=($!)

echo "== lists: ${#CATS[@]} UT1 categories for Haven and squidGuard; e2guardian's phrase lists"
mkdir -p "$WORK/tree" "$WORK/sg/db"
for c in "${CATS[@]}"; do
  if [ -f "$UT1/$c/domains" ]; then
    mkdir -p "$WORK/tree/$c" "$WORK/sg/db/$c"
    ln -s "$UT1/$c/domains" "$WORK/tree/$c/domains"
    cp "$UT1/$c/domains" "$WORK/sg/db/$c/domains"
    [ -f "$UT1/$c/urls" ] && cp "$UT1/$c/urls" "$WORK/sg/db/$c/urls" || touch "$WORK/sg/db/$c/urls"
  fi
done
"$HAVEN" --data-dir "$WORK/haven" lists import "$WORK/tree" --name ut1 --mapping ut1 | tail -1
"$HAVEN" --data-dir "$WORK/haven-score" lists import "$WORK/tree" --name ut1 --mapping ut1 >/dev/null
"$HAVEN" --data-dir "$WORK/haven-score" phrases import /etc/e2guardian/lists/weightedphraselist --name e2 | head -1
"$HAVEN" --data-dir "$WORK/haven-classify" lists import "$WORK/tree" --name ut1 --mapping ut1 >/dev/null
"$HAVEN" --data-dir "$WORK/haven-classify" phrases import /etc/e2guardian/lists/weightedphraselist --name e2 >/dev/null
for d in haven haven-score haven-classify; do
  limit=""; [ "$d" = haven-score ] && limit="phrase_limit = 50"
  [ "$d" = haven-classify ] && limit='phrase_limit = 50
classify_pages = ["self-harm", "suicide", "drugs", "gambling", "extremism", "pornography", "violence", "exploitation", "illegal", "discrimination"]'
  cat > "$WORK/$d/policy.toml" <<EOF
[groups.bench]
default = "allow"
$limit
categories = { pornography = "block", hate-speech = "block", chat = "block", dating = "block",
  doh = "block", drugs = "block", gambling = "block", games = "block", hacking = "block",
  malware = "block", adult-themes = "block", phishing = "block", vpn-proxy = "block",
  social-networks = "block", piracy = "block" }
EOF
done

# squidGuard: the same categories, compiled to its databases.
{
  echo "dbhome $WORK/sg/db"; echo "logdir $WORK/sg"
  for c in "${CATS[@]}"; do [ -d "$WORK/sg/db/$c" ] && printf 'dest %s {\n domainlist %s/domains\n urllist %s/urls\n}\n' "$c" "$c" "$c"; done
  printf 'acl {\n default {\n  pass'
  for c in "${CATS[@]}"; do [ -d "$WORK/sg/db/$c" ] && printf ' !%s' "$c"; done
  printf ' all\n  redirect http://127.0.0.1/blocked\n }\n}\n'
} > "$WORK/sg/squidGuard.conf"
squidGuard -c "$WORK/sg/squidGuard.conf" -C all 2>/dev/null || true

squid_conf() { # squid_conf PORT NAME [extra lines]
  cat <<EOF
http_port 127.0.0.1:$1
pid_filename $WORK/$2.pid
cache deny all
cache_mem 8 MB
access_log none
cache_log $WORK/$2.cache.log
coredump_dir $WORK
http_access allow localhost
http_access deny all
workers 1
shutdown_lifetime 1 second
${3:-}
EOF
}

cat > "$WORK/proxy.lua" <<'EOF'
-- wrk through a forward proxy: the request line carries the absolute URL.
wrk.path = os.getenv("TARGET")
wrk.headers["Host"] = os.getenv("TARGET_HOST")
EOF

declare -A RPS
bench() { # bench NAME PORT
  local name=$1 p=$2 page
  for page in 1k 35k; do
    # warm up, then measure
    TARGET="http://127.0.0.1:$ORIGIN/$page.html" TARGET_HOST="127.0.0.1:$ORIGIN" \
      taskset -c 0 wrk -t1 -c"$CONNS" -d2s -s "$WORK/proxy.lua" "http://127.0.0.1:$p" >/dev/null 2>&1 || true
    local out
    out=$(TARGET="http://127.0.0.1:$ORIGIN/$page.html" TARGET_HOST="127.0.0.1:$ORIGIN" \
      taskset -c 0 wrk -t1 -c"$CONNS" -d"${DURATION}s" -s "$WORK/proxy.lua" "http://127.0.0.1:$p" 2>&1)
    local rps errs
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    errs=$(echo "$out" | awk '/Non-2xx/ {print $5}')
    RPS[$name/$page]=${rps:-0}
    echo "   $name $page: ${rps:-0} req/s${errs:+, $errs non-2xx answers}"
  done
}
wait_port() { for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened"; return 1; }

haven_conf() { # haven_conf DIR PORT
  cat > "$1/haven.toml" <<EOF
default_group = "bench"
[dns]
listen = ["127.0.0.1:$(port)"]
upstreams = ["127.0.0.1:9"]
[proxy]
listen = ["127.0.0.1:$2"]
# The benchmark's origin is on loopback, which Haven refuses by default.
allow_loopback = true
[events]
log = true
EOF
}

echo "== Squid (core 1)"
P=$(port); squid_conf "$P" squid > "$WORK/squid.conf"
taskset -c 1 squid -N -f "$WORK/squid.conf" 2>"$WORK/squid.log" & SP=$!; PIDS+=($SP); wait_port "$P"; bench squid "$P"; kill $SP || true; wait $SP 2>/dev/null || true

echo "== Squid + squidGuard (core 1)"
P=$(port); squid_conf "$P" squidsg "url_rewrite_program $(command -v squidGuard) -c $WORK/sg/squidGuard.conf
url_rewrite_children 16 startup=16 idle=4" > "$WORK/squidsg.conf"
taskset -c 1 squid -N -f "$WORK/squidsg.conf" 2>"$WORK/squidsg.log" & SP=$!; PIDS+=($SP); wait_port "$P"; sleep 1; bench squid+squidGuard "$P"; kill $SP || true; wait $SP 2>/dev/null || true

echo "== Haven, lists, no scoring (core 1)"
P=$(port); haven_conf "$WORK/haven" "$P"
taskset -c 1 "$HAVEN" --data-dir "$WORK/haven" serve >/dev/null 2>&1 & HP=$!; PIDS+=($HP); wait_port "$P"; bench haven "$P"; kill $HP || true; wait $HP 2>/dev/null || true

echo "== e2guardian, phrase scanning, limit 50 (core 1)"
P=$(port)
mkdir -p "$WORK/e2"
sed -e "s/^filterports = .*/filterports = $P/" -e "s|^#pidfilename = .*|pidfilename = '$WORK/e2/e2.pid'|" \
    -e "s|^#loglocation = .*|loglocation = '$WORK/e2/access.log'|" -e "s/^nodaemon = .*/nodaemon = on/" \
    -e "s/^#daemonuser = .*/daemonuser = 'root'/" -e "s/^#daemongroup = .*/daemongroup = 'root'/" \
    /etc/e2guardian/e2guardian.conf > "$WORK/e2/e2guardian.conf"
cp /etc/e2guardian/e2guardianf1.conf "$WORK/e2/"
grep -q "^nodaemon" "$WORK/e2/e2guardian.conf" || echo "nodaemon = on" >> "$WORK/e2/e2guardian.conf"
taskset -c 1 e2guardian -c "$WORK/e2/e2guardian.conf" >"$WORK/e2/out.log" 2>&1 & EP=$!; PIDS+=($EP)
if wait_port "$P"; then sleep 1; bench e2guardian "$P"; else cat "$WORK/e2/out.log"; RPS[e2guardian/1k]=0; RPS[e2guardian/35k]=0; fi
kill $EP 2>/dev/null || true; wait $EP 2>/dev/null || true

echo "== Haven, lists and scoring with e2guardian's phrase lists, limit 50 (core 1)"
P=$(port); haven_conf "$WORK/haven-score" "$P"
taskset -c 1 "$HAVEN" --data-dir "$WORK/haven-score" serve >/dev/null 2>&1 & HP=$!; PIDS+=($HP); wait_port "$P"; bench haven+scoring "$P"; kill $HP || true; wait $HP 2>/dev/null || true

echo "== The same, monitoring not grading pages ([monitor] pages = false) (core 1)"
P=$(port); haven_conf "$WORK/haven-score" "$P"; printf '[monitor]\npages = false\n' >> "$WORK/haven-score/haven.toml"
taskset -c 1 "$HAVEN" --data-dir "$WORK/haven-score" serve >/dev/null 2>&1 & HP=$!; PIDS+=($HP); wait_port "$P"; bench haven+scoring-nopages "$P"; kill $HP || true; wait $HP 2>/dev/null || true

echo "== The same with scoring, also classifying pages with the learned model (classify_pages) (core 1)"
P=$(port); haven_conf "$WORK/haven-classify" "$P"
taskset -c 1 "$HAVEN" --data-dir "$WORK/haven-classify" serve >/dev/null 2>&1 & HP=$!; PIDS+=($HP); wait_port "$P"; bench haven+classify "$P"; kill $HP || true; wait $HP 2>/dev/null || true

echo "== results (requests/s)"
python3 - "${RPS[squid/1k]}" "${RPS[squid/35k]}" "${RPS[squid+squidGuard/1k]}" "${RPS[squid+squidGuard/35k]}" \
  "${RPS[haven/1k]}" "${RPS[haven/35k]}" "${RPS[e2guardian/1k]}" "${RPS[e2guardian/35k]}" \
  "${RPS[haven+scoring/1k]}" "${RPS[haven+scoring/35k]}" \
  "${RPS[haven+scoring-nopages/1k]}" "${RPS[haven+scoring-nopages/35k]}" \
  "${RPS[haven+classify/1k]}" "${RPS[haven+classify/35k]}" <<'PY'
import sys
v = [float(x or 0) for x in sys.argv[1:]]
rows = [("Squid", v[0], v[1]), ("Squid + squidGuard", v[2], v[3]), ("Haven", v[4], v[5]),
        ("e2guardian (scanning)", v[6], v[7]), ("Haven (scoring)", v[8], v[9]),
        ("Haven (scoring, no pages)", v[10], v[11]), ("Haven (scoring + model)", v[12], v[13])]
print(f"   {'':24} {'1 KiB':>10} {'35 KiB':>10}")
for name, a, b in rows:
    print(f"   {name:24} {a:>10,.0f} {b:>10,.0f}")
r = lambda a, b: f"{a / b:.2f}x" if b else "n/a"
print(f"   Haven / Squid:                 {r(v[4], v[0])} (1 KiB), {r(v[5], v[1])} (35 KiB)")
print(f"   Haven / Squid + squidGuard:    {r(v[4], v[2])} (1 KiB), {r(v[5], v[3])} (35 KiB)")
print(f"   Haven scoring / e2guardian:    {r(v[8], v[6])} (1 KiB), {r(v[9], v[7])} (35 KiB)")
print(f"   ... pages not monitored:       {r(v[10], v[6])} (1 KiB), {r(v[11], v[7])} (35 KiB)")
print(f"   ... and classified by the model: {r(v[12], v[6])} (1 KiB), {r(v[13], v[7])} (35 KiB)")
PY
