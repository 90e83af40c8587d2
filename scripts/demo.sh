#!/usr/bin/env bash
# Runs Kith's main job end to end on its embedded defaults: builds the `kith`
# CLI and walks the main flows on a realistic sample network in a temporary
# directory (log after a meeting, timeline, search, follow-ups).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/kith/target}"
cargo run --quiet -p kith-cli --bin kith -- demo "$@"
