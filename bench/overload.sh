#!/usr/bin/env bash
# Overload: does the traced application slow down more when the agent cannot keep up than when
# it can? nginx under wrk, in interleaved rounds: untraced, traced normally (default ring), and
# traced in overload (a ring of OVERLOAD_RING bytes, default 8 KiB: nearly every event finds it
# full, as when traffic outruns the agent's parsing). Prints the median req/s of each, the
# ratios to untraced, and the events the overloaded agent lost, per reason (its exit counters).
# The issue's bar: overload ratio >= normal ratio (the kernel side does the same work and drops
# what does not fit; nothing waits for user space).
# Usage: bench/overload.sh [rounds] [seconds-per-round] [connections]
# Same placement as bench/overhead.sh: nginx's one worker on CPU 0, wrk on the last CPU.
set -euo pipefail
ROUNDS=${1:-5}
SECS=${2:-8}
CONNS=${3:-128}
PORT=${BENCH_PORT:-18610}
RING=${OVERLOAD_RING:-8192}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${WIRELENS_BIN:-$ROOT/target/release/wirelens}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT

[ -x "$BIN" ] || { echo "build first: cargo build --release -p wirelens" >&2; exit 1; }
command -v wrk >/dev/null || { echo "wrk is missing (apt-get install wrk)" >&2; exit 1; }

# shellcheck source=bench/nginx.sh
. "$ROOT/bench/nginx.sh"
bench_nginx "$WORK" "$PORT"
LAST_CPU=$(( $(nproc) - 1 ))

rps() {
  taskset -c "$LAST_CPU" wrk -t1 -c"$CONNS" -d"${SECS}s" "http://127.0.0.1:$PORT/index.html" \
    | awk '/Requests\/sec/ {print $2}'
}
# traced RING_ARGS...: req/s with the agent on; its exit counters go to $WORK/counters.
traced() {
  "$BIN" --port "$PORT" --output none --lock-file "$WORK/lock" "$@" 2> "$WORK/agent.err" &
  local apid=$! r
  for _ in $(seq 1 100); do grep -q ready "$WORK/agent.err" 2>/dev/null && break; sleep 0.1; done
  r=$(rps)
  kill -INT "$apid"; wait "$apid" || true
  grep -o 'wirelens counters:.*' "$WORK/agent.err" > "$WORK/counters" || echo "" > "$WORK/counters"
  echo "$r"
}

off=(); normal=(); over=(); : > "$WORK/lost"
for r in $(seq 1 "$ROUNDS"); do
  off+=("$(rps)")
  normal+=("$(traced)")
  grep -o 'ring_full=[0-9]*' "$WORK/counters" | sed 's/^/normal /' >> "$WORK/lost" || true
  over+=("$(traced --ring-size "$RING")")
  cat "$WORK/counters" >> "$WORK/lost"
  echo "round $r: untraced ${off[-1]}, traced ${normal[-1]}, overload ${over[-1]} req/s" >&2
done
python3 - "${off[*]}" "${normal[*]}" "${over[*]}" "$WORK/lost" "$RING" <<'PY'
import re, statistics as st, sys
off, normal, over = ([float(x) for x in a.split()] for a in sys.argv[1:4])
lines = open(sys.argv[4]).read().splitlines()
print(f"untraced:              {st.median(off):,.0f} req/s (median of {len(off)} rounds)")
print(f"traced, normal:        {st.median(normal):,.0f} req/s  ratio {st.median(normal)/st.median(off):.3f}")
print(f"traced, overload:      {st.median(over):,.0f} req/s  ratio {st.median(over)/st.median(off):.3f}"
      f"  (ring of {sys.argv[5]} bytes)")
print(f"overload / normal:     {st.median(over)/st.median(normal):.3f}")
normal_full = [int(l.split("=")[1]) for l in lines if l.startswith("normal ")]
print(f"normal run ring_full:  median {st.median(normal_full) if normal_full else 'n/a'} per round")
# Losses of the overloaded agent per reason (medians over rounds).
keys = ["events", "ring_full", "truncated", "gaps", "decode_errors", "drops", "records",
        "live_dropped", "export_queue_dropped", "spans_dropped", "unknown_protocol"]
rows = [dict(re.findall(r"(\w+)=(\d+)", l)) for l in lines if l.startswith("wirelens counters:")]
for k in keys:
    vals = [int(r[k]) for r in rows if k in r]
    if vals:
        print(f"overload {k + ':':22}median {st.median(vals):,.0f} per round")
parse = [l for l in lines if "parse_losses=[" in l]
if parse:
    print("overload parse losses (last round): " + parse[-1].split("parse_losses=[", 1)[1].rstrip("]"))
PY
