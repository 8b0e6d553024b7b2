#!/usr/bin/env bash
# Idempotent setup on a fresh Debian machine: the system packages the lab needs, and the venv
# at .venv from the lock file (requirements/dev.txt, exact versions with hashes), then the
# package itself, editable. `--browser` also installs Debian's chromium and chromium-driver for
# the status site's real-browser test (scripts/test.sh asks for it; the demo does not need it).
# Regenerate the locks after changing pyproject.toml's dependencies:
#   uv pip compile pyproject.toml --python-version 3.11 --generate-hashes --no-header -o requirements/runtime.txt
#   uv pip compile pyproject.toml --extra dev --extra accel --python-version 3.11 --generate-hashes --no-header -o requirements/dev.txt
set -euo pipefail
cd "$(dirname "$0")/.."
packages=(openssh-server nginx iproute2 rsync curl openssl git prometheus prometheus-nginx-exporter)
if [ "${1:-}" = --browser ]; then packages+=(chromium chromium-driver); fi
need=()
for pkg in "${packages[@]}"; do
  dpkg -s "$pkg" >/dev/null 2>&1 || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then
    echo "bootstrap: installing ${need[*]}" >&2
    apt-get update -qq >/dev/null
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
  else
    echo "bootstrap: missing system packages: ${need[*]} (run as root or install them)" >&2
    exit 1
  fi
fi
if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
stamp=.venv/.gcms-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements/dev.txt -nt "$stamp" ]; then
  echo "bootstrap: installing the locked dependencies into .venv" >&2
  .venv/bin/pip install -q --upgrade pip 2>&1 | { grep -v "^WARNING: Location" || true; }
  # This machine's pip may name index folders that do not exist: keep that noise out of logs.
  .venv/bin/pip install -q --require-hashes -r requirements/dev.txt 2>&1 | { grep -v '^WARNING: Location' || true; }
  .venv/bin/pip install -q --no-deps -e . 2>&1 | { grep -v '^WARNING: Location' || true; }
  touch "$stamp"
fi
