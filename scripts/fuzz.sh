#!/usr/bin/env bash
# Runs every cargo-fuzz target of the parsers for a bounded time each (FUZZ_SECONDS, default 20).
# A crash fails the run; its input is kept under parsers/fuzz/artifacts/<target>/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../parsers"
export PATH="$HOME/.cargo/bin:$PATH"
SECONDS_EACH=${FUZZ_SECONDS:-20}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
targets=$(cargo +nightly fuzz list)
for target in $targets; do
    echo "fuzz: $target for ${SECONDS_EACH}s"
    # pipefail: the stage fails when cargo fuzz does (a crash or a build error); grep only
    # trims the output and may match nothing.
    if ! (set -o pipefail
        cargo +nightly fuzz run "$target" -- -max_total_time="$SECONDS_EACH" -rss_limit_mb=2048 2>&1 \
            | { grep -E '^(Done|INFO: Running with|==[0-9]+==|SUMMARY|.*panicked|Failing input|error)' || true; }); then
        echo "fuzz: $target FAILED" >&2
        exit 1
    fi
done
echo "fuzz: all targets clean"
