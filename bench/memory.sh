#!/usr/bin/env bash
# The agent's memory: resident set idle, then with N open, traced loopback connections
# (default 10,000), each of which has made one HTTP/1.1 request and holds its connection open,
# then after they close. Whole-host tracing (no filter, the default set-up), `--output none`.
# Also the kernel maps' locked bytes (bpftool), for scale.
# Usage: bench/memory.sh [connections]   (root; a release build; python3)
set -euo pipefail
N=${1:-10000}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${WIRELENS_BIN:-$ROOT/target/release/wirelens}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; wait 2>/dev/null; rm -rf "$WORK"' EXIT
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
# Server and client are two processes, so each needs N fds (and the hard limit may be low).
ulimit -n "$(($(ulimit -Hn) < N + 1024 ? $(ulimit -Hn) : N + 1024))"

rss_mib() { awk '/^VmRSS:/ { printf "%.1f", $2 / 1024 }' "/proc/$1/status"; }

"$BIN" --output none --lock-file "$WORK/lock" 2>"$WORK/agent.err" &
apid=$!
for _ in $(seq 1 300); do grep -q ready "$WORK/agent.err" 2>/dev/null && break; sleep 0.1; done
grep -q ready "$WORK/agent.err" || { cat "$WORK/agent.err" >&2; exit 1; }
sleep 20
idle=$(rss_mib "$apid")

# A server that answers every request and keeps the connection; a client that opens N
# connections, sends one request on each, reads the answer and holds them all until told.
cat >"$WORK/server.py" <<'PY'
import asyncio
RESP = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Type: text/plain\r\n\r\nok"
async def serve(reader, writer):
    try:
        while await reader.readuntil(b"\r\n\r\n"):
            writer.write(RESP)
            await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    writer.close()
async def main():
    server = await asyncio.start_server(serve, "127.0.0.1", 0, backlog=4096)
    print(server.sockets[0].getsockname()[1], flush=True)
    await server.serve_forever()
asyncio.run(main())
PY
cat >"$WORK/client.py" <<'PY'
import asyncio, sys
n, port = int(sys.argv[1]), int(sys.argv[2])
RESP_LEN = 66
async def main():
    conns = []
    for i in range(n):
        r, w = await asyncio.open_connection("127.0.0.1", port)
        w.write(b"GET /c/%d HTTP/1.1\r\nHost: bench\r\n\r\n" % i)
        await r.readexactly(RESP_LEN)
        conns.append(w)
    print("open", len(conns), flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
    for w in conns:
        w.close()
    await asyncio.sleep(1)
    print("closed", flush=True)
asyncio.run(main())
PY
python3 "$WORK/server.py" >"$WORK/server.out" &
for _ in $(seq 1 100); do [ -s "$WORK/server.out" ] && break; sleep 0.1; done
port=$(head -1 "$WORK/server.out")
mkfifo "$WORK/go"
python3 "$WORK/client.py" "$N" "$port" <"$WORK/go" >"$WORK/conns.out" &
exec 3>"$WORK/go"
for _ in $(seq 1 1200); do grep -q open "$WORK/conns.out" 2>/dev/null && break; sleep 0.1; done
grep -q open "$WORK/conns.out" || { echo "the client did not open its connections" >&2; exit 1; }
sleep 5
held=$(rss_mib "$apid")
echo >&3
for _ in $(seq 1 300); do grep -q closed "$WORK/conns.out" 2>/dev/null && break; sleep 0.1; done
sleep 20
after=$(rss_mib "$apid")
maps=$(for f in /proc/"$apid"/fdinfo/*; do awk '/^map_type:/ { m = 1 } /^memlock:/ && m { print $2 }' "$f" 2>/dev/null; done | awk '{ s += $1 } END { printf "%.1f", s / 1048576 }')
kill -INT "$apid"; wait "$apid" 2>/dev/null || true
echo "memory: idle ${idle} MiB; with ${N} open traced connections ${held} MiB; 20 s after they closed ${after} MiB (RSS); kernel maps ${maps} MiB locked"
grep -o 'records=[0-9]*' "$WORK/agent.err" | tail -1 | sed 's/^/memory: agent /'
