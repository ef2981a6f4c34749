#!/usr/bin/env bash
# Overhead of tracing nginx under wrk, in every set-up side by side, from one run: throughput
# with the agent off and on, the kernel programs' CPU per request (bpftool run times of the
# programs the agent loaded, kernel.bpf_stats_enabled=1) and the agent's own user+sys CPU per
# request (from /proc, start-up excluded).
#
# Usage: bench/overhead.sh [rounds] [seconds-per-run]        (defaults: 3 rounds, 8 s)
#   SETUPS="default-c32-tiny pinned-c128-tiny" runs only those set-ups (names below);
#   WIRELENS_BIN / WIRELENS_BIN_B: the binary under test, and an optional second one ("B")
#   measured in the same interleaved rounds (an A/B run: the code before and after a change).
#
# Set-ups (name = placement-connections-response):
#   default-*   what a user runs: `wirelens` with no flags (whole host, text lines on stdout,
#               here to /dev/null), nothing pinned: nginx's worker, wrk and the agent go where
#               the scheduler puts them.
#   pinned-*    the tuned case: nginx's worker on CPU 0, wrk on the last CPU, the agent told
#               `--port` of nginx and `--output none`.
#   netmetrics-* the default set-up with network and resource metrics on
#               (`--network-metrics true`, metrics served on a Prometheus port so that they
#               are collected): what those features add per request.
#   *-c32/-c128 wrk's connections (one wrk thread); *-tiny: an nginx `return 200` location
#               (a few bytes), *-4k: a 4 KiB static file.
#
# Method:
# - Rounds are interleaved: in each round every set-up (and binary) runs untraced, then traced,
#   so drift of the host hits all alike; the figures are medians over rounds.
# - Throughput runs have kernel.bpf_stats_enabled=0, as production does (the run-time
#   statistics cost two clock reads per program run); a third, stats-on run per set-up and
#   round measures the BPF time per request.
set -euo pipefail
ROUNDS=${1:-3}
SECS=${2:-8}
PORT=${BENCH_PORT:-18600}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN_A=${WIRELENS_BIN:-$ROOT/target/release/wirelens}
BIN_B=${WIRELENS_BIN_B:-}
read -r -a SETUPS <<<"${SETUPS:-pinned-c128-tiny default-c32-tiny default-c128-tiny default-c32-4k default-c128-4k netmetrics-c32-tiny}"
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; sysctl -qw kernel.bpf_stats_enabled=0; rm -rf "$WORK"' EXIT

for b in "$BIN_A" ${BIN_B:+"$BIN_B"}; do
  [ -x "$b" ] || { echo "no binary at $b: build first (cargo build --release)" >&2; exit 1; }
done
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }
command -v bpftool >/dev/null || { echo "bpftool is missing (apt-get install bpftool)" >&2; exit 1; }
BINS=(A); [ -n "$BIN_B" ] && BINS+=(B)
bin_path() { if [ "$1" = B ]; then echo "$BIN_B"; else echo "$BIN_A"; fi; }

# shellcheck source=bench/nginx.sh
. "$ROOT/bench/nginx.sh"
bench_nginx "$WORK" "$PORT"
head -c 4096 /dev/zero | tr '\0' 'x' > "$WORK/html/4k.html"
LAST_CPU=$(( $(nproc) - 1 ))
ALL_CPUS=0-$LAST_CPU
nginx_workers() { pgrep -f "nginx: worker" -P "$(cat "$WORK/nginx.pid")"; }

place() { # pinned|default: where nginx's worker may run
  local cpus=$ALL_CPUS w
  [ "$1" = pinned ] && cpus=0
  for w in $(nginx_workers); do taskset -pc "$cpus" "$w" >/dev/null; done
}
run_wrk() { # placement conns path -> prints "requests rps"
  local pin=() reqs rps
  [ "$1" = pinned ] && pin=(taskset -c "$LAST_CPU")
  "${pin[@]}" wrk -t1 -c"$2" -d"${SECS}s" "http://127.0.0.1:$PORT$3" > "$WORK/wrk.txt"
  grep -q "Non-2xx" "$WORK/wrk.txt" && { echo "wrk got errors:" >&2; cat "$WORK/wrk.txt" >&2; exit 1; }
  reqs=$(awk '/requests in/ {print $1}' "$WORK/wrk.txt")
  rps=$(awk '/Requests\/sec/ {print $2}' "$WORK/wrk.txt")
  echo "$reqs $rps"
}
prog_ids() { bpftool -j prog show 2>/dev/null | python3 -c 'import json,sys; print(" ".join(str(p["id"]) for p in json.load(sys.stdin)))'; }
bpf_ns() { # total run_time_ns of the programs with these ids
  bpftool -j prog show 2>/dev/null | python3 -c '
import json,sys
ids=set(int(i) for i in sys.argv[1:])
print(sum(p.get("run_time_ns",0) for p in json.load(sys.stdin) if p["id"] in ids))' "$@"
}
cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
start_agent() { # binary placement
  local before args=()
  before=" $(prog_ids) "
  [ "$2" = pinned ] && args=(--port "$PORT" --output none)
  [ "$2" = netmetrics ] && args=(--network-metrics true --resource-metrics true
    --prometheus-listen "127.0.0.1:$((PORT + 1))")
  "$1" "${args[@]}" --lock-file "$WORK/lock" > /dev/null 2> "$WORK/agent.err" &
  apid=$!
  for _ in $(seq 1 300); do grep -q ready "$WORK/agent.err" 2>/dev/null && break; sleep 0.1; done
  grep -q ready "$WORK/agent.err" || { echo "the agent did not start:" >&2; cat "$WORK/agent.err" >&2; exit 1; }
  ours=()
  for id in $(prog_ids); do [[ $before == *" $id "* ]] || ours+=("$id"); done
}
stop_agent() { kill -INT "$apid"; wait "$apid" || true; }

TICK=$(getconf CLK_TCK)
sysctl -qw kernel.bpf_stats_enabled=0
declare -A OFF ON BPF AGENT
for r in $(seq 1 "$ROUNDS"); do
  for s in "${SETUPS[@]}"; do
    IFS=- read -r placement conns size <<<"$s"
    conns=${conns#c}
    path=/tiny; [ "$size" = 4k ] && path=/4k.html
    place "$placement"
    for b in "${BINS[@]}"; do
      key="$s/$b"
      read -r _ off < <(run_wrk "$placement" "$conns" "$path")
      start_agent "$(bin_path "$b")" "$placement"
      c0=$(cpu_ticks "$apid")
      read -r reqs on < <(run_wrk "$placement" "$conns" "$path")
      sleep 0.3
      c1=$(cpu_ticks "$apid")
      sysctl -qw kernel.bpf_stats_enabled=1
      b0=$(bpf_ns "${ours[@]}")
      read -r sreqs _ < <(run_wrk "$placement" "$conns" "$path")
      b1=$(bpf_ns "${ours[@]}")
      sysctl -qw kernel.bpf_stats_enabled=0
      stop_agent
      OFF[$key]+="$off "
      ON[$key]+="$on "
      AGENT[$key]+="$(python3 -c "print(($c1-$c0)/$TICK/$reqs*1e6)") "
      BPF[$key]+="$(python3 -c "print(($b1-$b0)/$sreqs/1000)") "
      echo "round $r $key: off $off req/s, on $on req/s, bpf $(echo "${BPF[$key]}" | awk '{print $NF}') us/req, agent $(echo "${AGENT[$key]}" | awk '{print $NF}') us/req" >&2
      grep 'wirelens counters' "$WORK/agent.err" | tail -1 >&2 || true
    done
  done
done

{
  for s in "${SETUPS[@]}"; do
    for b in "${BINS[@]}"; do
      key="$s/$b"
      echo "$key|${OFF[$key]}|${ON[$key]}|${BPF[$key]}|${AGENT[$key]}"
    done
  done
} > "$WORK/figures"
python3 - "$SECS" "$WORK/figures" <<'PY'
import statistics as st, sys
rows = [l.rstrip("\n").split("|") for l in open(sys.argv[2]) if l.strip()]
ab = any(r[0].endswith("/B") for r in rows)
extra = " binary |" if ab else ""
print(f"| set-up |{extra} untraced req/s | traced req/s | ratio | BPF us/req | agent us/req |")
print("|---" * (6 + ab) + "|")
for key, off, on, bpf, agent in rows:
    off, on, bpf, agent = ([float(x) for x in v.split()] for v in (off, on, bpf, agent))
    setup, b = key.rsplit("/", 1)
    label = f"{setup} | {b}" if ab else setup
    print(f"| {label} | {st.median(off):,.0f} | {st.median(on):,.0f} | {st.median(on)/st.median(off):.3f} | {st.median(bpf):.2f} | {st.median(agent):.2f} |")
print(f"({len(off)} interleaved rounds, {sys.argv[1]} s per run, medians; BPF = every program the agent loaded, client and server side)")
PY
