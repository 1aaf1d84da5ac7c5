#!/usr/bin/env bash
# Alert latency: from a pupil's search sent through Haven's proxy to the alert email's arrival
# at a local SMTP sink (run by this script). Each search is a different grade-5 text sent one
# at a time, waiting for its email before the next, so every figure is one alert's whole path:
# proxy → event sink → event writer (grading, capture and alert in the store) → alert sender
# → SMTP. Prints p50, p90, p99 and the slowest.
#
#   bench/alerts.sh [SEARCHES]          (default 200)
#   LOAD=1 bench/alerts.sh [SEARCHES]   the same while wrk keeps 32 connections of ordinary
#                                       requests going through the proxy (needs wrk)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-200}
cargo build --release -q -p haven
HAVEN=$PWD/target/release/haven
WORK=$(mktemp -d /tmp/haven-alerts-bench.XXXXXX)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$WORK"' EXIT
DATA=$WORK/data
mkdir -p "$DATA"
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
DNS=$(port); PROXY=$(port); SMTP=$(port); ORIGIN=$(port)
"$HAVEN" --data-dir "$DATA" people import staff config/demo-people/staff.csv >/dev/null
cat > "$DATA/haven.toml" <<TOML
default_group = "ks2"
[dns]
listen = ["127.0.0.1:$DNS"]
upstreams = ["127.0.0.1:9"]
[proxy]
listen = ["127.0.0.1:$PROXY"]
allow_loopback = true
hosts = { "www.google.co.uk" = "127.0.0.1" }
[alerts]
smtp = "127.0.0.1:$SMTP"
from = "haven@demo-school.example"
escalate_after_minutes = 0
[[networks]]
cidr = "127.0.0.0/8"
group = "ks2"
TOML
cat > "$WORK/load.lua" <<LUA
wrk.path = "http://www.google.co.uk:$ORIGIN/page"
wrk.headers["Host"] = "www.google.co.uk:$ORIGIN"
LUA
python3 - "$HAVEN" "$DATA" "$PROXY" "$SMTP" "$ORIGIN" "$N" "${LOAD:-}" "$WORK/load.lua" <<'PY'
import http.server, signal, socket, socketserver, subprocess, sys, threading, time, urllib.request

haven, data, proxy, smtp, origin, n = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
load, lua = sys.argv[7], sys.argv[8]
arrivals = []
cond = threading.Condition()

class Smtp(socketserver.StreamRequestHandler):
    def handle(self):
        self.wfile.write(b"220 sink\r\n")
        while True:
            line = self.rfile.readline()
            if not line:
                return
            cmd = line[:4].upper()
            if cmd == b"EHLO":
                self.wfile.write(b"250-sink\r\n250 8BITMIME\r\n")
            elif cmd == b"DATA":
                self.wfile.write(b"354 go on\r\n")
                while self.rfile.readline() not in (b".\r\n", b""):
                    pass
                with cond:
                    arrivals.append(time.monotonic())
                    cond.notify_all()
                self.wfile.write(b"250 queued\r\n")
            elif cmd == b"QUIT":
                self.wfile.write(b"221 bye\r\n")
                return
            else:
                self.wfile.write(b"250 OK\r\n")

class Origin(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b"results"
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *a):
        pass

class Threaded(socketserver.ThreadingMixIn, socketserver.TCPServer):
    daemon_threads = True
    allow_reuse_address = True

for handler, p in ((Smtp, smtp), (Origin, origin)):
    s = Threaded(("127.0.0.1", p), handler)
    threading.Thread(target=s.serve_forever, daemon=True).start()

server = subprocess.Popen([haven, "--data-dir", data, "serve"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
for line in server.stdout:
    if line.startswith("Ctrl-C"):
        break
threading.Thread(target=lambda: [None for _ in server.stdout], daemon=True).start()
wrk = None
if load:
    wrk = subprocess.Popen(["wrk", "-t1", "-c32", "-d600s", "-s", lua, f"http://127.0.0.1:{proxy}"], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    time.sleep(2)
opener = urllib.request.build_opener(urllib.request.ProxyHandler({"http": f"http://127.0.0.1:{proxy}"}))
phrases = ["i want to kill myself", "how to hang myself", "i want to end my life", "painless way to die"]
latencies = []
try:
    for i in range(n):
        q = f"{phrases[i % len(phrases)]} {i}".replace(" ", "+")
        with cond:
            before = len(arrivals)
        start = time.monotonic()
        opener.open(f"http://www.google.co.uk:{origin}/search?q={q}", timeout=10).read()
        with cond:
            if not cond.wait_for(lambda: len(arrivals) > before, timeout=30):
                sys.exit(f"search {i}: no email within 30 s")
            latencies.append(arrivals[before] - start)
finally:
    if wrk:
        wrk.send_signal(signal.SIGINT)
        out = wrk.communicate(timeout=15)[0]
        print("background load (wrk, 32 connections):", " ".join(l.strip() for l in out.splitlines() if "Requests/sec" in l or "requests in" in l))
    server.terminate()
latencies.sort()
pct = lambda p: latencies[min(len(latencies) - 1, int(p / 100 * len(latencies)))] * 1000
print(f"alerts: {len(latencies)} grade-5 searches, one at a time, proxy request to email at the SMTP sink" + (" (under load)" if load else ""))
print(f"  p50 {pct(50):.0f} ms   p90 {pct(90):.0f} ms   p99 {pct(99):.0f} ms   slowest {latencies[-1]*1000:.0f} ms   (target: p99 under 5,000 ms)")
PY
