#!/bin/sh
# Demo load: a few requests a second to the frontend, mostly orders, some to a missing page.
# Rate: LOADGEN_INTERVAL seconds between rounds (default 0.5); LOADGEN_ROUNDS rounds, then
# exit (default 0: forever).
set -u
target=${FRONTEND_URL:-http://frontend:8080}
interval=${LOADGEN_INTERVAL:-0.5}
rounds=${LOADGEN_ROUNDS:-0}
round=0
while [ "$rounds" -eq 0 ] || [ "$round" -lt "$rounds" ]; do
    round=$((round + 1))
    curl -s -o /dev/null "$target/order" || true
    curl -s -o /dev/null "$target/order" || true
    curl -s -o /dev/null "$target/missing" || true
    sleep "$interval"
done
