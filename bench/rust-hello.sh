#!/usr/bin/env bash
# Rust hello app through wsgi-server (examples' `serve hello`, on the app-thread pool
# and --inline) vs a bare hyper hello server (../shared/bench's hyper-raw), same wrk
# settings (wrk -t1 -c64), interleaved rounds, medians. A subset of bench/all.sh: it
# measures into RESULTS (bench/results/<UTC time>) and does not write
# docs/benchmarks.md unless REPORT=1.
# Usage: bash bench/rust-hello.sh [extra run.py args]
#   ROUNDS (5), DURATION (10 s), WORKERS (1), RESULTS, BUILD (1), REPORT (0)
set -euo pipefail
export SERVERS=${SERVERS:-rust-hello,rust-hello-inline,hyper-raw}
export APPS=${APPS:-hello}
export WORKERS=${WORKERS:-1}
export ROUNDS=${ROUNDS:-5}
export REPORT=${REPORT:-0}
exec bash "$(dirname "$0")/all.sh" "$@"
