#!/usr/bin/env bash
# Overhead of tracing a Go HTTPS server (net/http over crypto/tls, HTTP/1.1) under wrk with
# TLS: throughput with the agent off and on (interleaved rounds), the kernel programs' CPU per
# request (bpftool run times, kernel.bpf_stats_enabled=1), the agent's user+sys CPU per
# request, and the Go server's and wrk's own CPU (user+sys) per request, agent off and on:
# where the uprobe traps show, and a figure that holds on a loaded host, where the throughput
# ratio measures the other tenants as much as the agent. wrk's own TLS is OpenSSL (the system libssl), so the client side is traced too, by
# the OpenSSL probes: the BPF figure is both sides, as in bench/overhead.sh.
# Usage: bench/gotls.sh [rounds] [seconds-per-round] [connections]
# CLIENT_TRACED=0 hides wrk's OpenSSL from the agent (wrk loads a private copy of libssl under
# another file name, which the agent does not probe), so that the throughput ratio is the Go
# server's alone; the BPF figure is then the server's programs plus wrk's ciphertext socket
# calls (dropped early).
#
# The Go server is built from tests/go/gotls/main.go (Debian's golang-go and
# golang-google-grpc-dev, GOPATH mode); it runs with GOMAXPROCS=1 on CPU 0 and wrk on the last
# CPU, in every round, with keep-alive connections (one handshake each, then requests).
set -euo pipefail
ROUNDS=${1:-5}
SECS=${2:-8}
CONNS=${3:-64}
PORT=${BENCH_PORT:-18610}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${WIRELENS_BIN:-$ROOT/target/release/wirelens}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; sysctl -qw kernel.bpf_stats_enabled=0; rm -rf "$WORK"' EXIT

[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
command -v go >/dev/null || { echo "go is missing (scripts/setup.sh --tests)" >&2; exit 1; }

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
WRK_ENV=()
if [ "${CLIENT_TRACED:-1}" = 0 ]; then
  mkdir -p "$WORK/lib"
  cp "$(ldd "$(command -v wrk)" | awk '/libssl.so/ {print $3}')" "$WORK/lib/libwrkssl.so.3"
  ln -s libwrkssl.so.3 "$WORK/lib/libssl.so.3"
  WRK_ENV=(env LD_LIBRARY_PATH="$WORK/lib")
fi

run_wrk() { # prints "requests rps server-us/req wrk-us/req"
  local s0 s1 reqs rps
  s0=$(cpu_ticks "$spid")
  /usr/bin/time -f "%U %S" -o "$WORK/wrk.time" \
    "${WRK_ENV[@]}" taskset -c "$LAST_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" "https://127.0.0.1:$PORT/index.html" > "$WORK/wrk.txt"
  s1=$(cpu_ticks "$spid")
  reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
  python3 -c "
import sys
reqs=int('$reqs'); u,s=map(float,open('$WORK/wrk.time').read().split()[-2:])
print($reqs, '$rps', ($s1-$s0)/$TICK/reqs*1e6, (u+s)/reqs*1e6)"
}
prog_ids() { bpftool -j prog show 2>/dev/null | python3 -c 'import json,sys; print(" ".join(str(p["id"]) for p in json.load(sys.stdin)))'; }
bpf_ns() { # total run_time_ns of the programs loaded since $WORK/ids0 (the agent's: others may run)
  bpftool -j prog show 2>/dev/null | python3 -c '
import json,sys
old=set(open(sys.argv[1]).read().split())
print(sum(p.get("run_time_ns",0) for p in json.load(sys.stdin) if str(p["id"]) not in old))' "$WORK/ids0"
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
start_agent() {
  prog_ids > "$WORK/ids0"
  "$BIN" --port "$PORT" --output none --lock-file "$WORK/lock" 2> "$WORK/agent.err" &
  apid=$!
  for _ in $(seq 1 100); do grep -q ready "$WORK/agent.err" 2>/dev/null && break; sleep 0.1; done
}
stop_agent() { kill -INT "$apid"; wait "$apid" || true; }

sysctl -qw kernel.bpf_stats_enabled=0
TICK=$(getconf CLK_TCK)
off_rps=(); on_rps=(); bpf_per_req=(); agent_per_req=()
srv_off=(); srv_on=(); wrk_off=(); wrk_on=()
for r in $(seq 1 "$ROUNDS"); do
  read -r _ rps scpu wcpu < <(run_wrk); off_rps+=("$rps"); srv_off+=("$scpu"); wrk_off+=("$wcpu")
  start_agent
  c0=$(cpu_ticks "$apid")
  read -r reqs rps scpu wcpu < <(run_wrk); on_rps+=("$rps"); srv_on+=("$scpu"); wrk_on+=("$wcpu")
  sleep 0.3
  c1=$(cpu_ticks "$apid")
  agent_per_req+=("$(python3 -c "print(($c1-$c0)/$TICK/$reqs*1e6)")")
  sysctl -qw kernel.bpf_stats_enabled=1
  b0=$(bpf_ns)
  read -r sreqs _ _ _ < <(run_wrk)
  b1=$(bpf_ns)
  sysctl -qw kernel.bpf_stats_enabled=0
  stop_agent
  bpf_per_req+=("$(python3 -c "print(($b1-$b0)/$sreqs)")")
  echo "round $r: off ${off_rps[-1]} req/s, on $rps req/s, bpf $(printf %.0f "${bpf_per_req[-1]}") ns/req, agent $(printf %.2f "${agent_per_req[-1]}") us/req, server $(printf %.1f "${srv_off[-1]}") -> $(printf %.1f "${srv_on[-1]}") us/req, wrk $(printf %.1f "${wrk_off[-1]}") -> $(printf %.1f "${wrk_on[-1]}") us/req" >&2
  grep -E 'probing Go crypto/tls|wirelens counters' "$WORK/agent.err" >&2 || true
done
python3 - "${off_rps[*]}" "${on_rps[*]}" "${bpf_per_req[*]}" "${agent_per_req[*]}" \
  "${srv_off[*]}" "${srv_on[*]}" "${wrk_off[*]}" "${wrk_on[*]}" <<'PY'
import statistics as st, sys
off, on, bpf, agent, soff, son, woff, won = ([float(x) for x in a.split()] for a in sys.argv[1:9])
print(f"untraced throughput:        {st.median(off):,.0f} req/s (median of {len(off)})")
print(f"traced throughput:          {st.median(on):,.0f} req/s")
print(f"throughput ratio:           {st.median(on)/st.median(off):.3f}")
print(f"BPF CPU per request:        {st.median(bpf)/1000:.2f} us (Go server + wrk's OpenSSL client)")
print(f"agent CPU per request:      {st.median(agent):.2f} us (user+sys)")
print(f"Go server CPU per request:  {st.median(soff):.1f} -> {st.median(son):.1f} us (off -> on, user+sys)")
print(f"wrk CPU per request:        {st.median(woff):.1f} -> {st.median(won):.1f} us (off -> on, user+sys)")
PY
