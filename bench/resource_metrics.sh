#!/usr/bin/env bash
# CPU cost of the resource metrics (process.*, container.*: a /proc and cgroup scan every metric
# export interval) on a host with many processes: PROCS idle `sleep` processes and, unless
# CONNS=0, CONNS open idle loopback TCP connections (both ends held by Python processes, 2500
# connections each, so each has 5000 descriptors to count). The agent runs the default set-up (no filter: every process
# of the host) exporting over OTLP/gRPC to the test receiver, once with --resource-metrics false
# and once with true, at each metric interval of INTERVALS (ms). Reports the agent's user+sys
# CPU in steady state (from /proc, start-up excluded) per wall second, the difference on - off,
# and that difference per scan (the cost of one scan; at the default 60 s interval the agent
# pays it once a minute).
# Run under the host-wide lock (one agent at a time):
#   flock /tmp/wirelens-itest.lock bench/resource_metrics.sh [seconds]   (default 20 s)
# Environment: PROCS (500), CONNS (10000), INTERVALS ("1000 10000").
set -euo pipefail
SECS=${1:-20}
PROCS=${PROCS:-500}
CONNS=${CONNS:-10000}
read -r -a INTERVALS <<<"${INTERVALS:-1000 10000}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${WIRELENS_BIN:-$ROOT/target/release/wirelens}
PY=${WIRELENS_PYTHON:-/opt/wirelens-venv/bin/python}
WORK=$(mktemp -d)
HZ=$(getconf CLK_TCK)
pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true; rm -rf "$WORK"' EXIT

[ -x "$BIN" ] || { echo "build first: cargo build --release -p wirelens" >&2; exit 1; }
[ -x "$PY" ] || { echo "$PY missing: scripts/setup.sh --tests" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

for _ in $(seq "$PROCS"); do sleep 100000 & pids+=($!); done
# The connections, 2500 per holder process (both ends: 5000 descriptors, under the usual limit).
PER=2500
holders=0
left=$CONNS
while [ "$left" -gt 0 ]; do
    n=$((left < PER ? left : PER))
    "$PY" - "$n" >"$WORK/conns.$holders.out" <<'PY' &
import socket, sys, time
n = int(sys.argv[1])
server = socket.socket()
server.bind(("127.0.0.1", 0))
server.listen(4096)
held = []
for _ in range(n):
    c = socket.create_connection(server.getsockname())
    s, _ = server.accept()
    held += [c, s]
print("open", n, flush=True)
time.sleep(100000)
PY
    pids+=($!)
    holders=$((holders + 1))
    left=$((left - n))
done
for i in $(seq 0 $((holders - 1))); do
    for _ in $(seq 600); do grep -q open "$WORK/conns.$i.out" 2>/dev/null && break; sleep 0.1; done
    grep -q open "$WORK/conns.$i.out" || { echo "the connections did not open" >&2; exit 1; }
done

"$PY" "$ROOT/tests/receiver/otlp_receiver.py" --out "$WORK/otlp.jsonl" >"$WORK/receiver.out" 2>"$WORK/receiver.err" &
pids+=($!)
for _ in $(seq 100); do grep -q READY "$WORK/receiver.out" 2>/dev/null && break; sleep 0.1; done
GRPC_PORT=$(sed -n 's/.*grpc=\([0-9]*\).*/\1/p' "$WORK/receiver.out")
[ -n "$GRPC_PORT" ] || { echo "the receiver did not start" >&2; exit 1; }

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0; }
echo "host: $(ls -d /proc/[0-9]* | wc -l) processes, $PROCS idle sleeps, $CONNS loopback connections, $(nproc) CPUs"
printf '%-9s %-9s %12s %14s %12s %14s\n' interval resources agent_cpu_s agent_ms_per_s processes scan_ms_median
for interval in "${INTERVALS[@]}"; do
    declare -A per_s=()
    for mode in false true; do
        : >"$WORK/otlp.jsonl"
        OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$GRPC_PORT" OTEL_EXPORTER_OTLP_PROTOCOL=grpc \
            OTEL_METRIC_EXPORT_INTERVAL="$interval" WIRELENS_PROFILE_FREQUENCY=0 \
            WIRELENS_LOG="info,wirelens::resource_metrics=debug" \
            "$BIN" --output none --resource-metrics "$mode" --lock-file "$WORK/agent.lock" \
            >"$WORK/agent.out" 2>"$WORK/agent.err" &
        agent=$!
        for _ in $(seq 600); do grep -q ready "$WORK/agent.err" 2>/dev/null && break; sleep 0.1; done
        grep -q ready "$WORK/agent.err" || { tail "$WORK/agent.err" >&2; exit 1; }
        # Steady state: the start-up scan of every process is over.
        sleep 5
        t0=$(cpu_ticks "$agent"); s0=$(date +%s.%N)
        sleep "$SECS"
        t1=$(cpu_ticks "$agent"); s1=$(date +%s.%N)
        kill -INT "$agent"; wait "$agent" || true
        # Processes in the last metrics export that had any.
        n=$(python3 - "$WORK/otlp.jsonl" <<'PY'
import json, sys
last = 0
for line in open(sys.argv[1]):
    r = json.loads(line)
    if r.get("signal") != "metrics":
        continue
    n = sum(1 for rm in r["request"].get("resource_metrics", [])
            for sm in rm.get("scope_metrics", []) for m in sm.get("metrics", [])
            if m.get("name") == "process.cpu.time")
    last = n or last
print(last)
PY
)
        read -r cpu ms < <(python3 -c "import sys; t0,t1,s0,s1,hz=map(float,sys.argv[1:]); c=(t1-t0)/hz; print(f'{c:.3f}', f'{1000*c/(s1-s0):.2f}')" "$t0" "$t1" "$s0" "$s1" "$HZ")
        per_s[$mode]=$ms
        # Wall time of each scan, from the source's debug line (`took=12.3ms`).
        scan=$(python3 - "$WORK/agent.err" <<'PY'
import re, statistics, sys
units = {"ns": 1e-6, "µs": 1e-3, "us": 1e-3, "ms": 1.0, "s": 1e3}
took = [float(v) * units[u] for v, u in
        re.findall(r"read resource metrics.*?took=([0-9.]+)(ns|µs|us|ms|s)\b", open(sys.argv[1]).read())]
print(f"{statistics.median(took):.1f}" if took else "-")
PY
)
        printf '%-9s %-9s %12s %14s %12s %14s\n' "${interval}ms" "$mode" "$cpu" "$ms" "$n" "$scan"
    done
    python3 -c "import sys; off,on,iv=map(float,sys.argv[1:]); d=on-off; print(f'  resource metrics at {iv/1000:g} s: {d:.2f} ms of CPU per second, {d*iv/1000:.1f} ms per scan; at the default 60 s interval: {d*iv/60000:.3f} ms/s')" "${per_s[false]}" "${per_s[true]}" "$interval"
    unset per_s
done
