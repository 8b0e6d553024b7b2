#!/usr/bin/env bash
# The demo: set up what is missing, then walk CHG-LAB-0001 down the whole road on the lab
# fleet, show the deliberate bad change CHG-LAB-0003 stopped at its canary and rolled back,
# and finish with the evidence bundle, the audit chain, partner notices and the status site.
# Works in a throw-away copy of the estate (a real git repository with a bare origin that
# holds the locks), and always brings the lab down again, even on failure.
set -euo pipefail
project="$(cd "$(dirname "$0")/.." && pwd)"
"$project/scripts/bootstrap.sh"
export PATH="$project/.venv/bin:$PATH"

work="${GCMS_DEMO_DIR:-/tmp/gcmschange-demo}"
repo="$work/estate"
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
g() { printf '$ gcmschange %s\n' "$*"; gcmschange --repo "$repo" "$@"; }

if [ -d "$repo" ]; then gcmschange --repo "$repo" lab down >/dev/null 2>&1 || true; fi
rm -rf "$work"
mkdir -p "$work"
began=$(date +%s)

step "A GitOps repository holding the reference estate (real git, bare origin for locks)"
gcmschange lab workspace "$repo"
git -C "$repo" config user.name "Alice (release manager)"
git -C "$repo" config user.email rm-alice@gcms.example

trap 'step "Lab down"; gcmschange --repo "$repo" lab down' EXIT

step "Lab fleet: real hosts (sshd as PID 1 of their own namespaces), then the standard baseline"
g lab up
g lab converge

step "Validate every open change (schema, references, policy, calendar, blast radius)"
g validate

step "Render and plan CHG-LAB-0001 (check + diff on the real hosts); the digest binds approvals"
g render CHG-LAB-0001
g plan CHG-LAB-0001

step "Approvals: the owners of portal and case_api sign the plan's digest"
g approvals CHG-LAB-0001 || true
g approve CHG-LAB-0001 --key "$repo/lab/keys/owner-portal" --comment "Reviewed the plan"
g approve CHG-LAB-0001 --key "$repo/lab/keys/owner-case-api" --comment "Reviewed the plan"
g approvals CHG-LAB-0001 --gate

step "Apply in waves (canary, 50%, 100%) under a lock, verified by testinfra after each wave"
g apply CHG-LAB-0001
ssh -F "$repo/.gcmschange/lab/ssh_config" portal-1 curl -fsS http://127.0.0.1/api/v1/status; echo

step "The deliberate bad change: CHG-LAB-0003 is stopped at its canary and rolled back (exit 4)"
g approve CHG-LAB-0003 --key "$repo/lab/keys/owner-case-api" --comment "Looks fine (it is not)"
set +e
g apply CHG-LAB-0003
code=$?
set -e
echo "exit code: $code (4 = rolled back and verified)"
[ "$code" = 4 ] || { echo "expected exit 4 from the bad change" >&2; exit 1; }
ssh -F "$repo/.gcmschange/lab/ssh_config" portal-1 curl -fsS http://127.0.0.1/api/v1/status; echo

step "Evidence, audit chain, partner notices, calendar and the status site"
g evidence CHG-LAB-0001 -o "$work/evidence-CHG-LAB-0001.tar.gz"
g evidence verify "$work/evidence-CHG-LAB-0001.tar.gz"
g audit verify --remote origin --require-anchor
ls "$repo/.gcmschange/outbox/"*/ | head -20
g calendar --env lab -o "$work/changes.ics"
g site -o "$work/site"

step "Done in $(( $(date +%s) - began ))s; everything is under $work"
