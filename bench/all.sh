#!/usr/bin/env bash
# The whole benchmark in one command: build, measure, write docs/benchmarks.md and
# docs/benchmarks.svg.
#
#   bash bench/all.sh [extra bench/matrix.py (= ../shared/bench/run.py) options, e.g. --seed 2]
#
# 1. builds the release `wsgi-server` (PYO3_PYTHON = the bench venv's interpreter) and the
#    examples' `serve` (the Rust hello app), unless BUILD=0;
# 2. the matrix (bench/matrix.py on ../shared/bench/run.py): SERVERS x APPS x WORKERS,
#    wrk -t1 -c64, ROUNDS interleaved rounds (shuffled each round) of DURATION s, medians of
#    req/s, p50/p99 latency and RSS; the Rust hello app vs the bare hyper server runs in it;
# 3. the static-file cell (bench/static.sh) when APPS names `static`;
# 4. bench/report.py: the Markdown tables, the target verdicts and the chart, unless REPORT=0.
#
# Knobs (defaults in brackets):
#   ROUNDS [3]  DURATION [10 s]  WARMUP [2 s]  WORKERS [1,2]  CONNS [64]
#   SERVERS [wsgi-server,gunicorn-sync,gunicorn-gthread,uwsgi,granian,bjoern,hyper-raw,
#            rust-hello,rust-hello-inline]
#   APPS    [hello,64k,flask,django,django-tpl,echo,echo-1m,static]
#   BUILD [1]  REPORT [1]  RESULTS [bench/results/<UTC time>]  STATIC_CELLS [all four]
#   BENCH_VENV [/tmp/venv-anchors]  SHARED [../shared]
# A quick check: ROUNDS=1 DURATION=1 WARMUP=1 APPS=hello SERVERS=wsgi-server,granian WORKERS=1 bash bench/all.sh
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD

# The command as given, for the report.
cmd=""
for k in ROUNDS DURATION WARMUP WORKERS CONNS SERVERS APPS STATIC_CELLS BUILD; do
  if [ -n "${!k:-}" ]; then cmd="$cmd$k=${!k} "; fi
done
cmd="${cmd}bash bench/all.sh"
if [ $# -gt 0 ]; then cmd="$cmd $*"; fi

export SHARED=${SHARED:-$root/../shared}
export BENCH_VENV=${BENCH_VENV:-/tmp/venv-anchors}
rounds=${ROUNDS:-3} duration=${DURATION:-10} warmup=${WARMUP:-2}
workers=${WORKERS:-1,2} conns=${CONNS:-64}
servers=${SERVERS:-wsgi-server,gunicorn-sync,gunicorn-gthread,uwsgi,granian,bjoern,hyper-raw,rust-hello,rust-hello-inline}
apps=${APPS:-hello,64k,flask,django,django-tpl,echo,echo-1m,static}
stamp=$(date -u +%Y%m%dT%H%M%SZ)
results=${RESULTS:-$root/bench/results/$stamp}

has() { case ",$1," in *",$2,"*) return 0 ;; *) return 1 ;; esac; }
matrix_apps=$(echo ",$apps," | sed 's/,static,/,/g; s/^,//; s/,$//')
run_static=0
if has "$apps" static; then run_static=1; fi

# The anchors' venv and wrk (../shared/bench/setup.sh: apt + pip, needs root).
if ! [ -x "$BENCH_VENV/bin/granian" ] || ! [ -x "$BENCH_VENV/bin/uwsgi" ] || ! command -v "${WRK:-wrk}" >/dev/null ||
   ! "$BENCH_VENV/bin/python" -c 'import bjoern, flask, django' 2>/dev/null; then
  bash "$SHARED/bench/setup.sh"
fi

if [ "${BUILD:-1}" != 0 ]; then
  if has "$servers" wsgi-server || [ $run_static = 1 ]; then
    # Link the interpreter of the venv that holds the apps' packages.
    PYO3_PYTHON="$BENCH_VENV/bin/python" cargo build --release --locked -p wsgi-server --features python,tls
  fi
  if has "$servers" rust-hello || has "$servers" rust-hello-inline; then
    cargo build --release --locked -p examples --bin serve
  fi
fi

mkdir -p "$results"
# server logs beside the results (run.py's default, /tmp/bench-logs/<folder name>, would put
# every run's logs in /tmp/bench-logs/matrix)
export BENCH_LOG_DIR=${BENCH_LOG_DIR:-$results/logs}
if [ -z "${RESULTS:-}" ]; then ln -sfn "$stamp" bench/results/latest; fi
python3 bench/report.py --save-env "$results" --command "$cmd"
echo "results: $results"

if [ -n "$matrix_apps" ] && [ -n "$servers" ]; then
  python3 bench/matrix.py --servers "$servers" --apps "$matrix_apps" --workers "$workers" \
    --conns "$conns" --rounds "$rounds" --duration "$duration" --warmup "$warmup" \
    --out "$results/matrix" "$@"
fi

if [ $run_static = 1 ]; then
  OUT="$results/static" BUILD=0 ROUNDS=$rounds DURATION=$duration WARMUP=$warmup bash bench/static.sh
fi

python3 bench/report.py --finish-env "$results"
if [ "${REPORT:-1}" != 0 ]; then
  python3 bench/report.py "$results"
else
  echo "not reporting (REPORT=0); write the docs with: python3 bench/report.py $results"
fi
