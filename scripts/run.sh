#!/usr/bin/env bash
# Builds wirelens and runs it; with no arguments it traces the host and prints
# requests live. Arguments go to the agent: scripts/run.sh --port 8080 --output json
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
export PATH="$HOME/.cargo/bin:$PATH"
cargo build --release -p wirelens
exec ./target/release/wirelens "$@"
