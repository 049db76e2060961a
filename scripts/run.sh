#!/usr/bin/env bash
# The main job, from a fresh machine: build and serve an example app on 127.0.0.1:8000.
# Usage: bash scripts/run.sh [hello|streaming|lazy]
set -euo pipefail
cd "$(dirname "$0")/.."
exec cargo run --release --locked -p examples --bin serve -- "${1:-hello}" --bind 127.0.0.1:8000
