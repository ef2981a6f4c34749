#!/usr/bin/env bash
# Sustained load without loss: nginx (one worker on CPU 0) serves h2load over HTTP/1.1 at a fixed
# request rate for a while, with the agent tracing both sides. Prints the requests h2load
# completed, the records the agent made (two per request: nginx's server side and h2load's
# client side) and every loss counter the agent printed at exit. The design budget: no event
# lost at 20,000 requests/s for 60 s.
# Usage: bench/sustained.sh [requests-per-second] [seconds] [connections]
#   (defaults 20000, 60, 20; a rate of 0 sends as fast as nginx answers). h2load stops a
#   connection after about 100,000 requests, so rate × seconds / connections must stay below.
set -euo pipefail
RATE=${1:-20000}
SECS=${2:-60}
CONNS=${3:-20}
PORT=${BENCH_PORT:-18610}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${WIRELENS_BIN:-$ROOT/target/release/wirelens}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT

[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
command -v h2load >/dev/null || { echo "h2load is missing (apt-get install nghttp2-client)" >&2; exit 1; }
((RATE == 0 || RATE >= CONNS)) || { echo "the rate must be 0 or at least one per connection" >&2; exit 2; }
((RATE * SECS / CONNS < 100000)) || { echo "more than 100,000 requests per connection: h2load would stop early; add connections" >&2; exit 2; }

# shellcheck source=bench/nginx.sh
. "$ROOT/bench/nginx.sh"
bench_nginx "$WORK" "$PORT"

"$BIN" --port "$PORT" --output none --lock-file "$WORK/lock" 2> "$WORK/agent.err" &
apid=$!
for _ in $(seq 1 100); do grep -q ready "$WORK/agent.err" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$WORK/agent.err" || { cat "$WORK/agent.err" >&2; exit 1; }
t0=$(awk '{print $14 + $15}' "/proc/$apid/stat")

rps=()
((RATE == 0)) || rps=(--rps "$((RATE / CONNS))")
taskset -c "$(( $(nproc) - 1 ))" h2load --h1 -c "$CONNS" "${rps[@]}" -D "$SECS" \
  "http://127.0.0.1:$PORT/index.html" > "$WORK/h2load.txt"
sleep 0.5
t1=$(awk '{print $14 + $15}' "/proc/$apid/stat")
kill -INT "$apid"
wait "$apid" || { cat "$WORK/agent.err" >&2; exit 1; }

python3 - "$WORK/h2load.txt" "$WORK/agent.err" "$SECS" "$((t1 - t0))" "$(getconf CLK_TCK)" <<'PY'
import re, sys
h2load, agent, secs, ticks, hz = open(sys.argv[1]).read(), open(sys.argv[2]).read(), *sys.argv[3:]
done = re.search(r"requests: \d+ total, (\d+) started, (\d+) done, (\d+) succeeded", h2load)
if not done:
    sys.exit("no request count in h2load's output:\n" + h2load)
started, done, succeeded = (int(done.group(i)) for i in (1, 2, 3))
line = next((l for l in agent.splitlines() if l.startswith("wirelens counters:")), None)
if line is None:
    sys.exit("no counters line in the agent's output:\n" + agent)
counters = dict(re.findall(r"(\w+)=(\d+)", line.split("parse_losses")[0]))
losses = re.search(r"parse_losses=\[(.*)\]", line).group(1)
records = int(counters["records"])
print(f"requests completed:  {done:,} in {secs} s ({done / int(secs):,.0f} req/s), {succeeded:,} of them 2xx")
# Requests h2load started but stopped waiting for at the end may still have been answered.
expected = f"{2 * done:,}" if started == done else f"{2 * done:,} to {2 * started:,}"
print(f"records:             {records:,} (expected {expected}: client and server side)")
events = int(counters["events"])
print(f"events:              {events:,} ({events / max(done, 1):.2f} per request)")
cpu = int(ticks) / int(hz)
print(f"agent CPU:           {cpu:.2f} s ({100 * cpu / int(secs):.1f}% of one CPU, "
      f"{cpu / max(done, 1) * 1e6:.2f} us per request)")
for k in ("drops", "ring_full", "truncated", "gaps", "decode_errors", "unknown_protocol"):
    print(f"{k + ':':<20} {counters.get(k, '?')}")
print(f"parse_losses:        [{losses}]")
# Requests cut off at the end leave unmatched halves (at most two per request); any other
# parse loss, a drop or a gap is a loss.
parse = {k: int(n) for k, n in re.findall(r"(\w+)=(\d+)", losses)}
unmatched = parse.pop("unmatched_request", 0) + parse.pop("unmatched_response", 0)
lost = (not 2 * done <= records <= 2 * started or int(counters["drops"]) or int(counters["gaps"])
        or sum(parse.values()) or unmatched > 2 * (started - done))
print("result:              " + ("LOSS" if lost else "no loss"))
sys.exit(1 if lost else 0)
PY
