#!/usr/bin/env bash
# CPU cost of the profiler on a busy machine: one busy loop per CPU (the -O2
# -fomit-frame-pointer test program, so every sample is unwound from .eh_frame), then
# `wirelens profile` over the whole host at each rate, with each unwinding mode (`dwarf`, the
# default: user stacks copied and unwound from .eh_frame in user space; `fp`: frame-pointer
# walks counted in the kernel; MODES="dwarf" to run one). Reports the agent's user+sys CPU in steady
# state (from /proc, start-up excluded), the perf_event program's run time (bpftool,
# kernel.bpf_stats_enabled=1), and both as a share of the machine's CPU time.
# Usage: bench/profile_overhead.sh [seconds] [rates...]   (defaults: 30 s; 19 and 99 Hz)
set -euo pipefail
SECS=${1:-30}
shift || true
RATES=("$@")
((${#RATES[@]})) || RATES=(19 99)
read -r -a MODES <<<"${MODES:-dwarf fp}"
ROOT=$(cd "$(dirname "$0")/.." && pwd)
BIN=${WIRELENS_BIN:-$ROOT/target/release/wirelens}
WORK=$(mktemp -d)
CPUS=$(nproc)
HZ=$(getconf CLK_TCK)
trap 'kill $(jobs -p) 2>/dev/null || true; sysctl -qw kernel.bpf_stats_enabled=0; rm -rf "$WORK"' EXIT

[ -x "$BIN" ] || { echo "build first: cargo build --release -p wirelens" >&2; exit 1; }
command -v bpftool >/dev/null || { echo "bpftool is missing (apt-get install bpftool)" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || { echo "run as root" >&2; exit 1; }

gcc -O2 -fomit-frame-pointer -o "$WORK/busy" "$ROOT/tests/profilee/spin.c"
for _ in $(seq "$CPUS"); do "$WORK/busy" 100000 & done
sleep 1
sysctl -qw kernel.bpf_stats_enabled=1

cpu_ticks() { # utime + stime of a pid, in clock ticks
  awk '{print $14 + $15}' "/proc/$1/stat" 2>/dev/null || echo 0
}
bpf_ns() { # run time of the profiler's perf_event program so far
  bpftool prog show name profile_sample -j 2>/dev/null |
    python3 -c 'import json,sys; d=json.load(sys.stdin); d=d if isinstance(d,list) else [d]; print(sum(p.get("run_time_ns",0) for p in d), sum(p.get("run_cnt",0) for p in d))' 2>/dev/null ||
    echo "0 0"
}

printf '%-6s %-6s %10s %12s %10s %12s %10s %9s\n' rate unwind samples agent_cpu_s agent_% bpf_ns/run bpf_% total_%
for mode in "${MODES[@]}"; do
  for rate in "${RATES[@]}"; do
    "$BIN" profile --unwind "$mode" --frequency "$rate" --duration "$((SECS + 6))s" -o "$WORK/cpu.pb.gz" \
      > "$WORK/out.txt" 2> "$WORK/err.txt" &
    pid=$!
    # Steady state: from 5 s after start (loaded, caches warm) to 1 s before the end.
    sleep 5
    t0=$(cpu_ticks "$pid"); read -r b0 n0 < <(bpf_ns); s0=$(date +%s.%N)
    sleep "$SECS"
    t1=$(cpu_ticks "$pid"); read -r b1 n1 < <(bpf_ns); s1=$(date +%s.%N)
    wait "$pid" || { cat "$WORK/err.txt" >&2; exit 1; }
    python3 - "$rate $mode" "$t0" "$t1" "$b0" "$b1" "$n0" "$n1" "$s0" "$s1" "$HZ" "$CPUS" "$WORK/err.txt" <<'PY'
import re, sys
rate, t0, t1, b0, b1, n0, n1, s0, s1, hz, cpus, err = sys.argv[1:]
wall = float(s1) - float(s0)
machine = wall * int(cpus)
agent = (int(t1) - int(t0)) / int(hz)
bpf = (int(b1) - int(b0)) / 1e9
runs = int(n1) - int(n0)
samples = re.search(r"(\d+) samples of", open(err).read())
rate, mode = rate.split()
print(f"{rate:<6} {mode:<6} {samples.group(1) if samples else '?':>10} {agent:12.3f} {100*agent/machine:10.3f} "
      f"{(int(b1)-int(b0))/max(runs,1):12.0f} {100*bpf/machine:10.3f} {100*(agent+bpf)/machine:9.3f}")
PY
  done
done
