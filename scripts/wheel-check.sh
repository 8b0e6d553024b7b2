#!/usr/bin/env bash
# The wheel job: build the wheel, install it with the runtime lock into a clean venv outside
# the checkout (so nothing of the source tree can be imported or read), and walk one change
# down the road from the installed package alone: `lab workspace`, `validate`, a lab of two
# partner gateways, `plan`, one approval, `apply`. The lab comes down even on failure.
set -euo pipefail
project="$(cd "$(dirname "$0")/.." && pwd)"
"$project/scripts/bootstrap.sh"
work="$(mktemp -d /tmp/gcmschange-wheel.XXXXXX)"
step() { printf '\n== wheel: %s\n' "$*"; }

step "build"
"$project/.venv/bin/python" -m pip wheel -q --no-deps -w "$work/dist" "$project" 2>&1 | grep -v '^WARNING: Location' || true
wheel=("$work"/dist/gcmschange-*.whl)

step "install ${wheel[0]##*/} into a clean venv, dependencies from requirements/runtime.txt"
python3 -m venv "$work/venv"
"$work/venv/bin/pip" install -q --require-hashes -r "$project/requirements/runtime.txt" 2>&1 | grep -v '^WARNING: Location' || true
"$work/venv/bin/pip" install -q --no-deps "${wheel[0]}" 2>&1 | grep -v '^WARNING: Location' || true
export PATH="$work/venv/bin:$PATH"
cd "$work"  # away from the checkout: only the installed package is importable
python -c 'import gcmschange, sys; assert "site-packages" in gcmschange.__file__, gcmschange.__file__; print("imported from", gcmschange.__file__)'

repo="$work/estate"
g() { printf '$ gcmschange %s\n' "$*"; gcmschange --repo "$repo" "$@"; }
step "the reference estate from the package"
gcmschange lab workspace "$repo"
trap 'gcmschange --repo "$repo" lab down >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
g validate
g lab up --systems partner_gateway --hosts-per-system 2
g lab converge
g plan CHG-LAB-0002
g approve CHG-LAB-0002 --key "$repo/lab/keys/owner-partner-gateway" --comment "wheel job"
g apply CHG-LAB-0002
g audit verify
step "passed"
