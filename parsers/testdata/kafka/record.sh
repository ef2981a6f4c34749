#!/usr/bin/env bash
# Records the Kafka fixtures in this folder from real traffic: a tansu broker (Kafka-compatible,
# in-memory storage) on 127.0.0.1:19092, driven by kafka-python clients, captured with tshark
# on lo (one capture per case), then split by ../http1/extract.py into the bytes each side of
# every TCP connection sent (<case>_<n>.client.bin, <case>_<n>.server.bin, <case>_<n>.timeline;
# n counts the case's connections in SYN order: kafka-python opens a bootstrap connection,
# then one per broker node and one to the group coordinator); see README.md.
# Needs root (capture on lo), tansu (TANSU, default /opt/wirelens-tools/bin/tansu), the
# kafka-python venv (PYTHON, default /opt/wirelens-venv/bin/python) and tshark. Re-running
# changes the timings, so the baselines (<case>_<n>.expected) must then be regenerated:
# WIRELENS_BLESS=1 cargo test -p wirelens-parsers kafka.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
port=19092
tansu=${TANSU:-/opt/wirelens-tools/bin/tansu}
python=${PYTHON:-/opt/wirelens-venv/bin/python}
work=$(mktemp -d)
broker_pid=""
tshark_pid=""
cleanup() {
    [ -n "$tshark_pid" ] && kill "$tshark_pid" 2>/dev/null || true
    [ -n "$broker_pid" ] && kill "$broker_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$tansu" broker --listener-url "tcp://127.0.0.1:$port" \
    --advertised-listener-url "tcp://127.0.0.1:$port" \
    --storage-engine memory://tansu/ >"$work/tansu.log" 2>&1 &
broker_pid=$!
sleep 3

# One case: capture while the Python snippet runs, then split every connection.
case_() {
    local name=$1 script=$2
    tshark -i lo -f "tcp port $port" -F pcap -w "$work/$name.pcap" -q 2>"$work/tshark.log" &
    tshark_pid=$!
    sleep 2
    PORT=$port "$python" -c "$script"
    sleep 1
    kill "$tshark_pid"; wait "$tshark_pid" 2>/dev/null || true; tshark_pid=""
    local n
    n=$(tshark -r "$work/$name.pcap" -Y 'tcp.flags.syn == 1 && tcp.flags.ack == 0' 2>/dev/null | wc -l)
    local names=()
    for i in $(seq 1 "$n"); do names+=("${name}_$i"); done
    python3 "$here/../http1/extract.py" "$work/$name.pcap" "$here" "${names[@]}"
}

common='
import os, time
from kafka import KafkaAdminClient, KafkaProducer, KafkaConsumer, TopicPartition
from kafka.admin import NewTopic
server = "127.0.0.1:" + os.environ["PORT"]
'

# 1 admin: create the topic `orders` (2 partitions).
case_ admin "$common
admin = KafkaAdminClient(bootstrap_servers=server, client_id='wirelens-admin')
admin.create_topics([NewTopic('orders', num_partitions=2, replication_factor=1)])
admin.close()
"

# 2 produce: 20 messages (acks=all, batched per partition), then 5 with acks=0.
case_ produce "$common
p = KafkaProducer(bootstrap_servers=server, client_id='wirelens-producer', acks='all', linger_ms=50)
for i in range(20):
    p.send('orders', value=f'order-{i}'.encode(), partition=i % 2)
p.flush()
p.close()
p0 = KafkaProducer(bootstrap_servers=server, client_id='wirelens-fire', acks=0)
for i in range(5):
    p0.send('orders', value=f'fire-{i}'.encode(), partition=0)
p0.flush()
time.sleep(0.5)
p0.close()
"

# 3 consume: a group member reads everything from the start and commits.
case_ consume "$common
c = KafkaConsumer('orders', bootstrap_servers=server, client_id='wirelens-consumer',
                  group_id='group-a', auto_offset_reset='earliest', enable_auto_commit=False)
seen, deadline = 0, time.time() + 20
while seen < 25 and time.time() < deadline:
    for tp, msgs in c.poll(timeout_ms=500).items():
        seen += len(msgs)
c.commit()
c.close()
print('consumed', seen)
"

# 4 errors: a fetch of a partition the topic does not have; metadata for a missing topic.
case_ errors "$common
c = KafkaConsumer(bootstrap_servers=server, client_id='wirelens-errors',
                  consumer_timeout_ms=1000, request_timeout_ms=3000)
c.assign([TopicPartition('orders', 7)])
try:
    c.poll(timeout_ms=1500)
except Exception as e:
    print('poll:', e)
c.close()
p = KafkaProducer(bootstrap_servers=server, client_id='wirelens-errors', max_block_ms=1500)
try:
    p.send('missing', b'x').get(timeout=2)
except Exception as e:
    print('send:', e)
p.close()
"

echo "tansu: $("$tansu" --version 2>&1 | head -1)"
echo "kafka-python: $("$python" -c 'import kafka; print(kafka.__version__)')"
echo "python: $("$python" --version)"; echo "tshark: $(tshark --version | head -1)"
