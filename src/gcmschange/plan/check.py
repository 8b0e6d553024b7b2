"""Plan a change: run it in check + diff mode on its real hosts and say what would change.

    prepare (load -> render -> digest) -> push(check, diff) -> Plan -> plan.json + audit

The plan is what approvers read and what their approvals are bound to (by its digest); apply
refuses a change whose digest has moved since. A host that could not be reached has no plan,
so a plan with one is incomplete (exit 6), never silently shorter.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from gcmschange.analysis.judge import judge_for
from gcmschange.apply import push
from gcmschange.apply import waves as wv
from gcmschange.apply.road import Prepared, prepare
from gcmschange.audit import trail
from gcmschange.errors import ExitCode, InvalidInputError
from gcmschange.execution import ansiblecfg
from gcmschange.execution.runner import Progress, RunResult, TaskChange
from gcmschange.masking import mask_bytes, mask_text
from gcmschange.paths import change_dir
from gcmschange.plan import code_source, earlier, requirements
from gcmschange.rules.policy import load_policy
from gcmschange.validate.load import load_change

IDEMPOTENCE = (
    "at each wave, every host must hold exactly these files; after the last, a check-mode"
    " re-run (one host per system; every host with --idempotence all) must change nothing"
)
STATUSES = ("changed", "unchanged", "unreachable", "failed")


@dataclass(frozen=True)
class PlannedTask:
    task: str
    diff: str  # unified diff, headers naming host:path, secrets masked


@dataclass(frozen=True)
class HostPlan:
    host: str
    system: str
    status: str  # one of STATUSES
    tasks: tuple[PlannedTask, ...] = ()
    message: str = ""  # why a host failed or was unreachable


@dataclass(frozen=True)
class Plan:
    change: str
    title: str
    environment: str
    digest: str
    created: str  # ISO 8601, UTC
    hosts: tuple[HostPlan, ...]
    systems: tuple[str, ...]  # the change's targets
    blast_radius: tuple[str, ...]  # the targets and every system downstream
    partners: tuple[str, ...]  # partners consuming any system in the blast radius
    idempotence: str = IDEMPOTENCE
    run_dir: str = ""  # the kept work dir, relative to the repository
    duration_s: float = 0.0
    analysis: tuple[str, ...] = ()  # per wave: what judges it by metrics (issue 17)
    ansible_cfg: tuple[str, ...] = ()  # the repository's settings the run did not take as is
    requirements: tuple[str, ...] = ()  # what requirements.yml installed into the sealed run
    reverts: tuple[str, ...] = ()  # variables earlier applied changes set that this one does not

    def named(self, status: str) -> tuple[str, ...]:
        return tuple(h.host for h in self.hosts if h.status == status)

    @property
    def complete(self) -> bool:
        return not self.named("unreachable") and not self.named("failed")

    @property
    def exit_code(self) -> ExitCode:
        """Failed checks are the user's to fix (1); unreachable hosts make it incomplete (6)."""
        if self.named("failed"):
            return ExitCode.FAILURE
        if self.named("unreachable"):
            return ExitCode.INCOMPLETE
        return ExitCode.OK


def _host_diff(change: TaskChange, rendered_dir: str, secrets: Sequence[str]) -> str:
    """The runner's diff with the copy source (a temporary rendered file) shown as the host
    path, and each header naming the host."""
    prefix = f"{rendered_dir}/{change.host}"
    lines = change.diff.splitlines(keepends=True)
    for i in range(len(lines) - 1):
        # A header pair, not a removed line that happens to start with "-- ".
        if lines[i].startswith("--- ") and lines[i + 1].startswith("+++ "):
            lines[i] = _header(lines[i], change.host, prefix, "current")
            lines[i + 1] = _header(lines[i + 1], change.host, prefix, "planned")
    return mask_text("".join(lines), secrets)


def _header(line: str, host: str, prefix: str, state: str) -> str:
    path = line[4:].rstrip("\n").replace(prefix, "", 1)
    return f"{line[:4]}{host}:{path} ({state})\n"


def _host_plan(
    host: str, system: str, result: RunResult, rendered_dir: str, secrets: Sequence[str]
) -> HostPlan:
    if host in result.unreachable:
        return HostPlan(host, system, "unreachable", message=result.failures.get(host, ""))
    if host in result.failures:
        return HostPlan(host, system, "failed", message=result.failures[host])
    if host not in result.hosts:
        return HostPlan(host, system, "failed", message="the run never reached this host")
    tasks = tuple(
        PlannedTask(c.task, _host_diff(c, rendered_dir, secrets))
        for c in result.changes
        if c.host == host
    )
    return HostPlan(host, system, "changed" if tasks else "unchanged", tasks)


def analysis_lines(root: Path, prepared: Prepared) -> tuple[str, ...]:
    """Which analysis will judge each wave, in words, for approvers to read in the plan."""
    loaded = prepared.loaded
    judge = judge_for(root, loaded.content, loaded.change, load_policy(root))
    try:
        waves = wv.plan(loaded.targets, loaded.change.rollout)
    except InvalidInputError as exc:
        return (f"waves: {exc.message}",)
    bake = f" (after a {judge.spec.bake:g}s bake)" if judge.active else ""
    lines = []
    for wave in waves:
        label = f"wave {wave.number}" + (" (canary)" if wave.canary else "")
        hosts = [loaded.inventory.hosts[h] for h in wave.hosts]
        lines.append(f"{label}{bake}: " + "; ".join(judge.describe(hosts)))
    return tuple(lines)


def build_plan(
    prepared: Prepared,
    result: RunResult,
    rendered_dir: Path,
    *,
    created: datetime,
    run_dir: str,
    analysis: tuple[str, ...] = (),
    reverts: tuple[str, ...] = (),
) -> Plan:
    """The plan from a check + diff run of the prepared change."""
    loaded = prepared.loaded
    change = loaded.change
    radius = loaded.estate.blast_radius(change.systems)
    where = str(rendered_dir.resolve())
    return Plan(
        change=change.id,
        title=mask_text(change.title, prepared.secrets),
        environment=change.environment,
        digest=prepared.digest,
        created=created.astimezone(UTC).isoformat(timespec="seconds"),
        hosts=tuple(
            _host_plan(h.name, h.system, result, where, prepared.secrets) for h in loaded.targets
        ),
        systems=change.systems,
        blast_radius=radius.systems,
        partners=radius.partners,
        run_dir=run_dir,
        duration_s=round(result.duration_s, 2),
        analysis=analysis,
        ansible_cfg=ansiblecfg.overrides(loaded.content),
        requirements=tuple(
            f"{r.kind} {r.name} {r.version} from {r.source} (tree sha256 {r.tree_sha256[:16]})"
            for r in requirements.installed(loaded.content)
        ),
        reverts=reverts,
    )


def _fresh_run_dir(root: Path, change_id: str, now: datetime) -> Path:
    base = change_dir(root, change_id) / f"plan-{now.astimezone(UTC):%Y%m%dT%H%M%SZ}"
    candidate, n = base, 1
    while candidate.exists():
        n += 1
        candidate = base.with_name(f"{base.name}-{n}")
    return candidate


def _mask_kept(run_dir: Path, secrets: Sequence[str]) -> None:
    """The rendered copies and runner artifacts stay for evidence, without secret values."""
    if not secrets:
        return
    for path in run_dir.rglob("*"):
        if path.is_file() and not path.is_symlink():
            data = path.read_bytes()
            masked = mask_bytes(data, secrets)
            if masked != data:
                path.write_bytes(masked)


def run_plan(
    root: Path,
    ref: str,
    *,
    progress: Progress | None = None,
    accelerate: bool = False,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    trust_ref: str | None = None,
) -> Plan:
    """Prepare the change, run it in check + diff mode on its targets, save and record the plan.

    In a merge-request pipeline the code comes from where `code_source.choose` says."""
    source = code_source.choose(root, load_change(root, ref), trust_ref)
    prepared = prepare(root, ref, code_from=source.commit)
    loaded = prepared.loaded
    if not loaded.targets:
        raise InvalidInputError(
            f"{loaded.change.id}: no host of {', '.join(loaded.change.systems)} in the "
            f"{loaded.change.environment} inventory"
        )
    now = clock()
    run_dir = _fresh_run_dir(root, loaded.change.id, now)
    result = push.push(
        loaded.content,
        loaded.inventory.path,
        prepared.rendered,
        run_dir,
        hosts=[h.name for h in loaded.targets],
        check=True,
        diff=True,
        secrets=prepared.secrets,
        accelerate=accelerate,
        progress=progress,
        then=loaded.change.playbook,
        variables=loaded.change.variables,
        placement=push.placement_of(
            loaded.estate, loaded.inventory, [h.name for h in loaded.targets]
        ),
    )
    _mask_kept(run_dir, prepared.secrets)
    rel = str(run_dir.relative_to(root))
    judged_by = analysis_lines(root, prepared)
    plan = build_plan(
        prepared,
        result,
        run_dir / "rendered",
        created=now,
        run_dir=rel,
        analysis=judged_by,
        reverts=earlier.reverted(root, prepared.loaded.change),
    )
    saved = save_plan(root, plan)
    trail.record(
        root,
        "planned",
        outcome="ok" if plan.complete else "incomplete",
        change=plan.change,
        digest=plan.digest,
        details={
            "code": source.why,
            "plan": str(saved.relative_to(root)),
            **{status: list(plan.named(status)) for status in STATUSES},
        },
    )
    return plan


def plan_path(root: Path, change_id: str) -> Path:
    return change_dir(root, change_id) / "plan.json"


def plan_dict(plan: Plan) -> dict[str, Any]:
    return {
        **asdict(plan),
        "complete": plan.complete,
        "summary": {status: len(plan.named(status)) for status in STATUSES},
    }


def save_plan(root: Path, plan: Plan) -> Path:
    path = plan_path(root, plan.change)
    tmp = path.with_name(f"{path.name}.tmp")
    tmp.write_text(json.dumps(plan_dict(plan), indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)
    return path


def load_plan(root: Path, change_id: str) -> Plan:
    """The last saved plan of a change (apply compares its digest with the current one)."""
    path = plan_path(root, change_id)
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        hosts = tuple(
            HostPlan(
                h["host"],
                h["system"],
                h["status"],
                tuple(PlannedTask(t["task"], t["diff"]) for t in h["tasks"]),
                h["message"],
            )
            for h in data["hosts"]
        )
        # Plans saved before a field existed are read with its default.
        fields = {k: data[k] for k in Plan.__dataclass_fields__ if k != "hosts" and k in data}
        keys: tuple[str, ...] = ("systems", "blast_radius", "partners", "analysis")
        keys += ("ansible_cfg", "requirements", "reverts")
        for key in keys:
            if key in fields:
                fields[key] = tuple(fields[key])
        return Plan(hosts=hosts, **fields)
    except FileNotFoundError as exc:
        raise InvalidInputError(f"{path}: no plan (run `gcmschange plan {change_id}`)") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInputError(f"{path}: not a gcmschange plan: {exc}") from exc
