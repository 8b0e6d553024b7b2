#!/usr/bin/env bash
# The demo: set up, bring up the lab fleet, and walk CHG-LAB-0001 down the whole road
# (validate -> render -> plan -> approve -> apply in waves -> verify -> evidence),
# then bring the lab down again, even on failure.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/bootstrap.sh
export PATH="$PWD/.venv/bin:$PATH"
exec python -m gcmschange.demo "$@"
