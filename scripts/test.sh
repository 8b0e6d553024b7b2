#!/usr/bin/env bash
# The test command: set up what is missing, then lint, type-check and run the tests, the lab
# tests included (they start and stop their own lab fleets; two whole GitLab pipelines run with
# gitlab-ci-local). `scripts/test.sh --extended` adds the long lab scenarios (every kill -9
# step, partition mid-wave) that do not fit CI's 30 minutes on 2 cores. Other arguments go to
# pytest.
set -euo pipefail
cd "$(dirname "$0")/.."
# Say what is under test: a run on the wrong branch must be visible in the log.
git log -1 --format='testing %h (%D): %s' 2>/dev/null || true
scripts/bootstrap.sh --browser
export PATH="$PWD/.venv/bin:$PATH"
export GCMS_REQUIRE_BROWSER=1  # bootstrap --browser installed it: the browser test must run
ruff check src tests benchmarks tools
ruff format --check src tests benchmarks tools
mypy
# The reference estate at ansible-lint's strictest profile, offline (its own .ansible-lint).
(cd src/gcmschange/reference && ansible-lint --offline --project-dir .)
pytest "$@"
