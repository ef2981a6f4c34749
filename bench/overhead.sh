#!/usr/bin/env bash
# Overhead of tracing nginx under wrk: throughput with the agent off and on (interleaved
# rounds), the kernel programs' CPU per request (bpftool run times, kernel.bpf_stats_enabled=1)
# and the agent's own user+sys CPU per request. Prints the three figures the foundation issue
# asks for. Usage: bench/overhead.sh [rounds] [seconds-per-round] [connections]
#
# Method (each choice is there to measure the agent, not the harness):
# - nginx's one worker runs on CPU 0 and wrk on the last CPU, in every round, so the scheduler
#   does not move them between rounds; the agent is not pinned.
# - The default 128 connections keep the nginx worker saturated: with 32, both CPUs idled
#   8–15% waiting on each other, and the ratio measured that ping-pong.
# - Throughput rounds run with kernel.bpf_stats_enabled=0, as production does: the run-time
#   statistics cost two clock reads per program run, which alone took 5–10% off throughput.
#   A third, stats-on run per round measures the BPF time per request.
set -euo pipefail
ROUNDS=${1:-5}
SECS=${2:-8}
CONNS=${3:-128}
PORT=${BENCH_PORT:-18600}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${WIRELENS_BIN:-$ROOT/target/release/wirelens}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; sysctl -qw kernel.bpf_stats_enabled=0; rm -rf "$WORK"' EXIT

[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }

# shellcheck source=bench/nginx.sh
. "$ROOT/bench/nginx.sh"
bench_nginx "$WORK" "$PORT"
LAST_CPU=$(( $(nproc) - 1 ))

run_wrk() { # prints "requests rps"
  taskset -c "$LAST_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$PORT/index.html" > "$WORK/wrk.txt"
  local reqs rps
  reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
  echo "$reqs $rps"
}
bpf_ns() { # total run_time_ns of our programs
  bpftool -j prog show 2>/dev/null | python3 -c '
import json,sys
names={"sock_send_length","sock_recv_length","inet_sock_set_state","sched_process_exec","sched_process_exit","sched_process_fork","mmsg_enter","ssl_enter","ssl_write_ret","ssl_read_ret"}
print(sum(p.get("run_time_ns",0) for p in json.load(sys.stdin) if p.get("name") in names))'
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
start_agent() {
  "$BIN" --port "$PORT" --output none --lock-file "$WORK/lock" 2> "$WORK/agent.err" &
  apid=$!
  for _ in $(seq 1 100); do grep -q ready "$WORK/agent.err" 2>/dev/null && break; sleep 0.1; done
}
stop_agent() { kill -INT "$apid"; wait "$apid" || true; }

sysctl -qw kernel.bpf_stats_enabled=0
TICK=$(getconf CLK_TCK)
off_rps=(); on_rps=(); bpf_per_req=(); agent_per_req=()
for r in $(seq 1 "$ROUNDS"); do
  read -r _ rps < <(run_wrk); off_rps+=("$rps")
  start_agent
  c0=$(cpu_ticks "$apid")
  read -r reqs rps < <(run_wrk); on_rps+=("$rps")
  sleep 0.3
  c1=$(cpu_ticks "$apid")
  agent_per_req+=("$(python3 -c "print(($c1-$c0)/$TICK/$reqs*1e6)")")
  sysctl -qw kernel.bpf_stats_enabled=1
  b0=$(bpf_ns)
  read -r sreqs _ < <(run_wrk)
  b1=$(bpf_ns)
  sysctl -qw kernel.bpf_stats_enabled=0
  stop_agent
  bpf_per_req+=("$(python3 -c "print(($b1-$b0)/$sreqs)")")
  echo "round $r: off ${off_rps[-1]} req/s, on $rps req/s, bpf $(printf %.0f "${bpf_per_req[-1]}") ns/req, agent $(printf %.2f "${agent_per_req[-1]}") us/req" >&2
  grep 'wirelens counters' "$WORK/agent.err" >&2 || true
done
python3 - "${off_rps[*]}" "${on_rps[*]}" "${bpf_per_req[*]}" "${agent_per_req[*]}" <<'PY'
import statistics as st, sys
off, on, bpf, agent = ([float(x) for x in a.split()] for a in sys.argv[1:5])
print(f"untraced throughput:        {st.median(off):,.0f} req/s (median of {len(off)})")
print(f"traced throughput:          {st.median(on):,.0f} req/s")
print(f"throughput ratio:           {st.median(on)/st.median(off):.3f}")
print(f"BPF CPU per request:        {st.median(bpf)/1000:.2f} us (client+server side)")
print(f"agent CPU per request:      {st.median(agent):.2f} us (user+sys)")
print(f"agent CPU s per 1000 req:   {st.median(agent)/1000:.4f}")
PY
