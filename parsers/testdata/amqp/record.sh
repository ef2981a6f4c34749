#!/usr/bin/env bash
# Records the AMQP 0-9-1 fixtures in this folder from real traffic: our own RabbitMQ node
# (rabbit-rec@localhost on 127.0.0.1:16672, data and logs in a temp dir, its own epmd port;
# not the system service), driven by pika and by amqp-tools, captured with tshark on lo, then
# split by ../http1/extract.py into the bytes each side sent (<case>.client.bin,
# <case>.server.bin) and when (<case>.timeline); see README.md.
# Needs root (capture on lo), rabbitmq-server, amqp-tools, the venv's pika and tshark.
# Re-running changes the timings, so the baselines (<case>.expected) must then be regenerated:
# WIRELENS_BLESS=1 cargo test -p wirelens-parsers amqp.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
py=/opt/wirelens-venv/bin/python
port=16672
work=$(mktemp -d)
chmod 755 "$work"
export HOME="$work" RABBITMQ_NODE_PORT=$port RABBITMQ_NODENAME=rabbit-rec@localhost \
    RABBITMQ_NODE_IP_ADDRESS=127.0.0.1 RABBITMQ_DIST_PORT=16673 ERL_EPMD_PORT=16674 \
    RABBITMQ_MNESIA_BASE="$work/mnesia" RABBITMQ_LOG_BASE="$work/log" \
    RABBITMQ_ENABLED_PLUGINS_FILE="$work/enabled_plugins" RABBITMQ_CONFIG_FILE="$work/rabbitmq"
echo '[].' > "$work/enabled_plugins"
ctl() { /usr/lib/rabbitmq/bin/rabbitmqctl -n rabbit-rec@localhost "$@"; }
tshark_pid=""
rabbit_pid=""
cleanup() {
    [ -n "$tshark_pid" ] && kill "$tshark_pid" 2>/dev/null || true
    if [ -n "$rabbit_pid" ]; then
        ctl stop >/dev/null 2>&1 || kill "$rabbit_pid" 2>/dev/null || true
        wait "$rabbit_pid" 2>/dev/null || true
    fi
    # The epmd this node started listens on our own port: ask that one to stop.
    /usr/lib/erlang/bin/epmd -port "$ERL_EPMD_PORT" -kill >/dev/null 2>&1 || true
    if [ -n "${KEEP_PCAP:-}" ]; then cp "$work/capture.pcap" "$KEEP_PCAP"; fi
    rm -rf "$work"
}
trap cleanup EXIT

/usr/lib/rabbitmq/bin/rabbitmq-server >"$work/server.out" 2>&1 &
rabbit_pid=$!
for _ in $(seq 60); do ctl await_startup >/dev/null 2>&1 && break; sleep 1; done
ctl await_startup >/dev/null || { cat "$work/server.out"; exit 1; }

tshark -i lo -f "tcp port $port" -F pcap -w "$work/capture.pcap" -q 2>"$work/tshark.log" &
tshark_pid=$!
sleep 2

pika() { "$py" - "$port" "$@"; }
tools=(--server 127.0.0.1 --port "$port" --heartbeat 0)

# Each numbered step is one TCP connection, in the order extract.py names them.
# 1 basic: declare, bind, publish (one with a traceparent header), get, get-empty, ack, delete.
pika <<'PY'
import pika, sys
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1]), heartbeat=0))
ch = c.channel()
ch.exchange_declare("orders", exchange_type="direct")
ch.queue_declare("orders.created")
ch.queue_bind("orders.created", "orders", routing_key="created")
ch.basic_publish("", "orders.created", b"via the default exchange")
ch.basic_publish("orders", "created", b'{"id":42}', pika.BasicProperties(
    content_type="application/json",
    headers={"traceparent": "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"}))
ch.basic_qos(prefetch_count=10)
for _ in range(2):
    m, props, body = ch.basic_get("orders.created")
    ch.basic_ack(m.delivery_tag)
ch.basic_get("orders.created")
ch.queue_purge("orders.created")
ch.queue_unbind("orders.created", "orders", routing_key="created")
ch.queue_delete("orders.created")
ch.exchange_delete("orders")
ch.close()
c.close()
PY
# 2 large_publish: a 300 KiB body (many body frames, many segments), then a get of it.
pika <<'PY'
import pika, sys
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1]), heartbeat=0))
ch = c.channel()
ch.queue_declare("big")
ch.basic_publish("", "big", b"b" * 300 * 1024)
m, props, body = ch.basic_get("big", auto_ack=True)
ch.queue_delete("big")
c.close()
PY
# 3 (not kept) fills the queue, 4 consume: pushed deliveries (two small, one with a traceparent, one of 250 KiB), acked
# one by one, a reject and a nack, then basic.cancel.
pika <<'PY'
import pika, sys
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1]), heartbeat=0))
ch = c.channel()
ch.queue_declare("work")
for i in range(2):
    ch.basic_publish("", "work", f"job-{i}".encode())
ch.basic_publish("", "work", b"traced", pika.BasicProperties(
    headers={"traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"}))
ch.basic_publish("", "work", b"w" * 250 * 1024)
ch.basic_publish("", "work", b"to reject")
ch.basic_publish("", "work", b"to nack")
c.close()
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1]), heartbeat=0))
ch = c.channel()
ch.basic_qos(prefetch_count=1)
seen = []
def on_message(ch, m, props, body):
    seen.append(body)
    if body == b"to reject":
        ch.basic_reject(m.delivery_tag, requeue=False)
    elif body == b"to nack":
        ch.basic_nack(m.delivery_tag, requeue=False)
    else:
        ch.basic_ack(m.delivery_tag)
    if len(seen) == 6:
        ch.stop_consuming()
ch.basic_consume("work", on_message, consumer_tag="worker-1")
ch.start_consuming()
ch.queue_delete("work")
c.close()
PY
# 5 confirms: publisher confirms; the third publish is nacked (queue full, reject-publish).
pika <<'PY'
import pika, sys
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1]), heartbeat=0))
ch = c.channel()
ch.queue_declare("capped", arguments={"x-max-length": 2, "x-overflow": "reject-publish"})
ch.confirm_delivery()
for i in range(3):
    try:
        ch.basic_publish("", "capped", f"m{i}".encode())
    except pika.exceptions.NackError:
        pass
ch.queue_delete("capped")
c.close()
PY
# 6 errors: passive declare of a missing queue (404 closes the channel), then on a new
# channel a publish to a missing exchange (an unsolicited Channel.Close 404), then a
# declare with a different type of an existing exchange (406).
pika <<'PY'
import pika, sys
c = pika.BlockingConnection(pika.ConnectionParameters("127.0.0.1", int(sys.argv[1]), heartbeat=0))
ch = c.channel()
try:
    ch.queue_declare("no-such-queue", passive=True)
except pika.exceptions.ChannelClosedByBroker:
    pass
ch = c.channel()
ch.basic_publish("no-such-exchange", "key", b"lost")
try:
    ch.queue_declare("after-error")
except pika.exceptions.ChannelClosedByBroker:
    pass
ch = c.channel()
try:
    ch.exchange_declare("amq.direct", exchange_type="fanout")
except pika.exceptions.ChannelClosedByBroker:
    pass
c.close()
PY
# amqp-tools (rabbitmq-c): 7 (not kept) declares the queue, 8 tools_publish, 9 tools_get,
# 10 (not kept) publishes with a traceparent header, 11 tools_consume, 12 (not kept) deletes.
amqp-declare-queue "${tools[@]}" -q tools >/dev/null
amqp-publish "${tools[@]}" -r tools -b "hello from amqp-publish"
amqp-get "${tools[@]}" -q tools >/dev/null
amqp-publish "${tools[@]}" -r tools -b "for amqp-consume" -H "traceparent: 00-11111111111111111111111111111111-2222222222222222-01"
amqp-consume "${tools[@]}" -q tools -c 1 cat >/dev/null
amqp-delete-queue "${tools[@]}" -q tools >/dev/null

sleep 2
kill "$tshark_pid"; wait "$tshark_pid" 2>/dev/null || true; tshark_pid=""
python3 "$here/../http1/extract.py" "$work/capture.pcap" "$here" \
    basic large_publish - consume confirms errors - tools_publish tools_get - tools_consume -
echo "rabbitmq: $(dpkg-query -W -f '${Version}' rabbitmq-server)"
echo "pika: $("$py" -c 'import pika; print(pika.__version__)')"
echo "amqp-tools: $(dpkg-query -W -f '${Version}' amqp-tools)"
echo "python: $("$py" --version)"; echo "tshark: $(tshark --version | head -1)"
