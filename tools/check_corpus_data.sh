#!/usr/bin/env bash
# Regenerates the corpus data file into a temporary file and compares it with
# the committed wsgi-conformance/fixtures/gunicorn-corpus.txt.
# Exit 0 when up to date, 1 when stale (a diff is printed), 2 on other errors.
# Usage: tools/check_corpus_data.sh [--conformance DIR] [--corpus DIR]
set -euo pipefail

repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
committed="$repo/wsgi-conformance/fixtures/gunicorn-corpus.txt"
tmp="$(mktemp)"
trap 'rm -f "$tmp"' EXIT

if ! python3 "$repo/tools/corpus_to_data.py" --out "$tmp" "$@"; then
    echo "check_corpus_data: generation failed" >&2
    exit 2
fi
if [ ! -f "$committed" ]; then
    echo "check_corpus_data: $committed is missing; run tools/corpus_to_data.py" >&2
    exit 1
fi
if ! diff -u "$committed" "$tmp"; then
    echo "check_corpus_data: $committed is stale; run tools/corpus_to_data.py" >&2
    exit 1
fi
echo "check_corpus_data: up to date"
