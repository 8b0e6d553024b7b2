#!/usr/bin/env bash
# The test command: set up what is missing, then lint, type-check and run every test,
# the lab tests included (they start and stop their own lab fleet).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
ruff check gcmschange tests benchmarks
ruff format --check gcmschange tests benchmarks
mypy
pytest "$@"
