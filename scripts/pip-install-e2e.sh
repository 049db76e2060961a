#!/usr/bin/env bash
# The install path of issue 7, exactly as a user runs it on a fresh machine:
#
#   python3 -m venv v && v/bin/pip install . flask && v/bin/wsgi-server examples.python.flask_hello:app
#
# then a real request to the Flask example. The server is started with an
# environment stripped to PATH and HOME (no VIRTUAL_ENV, PYTHONPATH,
# LD_LIBRARY_PATH or PYO3_PYTHON): the installed command must find its venv's
# packages and its libpython by itself.
#
# Usage: bash scripts/pip-install-e2e.sh
#   PIP_E2E_FAST=0  build with the release profile as configured (fat LTO, one
#                   codegen unit). By default the test build turns LTO off and
#                   uses 16 codegen units (cargo's env overrides) to save CI
#                   minutes; the install path, packaging and runtime lookup are
#                   the same.
#   KEEP_TMP=1      keep the temporary directory.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
cd "$repo"
started=$SECONDS
say() { printf 'pip-e2e: %s\n' "$*"; }
die() {
  printf 'pip-e2e: error: %s\n' "$*" >&2
  exit 1
}

tmp="$(mktemp -d /tmp/wsgi-pip-e2e.XXXXXX)"
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then kill "$server_pid" 2>/dev/null || true; wait "$server_pid" 2>/dev/null || true; fi
  if [ "${KEEP_TMP:-0}" = 1 ]; then say "kept $tmp"; else rm -rf "$tmp"; fi
}
trap cleanup EXIT

if [ "${PIP_E2E_FAST:-1}" = 1 ]; then
  export CARGO_PROFILE_RELEASE_LTO=false CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16
fi

say "python3 -m venv v"
python3 -m venv "$tmp/v"
say "v/bin/pip install . flask (maturin builds the wsgi-server command)"
if ! "$tmp/v/bin/pip" install --disable-pip-version-check --no-input --quiet . flask >"$tmp/pip.log" 2>&1; then
  tail -n 60 "$tmp/pip.log" >&2
  die "pip install . flask failed (log above)"
fi
[ -x "$tmp/v/bin/wsgi-server" ] || die "pip install did not put wsgi-server into v/bin"

port="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
say "v/bin/wsgi-server examples.python.flask_hello:app --bind 127.0.0.1:$port (clean environment)"
env -i PATH="/usr/local/bin:/usr/bin:/bin" HOME="${HOME:-/root}" \
  "$tmp/v/bin/wsgi-server" examples.python.flask_hello:app --bind "127.0.0.1:$port" >"$tmp/server.log" 2>&1 &
server_pid=$!

body=""
for _ in $(seq 1 100); do
  if body="$(curl -fsS --max-time 2 "http://127.0.0.1:$port/" 2>/dev/null)"; then break; fi
  kill -0 "$server_pid" 2>/dev/null || { cat "$tmp/server.log" >&2; die "the server exited before answering"; }
  sleep 0.1
done
[ -n "$body" ] || { cat "$tmp/server.log" >&2; die "no answer on 127.0.0.1:$port"; }
expected='{"message":"Hello from Flask on wsgi-server"}'
[ "$body" = "$expected" ] || die "unexpected body: $body (want $expected)"
say "GET / -> $body"

kill -TERM "$server_pid"
wait "$server_pid" 2>/dev/null || true
server_pid=""
say "passed in $((SECONDS - started)) s"
