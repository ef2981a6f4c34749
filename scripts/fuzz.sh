#!/usr/bin/env bash
# Runs every cargo-fuzz target of the parsers (parsers/fuzz/) and of the agent (agent/fuzz/:
# conntrack, replay) for a bounded time each (FUZZ_SECONDS, default 20).
# A crash fails the run; its input is kept under <crate>/fuzz/artifacts/<target>/ and printed
# in base64 with the panic message.
# The seed is fixed (FUZZ_SEED, default 1) so that a red run shows the same inputs again on
# the next one; FUZZ_SEED=0 lets libFuzzer pick one, for longer exploratory runs.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
export PATH="$HOME/.cargo/bin:$PATH"
SECONDS_EACH=${FUZZ_SECONDS:-20}
SEED=${FUZZ_SEED:-1}
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --quiet
# The agent's targets need no kernel object; its fuzz workspace starts from the main lock file
# so that it builds with the same dependency versions.
export AYA_BUILD_SKIP=1
[ -f agent/fuzz/Cargo.lock ] || cp Cargo.lock agent/fuzz/Cargo.lock
for crate in parsers agent; do
    for target in $(cd "$crate" && cargo +nightly fuzz list); do
        echo "fuzz: $crate/$target for ${SECONDS_EACH}s, seed $SEED"
        # pipefail: the stage fails when cargo fuzz does (a crash or a build error); awk only
        # trims the output (a panic keeps its message line).
        if ! (set -o pipefail
            cd "$crate"
            cargo +nightly fuzz run "$target" -- -seed="$SEED" -max_total_time="$SECONDS_EACH" \
                -rss_limit_mb=2048 2>&1 \
                | awk '/panicked at/ { print; getline; print; next }
                       /^(Done|==[0-9]+==|SUMMARY|Failing input|Base64|error)/ { print }'); then
            echo "fuzz: $crate/$target FAILED" >&2
            exit 1
        fi
    done
done
echo "fuzz: all targets clean"
