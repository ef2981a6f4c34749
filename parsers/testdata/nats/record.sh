#!/usr/bin/env bash
# Records the NATS fixtures in this folder from real traffic: our own nats-server instances on
# 127.0.0.1 (one open on port 14222, one with a user whose publish permission denies
# `secret.>` on port 14223), driven by nats-py and by raw Python sockets, captured with tshark
# on lo, then split by ../http1/extract.py into the bytes each side sent (<case>.client.bin,
# <case>.server.bin) and when (<case>.timeline); see README.md.
# Needs root (capture on lo), nats-server, the nats-py venv (/opt/wirelens-venv) and tshark.
# Re-running changes the timings, so the baselines (<case>.expected) must then be regenerated:
# WIRELENS_BLESS=1 cargo test -p wirelens-parsers nats.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
py=${PYTHON:-/opt/wirelens-venv/bin/python}
open_port=14222
auth_port=14223
work=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    if [ -n "${KEEP_PCAP:-}" ]; then cp "$work/capture.pcap" "$KEEP_PCAP"; fi
    rm -rf "$work"
}
trap cleanup EXIT

cat >"$work/auth.conf" <<CONF
authorization {
  users = [
    { user: "app", password: "secret", permissions: { publish: { deny: ["secret.>"] } } }
  ]
}
CONF

cat >"$work/drive.py" <<'PY'
import asyncio, socket, sys, time
import nats

OPEN, AUTH = "nats://127.0.0.1:14222", "nats://app:secret@127.0.0.1:14223"
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

async def subscriber(subject, count, name, url=OPEN):
    nc = await nats.connect(url, name=name)
    sub = await nc.subscribe(subject)
    await nc.flush()
    for _ in range(count):
        await sub.next_msg(timeout=5)
    await nc.close()

async def publisher(name, msgs, url=OPEN):
    errors = []
    async def on_error(e):
        errors.append(e)
    nc = await nats.connect(url, name=name, error_cb=on_error)
    for subject, data, headers in msgs:
        await nc.publish(subject, data, headers=headers)
    await nc.flush()
    await asyncio.sleep(0.2)
    await nc.close()

async def responder():
    nc = await nats.connect(OPEN, name="responder")
    async def answer(msg):
        await msg.respond(b"pong:" + msg.data)
    await nc.subscribe("svc.echo", cb=answer)
    await nc.flush()
    await asyncio.sleep(1.0)
    await nc.close()

async def requester():
    nc = await nats.connect(OPEN, name="requester")
    for i in range(2):
        await nc.request("svc.echo", f"ping-{i}".encode(), timeout=2)
    await nc.close()

def hpub(subject, headers, body):
    return f"HPUB {subject} {len(headers)} {len(headers) + len(body)}\r\n".encode() + headers + body + b"\r\n"

def raw(port, lines, pause=0.1):
    s = socket.create_connection(("127.0.0.1", port))
    s.recv(65536)  # INFO
    for chunk in lines:
        s.sendall(chunk)
        time.sleep(pause)
    s.settimeout(0.5)
    try:
        while s.recv(65536):
            pass
    except socket.timeout:
        pass
    s.close()

mode = sys.argv[1]
if mode == "publish":
    asyncio.run(publisher("wirelens-pub", [("greet.hello", b"hello", None), ("greet.world", b"world!", None), ("greet.empty", b"", None)]))
elif mode == "subscribe":
    asyncio.run(subscriber("orders.*", 3, "wirelens-sub"))
elif mode == "orders":
    asyncio.run(publisher("orders-pub", [("orders.new", b'{"id":1}', None), ("orders.paid", b'{"id":1,"paid":true}', None), ("orders.new", b'{"id":2}', None)]))
elif mode == "responder":
    asyncio.run(responder())
elif mode == "requester":
    asyncio.run(requester())
elif mode == "headers_sub":
    asyncio.run(subscriber("traced.>", 2, "headers-sub"))
elif mode == "headers_pub":
    asyncio.run(publisher("headers-pub", [("traced.order", b"with trace", {"traceparent": TRACEPARENT, "X-Other": "1"}), ("traced.plain", b"no trace", {"Content-Type": "text/plain"})]))
elif mode == "large_sub":
    asyncio.run(subscriber("blob", 1, "large-sub"))
elif mode == "large_pub":
    asyncio.run(publisher("large-pub", [("blob", b"B" * 100_000, None)]))
elif mode == "denied":
    asyncio.run(publisher("denied-pub", [("ok.before", b"fine", None), ("secret.plans", b"nope", None), ("ok.after", b"fine", None)], url=AUTH))
elif mode == "verbose":
    connect = b'CONNECT {"verbose":true,"pedantic":false,"user":"app","pass":"secret","name":"raw-verbose","lang":"python","version":"raw","protocol":1,"headers":true}\r\n'
    raw(14223, [
        connect,
        b"PUB ok.one 5\r\nhello\r\n",
        b"pub ok.two 3\r\nabc\r\n",
        hpub("ok.hdr", b"NATS/1.0\r\ntraceparent: " + TRACEPARENT.encode() + b"\r\n\r\n", b"body"),
        b"PUB secret.x 4\r\nnope\r\n",
        b"SUB ok.> 1\r\nPING\r\n",
        b"UNSUB 1\r\n",
    ])
elif mode == "max_payload":
    raw(14222, [b'CONNECT {"verbose":false,"name":"too-big"}\r\n', b"PUB big 2000000\r\n"])
PY

tshark -i lo -f "tcp port $open_port or tcp port $auth_port" -F pcap -w "$work/capture.pcap" -q 2>"$work/tshark.log" &
pids+=($!)
nats-server -a 127.0.0.1 -p "$open_port" >"$work/open.log" 2>&1 &
pids+=($!)
nats-server -a 127.0.0.1 -p "$auth_port" -c "$work/auth.conf" >"$work/auth.log" 2>&1 &
pids+=($!)
sleep 2
drive() { "$py" "$work/drive.py" "$@"; }

# Each numbered step is one TCP connection, in the order extract.py names them.
# 1 publish
drive publish
# 2 subscribe (kept), 3 its publisher (not kept)
drive subscribe & bg=$!; sleep 0.5; drive orders; wait "$bg"
# 4 responder, 5 requester
drive responder & bg=$!; sleep 0.4; drive requester; wait "$bg"
# 6 headers_sub, 7 headers_pub
drive headers_sub & bg=$!; sleep 0.4; drive headers_pub; wait "$bg"
# 8 large_sub, 9 large_pub
drive large_sub & bg=$!; sleep 0.4; drive large_pub; wait "$bg"
# 10 denied (port 14223, permissions), 11 verbose (raw socket, port 14223), 12 max_payload
drive denied
drive verbose
drive max_payload

sleep 2
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true
python3 "$here/../http1/extract.py" "$work/capture.pcap" "$here" \
    publish subscribe - responder requester headers_sub headers_pub large_sub large_pub \
    denied verbose max_payload
echo "nats-server: $(nats-server --version)"
echo "nats-py: $("$py" -c 'import importlib.metadata as m; print(m.version("nats-py"))')"
echo "python: $("$py" --version)"; echo "tshark: $(tshark --version | head -1)"
