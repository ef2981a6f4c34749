#!/usr/bin/env bash
# Fuzz campaign: every cargo-fuzz target (parsers/fuzz: one per parser; agent/fuzz: conntrack,
# replay) for FUZZ_RUNS executions each (default 10^7), one after the other, keeping the corpus
# between campaigns in FUZZ_CORPUS (default /var/tmp/wirelens-fuzz-corpus/<crate>/<target>,
# outside the repository). Prints the executions and time per target, and a table at the end.
#
# FUZZ_TARGETS="redis conntrack" limits the run to those targets; FUZZ_MAX_SECONDS (default
# 0: no limit) stops each target after that long even if it has not done FUZZ_RUNS; FUZZ_JOBS
# (default unset: one process) runs that many fuzzing processes per target (libFuzzer -jobs;
# its per-job logs go to fuzz-N.log in the crate directory). A crash stops the campaign (exit 1)
# with its input under <crate>/fuzz/artifacts/<target>/.
# Not for CI (hours); scripts/fuzz.sh is the CI run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
ROOT=$PWD
export PATH="$HOME/.cargo/bin:$PATH"
RUNS=${FUZZ_RUNS:-10000000}
MAX_SECONDS=${FUZZ_MAX_SECONDS:-0}
JOBS=${FUZZ_JOBS:-}
CORPUS=${FUZZ_CORPUS:-/var/tmp/wirelens-fuzz-corpus}
ONLY=${FUZZ_TARGETS:-}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
export AYA_BUILD_SKIP=1
[ -f agent/fuzz/Cargo.lock ] || cp Cargo.lock agent/fuzz/Cargo.lock

summary=()
for crate in parsers agent; do
    for target in $(cd "$crate" && cargo +nightly fuzz list); do
        if [ -n "$ONLY" ] && ! grep -qw -- "$target" <<<"$ONLY"; then
            continue
        fi
        corpus="$CORPUS/$crate/$target"
        mkdir -p "$corpus"
        # The committed seeds, if any, join the kept corpus.
        [ -d "$crate/fuzz/corpus/$target" ] && cp -n "$crate/fuzz/corpus/$target"/* "$corpus"/ 2>/dev/null || true
        log=$(mktemp /tmp/wirelens-fuzz-campaign.XXXXXX)
        echo "campaign: $crate/$target: $RUNS runs, corpus $corpus"
        started=$(date +%s)
        if ! (cd "$crate" && cargo +nightly fuzz run "$target" "$corpus" -- \
                -runs="$RUNS" -max_total_time="$MAX_SECONDS" -rss_limit_mb=2048 \
                -print_final_stats=1 ${JOBS:+-jobs=$JOBS -workers=$JOBS} >"$log" 2>&1); then
            grep -E "panicked at|SUMMARY|Failing input|Base64|^error" -A1 "$log" | head -20 >&2
            echo "campaign: $crate/$target FAILED (log $log)" >&2
            exit 1
        fi
        seconds=$(($(date +%s) - started))
        # libFuzzer's final stats: stat::number_of_executed_units.
        execs=$(awk -F: '/stat::number_of_executed_units/ { n += $NF } END { print n + 0 }' "$log")
        units=$(find "$corpus" -type f | wc -l)
        echo "campaign: $crate/$target: $execs executions in ${seconds}s, corpus $units inputs"
        summary+=("$(printf '%-10s %-12s %12s %8ss %8s' "$crate" "$target" "$execs" "$seconds" "$units")")
        rm -f "$log"
    done
done
printf '%-10s %-12s %12s %9s %8s\n' crate target executions time corpus
printf '%s\n' "${summary[@]}"
