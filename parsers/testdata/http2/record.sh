#!/usr/bin/env bash
# Records the HTTP/2 fixtures in this folder from real traffic: nghttpd (h2c, --no-tls) on
# 127.0.0.1:18490 serving a small docroot, driven by curl --http2-prior-knowledge, nghttp and
# h2load, captured with tshark on lo (one capture per case), then split by
# ../http1/extract.py into the bytes each side of the connection sent (<case>.client.bin,
# <case>.server.bin) and when (<case>.timeline); see README.md. Needs root (capture on lo),
# nghttpd/nghttp/h2load (Debian nghttp2-server, nghttp2-client), curl and tshark.
# Re-running changes the timings (and Date headers), so the baselines (<case>.expected) must
# then be regenerated: WIRELENS_BLESS=1 cargo test -p wirelens-parsers http2.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
port=18490
work=$(mktemp -d)
server_pid=""
tshark_pid=""
cleanup() {
    [ -n "$tshark_pid" ] && kill "$tshark_pid" 2>/dev/null || true
    [ -n "$server_pid" ] && kill "$server_pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work/html"
printf 'hello over h2c\n' >"$work/html/index.html"
python3 -c "import sys; open(sys.argv[1], 'w').write('wirelens h2 fixture line\n' * 2000)" "$work/html/big.txt"
for i in $(seq 1 8); do printf 'item %s\n' "$i" >"$work/html/item$i.txt"; done
printf 'posted body for the echo\n' >"$work/post.txt"

nghttpd --no-tls -d "$work/html" "$port" >"$work/nghttpd.log" 2>&1 &
server_pid=$!
sleep 1

case_() {
    local name=$1; shift
    tshark -i lo -f "tcp port $port" -F pcap -w "$work/$name.pcap" -q 2>"$work/tshark.log" &
    tshark_pid=$!
    sleep 2
    "$@" >/dev/null
    sleep 1
    kill "$tshark_pid"; wait "$tshark_pid" 2>/dev/null || true; tshark_pid=""
    python3 "$here/../http1/extract.py" "$work/$name.pcap" "$here" "$name"
}

url="http://127.0.0.1:$port"
# One GET by curl, prior knowledge.
case_ curl_get curl -sS --http2-prior-knowledge -H 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01' "$url/index.html"
# Several concurrent streams on one connection, a 404 among them; the table fills up.
case_ nghttp_many nghttp -n "$url/item1.txt" "$url/item2.txt" "$url/item3.txt" "$url/missing" "$url/item4.txt"
# A 50 KB response in many DATA frames, and a POST with a body.
case_ nghttp_big_post nghttp -n -d "$work/post.txt" "$url/big.txt"
# h2load: 40 requests, 10 at a time, on one connection.
case_ h2load_streams h2load -n 40 -c 1 -m 10 "$url/item5.txt"

echo "nghttpd: $(nghttpd --version | head -1)"; echo "curl: $(curl --version | head -1)"
echo "h2load: $(h2load --version | head -1)"; echo "tshark: $(tshark --version | head -1)"
