#!/usr/bin/env bash
# Cost of network metrics (--network-metrics): the agent's CPU per second on a host with 500
# extra processes and 10,000 open TCP connections (loopback), with the feature off and on, the
# collector's round time (sock_diag dump, /proc/*/ns/net scan, net/dev reads), and the BPF
# time per event of the programs it adds or extends (bpftool run_time_ns/run_cnt with
# kernel.bpf_stats_enabled=1): inet_sock_set_state during 10,000 connects and closes,
# tcp_retransmit_skb during a transfer with 20% loss between two test namespaces.
# Run it under the integration-test lock (it loads the agent):
#   flock /tmp/wirelens-itest.lock bench/network_metrics.sh [seconds] [connections] [interval-ms]
set -euo pipefail
SECS=${1:-30}
CONNS=${2:-10000}
INTERVAL=${3:-10000}
PORT=${BENCH_PORT:-18700}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${WIRELENS_BIN:-$ROOT/target/release/wirelens}
WORK=$(mktemp -d)
NS=wlnm-bench-$$
cleanup() {
  kill $(jobs -p) 2>/dev/null || true
  sysctl -qw kernel.bpf_stats_enabled=0
  ip netns del "$NS-c" 2>/dev/null || true
  ip netns del "$NS-s" 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT
[ -x "$BIN" ] || { echo "build first: cargo build --release" >&2; exit 1; }
ulimit -n $((CONNS + 1000)) # per process: the server and the client each hold one end

cat > "$WORK/conns.py" <<'EOF'
import selectors, socket, sys, time
role, port, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
if role == "server":
    l = socket.socket()
    l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    l.bind(("127.0.0.1", port)); l.listen(4096); l.setblocking(False)
    sel = selectors.DefaultSelector(); sel.register(l, selectors.EVENT_READ)
    print("ready", flush=True)
    while True:
        for key, _ in sel.select():
            s = key.fileobj
            if s is l:
                try:
                    while True:
                        c, _ = l.accept(); c.setblocking(False); sel.register(c, selectors.EVENT_READ)
                except BlockingIOError:
                    pass
            else:
                try:
                    d = s.recv(100)
                except OSError:
                    d = b""
                if d:
                    s.send(d)
                else:
                    sel.unregister(s); s.close()
else:
    conns = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port)); s.send(b"hi"); conns.append(s)
    for s in conns:
        s.recv(10)
    print("ready", flush=True)
    sys.stdin.readline()
    for s in conns:
        s.close()
    print("closed", flush=True)
    time.sleep(3600)
EOF

cpu_ticks() { awk '{print $14+$15}' "/proc/$1/stat"; }
TICK=$(getconf CLK_TCK)
prog_stats() { # name -> "run_time_ns run_cnt"
  bpftool -j prog show 2>/dev/null | python3 -c '
import json, sys
t = c = 0
for p in json.load(sys.stdin):
    if p.get("name") == sys.argv[1]:
        t += p.get("run_time_ns", 0); c += p.get("run_cnt", 0)
print(t, c)' "$1"
}
start_agent() { # extra args...
  WIRELENS_LOG=info,wirelens::netmetrics=debug OTEL_METRIC_EXPORT_INTERVAL=$INTERVAL \
    "$BIN" --output none --port "$PORT" --lock-file "$WORK/lock" \
    --prometheus-listen "127.0.0.1:$((PORT + 1))" "$@" 2> "$WORK/agent.err" &
  apid=$!
  for _ in $(seq 1 300); do grep -q "wirelens ready" "$WORK/agent.err" 2>/dev/null && break; sleep 0.1; done
}
stop_agent() { kill -INT "$apid"; wait "$apid" || true; }

# 500 idle processes.
for _ in $(seq 1 500); do sleep 100000 & done

measure() { # label, agent args...
  local label=$1; shift
  start_agent "$@"
  python3 "$WORK/conns.py" server "$PORT" 0 > "$WORK/server.out" &
  local spid=$!
  until grep -q ready "$WORK/server.out" 2>/dev/null; do sleep 0.1; done
  mkfifo "$WORK/client.in"
  python3 "$WORK/conns.py" client "$PORT" "$CONNS" < "$WORK/client.in" > "$WORK/client.out" &
  local cpid=$!
  exec 7> "$WORK/client.in"
  until grep -q ready "$WORK/client.out" 2>/dev/null; do sleep 0.2; done
  sleep 2
  local c0 c1
  c0=$(cpu_ticks "$apid")
  sleep "$SECS"
  c1=$(cpu_ticks "$apid")
  echo >&7
  until grep -q closed "$WORK/client.out" 2>/dev/null; do sleep 0.2; done
  exec 7>&-
  rm -f "$WORK/client.in"
  kill "$cpid" "$spid"; wait "$cpid" "$spid" 2>/dev/null || true
  stop_agent
  python3 -c "print(f'$label: agent CPU {($c1-$c0)/$TICK/$SECS*1000:.1f} ms/s with $CONNS connections, 500 extra processes')"
  grep -o 'network metrics collected.*' "$WORK/agent.err" | tail -3 || true
  grep -o 'sock_diag dump.*' "$WORK/agent.err" | tail -2 || true
}

echo "== agent CPU (export interval ${INTERVAL} ms, ${SECS} s each)"
measure "network metrics off"
measure "network metrics on " --network-metrics true

echo "== BPF time per event (kernel.bpf_stats_enabled=1)"
start_agent --network-metrics true
sysctl -qw kernel.bpf_stats_enabled=1
read -r t0 n0 < <(prog_stats inet_sock_set_state)
python3 - "$CONNS" <<'EOF'
import socket, sys
l = socket.socket(); l.bind(("127.0.0.1", 0)); l.listen(4096)
for _ in range(int(sys.argv[1])):
    c = socket.create_connection(l.getsockname()); a, _ = l.accept(); c.close(); a.close()
EOF
read -r t1 n1 < <(prog_stats inet_sock_set_state)
# Retransmits: two namespaces, a veth, 20% loss into the server's (iptables; no sch_netem).
ip netns add "$NS-c"; ip netns add "$NS-s"
ip link add wlbc$$ netns "$NS-c" type veth peer wlbs$$ netns "$NS-s"
ip -n "$NS-c" addr add 10.213.8.1/24 dev wlbc$$; ip -n "$NS-s" addr add 10.213.8.2/24 dev wlbs$$
ip -n "$NS-c" link set wlbc$$ up; ip -n "$NS-s" link set wlbs$$ up
ip netns exec "$NS-s" iptables -A INPUT -p tcp -s 10.213.8.1 -m statistic --mode random --probability 0.2 -j DROP
ip netns exec "$NS-s" timeout 20 python3 -c '
import socket
l = socket.socket(); l.bind(("10.213.8.2", 9000)); l.listen()
c, _ = l.accept()
while c.recv(65536): pass' &
sleep 0.5
read -r r0 m0 < <(prog_stats tcp_retransmit_skb)
ip netns exec "$NS-c" timeout 10 python3 -c '
import socket, time
s = socket.create_connection(("10.213.8.2", 9000)); end = time.time() + 5
while time.time() < end: s.sendall(b"x" * 65536)' || true
read -r r1 m1 < <(prog_stats tcp_retransmit_skb)
sysctl -qw kernel.bpf_stats_enabled=0
stop_agent
python3 -c "
n = $n1 - $n0; m = $m1 - $m0
print(f'inet_sock_set_state: {n} runs, {($t1-$t0)/max(n,1):.0f} ns/run')
print(f'tcp_retransmit_skb:  {m} runs, {($r1-$r0)/max(m,1):.0f} ns/run')"
