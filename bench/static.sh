#!/usr/bin/env bash
# Django's static files through `wsgi-server --static-map` vs WhiteNoise under
# Gunicorn (one worker each, the same hashed URL, wrk -t1 -c64,
# Accept-Encoding: gzip), and what --compress adds to the latency of a 100 KiB
# JSON response (wrk -c1). Interleaved rounds, medians: bench/apps/static_bench.py
# (../shared/bench/run.py only serves its own apps at `/`).
#
# Part of bench/all.sh (which runs it with OUT=<results>/static and reports it);
# on its own it only measures: bench/report.py turns OUT into docs/benchmarks.md.
# uWSGI's --static-map and Granian's --static-path-mount run beside them for context.
#
# Usage: bash bench/static.sh [extra static_bench.py args, e.g. --no-others]
#   BENCH_VENV (/tmp/venv-anchors, made by ../shared/bench/setup.sh; WhiteNoise
#   is pip-installed into it), ROUNDS (3), DURATION (5 s), WARMUP (1 s),
#   STATIC_CELLS (static-css,static-js,json-c1,json-c64), OUT (/tmp/bench-static),
#   BUILD (1; 0 uses the wsgi-server binary already in target/release), SHARED (../shared).
#   About 5 minutes once the release build is there (12 cells x 3 rounds x ~7 s).
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
shared=${SHARED:-$root/../shared}
export BENCH_VENV=${BENCH_VENV:-/tmp/venv-anchors}
[ -x "$BENCH_VENV/bin/gunicorn" ] || bash "$shared/bench/setup.sh"
command -v "${WRK:-wrk}" >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk; }
"$BENCH_VENV/bin/python" -c 'import whitenoise' 2>/dev/null ||
  "$BENCH_VENV/bin/pip" install -q --disable-pip-version-check "whitenoise==6.*"

# Link the interpreter of the venv that holds Django.
if [ "${BUILD:-1}" != 0 ]; then
  PYO3_PYTHON="$BENCH_VENV/bin/python" cargo build --release --locked -p wsgi-server --features python,tls
fi

out=${OUT:-/tmp/bench-static}
work="$out/files"
rm -rf "$work"
mkdir -p "$work"
"$BENCH_VENV/bin/python" bench/apps/djstatic/make_assets.py "$work/assets"
(cd bench/apps && BENCH_ASSETS="$work/assets" BENCH_STATIC_ROOT="$work/collected" \
  DJANGO_SETTINGS_MODULE=djstatic.settings "$BENCH_VENV/bin/python" -m django collectstatic --noinput -v0)

python3 bench/apps/static_bench.py \
  --wsgi-server "$root/target/release/wsgi-server" --venv "$BENCH_VENV" --apps "$root/bench/apps" \
  --static-root "$work/collected" --assets "$work/assets" \
  --rounds "${ROUNDS:-3}" --duration "${DURATION:-5}" --warmup "${WARMUP:-1}" \
  --cells "${STATIC_CELLS:-static-css,static-js,json-c1,json-c64}" --out "$out" "$@"
