"""Verification tests (testinfra) against hosts: the only testinfra user.

pytest runs as a subprocess (through `proc`) with testinfra's ssh backend (`ssh://HOST` with
the environment's ssh_config, so connections are reused through its ControlMaster) and
pytest-xdist across hosts. Each test file runs only on hosts of the systems whose `verify`
list in estate.yml names it: this module is also loaded into that pytest
(`-p gcmschange.execution.verifier`) and deselects the other pairs, and writes a small JSON
outcome so nothing has to parse JUnit. The JUnit XML is kept beside it for the evidence bundle.
"""

from __future__ import annotations

import itertools
import json
import os
import re
import shlex
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from gcmschange import proc
from gcmschange.errors import ExternalError, InvalidInputError
from gcmschange.execution import managed_check
from gcmschange.execution.nodes import ExecNode
from gcmschange.rules.estate import Estate, Inventory

SCOPE_ENV = "GCMS_VERIFY_SCOPE"
_HOST_ID = re.compile(r"\[ssh://([^\]]+)\]$")
_SSH_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
MAX_WORKERS = 4


@dataclass(frozen=True)
class VerifyResult:
    hosts: tuple[str, ...]
    failed: dict[str, tuple[str, ...]]  # host -> failing test ids
    passed: int
    junit: Path | None
    duration_s: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    @property
    def failed_hosts(self) -> tuple[str, ...]:
        return tuple(self.failed)


def scope(
    estate: Estate, inventory: Inventory, tests: Sequence[str], hosts: Sequence[str]
) -> dict[str, list[str]]:
    """test file -> the hosts it runs on: those of the systems whose verify list names it, or
    every one of `hosts` for a test no system lists (the change's own test of its work)."""
    verifies = {s.id: s.verify for s in estate.systems.values()}
    listed = {t for names in verifies.values() for t in names}
    out: dict[str, list[str]] = {}
    for test in dict.fromkeys(tests):
        chosen = [
            h
            for h in hosts
            if h in inventory.hosts
            and (test not in listed or test in verifies.get(inventory.hosts[h].system, ()))
        ]
        if chosen:
            out[test] = chosen
    return out


def ssh_config_of(inventory: Inventory) -> Path | None:
    """The `-F FILE` the inventory gives ssh (the lab writes one), if any."""
    common = next((h.vars.get("ansible_ssh_common_args") for h in inventory.hosts.values()), "")
    args = shlex.split(str(common or ""))
    for flag, value in itertools.pairwise(args):
        if flag == "-F":
            return Path(value)
    return None


def proxied_config(base: Path | None, via: Mapping[str, ExecNode], sockets: Path) -> str:
    """An ssh_config that reaches each host of `via` through its node (`ssh -W`, so the node
    needs no Python, only sshd forwarding), then everything else as `base` says.

    ssh takes the first value it meets for each setting, so these come first. Each such host
    gets connection sharing of its own (`sockets`): a master the controller already holds to
    the same host (a direct one) would otherwise carry the checks past the node.
    """
    lines = []
    for host, node in sorted(via.items()):
        if not _SSH_NAME.fullmatch(host):
            # A pattern character would make the block apply to other hosts too.
            raise InvalidInputError(f"inventory: host {host!r}: not a name ssh_config can match")
        config = ["-F", node.ssh_config] if node.ssh_config else []
        proxy = ["ssh", *config, "-o", "BatchMode=yes", "-o", "ConnectTimeout=10"]
        proxy += ["-W", "%h:%p", "--", node.ssh]
        lines += [
            f"Host {host}",
            f"  ProxyCommand {' '.join(shlex.quote(a) if a != '%h:%p' else a for a in proxy)}",
            f"  ControlPath {sockets}/%C",
            "  ControlPersist 5s",  # the folder goes with the run; its masters soon after
        ]
    # Inside `Host *`, the include applies to every host, its own Host blocks included.
    lines += ["Host *", f"  Include {base}" if base is not None else "  Include ~/.ssh/config"]
    return "\n".join(lines) + "\n"


def _command(
    files: Sequence[str], hosts: Sequence[str], ssh_config: Path | None, out: Path
) -> list[str]:
    workers = min(len(hosts), os.cpu_count() or 2, MAX_WORKERS)
    # -P, and the run's own folder as the working directory: `python -m` would otherwise
    # put the working directory first on sys.path, where a repository's pytest.py (drift runs
    # from the working tree) would be imported in place of pytest.
    args = [sys.executable, "-P", "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", __name__]
    args += ["-c", str(out / "pytest.ini"), "--rootdir", str(out)]
    args += ["--hosts", ",".join(f"ssh://{h}" for h in hosts), "--junitxml", str(out / "junit.xml")]
    if ssh_config is not None:
        args += ["--ssh-config", str(ssh_config)]
    if workers > 1:
        args += ["-n", str(workers)]
    return [*args, *files]


def run(
    root: Path,
    by_test: Mapping[str, Sequence[str]],
    ssh_config: Path | None,
    out: Path,
    *,
    timeout: float = 600,
    managed: Mapping[str, Mapping[str, str]] | None = None,
    via: Mapping[str, ExecNode] | None = None,
) -> VerifyResult:
    """Run each test file on its hosts; a host fails when any of its tests fails or errors.

    `managed`: host -> {dest: SHA-256, or "" for a file holding a secret} of the rendered set
    those hosts must now hold, checked by the built-in `managed_check` in the same session.
    `via`: host -> the execution node that reaches it; its checks go through that node.
    """
    if via:
        with tempfile.TemporaryDirectory(prefix="gcms-vp-", dir="/tmp") as sockets:
            out.mkdir(parents=True, exist_ok=True)
            proxied = out / "ssh_config"
            proxied.write_text(proxied_config(ssh_config, via, Path(sockets)), encoding="utf-8")
            return run(root, by_test, proxied, out, timeout=timeout, managed=managed)
    scoped = {str((root / t).resolve()): list(hs) for t, hs in by_test.items()}
    expected = {h: dict(files) for h, files in (managed or {}).items() if files}
    if expected:
        scoped[str(Path(managed_check.__file__).resolve())] = list(expected)
    hosts = tuple(dict.fromkeys(h for hs in scoped.values() for h in hs))
    out.mkdir(parents=True, exist_ok=True)
    if not hosts:
        return VerifyResult((), {}, 0, None)
    (out / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")
    scope_file = out / "scope.json"
    files = list(scoped)
    scope_file.write_text(json.dumps(scoped), encoding="utf-8")
    env = {**os.environ, SCOPE_ENV: str(scope_file)}
    if expected:
        expected_file = out / "managed.json"
        expected_file.write_text(json.dumps(expected, sort_keys=True), encoding="utf-8")
        env[managed_check.EXPECTED_ENV] = str(expected_file)
    done = proc.run(
        _command(files, hosts, ssh_config, out), check=False, cwd=out, env=env, timeout=timeout
    )
    (out / "pytest.log").write_text(done.stdout + done.stderr, encoding="utf-8")
    outcome_file = out / "outcome.json"
    if done.returncode not in (0, 1) or not outcome_file.is_file():
        tail = (done.stdout + done.stderr).strip().splitlines()[-3:]
        raise ExternalError(
            f"verification could not run (pytest exit {done.returncode}): " + " | ".join(tail)
        )
    outcome = json.loads(outcome_file.read_text(encoding="utf-8"))
    failed = {h: tuple(ids) for h, ids in outcome["failed"].items() if ids}
    if int(outcome["passed"]) == 0 and not failed:
        # Every test skipped or deselected: "verified" would mean nothing was checked.
        failed = dict.fromkeys(hosts, ("no check ran (all skipped)",))
    return VerifyResult(
        hosts, failed, int(outcome["passed"]), out / "junit.xml", float(outcome["duration"])
    )


# --- the pytest side: loaded into the verification run with `-p gcmschange.execution.verifier` ---


def _host_of(nodeid: str) -> str | None:
    match = _HOST_ID.search(nodeid)
    return match.group(1) if match else None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    scope_file = os.environ.get(SCOPE_ENV)
    if not scope_file:
        return
    allowed = json.loads(Path(scope_file).read_text(encoding="utf-8"))
    keep: list[pytest.Item] = []
    drop: list[pytest.Item] = []
    for item in items:
        host = _host_of(item.nodeid)
        (keep if host in allowed.get(str(item.path), ()) else drop).append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep


class _Outcomes:
    def __init__(self) -> None:
        self.failed: dict[str, list[str]] = {}
        self.passed = 0
        self.duration = 0.0


_OUTCOMES = _Outcomes()


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    host = _host_of(report.nodeid)
    if host is None:
        return
    _OUTCOMES.duration += report.duration
    if report.failed:
        _OUTCOMES.failed.setdefault(host, []).append(report.nodeid.split("::")[-1])
    elif report.when == "call" and report.passed:
        _OUTCOMES.passed += 1


def pytest_sessionfinish(session: pytest.Session) -> None:
    if hasattr(session.config, "workerinput") or not os.environ.get(SCOPE_ENV):
        return  # xdist workers report to the controller, which writes the outcome
    out = Path(os.environ[SCOPE_ENV]).with_name("outcome.json")
    payload = {
        "failed": _OUTCOMES.failed,
        "passed": _OUTCOMES.passed,
        "duration": _OUTCOMES.duration,
    }
    out.write_text(json.dumps(payload), encoding="utf-8")
