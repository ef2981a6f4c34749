#!/usr/bin/env bash
# Where the Go TLS tracing overhead goes: one traced wrk run against the Go HTTPS server of
# bench/gotls.sh, with kernel.bpf_stats_enabled=1, then per BPF program of the agent its runs
# per request and ns per run, and the Go server's CPU (user and system) per request. With
# PERF=1, also `perf record -g` of the server's CPU during a second run (report in
# $OUT/perf.txt).
# Usage: bench/gotls_probes.sh [seconds] [connections]
set -euo pipefail
SECS=${1:-5}
CONNS=${2:-64}
PORT=${BENCH_PORT:-18611}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${WIRELENS_BIN:-$ROOT/target/release/wirelens}
OUT=${OUT:-$(mktemp -d)}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; sysctl -qw kernel.bpf_stats_enabled=0; rm -rf "$WORK"' EXIT

GOBIN_OUT="$ROOT/target/gotls-go/bench/gotls"
mkdir -p "$(dirname "$GOBIN_OUT")"
GO111MODULE=off GOPATH=/usr/share/gocode GOCACHE="$ROOT/target/gotls-go/cache" \
  go build -o "$GOBIN_OUT" "$ROOT/tests/go/gotls/main.go"
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=localhost \
  -keyout "$WORK/key.pem" -out "$WORK/cert.pem" 2>/dev/null
GOMAXPROCS=1 taskset -c 0 "$GOBIN_OUT" https-server "$PORT" "$WORK/cert.pem" "$WORK/key.pem" > "$WORK/server.log" 2>&1 &
spid=$!
sleep 0.5
LAST_CPU=$(( $(nproc) - 1 ))

bpftool -j prog show | python3 -c 'import json,sys; print(" ".join(str(p["id"]) for p in json.load(sys.stdin)))' > "$WORK/ids0"
"$BIN" --port "$PORT" --output none --lock-file "$WORK/lock" 2> "$WORK/agent.err" &
apid=$!
for _ in $(seq 1 100); do grep -q ready "$WORK/agent.err" 2>/dev/null && break; sleep 0.1; done
grep -E 'probing Go crypto/tls' "$WORK/agent.err" >&2 || true

snap() { bpftool -j prog show > "$1"; }
ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
# A warm-up run (handshakes), then the measured one.
taskset -c "$LAST_CPU" wrk -t1 -c"$CONNS" -d1s "https://127.0.0.1:$PORT/index.html" > /dev/null
sysctl -qw kernel.bpf_stats_enabled=1
snap "$WORK/b0"; read -r su0 ss0 < <(ticks "$spid"); read -r au0 as0 < <(ticks "$apid")
taskset -c "$LAST_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" "https://127.0.0.1:$PORT/index.html" > "$WORK/wrk.txt"
snap "$WORK/b1"; read -r su1 ss1 < <(ticks "$spid"); read -r au1 as1 < <(ticks "$apid")
sysctl -qw kernel.bpf_stats_enabled=0
reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
echo "requests: $reqs ($rps req/s)"
python3 - "$WORK/ids0" "$WORK/b0" "$WORK/b1" "$reqs" "$(getconf CLK_TCK)" \
  "$su0 $ss0 $su1 $ss1" "$au0 $as0 $au1 $as1" <<'PY'
import json, sys
old = set(open(sys.argv[1]).read().split())
b0 = {p["id"]: p for p in json.load(open(sys.argv[2]))}
b1 = [p for p in json.load(open(sys.argv[3])) if str(p["id"]) not in old]
reqs = int(sys.argv[4]); tck = int(sys.argv[5])
tot = 0
print(f"{'program':24} {'runs/req':>9} {'ns/run':>8} {'ns/req':>8}")
for p in sorted(b1, key=lambda p: p.get("name", "")):
    a = b0.get(p["id"], {})
    runs = p.get("run_cnt", 0) - a.get("run_cnt", 0)
    ns = p.get("run_time_ns", 0) - a.get("run_time_ns", 0)
    if runs == 0:
        continue
    tot += ns
    print(f"{p.get('name','?'):24} {runs/reqs:9.2f} {ns/runs:8.0f} {ns/reqs:8.0f}")
print(f"{'total BPF':24} {'':9} {'':8} {tot/reqs:8.0f}")
for who, t in (("Go server", sys.argv[6]), ("agent", sys.argv[7])):
    u0, s0, u1, s1 = map(int, t.split())
    print(f"{who} CPU per request: user {(u1-u0)/tck/reqs*1e6:.2f} us, system {(s1-s0)/tck/reqs*1e6:.2f} us")
PY
if [ "${PERF:-0}" = 1 ]; then
  perf record -o "$WORK/perf.data" -g -p "$spid" -- sleep "$SECS" 2> /dev/null &
  ppid=$!
  taskset -c "$LAST_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" "https://127.0.0.1:$PORT/index.html" > /dev/null
  wait "$ppid" || true
  perf report -i "$WORK/perf.data" --no-children --percent-limit 0.7 --stdio 2> /dev/null \
    | grep -v '^$' | grep -E '^ +[0-9]' > "$OUT/perf.txt" || true
  perf report -i "$WORK/perf.data" --no-children --sort dso --stdio 2> /dev/null \
    | grep -E '^ +[0-9]' > "$OUT/perf-dso.txt" || true
  echo "perf: $OUT/perf.txt $OUT/perf-dso.txt"
fi
kill -INT "$apid"; wait "$apid" || true
