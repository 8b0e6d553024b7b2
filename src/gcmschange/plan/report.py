"""Plan reports, chosen by name: text for the terminal, json for machines, markdown for the
merge-request note. Each takes a `Plan` and returns the whole report; the plan's diffs are
already masked, and nothing here adds a value the plan does not hold."""

from __future__ import annotations

import html
import json
import re
from collections.abc import Callable

from gcmschange.plan.check import STATUSES, HostPlan, Plan, plan_dict

Reporter = Callable[[Plan], str]


def _counts(plan: Plan) -> str:
    return ", ".join(f"{len(plan.named(s))} {s}" for s in STATUSES)


def _indent(text: str, pad: str = "    ") -> list[str]:
    return [pad + line for line in text.rstrip("\n").splitlines()]


def _text_host(host: HostPlan) -> list[str]:
    lines = [f"{host.host} ({host.system}): {len(host.tasks)} task(s) would change"]
    for task in host.tasks:
        lines.append(f"  * {task.task}")
        lines += _indent(task.diff)
    return lines


def text(plan: Plan) -> str:
    lines = [
        f"plan {plan.change} ({plan.environment}): {plan.title}",
        f"digest {plan.digest}",
        f"{len(plan.hosts)} host(s): {_counts(plan)}",
    ]
    for host in plan.hosts:
        if host.status == "changed":
            lines += _text_host(host)
    unchanged = plan.named("unchanged")
    if unchanged:
        lines.append(f"{len(unchanged)} host(s) unchanged")
    for host in plan.hosts:
        if host.status in {"unreachable", "failed"}:
            lines.append(f"{host.host} {host.status.upper()}: {host.message}")
    lines += [
        f"blast radius: {', '.join(plan.blast_radius)}; partners: "
        f"{', '.join(plan.partners) or 'none'}",
        f"idempotence: {plan.idempotence}",
    ]
    if not plan.complete:
        lines.append("PLAN INCOMPLETE: not every target host could be planned")
    return "\n".join(lines)


def as_json(plan: Plan) -> str:
    return json.dumps({"ok": plan.complete, **plan_dict(plan)}, indent=2, sort_keys=True)


def _fence(body: str) -> str:
    """A code fence longer than any run of backticks in `body`, so a diff cannot close it."""
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    return "`" * max(3, longest + 1)


def _md_host(host: HostPlan) -> list[str]:
    summary = html.escape(f"{host.host} ({host.system}): {len(host.tasks)} task(s) would change")
    lines = ["<details>", f"<summary>{summary}</summary>", ""]
    for task in host.tasks:
        lines.append(f"**{html.escape(task.task)}**")
        if task.diff:
            fence = _fence(task.diff)
            lines += ["", f"{fence}diff", task.diff.rstrip("\n"), fence]
        lines.append("")
    lines += ["</details>", ""]
    return lines


def markdown(plan: Plan) -> str:
    counts = [str(len(plan.named(s))) for s in STATUSES]
    lines = [
        f"### gcmschange plan: {plan.change} ({plan.environment})",
        "",
        html.escape(plan.title),
        "",
        "| hosts | changed | unchanged | unreachable | failed |",
        "|---:|---:|---:|---:|---:|",
        f"| {len(plan.hosts)} | {' | '.join(counts)} |",
        "",
    ]
    if not plan.complete:
        lines += ["> **Plan incomplete:** not every target host could be planned.", ""]
    lines += [
        f"**Blast radius:** {', '.join(plan.blast_radius)}  ",
        f"**Partners to notify:** {', '.join(plan.partners) or 'none'}",
        "",
    ]
    for host in plan.hosts:
        if host.status == "changed":
            lines += _md_host(host)
    for host in plan.hosts:
        if host.status in {"unreachable", "failed"}:
            lines.append(f"- **{host.host}** {host.status}: {html.escape(host.message)}")
    lines += [
        "",
        f"**Digest:** `{plan.digest}` (approvals are bound to it)  ",
        f"**Idempotence:** {plan.idempotence}",
    ]
    return "\n".join(lines) + "\n"


REPORTERS: dict[str, Reporter] = {"text": text, "json": as_json, "markdown": markdown}


def report(plan: Plan, output: str) -> str:
    return REPORTERS[output](plan)
