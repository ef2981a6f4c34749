#!/usr/bin/env bash
# Everything CI checks: set-up, build, format, lints, every test, then each parser fuzz target
# for a bounded time (FUZZ_SECONDS each, default 20).
# Integration tests (tests/) load the agent into this kernel and start their own nginx,
# OTLP receiver and clients; they run one at a time.
# A failed build stops here; a failed fmt or clippy does not keep the tests from running,
# but the script still exits non-zero at the end.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --tests
export PATH="$HOME/.cargo/bin:$PATH"

failed=()
stage() {
    local name=$1
    shift
    echo "test: $name"
    if ! "$@"; then
        echo "test: $name FAILED" >&2
        failed+=("$name")
    fi
}

echo "test: build"
cargo build --release --workspace
stage fmt cargo fmt --all -- --check
stage clippy cargo clippy --workspace --all-targets -- -D warnings
stage tests cargo test --release --workspace -- --test-threads=1
stage fuzz bash scripts/fuzz.sh

if ((${#failed[@]})); then
    echo "test: failed: ${failed[*]}" >&2
    exit 1
fi
echo "test: all passed"
