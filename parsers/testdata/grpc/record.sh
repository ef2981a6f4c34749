#!/usr/bin/env bash
# Records the gRPC fixtures in this folder from real traffic: peer.py (Debian python3-grpcio,
# plaintext) serving on 127.0.0.1:18491, one client call per case on its own channel,
# captured with tshark on lo, split by ../http1/extract.py into <case>.client.bin,
# <case>.server.bin and <case>.timeline; see README.md. Needs root (capture on lo),
# /usr/bin/python3 with python3-grpcio, and tshark. Re-running changes the timings, so the
# baselines must then be regenerated: WIRELENS_BLESS=1 cargo test -p wirelens-parsers grpc.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
port=18491
py=/usr/bin/python3
work=$(mktemp -d)
server_pid=""
tshark_pid=""
cleanup() {
    [ -n "$tshark_pid" ] && kill "$tshark_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

"$py" "$here/peer.py" serve "$port" >"$work/server.log" 2>&1 &
server_pid=$!
sleep 2

for name in unary server_stream bidi client_stream not_found; do
    tshark -i lo -f "tcp port $port" -F pcap -w "$work/$name.pcap" -q 2>"$work/tshark.log" &
    tshark_pid=$!
    sleep 2
    "$py" "$here/peer.py" call "$port" "$name"
    sleep 1
    kill "$tshark_pid"; wait "$tshark_pid" 2>/dev/null || true; tshark_pid=""
    python3 "$here/../http1/extract.py" "$work/$name.pcap" "$here" "$name"
done
echo "grpcio: $("$py" -c 'import grpc; print(grpc.__version__)')"; echo "python: $("$py" --version)"
echo "tshark: $(tshark --version | head -1)"
