#!/usr/bin/env bash
# Records the Redis fixtures in this folder from real traffic: our own redis-server on
# 127.0.0.1:16379 (no persistence), driven by redis-cli and by raw Python sockets, captured with
# tshark on lo, then split by ../http1/extract.py into the bytes each side sent
# (<case>.client.bin, <case>.server.bin) and when (<case>.timeline); see README.md.
# Needs root (capture on lo), redis-server, redis-tools, python3 and tshark. Re-running changes
# the timings, so the baselines (<case>.expected) must then be regenerated:
# WIRELENS_BLESS=1 cargo test -p wirelens-parsers.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
port=16379
work=$(mktemp -d)
redis_pid=""
tshark_pid=""
cleanup() {
    [ -n "$tshark_pid" ] && kill "$tshark_pid" 2>/dev/null || true
    [ -n "$redis_pid" ] && kill "$redis_pid" 2>/dev/null || true
    if [ -n "${KEEP_PCAP:-}" ]; then cp "$work/capture.pcap" "$KEEP_PCAP"; fi
    rm -rf "$work"
}
trap cleanup EXIT

cli() { redis-cli -h 127.0.0.1 -p "$port" "$@"; }
# One connection sending each argument as a command and waiting for its reply (redis-cli
# reading stdin first fetches COMMAND DOCS, a 170 KB reply: kept only in basic and resp3).
seq_client() {
    python3 - "$port" "$@" <<'PY'
import socket, sys
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
buf = b""
def reply_end(b, i=0):
    # End of the RESP2 reply starting at b[i], or None if incomplete.
    eol = b.find(b"\r\n", i)
    if eol < 0:
        return None
    kind, head = b[i:i + 1], b[i + 1:eol]
    if kind == b"$":
        n = int(head)
        end = eol + 2 + (n + 2 if n >= 0 else 0)
        return end if len(b) >= end else None
    if kind == b"*":
        j = eol + 2
        for _ in range(max(int(head), 0)):
            j = reply_end(b, j)
            if j is None:
                return None
        return j
    return eol + 2
for line in sys.argv[2:]:
    args = line.split(" ")
    s.sendall((f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)).encode())
    while (end := reply_end(buf)) is None:
        buf += s.recv(65536)
    buf = buf[end:]
s.close()
PY
}

tshark -i lo -f "tcp port $port" -F pcap -w "$work/capture.pcap" -q 2>"$work/tshark.log" &
tshark_pid=$!
redis-server --port "$port" --bind 127.0.0.1 --save '' --appendonly no --daemonize no \
    --dir "$work" >"$work/redis.log" 2>&1 &
redis_pid=$!
sleep 2

# Each numbered step is one TCP connection, in the order extract.py names them.
# 1 basic: commands read from stdin, one at a time, on one connection.
printf 'SET greeting hello\nGET greeting\nLPUSH queue a\nGET queue\nGET missing\nDEL greeting queue\n' | cli >/dev/null
# 2 pipelined_100: 100 commands in one write by redis-cli --pipe (which adds an ECHO marker).
python3 - <<'PY' | cli --pipe >/dev/null
import sys
out = []
for i in range(100):
    args = [["SET", f"key:{i}", f"value-{i}"], ["GET", f"key:{i - 1}"], ["INCR", "counter"], ["HSET", "hash", f"f{i}", str(i)]][i % 4]
    out.append(f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args))
sys.stdout.write("".join(out))
PY
# 3 multi_exec
seq_client MULTI 'SET tx:a 1' 'INCR tx:a' 'GET tx:a' EXEC
# 4 select_db
seq_client 'SELECT 2' 'SET in:two yes' 'GET in:two' DBSIZE 'SELECT 0' 'GET in:two'
# 5 pubsub (the subscriber's connection), 6 (not kept) the publisher.
python3 - "$port" <<'PY' &
import socket, sys, time
def cmd(*args):
    return (f"*{len(args)}\r\n" + "".join(f"${len(a)}\r\n{a}\r\n" for a in args)).encode()
s = socket.create_connection(("127.0.0.1", int(sys.argv[1])))
s.sendall(cmd("SUBSCRIBE", "news", "alerts"))
time.sleep(0.1)
s.sendall(cmd("PSUBSCRIBE", "n*"))
time.sleep(0.6)
s.sendall(cmd("PING"))
time.sleep(0.1)
s.sendall(cmd("UNSUBSCRIBE"))
time.sleep(0.1)
s.sendall(cmd("PUNSUBSCRIBE"))
time.sleep(0.1)
s.sendall(cmd("GET", "after"))
time.sleep(0.2)
s.close()
PY
sub_pid=$!
sleep 0.3
printf 'PUBLISH news first\nPUBLISH alerts second\nPUBLISH news third\n' | cli >/dev/null
wait "$sub_pid"
# 7 blpop: BLPOP waits ~200 ms for 8 (not kept), which pushes.
cli BLPOP jobs 5 >/dev/null &
blpop_pid=$!
sleep 0.2
cli RPUSH jobs job-1 >/dev/null
wait "$blpop_pid"
# 9 large_set: a 100,000-byte value; 10 large_get reads it back.
head -c 100000 /dev/zero | tr '\0' 'v' > "$work/big.bin"
cli -x SET big < "$work/big.bin" >/dev/null
cli GET big >/dev/null
# 11 resp3: redis-cli -3 (HELLO 3 first), map, set, double, null and error replies.
printf 'HSET h3 f1 v1 f2 v2\nHGETALL h3\nSADD s3 m1\nSMEMBERS s3\nZADD z3 1.5 m\nZSCORE z3 m\nGET nothing\nHGET s3 x\n' | cli -3 >/dev/null

sleep 2
kill "$tshark_pid"; wait "$tshark_pid" 2>/dev/null || true; tshark_pid=""
python3 "$here/../http1/extract.py" "$work/capture.pcap" "$here" \
    basic pipelined_100 multi_exec select_db pubsub - blpop - large_set large_get resp3
echo "redis: $(redis-server --version)"; echo "redis-cli: $(redis-cli --version)"
echo "python: $(python3 --version)"; echo "tshark: $(tshark --version | head -1)"
