#!/usr/bin/env bash
# `wirelens replay` against `tshark -r` on the same large capture. Records a capture on
# loopback (dumpcap, from tshark's packages) while wrk drives HTTP/1.1 keep-alive traffic and
# h2load HTTP/2 (h2c) traffic at a one-worker nginx, then times, interleaved, ROUNDS times:
#   wirelens --output none replay FILE      (every connection inferred, parsed, recorded)
#   tshark -r FILE -Y http                   (dissects every packet, HTTP/1 and HTTP/2 included)
#   tshark -r FILE                           (the same, one summary line per packet)
# and prints the medians (wall and user+sys CPU seconds; CPU is the fairer figure on a
# shared host) and the ratios. Both write to /dev/null.
# Usage: bench/replay.sh [capture-MB] [rounds]   (defaults 300 and 3; root, for capturing)
# KEEP_CAPTURE=FILE keeps the capture there (and reuses it when it exists).
set -euo pipefail
MB=${1:-300}
ROUNDS=${2:-3}
PORT=${BENCH_PORT:-18650}
H2PORT=$((PORT + 1))
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${WIRELENS_BIN:-$ROOT/target/release/wirelens}
WORK=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null || true; [ -f "$WORK/nginx.pid" ] && kill "$(cat "$WORK/nginx.pid")" 2>/dev/null; rm -rf "$WORK"' EXIT

[ -x "$BIN" ] || { echo "build first: cargo build --release -p wirelens" >&2; exit 1; }
for tool in wrk h2load tshark dumpcap; do
  command -v "$tool" >/dev/null || { echo "$tool is missing (scripts/setup.sh installs it)" >&2; exit 1; }
done

CAP=${KEEP_CAPTURE:-$WORK/capture.pcapng}
if [ ! -s "$CAP" ]; then
  mkdir -p "$WORK/html" "$WORK/logs"
  chmod 755 "$WORK" "$WORK/html"
  printf 'hello from the wirelens benchmark\n' > "$WORK/html/index.html"
  head -c 4096 /dev/zero | tr '\0' 'x' > "$WORK/html/4k.html"
  cat > "$WORK/nginx.conf" <<CONF
worker_processes 1;
pid $WORK/nginx.pid;
error_log $WORK/logs/error.log;
events { worker_connections 1024; }
http {
  access_log off;
  keepalive_requests 1000000;
  server { listen 127.0.0.1:$PORT; root $WORK/html; }
  server { listen 127.0.0.1:$H2PORT http2; root $WORK/html; }
}
CONF
  /usr/sbin/nginx -p "$WORK" -c "$WORK/nginx.conf"
  sleep 0.5
  # Whole packets, stopped at the size asked for (dumpcap's filesize is in kB).
  dumpcap -q -i lo -f "tcp port $PORT or tcp port $H2PORT" -s 0 \
    -a "filesize:$((MB * 1000))" -w "$CAP" 2> "$WORK/dumpcap.err" &
  cap_pid=$!
  sleep 1
  while kill -0 "$cap_pid" 2>/dev/null; do
    wrk -t1 -c16 -d2s "http://127.0.0.1:$PORT/index.html" >/dev/null || true
    wrk -t1 -c16 -d2s "http://127.0.0.1:$PORT/4k.html" >/dev/null || true
    h2load -c8 -m10 -n 20000 "http://127.0.0.1:$H2PORT/index.html" >/dev/null 2>&1 || true
  done
  wait "$cap_pid" || true
  kill "$(cat "$WORK/nginx.pid")" 2>/dev/null || true
  rm -f "$WORK/nginx.pid"
fi
SIZE=$(stat -c %s "$CAP")
PACKETS=$(capinfos -c -M "$CAP" 2>/dev/null | awk -F': *' '/Number of packets/ {print $2}' || true)
echo "capture: $CAP, $((SIZE / 1000000)) MB, ${PACKETS:-?} packets"

# Prints "wall cpu" seconds of the command.
timed() {
  /usr/bin/time -f '%e %U %S' -o "$WORK/time" "$@" > /dev/null 2> "$WORK/err" || {
    echo "failed: $*" >&2
    cat "$WORK/err" >&2
    exit 1
  }
  awk '{printf "%s %.2f\n", $1, $2 + $3}' "$WORK/time"
}
median() { sort -g | awk '{v[NR] = $1} END {print v[int((NR + 1) / 2)]}'; }

declare -A wall cpu
for _ in $(seq 1 "$ROUNDS"); do
  for what in wirelens tshark_http tshark; do
    case $what in
      wirelens) read -r w c < <(timed "$BIN" --output none replay "$CAP") ;;
      tshark_http) read -r w c < <(timed tshark -n -r "$CAP" -Y http) ;;
      tshark) read -r w c < <(timed tshark -n -r "$CAP") ;;
    esac
    wall[$what]+="$w "
    cpu[$what]+="$c "
    echo "  $what: ${w}s wall, ${c}s cpu"
  done
done
printf '%-28s %10s %10s\n' "median of $ROUNDS" "wall s" "cpu s"
for what in wirelens tshark_http tshark; do
  printf '%-28s %10s %10s\n' "$what" \
    "$(tr ' ' '\n' <<< "${wall[$what]}" | grep . | median)" \
    "$(tr ' ' '\n' <<< "${cpu[$what]}" | grep . | median)"
done
ratio() { # tshark figure / wirelens figure
  awk -v a="$1" -v b="$2" 'BEGIN {if (b > 0) printf "%.1f", a / b; else print "inf"}'
}
wc_=$(tr ' ' '\n' <<< "${cpu[wirelens]}" | grep . | median)
ww=$(tr ' ' '\n' <<< "${wall[wirelens]}" | grep . | median)
for what in tshark_http tshark; do
  echo "$what / wirelens: $(ratio "$(tr ' ' '\n' <<< "${cpu[$what]}" | grep . | median)" "$wc_")x cpu," \
    "$(ratio "$(tr ' ' '\n' <<< "${wall[$what]}" | grep . | median)" "$ww")x wall"
done
