#!/usr/bin/env bash
# TLS interception: Haven decrypting HTTPS with the school's CA (`haven ca init`, `intercept =
# true`) against Squid with ssl-bump (Debian's squid-openssl), side by side, on one local HTTPS
# nginx origin with the same 1 KiB and 35 KiB pages.
#
#   bench/tls-intercept.sh
#
# The client (bench/tls-load: CONNECT, TLS with the certificate the proxy mints, checked against
# the proxy's CA, then GETs) runs twice per page: a new connection per request (CONNECT, a
# handshake with the proxy, one request) and kept alive. Each proxy is pinned to core 1; nginx
# and the client share core 0, as in bench/proxy.sh. Squid does not cache, keeps its minted
# certificates in memory and on disk (security_file_certgen), and both proxies check the
# origin's certificate against the same test CA. Prints requests per second and the ratios.
# Needs: nginx-light, squid-openssl (`squid -v` shows --with-openssl), openssl, cargo, taskset.
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
CONNS=${CONNS:-32}

for pkg in nginx-light:nginx squid-openssl:squid; do
  command -v "${pkg#*:}" >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${pkg%%:*}" >/dev/null; }
done
squid -v | grep -q -- --with-openssl || { echo "this squid has no OpenSSL (install squid-openssl)"; exit 1; }
CERTGEN=$(ls /usr/lib/squid/security_file_certgen 2>/dev/null || command -v security_file_certgen || true)
[ -x "$CERTGEN" ] || { echo "security_file_certgen not found"; exit 1; }
systemctl stop nginx squid 2>/dev/null || true
cargo build --release -q -p haven
cargo build --release -q --manifest-path bench/tls-load/Cargo.toml --target-dir target/tls-load
HAVEN=$PWD/target/release/haven
LOAD=$PWD/target/tls-load/release/tls-load
WORK=$(mktemp -d /tmp/haven-bench-tls.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() { for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done; pkill -f "$WORK" 2>/dev/null || true; [ -n "${KEEP:-}" ] && echo "kept $WORK" || rm -rf "$WORK"; }
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (echo > "/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "port $1 never opened"; return 1; }
ORIGIN=$(port)
SITE=secure.example

echo "== certificates: a test CA for the origin ($SITE), Squid's CA, Haven's CA (haven ca init)"
(
  cd "$WORK"
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=Bench origin CA" -keyout origin-ca.key -out origin-ca.pem 2>/dev/null
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=$SITE" \
    -keyout origin.key -out origin.csr 2>/dev/null
  printf 'subjectAltName=DNS:%s\nbasicConstraints=CA:FALSE\n' "$SITE" > origin.ext
  openssl x509 -req -in origin.csr -CA origin-ca.pem -CAkey origin-ca.key -CAcreateserial \
    -days 2 -out origin.pem -extfile origin.ext 2>/dev/null
  # Squid's CA: the same kind of key Haven's CA has (ECDSA P-256).
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 \
    -subj "/CN=Bench Squid CA" -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" -keyout squid-ca.key -out squid-ca.pem 2>/dev/null
  cat squid-ca.pem squid-ca.key > squid-ca-bundle.pem
)

echo "== origin: nginx over TLS on core 0, pages of 1 KiB and 35 KiB"
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
  server {
    listen 127.0.0.1:$ORIGIN ssl;
    ssl_certificate $WORK/origin.pem;
    ssl_certificate_key $WORK/origin.key;
    root $WORK/www;
  }
}
EOF
taskset -c 0 nginx -c "$WORK/nginx/nginx.conf" -g 'daemon off;' & PIDS+=($!)
wait_port "$ORIGIN"

declare -A RPS
bench() { # bench NAME PORT CA
  local name=$1 p=$2 ca=$3 page mode flag out rps
  for page in 1k 35k; do
    for mode in new keep; do
      flag=""; [ "$mode" = new ] && flag="--new"
      # warm up (the minted certificate, the origin pool), then measure
      taskset -c 0 "$LOAD" --proxy "127.0.0.1:$p" --url "https://$SITE:$ORIGIN/$page.html" --ca "$ca" \
        --conns "$CONNS" --seconds 2 $flag >/dev/null 2>&1 || true
      out=$(taskset -c 0 "$LOAD" --proxy "127.0.0.1:$p" --url "https://$SITE:$ORIGIN/$page.html" --ca "$ca" \
        --conns "$CONNS" --seconds "$DURATION" $flag 2>&1 | tail -1)
      rps=$(echo "$out" | awk '{print $1}')
      RPS[$name/$page/$mode]=${rps:-0}
      echo "   $name $page $mode: $out"
    done
  done
}

echo "== Squid with ssl-bump (core 1)"
P=$(port)
# Squid drops root for its own user (Debian: proxy), which must own its certificate store.
SQUID_USER=$(id -un proxy 2>/dev/null || echo nobody)
mkdir -p "$WORK/squid"
"$CERTGEN" -c -s "$WORK/squid/ssl_db" -M 16MB >/dev/null
chown -R "$SQUID_USER" "$WORK/squid"
echo "127.0.0.1 $SITE" > "$WORK/hosts"
cat > "$WORK/squid.conf" <<SQUID
http_port 127.0.0.1:$P ssl-bump generate-host-certificates=on dynamic_cert_mem_cache_size=16MB tls-cert=$WORK/squid-ca-bundle.pem
sslcrtd_program $CERTGEN -s $WORK/squid/ssl_db -M 16MB
sslcrtd_children 8 startup=2 idle=1
acl step1 at_step SslBump1
ssl_bump peek step1
ssl_bump bump all
tls_outgoing_options cafile=$WORK/origin-ca.pem
hosts_file $WORK/hosts
pid_filename $WORK/squid.pid
cache deny all
cache_mem 8 MB
access_log none
cache_log $WORK/squid/cache.log
coredump_dir $WORK
http_access allow localhost
http_access deny all
workers 1
shutdown_lifetime 1 second
SQUID
taskset -c 1 squid -N -f "$WORK/squid.conf" 2>"$WORK/squid.log" & SP=$!; PIDS+=($SP)
wait_port "$P"; sleep 1
bench squid-bump "$P" "$WORK/squid-ca.pem"
kill $SP || true; wait $SP 2>/dev/null || true

echo "== Haven intercepting with the school's CA (core 1)"
P=$(port)
mkdir -p "$WORK/haven"
"$HAVEN" --data-dir "$WORK/haven" ca init >/dev/null
cat > "$WORK/haven/policy.toml" <<POLICY
[groups.bench]
default = "allow"
intercept = true
POLICY
cat > "$WORK/haven/haven.toml" <<CONF
default_group = "bench"
[dns]
listen = ["127.0.0.1:$(port)"]
upstreams = ["127.0.0.1:9"]
[proxy]
listen = ["127.0.0.1:$P"]
# The benchmark's origin is on loopback, on a port of its own.
allow_loopback = true
connect_ports = [$ORIGIN]
hosts = { "$SITE" = "127.0.0.1" }
origin_ca_file = "$WORK/origin-ca.pem"
[events]
log = true
CONF
taskset -c 1 "$HAVEN" --data-dir "$WORK/haven" serve >/dev/null 2>&1 & HP=$!; PIDS+=($HP)
wait_port "$P"
bench haven "$P" "$WORK/haven/ca/ca.crt"
kill $HP || true; wait $HP 2>/dev/null || true

echo
echo "== requests a second through TLS interception ($CONNS connections, ${DURATION} s each; $(nproc) cores, $(uptime | sed 's/.*load/load/'))"
printf '%-5s %-24s %12s %12s %8s\n' page client squid-bump haven ratio
for page in 1k 35k; do
  for mode in new keep; do
    s=${RPS[squid-bump/$page/$mode]}; h=${RPS[haven/$page/$mode]}
    label="new connection each"; [ "$mode" = keep ] && label="kept alive"
    printf '%-5s %-24s %12s %12s %8s\n' "$page" "$label" "$s" "$h" "$(python3 -c "s, h = float('$s' or 0), float('$h' or 0); print(f'{h / s:.2f}x' if s else '-')")"
  done
done
