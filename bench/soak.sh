#!/usr/bin/env bash
# Soak: the agent traces mixed traffic for hours (SOAK_SECONDS, default 4 h) and must not grow.
#
# It starts, on 127.0.0.1: nginx (HTTP/1.1), PostgreSQL (psql and pgbench -C: a connection per
# transaction), Redis (redis-benchmark, redis-cli), dnsmasq (dig), and the independent OTLP
# receiver (tests/receiver/otlp_receiver.py) the agent exports to over gRPC. Each traffic round
# runs short-lived clients (new processes, new connections: churn) and a keep-alive burst.
# Every SOAK_INTERVAL seconds (default 10) it samples the agent: RSS and open fds (/proc), and
# from the receiver what the agent exported in that window: the metric series count, and its
# own counters (wirelens.export.spans, wirelens.drops, wirelens.connections_rejected,
# wirelens.stream_gaps). The receiver's file is emptied after every sample: output stays bounded.
#
# Output: a CSV (SOAK_CSV, default $WORK/soak.csv) and a summary. It fails (exit 1) when, after
# warm-up, the last quarter of the run is above the second quarter by more than
# SOAK_RSS_GROWTH_PCT % of RSS (default 10, and at least 4 MiB), SOAK_FD_GROWTH fds (default 8)
# or SOAK_SERIES_GROWTH_PCT % of metric series (default 50).
#
# SOAK_PAUSE (default 1) is the pause in seconds between traffic rounds. The agent also exports
# its levels as gauges (wirelens.connections.tracked, .buffered_bytes, wirelens.processes.cached,
# wirelens.export.spool.bytes, wirelens.export.queue.observations, wirelens.uprobe.files_attached,
# wirelens.uprobe.links): they go into the CSV, and the
# summary prints every column's curve in eight buckets. WIRELENS_LOCK_FILE lets a soak run beside
# another agent.
#
# Needs root, a release build (cargo build --release -p wirelens) and scripts/setup.sh --tests.
# Not for CI: hours. SOAK_SECONDS=600 checks the script in ten minutes.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
SOAK_SECONDS=${SOAK_SECONDS:-14400}
INTERVAL=${SOAK_INTERVAL:-10}
RSS_PCT=${SOAK_RSS_GROWTH_PCT:-10}
FD_GROWTH=${SOAK_FD_GROWTH:-8}
SERIES_PCT=${SOAK_SERIES_GROWTH_PCT:-50}
PAUSE=${SOAK_PAUSE:-1}
AGENT=${WIRELENS_BIN:-$ROOT/target/release/wirelens}
PY=${WIRELENS_PYTHON:-/opt/wirelens-venv/bin/python}
PG_BIN=${PG_BIN:-/usr/lib/postgresql/15/bin}
WORK=$(mktemp -d /tmp/wirelens-soak.XXXXXX)
CSV=${SOAK_CSV:-$WORK/soak.csv}
chmod 755 "$WORK"
source "$ROOT/bench/nginx.sh"

pids=()
cleanup() {
    set +e
    [ -n "${AGENT_PID:-}" ] && kill -INT "$AGENT_PID" 2>/dev/null && wait "$AGENT_PID" 2>/dev/null
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
    [ -f "$WORK/nginx/nginx.pid" ] && kill "$(cat "$WORK/nginx/nginx.pid")" 2>/dev/null
    [ -d "$WORK/pg/data" ] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -m fast stop >/dev/null 2>&1
    wait 2>/dev/null
}
trap cleanup EXIT

free_port() { "$PY" -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
HTTP_PORT=$(free_port); REDIS_PORT=$(free_port); PG_PORT=$(free_port); DNS_PORT=$(free_port)

echo "soak: work dir $WORK, ${SOAK_SECONDS}s, sample every ${INTERVAL}s"
# Servers.
bench_nginx "$WORK/nginx" "$HTTP_PORT"
redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save "" --appendonly no >"$WORK/redis.log" 2>&1 &
pids+=($!)
dnsmasq --no-daemon --port="$DNS_PORT" --listen-address=127.0.0.1 --bind-interfaces \
    --no-resolv --no-hosts --address=/soak.test/127.0.0.7 --pid-file= >"$WORK/dnsmasq.log" 2>&1 &
pids+=($!)
mkdir -p "$WORK/pg" && chown postgres: "$WORK/pg"
runuser -u postgres -- "$PG_BIN/initdb" -D "$WORK/pg/data" -U postgres -A trust --no-sync \
    -E UTF8 --locale=C >/dev/null
runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/server.log" -w \
    -o "-p $PG_PORT -k $WORK/pg -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=50" \
    start >/dev/null
pgbench -h 127.0.0.1 -p "$PG_PORT" -U postgres -i -s 1 -q postgres >/dev/null 2>&1

# The receiver, then the agent exporting to it.
"$PY" "$ROOT/tests/receiver/otlp_receiver.py" --out "$WORK/otlp.jsonl" >"$WORK/receiver.out" 2>"$WORK/receiver.err" &
pids+=($!)
for _ in $(seq 100); do grep -q READY "$WORK/receiver.out" 2>/dev/null && break; sleep 0.1; done
GRPC_PORT=$(sed -n 's/.*grpc=\([0-9]*\).*/\1/p' "$WORK/receiver.out")
[ -n "$GRPC_PORT" ] || { echo "soak: the receiver did not start" >&2; exit 1; }
OTEL_EXPORTER_OTLP_ENDPOINT="http://127.0.0.1:$GRPC_PORT" OTEL_EXPORTER_OTLP_PROTOCOL=grpc OTEL_METRIC_EXPORT_INTERVAL=$((INTERVAL * 1000)) \
    WIRELENS_PROFILE_FREQUENCY=0 "$AGENT" --output none \
    >"$WORK/agent.out" 2>"$WORK/agent.err" &
AGENT_PID=$!
for _ in $(seq 600); do grep -q ready "$WORK/agent.err" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$WORK/agent.err" || { echo "soak: the agent did not start" >&2; tail "$WORK/agent.err" >&2; exit 1; }

# Traffic: one round of every client, again and again, in the background.
traffic() {
    local i=0
    while :; do
        i=$((i + 1))
        for _ in 1 2 3 4 5; do curl -s -o /dev/null "http://127.0.0.1:$HTTP_PORT/?r=$i" || true; done
        # Fifty requests on one keep-alive connection (curl's URL globbing).
        curl -s -o /dev/null "http://127.0.0.1:$HTTP_PORT/?k=[1-50]" || true
        redis-benchmark -h 127.0.0.1 -p "$REDIS_PORT" -n 500 -c 4 -q -t set,get,lpush >/dev/null 2>&1 || true
        redis-cli -h 127.0.0.1 -p "$REDIS_PORT" set "soak:$i" "$i" >/dev/null 2>&1 || true
        pgbench -h 127.0.0.1 -p "$PG_PORT" -U postgres -C -c 2 -t 20 -n postgres >/dev/null 2>&1 || true
        psql -h 127.0.0.1 -p "$PG_PORT" -U postgres -qAtc "select $i" postgres >/dev/null 2>&1 || true
        for _ in 1 2 3 4 5; do dig +short +tries=1 +time=1 @127.0.0.1 -p "$DNS_PORT" "n$i.soak.test" >/dev/null 2>&1 || true; done
        sleep "$PAUSE"
    done
}
traffic &
pids+=($!)

# What the agent exported since the last sample: series count and its own counters (CSV part).
window() {
    "$PY" - "$WORK/otlp.jsonl" <<'PY'
import json, sys
series, counters = set(), {}
names = ["wirelens.export.spans", "wirelens.drops", "wirelens.connections_rejected", "wirelens.stream_gaps"]
gauge_names = ["wirelens.connections.tracked", "wirelens.connections.buffered_bytes",
               "wirelens.processes.cached", "wirelens.export.spool.bytes",
               "wirelens.export.queue.observations", "wirelens.uprobe.files_attached",
               "wirelens.uprobe.links"]
gauges = {}
def attrs(items):
    return tuple(sorted((a["key"], json.dumps(a.get("value"), sort_keys=True)) for a in items or []))
for line in open(sys.argv[1], encoding="utf-8"):
    try:
        rec = json.loads(line)
    except ValueError:
        continue
    if rec.get("signal") != "metrics" or rec.get("rejected"):
        continue
    for rm in rec["request"].get("resource_metrics", []):
        res = attrs(rm.get("resource", {}).get("attributes"))
        for sm in rm.get("scope_metrics", []):
            for m in sm.get("metrics", []):
                for kind in ("sum", "gauge", "histogram", "exponential_histogram", "summary"):
                    for dp in m.get(kind, {}).get("data_points", []):
                        series.add((res, m["name"], attrs(dp.get("attributes"))))
                        v = float(dp.get("as_int", dp.get("as_double", 0)))
                        if m["name"] in names:
                            counters[m["name"]] = max(counters.get(m["name"], 0), v)
                        elif m["name"] in gauge_names:
                            # The last export of the window wins: a level, not a count.
                            gauges[m["name"]] = v
print(",".join([str(len(series))] + [str(int(counters.get(n, -1))) for n in names]
               + [str(int(gauges.get(n, -1))) for n in gauge_names]))
PY
    : >"$WORK/otlp.jsonl"
}

echo "seconds,rss_kib,fds,metric_series,spans_exported,drops,connections_rejected,stream_gaps,tracked_connections,buffered_bytes,cached_processes,spool_bytes,queued_observations,uprobe_files,uprobe_links" >"$CSV"
start=$(date +%s)
while :; do
    sleep "$INTERVAL"
    kill -0 "$AGENT_PID" 2>/dev/null || { echo "soak: the agent died" >&2; tail "$WORK/agent.err" >&2; exit 1; }
    now=$(($(date +%s) - start))
    rss=$(awk '/^VmRSS:/ { print $2 }' "/proc/$AGENT_PID/status")
    fds=$(find "/proc/$AGENT_PID/fd" -mindepth 1 -maxdepth 1 | wc -l)
    row="$now,$rss,$fds,$(window)"
    echo "$row" >>"$CSV"
    echo "soak: $row"
    [ "$now" -ge "$SOAK_SECONDS" ] && break
done

# Second quarter (after warm-up) against the last quarter.
verdict=$(awk -F, -v rss_pct="$RSS_PCT" -v fd_growth="$FD_GROWTH" -v series_pct="$SERIES_PCT" '
    NR > 1 { n++; rss[n] = $2; fds[n] = $3; ser[n] = $4 }
    END {
        if (n < 8) { print "too few samples (" n "): run longer"; exit }
        q = int(n / 4)
        for (i = q + 1; i <= 2 * q; i++) { r2 += rss[i]; f2 += fds[i]; s2 += ser[i] }
        for (i = n - q + 1; i <= n; i++) { r4 += rss[i]; f4 += fds[i]; s4 += ser[i] }
        r2 /= q; r4 /= q; f2 /= q; f4 /= q; s2 /= q; s4 /= q
        printf "rss %.0f -> %.0f KiB, fds %.1f -> %.1f, metric series %.0f -> %.0f (second quarter -> last quarter)\n", r2, r4, f2, f4, s2, s4
        if (r4 > r2 * (1 + rss_pct / 100) && r4 - r2 > 4096) print "FAIL: RSS grows"
        if (f4 - f2 > fd_growth) print "FAIL: open fds grow"
        if (s4 > s2 * (1 + series_pct / 100) && s4 - s2 > 10) print "FAIL: metric series grow"
    }' "$CSV")
echo "soak: $verdict" | sed '2,$s/^/soak: /'
# The curves, in eight buckets of the run (means): what the README's soak table shows.
awk -F, 'NR > 1 { n++; for (c = 1; c <= NF; c++) v[n, c] = $c }
    END {
        if (n < 8) exit
        print "soak: until_s  rss_MiB  fds  series  tracked_conns  buffered_KiB  processes  spool_KiB  queued  uprobe_files  uprobe_links"
        b = n / 8
        for (k = 0; k < 8; k++) {
            lo = int(k * b) + 1; hi = int((k + 1) * b); m = hi - lo + 1
            for (c = 1; c <= 15; c++) sum[c] = 0
            for (i = lo; i <= hi; i++) for (c = 1; c <= 15; c++) sum[c] += v[i, c]
            printf "soak: %7d  %7.1f  %3.0f  %6.0f  %13.0f  %12.1f  %9.0f  %9.1f  %6.0f  %12.1f  %12.1f\n", v[hi, 1], sum[2] / m / 1024, sum[3] / m, sum[4] / m, sum[9] / m, sum[10] / m / 1024, sum[11] / m, sum[12] / m / 1024, sum[13] / m, sum[14] / m, sum[15] / m
        }
    }' "$CSV"
echo "soak: samples in $CSV"
if grep -q -e FAIL -e "too few" <<<"$verdict"; then
    exit 1
fi
echo "soak: no growth"
