"""Drift: does every host of an environment still hold what git says it should?

    baseline (render from git) -> push(check, diff) -> verify (testinfra) -> DriftReport

The expected state is the estate's standard configuration as committed (`pipeline.baseline`):
a change that was applied but whose values were not folded into the inventory is reported as
drift until they are, which is the GitOps rule (git, not the last run, is the truth). A host
drifts when check mode would change something on it or when its verification tests fail; a
host that cannot be reached is not clean either, but is reported apart (exit 6, not 1).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from xml.etree import ElementTree as ET

from gcmschange import gitrepo
from gcmschange.apply import push, road
from gcmschange.audit import trail
from gcmschange.errors import ExitCode, InvalidInputError
from gcmschange.execution import verifier
from gcmschange.execution.runner import Progress, RunResult, TaskChange
from gcmschange.paths import state_dir
from gcmschange.rules.estate import Estate, Inventory, load_estate, load_inventory

CLEAN, DRIFTED, UNREACHABLE, FAILED = "clean", "drifted", "unreachable", "failed"
STATUSES = (CLEAN, DRIFTED, UNREACHABLE, FAILED)


@dataclass(frozen=True)
class Difference:
    task: str
    diff: str  # unified diff whose headers name host:path (current) and host:path (git)


@dataclass(frozen=True)
class HostDrift:
    host: str
    system: str
    status: str  # one of STATUSES
    differences: tuple[Difference, ...] = ()
    failed_tests: tuple[str, ...] = ()
    message: str = ""  # why a host failed or was unreachable


@dataclass(frozen=True)
class DriftReport:
    environment: str
    revision: str  # the commit whose estate was the expected state ("" outside git)
    created: str  # ISO 8601, UTC
    hosts: tuple[HostDrift, ...]
    run_dir: str  # kept artifacts (rendered files, runner, verification JUnit), repo-relative
    duration_s: float

    def named(self, status: str) -> tuple[str, ...]:
        return tuple(h.host for h in self.hosts if h.status == status)

    @property
    def exit_code(self) -> ExitCode:
        """Drift is a finding (1) even when some host could not be reached (6)."""
        if self.named(DRIFTED) or self.named(FAILED):
            return ExitCode.FAILURE
        if self.named(UNREACHABLE):
            return ExitCode.INCOMPLETE
        return ExitCode.OK

    @property
    def outcome(self) -> str:
        return {ExitCode.OK: "clean", ExitCode.FAILURE: "drifted"}.get(self.exit_code, "incomplete")

    def as_dict(self) -> dict[str, Any]:
        return {
            **asdict(self),
            "outcome": self.outcome,
            "summary": {s: len(self.named(s)) for s in STATUSES},
        }


def select_hosts(inventory: Inventory, systems: Sequence[str]) -> tuple[str, ...]:
    """Every host of the environment, or those of `systems` (each must be in the inventory)."""
    if not systems:
        return tuple(inventory.hosts)
    unknown = [s for s in systems if s not in inventory.groups]
    if unknown:
        known = ", ".join(inventory.groups) or "none"
        raise InvalidInputError(
            f"{inventory.path}: no system {', '.join(unknown)} in the {inventory.environment} "
            f"inventory (it has: {known})"
        )
    return tuple(h.name for h in inventory.hosts_of(tuple(systems)))


def _relabel(change: TaskChange, rendered_dir: str) -> Difference:
    """Headers name the host's path, not the temporary rendered copy the playbook read."""
    prefix = f"{rendered_dir}/{change.host}"
    lines = change.diff.splitlines(keepends=True)
    for i in range(len(lines) - 1):
        if lines[i].startswith("--- ") and lines[i + 1].startswith("+++ "):
            for j, state in ((i, "on the host"), (i + 1, "in git")):
                path = lines[j][4:].rstrip("\n").replace(prefix, "", 1)
                lines[j] = f"{lines[j][:4]}{change.host}:{path} ({state})\n"
    return Difference(change.task, "".join(lines))


def host_drift(
    host: str, system: str, run: RunResult, failed_tests: Sequence[str], rendered_dir: str
) -> HostDrift:
    """One host's verdict from the check run and its verification (pure: no I/O)."""
    if host in run.unreachable:
        return HostDrift(host, system, UNREACHABLE, message=run.failures.get(host, ""))
    if host in run.failures:
        return HostDrift(host, system, FAILED, message=run.failures[host])
    if host not in run.hosts:
        return HostDrift(host, system, FAILED, message="the check run never reached this host")
    diffs = tuple(_relabel(c, rendered_dir) for c in run.changes if c.host == host)
    status = DRIFTED if diffs or failed_tests else CLEAN
    return HostDrift(host, system, status, diffs, tuple(failed_tests))


def _verify(
    root: Path, estate: Estate, inventory: Inventory, hosts: Sequence[str], out: Path
) -> dict[str, tuple[str, ...]]:
    systems = dict.fromkeys(inventory.hosts[h].system for h in hosts)
    tests = [t for s in systems if s in estate.systems for t in estate.systems[s].verify]
    by_test = verifier.scope(estate, inventory, tests, hosts)
    via = push.reached_through(estate, inventory, hosts)
    result = verifier.run(root, by_test, verifier.ssh_config_of(inventory), out, via=via)
    return dict(result.failed)


PLAYBOOK_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,99}")


def _run_dir(root: Path, environment: str, now: datetime) -> Path:
    base = state_dir(root) / "drift" / f"{environment}-{now:%Y%m%dT%H%M%S%fZ}"
    base.mkdir(parents=True)
    return base


def check_drift(
    root: Path,
    environment: str,
    systems: Sequence[str] = (),
    *,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    progress: Progress | None = None,
    playbook: str = "",
) -> DriftReport:
    """Check every host of `environment` (or of `systems`) against the estate in git; with
    `playbook`, that playbook of the repository too (check mode, no change's variables: what
    git holds, its roles' defaults and the inventory, is the truth)."""
    if playbook and (
        not PLAYBOOK_NAME.fullmatch(playbook)
        or not (root / "playbooks" / f"{playbook}.yml").is_file()
    ):
        raise InvalidInputError(f"--playbook {playbook}: no playbooks/{playbook}.yml in {root}")
    estate = load_estate(root)
    inventory = load_inventory(root, environment)
    hosts = select_hosts(inventory, systems)
    if not hosts:
        raise InvalidInputError(f"{inventory.path}: no host to check in {environment}")
    now = clock().astimezone(UTC)
    run_dir = _run_dir(root, environment, now)
    rendered = road.baseline(root, environment)
    run = push.push(
        root,
        inventory.path,
        rendered,
        run_dir,
        hosts=hosts,
        check=True,
        diff=True,
        progress=progress,
        then=playbook or None,
        placement=push.placement_of(estate, inventory, hosts),
    )
    reachable = [h for h in hosts if h in run.hosts and h not in run.unreachable]
    if progress is not None:
        progress(f"{len(reachable)} reachable", "verification tests", "running")
    failed_tests = _verify(root, estate, inventory, reachable, run_dir / "verify")
    where = str((run_dir / "rendered").resolve())
    report = DriftReport(
        environment=environment,
        revision=gitrepo.head_sha(root) if gitrepo.is_repo(root) else "",
        created=now.isoformat(timespec="seconds"),
        hosts=tuple(
            host_drift(h, inventory.hosts[h].system, run, failed_tests.get(h, ()), where)
            for h in hosts
        ),
        run_dir=str(run_dir.relative_to(root)),
        duration_s=round((clock().astimezone(UTC) - now).total_seconds(), 2),
    )
    (run_dir / "drift.json").write_text(
        json.dumps(report.as_dict(), indent=2, sort_keys=True) + "\n", encoding="utf-8"
    )
    return report


def record_audit(
    root: Path, report: DriftReport, *, actor: str | None = None, ci: dict[str, Any] | None = None
) -> None:
    trail.record(
        root,
        "drift.checked",
        outcome=report.outcome,
        actor=actor,
        details={
            "environment": report.environment,
            "revision": report.revision,
            "run_dir": report.run_dir,
            **{s: list(report.named(s)) for s in STATUSES if s != CLEAN},
            "clean": len(report.named(CLEAN)),
            **(ci or {}),
        },
    )


def text_report(report: DriftReport) -> str:
    counts = ", ".join(f"{len(report.named(s))} {s}" for s in STATUSES)
    at = f" at {report.revision[:12]}" if report.revision else ""
    lines = [f"drift {report.environment}{at}: {len(report.hosts)} host(s): {counts}"]
    for host in report.hosts:
        if host.status == CLEAN:
            continue
        lines.append(f"{host.host} ({host.system}): {host.status.upper()}")
        if host.message:
            lines.append(f"  {host.message}")
        for diff in host.differences:
            lines.append(f"  * {diff.task}")
            lines += [f"    {line}" for line in diff.diff.rstrip("\n").splitlines()]
        lines += [f"  failed test: {test}" for test in host.failed_tests]
    lines.append(f"artifacts: {report.run_dir}")
    return "\n".join(lines)


def junit_report(report: DriftReport) -> str:
    """One test case per host, so a scheduled pipeline's test widget lists the drifted ones."""
    suite = ET.Element(
        "testsuite",
        name=f"drift {report.environment}",
        tests=str(len(report.hosts)),
        failures=str(len(report.named(DRIFTED)) + len(report.named(FAILED))),
        errors=str(len(report.named(UNREACHABLE))),
        time=str(report.duration_s),
        timestamp=report.created,
    )
    for host in report.hosts:
        case = ET.SubElement(suite, "testcase", classname=f"drift.{host.system}", name=host.host)
        if host.status == CLEAN:
            continue
        tag = "error" if host.status == UNREACHABLE else "failure"
        detail = [host.message, *(f"{d.task}\n{d.diff}" for d in host.differences)]
        detail += [f"failed test: {t}" for t in host.failed_tests]
        node = ET.SubElement(case, tag, message=f"{host.host}: {host.status}")
        node.text = "\n".join(d for d in detail if d)
    suites = ET.Element("testsuites")
    suites.append(suite)
    return ET.tostring(suites, encoding="unicode", xml_declaration=True) + "\n"
