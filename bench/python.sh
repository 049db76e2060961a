#!/usr/bin/env bash
# Python apps (hello, Flask, Django) through wsgi-server side by side with bjoern,
# Granian, Gunicorn and uWSGI: one worker process each, wrk -t1 -c64, interleaved
# rounds, medians (../shared/bench/run.py). Writes the summary to docs/benchmarks.md.
# Usage: bash bench/python.sh [extra run.py args]
#   ROUNDS (3), DURATION (10 s), OUT (/tmp/bench-python), SHARED (../shared)
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shared=${SHARED:-$root/../shared}
export BENCH_VENV=${BENCH_VENV:-/tmp/venv-anchors}
[ -x "$BENCH_VENV/bin/granian" ] || bash "$shared/bench/setup.sh"
# Link the interpreter of the venv that holds the apps' packages.
PYO3_PYTHON="$BENCH_VENV/bin/python" cargo build --release --locked -p wsgi-server --features python,tls
out=${OUT:-/tmp/bench-python}
servers=${SERVERS:-wsgi-server,bjoern,granian,gunicorn-sync,uwsgi}
(cd "$shared" && python3 bench/run.py \
  --add-server "wsgi-server=$root/target/release/wsgi-server --bind {host}:{port} --workers {workers} {module}:{attr}" \
  --servers "$servers" --apps "${APPS:-hello,flask,django}" --workers 1 --conns 64 \
  --rounds "${ROUNDS:-3}" --duration "${DURATION:-10}" --warmup 2 --out "$out" "$@")
{
  echo "# Benchmarks"
  echo
  echo "Measured $(date -u '+%Y-%m-%d %H:%M UTC') on $(nproc) vCPU / $(free -g | awk '/Mem:/{print $2}') GiB ($(uname -r)),"
  echo "client and servers sharing the machine over loopback. Command: \`bash bench/python.sh\`"
  echo "(../shared/bench/run.py: wrk -t1 -c64, ${ROUNDS:-3} interleaved rounds of ${DURATION:-10} s, medians; one worker process each)."
  echo
  cat "$out/summary.md"
} > docs/benchmarks.md
echo "wrote docs/benchmarks.md"
