#!/usr/bin/env bash
# The whole test suite, from a fresh machine: lint gates, tests, doc tests, docs.
# Usage: bash scripts/test.sh
set -euo pipefail
cd "$(dirname "$0")/.."

step() { printf '\n==> %s\n' "$*"; }

step "format"
cargo fmt --all --check

step "clippy (all targets, all features, warnings denied)"
cargo clippy --workspace --all-targets --all-features --locked -- -D warnings

step "corpus data file matches ../shared"
if [ -d ../shared/corpus/gunicorn-requests ] && [ -f tools/check_corpus_data.sh ]; then
  bash tools/check_corpus_data.sh
else
  echo "skipped: ../shared/corpus not present"
fi

step "python test environment (virtualenv with Flask and Django)"
export WSGI_TEST_VENV="${WSGI_TEST_VENV:-$PWD/.venv}"
bash scripts/python-venv.sh

step "tests"
if cargo nextest --version >/dev/null 2>&1; then
  cargo nextest run --workspace --all-features --locked --no-fail-fast
else
  cargo test --workspace --all-features --locked --no-fail-fast
fi

step "nginx end to end (Unix socket, upload, static, SIGHUP under load)"
bash scripts/nginx-e2e.sh

step "pip install . into a fresh venv, then serve the Flask example (clean environment)"
bash scripts/pip-install-e2e.sh

step "doc tests"
cargo test --workspace --all-features --locked --doc

step "docs build without warnings"
RUSTDOCFLAGS="-D warnings" cargo doc --workspace --all-features --no-deps --locked

echo
echo "all checks passed"
