#!/usr/bin/env bash
# Create (idempotently) the virtualenv the Python integration tests use
# (wsgi-server/tests/python_apps.rs), with Flask and Django from PyPI, and
# print its path.
#
# Usage: bash scripts/python-venv.sh
#   WSGI_TEST_VENV  where the venv lives (default: $REPO/.venv)
#   PYO3_PYTHON     the interpreter to build it from (default: python3): it must
#                   be the one wsgi-python links against, or the venv's
#                   site-packages won't match the embedded CPython's version.
# Quiet on success (only the path on stdout); fails loudly with pip's output.
set -euo pipefail

repo="$(cd "$(dirname "$0")/.." && pwd)"
venv="${WSGI_TEST_VENV:-$repo/.venv}"
python="${PYO3_PYTHON:-python3}"

# The pinned requirements; bump here (and only here).
requirements=(
  "flask==3.1.*"
  "django==5.2.*"
)

fail() {
  echo "python-venv.sh: error: $*" >&2
  exit 1
}

command -v "$python" >/dev/null 2>&1 || fail "no Python interpreter '$python' (set PYO3_PYTHON)"

# A stamp of what was asked for, so a second run with nothing new is a no-op.
stamp_text="$("$python" -c 'import sys; print(sys.version)')|${requirements[*]}"
stamp="$venv/.wsgi-test-requirements"

if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$stamp_text" ] && [ -x "$venv/bin/python" ]; then
  echo "$venv"
  exit 0
fi

log="$(mktemp)"
trap 'rm -f "$log"' EXIT

if [ ! -x "$venv/bin/python" ]; then
  if ! "$python" -m venv "$venv" >"$log" 2>&1; then
    cat "$log" >&2
    fail "'$python -m venv $venv' failed (on Debian: apt-get install python3-venv)"
  fi
fi

if ! "$venv/bin/python" -m pip install --disable-pip-version-check --no-input --quiet "${requirements[@]}" >"$log" 2>&1; then
  cat "$log" >&2
  fail "pip could not install ${requirements[*]} into $venv"
fi

# Check the packages import with the venv's interpreter.
if ! "$venv/bin/python" -c 'import flask, django' >"$log" 2>&1; then
  cat "$log" >&2
  fail "flask/django do not import in $venv"
fi

printf '%s' "$stamp_text" >"$stamp"
echo "$venv"
