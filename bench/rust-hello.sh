#!/usr/bin/env bash
# Rust hello app through wsgi-server vs a bare hyper hello server, same machine,
# same wrk settings (wrk -t1 -c64), interleaved rounds, medians (../shared/bench/run.py).
# Usage: bash bench/rust-hello.sh [extra run.py args]
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shared=${SHARED:-$root/../shared}
command -v wrk >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
cargo build --release --locked -p examples --bin serve
export BENCH_VENV=${BENCH_VENV:-/tmp/venv-bench}
[ -x "$BENCH_VENV/bin/python" ] || python3 -m venv "$BENCH_VENV"
out=${OUT:-/tmp/bench-rust-hello}
cd "$shared"
python3 bench/run.py \
  --add-server "wsgi-server=$root/target/release/serve hello --bind {host}:{port} --threads 4 --io-threads 1" \
  --add-server "wsgi-server-inline=$root/target/release/serve hello --bind {host}:{port} --threads 4 --inline --io-threads 1" \
  --servers wsgi-server,wsgi-server-inline,hyper-raw --apps hello --workers 1 --conns 64 \
  --rounds "${ROUNDS:-5}" --duration "${DURATION:-10}" --warmup 2 --out "$out" "$@"
