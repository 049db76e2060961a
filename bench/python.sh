#!/usr/bin/env bash
# Python apps (hello, Flask, Django) through wsgi-server side by side with bjoern,
# Granian, Gunicorn and uWSGI: one worker process each, wrk -t1 -c64, interleaved
# rounds, medians. A subset of bench/all.sh (the matrix part): it measures into
# RESULTS (bench/results/<UTC time>) and does not write docs/benchmarks.md unless
# REPORT=1 (then from this subset alone; bash bench/all.sh writes the whole page).
# Usage: bash bench/python.sh [extra run.py args]
#   ROUNDS (3), DURATION (10 s), SERVERS, APPS, WORKERS (1), RESULTS, BUILD (1), REPORT (0)
set -euo pipefail
export SERVERS=${SERVERS:-wsgi-server,bjoern,granian,gunicorn-sync,uwsgi}
export APPS=${APPS:-hello,flask,django}
export WORKERS=${WORKERS:-1}
export REPORT=${REPORT:-0}
exec bash "$(dirname "$0")/all.sh" "$@"
