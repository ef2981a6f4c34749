#!/usr/bin/env bash
# Records the HTTP/1.x fixtures in this folder from real traffic: nginx on 127.0.0.1:18480,
# driven by curl and by a raw Python socket, captured with tshark on lo, then split into the
# bytes each side sent (<case>.client.bin, <case>.server.bin) and when (<case>.timeline); see
# README.md. Needs root (capture on lo),
# nginx, curl, python3 and tshark. Re-running changes Date headers, so the baselines
# (<case>.expected) must then be regenerated: WIRELENS_BLESS=1 cargo test -p wirelens-parsers.
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
port=18480
work=$(mktemp -d)
chmod 755 "$work"
nginx_pid=""
tshark_pid=""
cleanup() {
    [ -n "$tshark_pid" ] && kill "$tshark_pid" 2>/dev/null || true
    [ -n "$nginx_pid" ] && kill "$nginx_pid" 2>/dev/null || true
    # KEEP_PCAP=path keeps the capture, for a look with wireshark.
    if [ -n "${KEEP_PCAP:-}" ]; then cp "$work/capture.pcap" "$KEEP_PCAP"; fi
    rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work"/{html/gzip,html/dav,logs,tmp}
chmod 777 "$work/html/dav" "$work/tmp"
# Deterministic content and mtimes, so ETag and Last-Modified are the same on every run.
python3 - "$work/html" <<'PY'
import random, sys
root = sys.argv[1]
open(f"{root}/static.txt", "w").write("wirelens static fixture\n" * 20)
rng = random.Random(18480)
words = ["span", "trace", "socket", "kernel", "parser", "chunk", "header", "body", "nginx", "curl"]
# Enough varied text that the gzip filter flushes several chunks.
open(f"{root}/gzip/words.txt", "w").write(" ".join(rng.choice(words) + str(rng.randrange(1000)) for _ in range(2500)))
PY
touch -d '2024-01-02 03:04:05 UTC' "$work/html/static.txt" "$work/html/gzip/words.txt"

cat > "$work/nginx.conf" <<CONF
worker_processes 1;
daemon off;
pid $work/nginx.pid;
error_log $work/logs/error.log;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path $work/tmp;
    proxy_temp_path $work/tmp;
    fastcgi_temp_path $work/tmp;
    uwsgi_temp_path $work/tmp;
    scgi_temp_path $work/tmp;
    default_type text/plain;
    server_tokens on;
    keepalive_requests 1000;
    server {
        listen 127.0.0.1:$port;
        root $work/html;
        location = /static.txt { }
        location = /error { return 500; }
        location = /upload { return 201 "created\n"; }
        location /gzip/ { sendfile off; output_buffers 1 2k; gzip_buffers 2 1k; gzip on; gzip_types text/plain; gzip_min_length 0; gzip_http_version 1.0; }
        location /dav/ { dav_methods PUT; create_full_put_path on; }
    }
}
CONF

tshark -i lo -f "tcp port $port" -F pcap -w "$work/capture.pcap" -q 2>"$work/tshark.log" &
tshark_pid=$!
nginx -p "$work" -c "$work/nginx.conf" 2>"$work/nginx.log" &
nginx_pid=$!
sleep 2

base="http://127.0.0.1:$port"
ims='Tue, 02 Jan 2024 03:04:05 GMT'
# Each command below is one TCP connection; the order is the case order in extract.py.
# 1 keepalive_mixed: static file, 404, HEAD, POST -> 201, then return 500 (after which nginx
#   sends Connection: close and closes) on one connection.
curl -s -o /dev/null -o /dev/null "$base/static.txt" "$base/missing" \
    --next -s -o /dev/null -I "$base/static.txt" \
    --next -s -o /dev/null -d 'name=wirelens&kind=fixture' "$base/upload" \
    --next -s -o /dev/null "$base/error"
# 2 chunked_gzip: gzip filter output, sent chunked.
curl -s -o /dev/null -H 'Accept-Encoding: gzip' "$base/gzip/words.txt"
# 3 (not kept) fetches the ETag for 4.
etag=$(curl -s -o /dev/null -D - "$base/static.txt" | tr -d '\r' | sed -n 's/^ETag: //Ip')
# 4 conditional_304: If-None-Match, then If-Modified-Since.
curl -s -o /dev/null -H "If-None-Match: $etag" "$base/static.txt" \
    --next -s -o /dev/null -H "If-Modified-Since: $ims" "$base/static.txt"
# 5 put_100_continue: a 3000-byte PUT with Expect: 100-continue, stored by the DAV module.
head -c 3000 /dev/zero | tr '\0' 'w' > "$work/put.bin"
curl -s -o /dev/null -H 'Expect: 100-continue' -T "$work/put.bin" "$base/dav/put.bin"
# 6 pipelined_10: ten requests in one send, the last with Connection: close.
python3 - "$port" <<'PY'
import socket, sys
port = int(sys.argv[1])
reqs = []
for i in range(10):
    last = i == 9
    reqs.append(
        f"GET /static.txt?n={i} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUser-Agent: pipeline.py\r\n"
        f"traceparent: 00-0af7651916cd43dd8448eb211c80319c-b7ad6b71692033{i:02x}-01\r\n"
        + ("Connection: close\r\n" if last else "") + "\r\n")
s = socket.create_connection(("127.0.0.1", port))
s.sendall("".join(reqs).encode())
while s.recv(65536):
    pass
s.close()
PY
# 7 http10_close_delimited: HTTP/1.0 and gzip: no length known, the server closes.
curl -s -o /dev/null -0 -H 'Accept-Encoding: gzip' "$base/gzip/words.txt"
# 8 connection_close: HTTP/1.1 with Connection: close.
curl -s -o /dev/null -H 'Connection: close' "$base/static.txt"

sleep 2
kill "$tshark_pid"; wait "$tshark_pid" 2>/dev/null || true; tshark_pid=""
python3 "$here/extract.py" "$work/capture.pcap" "$here" \
    keepalive_mixed chunked_gzip - conditional_304 put_100_continue pipelined_10 \
    http10_close_delimited connection_close
echo "nginx: $(nginx -v 2>&1)"; echo "curl: $(curl --version | head -1)"; echo "python: $(python3 --version)"
