"""Plan reports, chosen by name: text for the terminal, json for machines, markdown for the
merge-request note. Each takes a `Plan` and returns the whole report; the plan's diffs are
already masked, and nothing here adds a value the plan does not hold.

Titles, host names, task names and failure messages come from inputs (change requests,
inventories, playbooks, Ansible's output): each passes the medium's function of `textsafe`
where it is written, so a newline in a title cannot write a line of its own, nor a control
character reach the terminal, nor Markdown in it make a link or an image in the note."""

from __future__ import annotations

import json
import re
from collections.abc import Callable

from gcmschange.plan.check import STATUSES, HostPlan, Plan, plan_dict
from gcmschange.textsafe import markdown_html, markdown_inline, terminal

Reporter = Callable[[Plan], str]


def _counts(plan: Plan) -> str:
    return ", ".join(f"{len(plan.named(s))} {s}" for s in STATUSES)


def _indent(text: str, pad: str = "    ") -> list[str]:
    return [pad + terminal(line) for line in text.rstrip("\n").splitlines()]


def _text_host(host: HostPlan) -> list[str]:
    lines = [terminal(f"{host.host} ({host.system}): {len(host.tasks)} task(s) would change")]
    for task in host.tasks:
        lines.append(f"  * {terminal(task.task)}")
        lines += _indent(task.diff)
    return lines


def text(plan: Plan) -> str:
    lines = [
        terminal(f"plan {plan.change} ({plan.environment}): {plan.title}"),
        f"digest {terminal(plan.digest)}",
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
            lines.append(terminal(f"{host.host} {host.status.upper()}: {host.message}"))
    lines += [
        terminal(
            f"blast radius: {', '.join(plan.blast_radius)}; partners: "
            f"{', '.join(plan.partners) or 'none'}"
        ),
        f"idempotence: {terminal(plan.idempotence)}",
    ]
    lines += [terminal(f"analysis, {line}") for line in plan.analysis]
    lines += [terminal(f"ansible.cfg {line}") for line in plan.ansible_cfg]
    lines += [terminal(f"requirements.yml installed {line}") for line in plan.requirements]
    lines += [terminal(f"REVERTS {line}") for line in plan.reverts]
    if not plan.complete:
        lines.append("PLAN INCOMPLETE: not every target host could be planned")
    return "\n".join(lines)


def as_json(plan: Plan) -> str:
    return json.dumps({"ok": plan.complete, **plan_dict(plan)}, indent=2, sort_keys=True)


def _fence(body: str) -> str:
    """A code fence longer than any run of backticks in `body`, so a diff cannot close it."""
    longest = max((len(m) for m in re.findall(r"`+", body)), default=0)
    return "`" * max(3, longest + 1)


def _code(value: str) -> str:
    """A one-line code span that no run of backticks in `value` can close."""
    one_line = terminal(value)
    ticks = "`" * (1 + max((len(m) for m in re.findall(r"`+", one_line)), default=0))
    pad = " " if "`" in one_line else ""
    return f"{ticks}{pad}{one_line}{pad}{ticks}"


def _md_host(host: HostPlan) -> list[str]:
    # <summary> sits in an HTML block, where Markdown escapes are not read: HTML-escaped.
    summary = markdown_html(f"{host.host} ({host.system}): {len(host.tasks)} task(s) would change")
    lines = ["<details>", f"<summary>{summary}</summary>", ""]
    for task in host.tasks:
        lines.append(f"**{markdown_inline(task.task)}**")
        if task.diff:
            fence = _fence(task.diff)
            lines += ["", f"{fence}diff", task.diff.rstrip("\n"), fence]
        lines.append("")
    lines += ["</details>", ""]
    return lines


def markdown(plan: Plan) -> str:
    md = markdown_inline
    counts = [str(len(plan.named(s))) for s in STATUSES]
    lines = [
        f"### gcmschange plan: {md(plan.change)} ({md(plan.environment)})",
        "",
        md(plan.title),
        "",
        "| hosts | changed | unchanged | unreachable | failed |",
        "|---:|---:|---:|---:|---:|",
        f"| {len(plan.hosts)} | {' | '.join(counts)} |",
        "",
    ]
    if not plan.complete:
        lines += ["> **Plan incomplete:** not every target host could be planned.", ""]
    if plan.reverts:
        lines += ["**Reverts what earlier changes set:**", ""]
        lines += [f"- {md(line)}" for line in plan.reverts]
        lines.append("")
    lines += [
        f"**Blast radius:** {md(', '.join(plan.blast_radius))}  ",
        f"**Partners to notify:** {md(', '.join(plan.partners)) or 'none'}",
        "",
    ]
    for host in plan.hosts:
        if host.status == "changed":
            lines += _md_host(host)
    for host in plan.hosts:
        if host.status in {"unreachable", "failed"}:
            lines.append(f"- **{md(host.host)}** {host.status}: {md(host.message)}")
    lines += [
        "",
        f"**Digest:** {_code(plan.digest)} (approvals are bound to it)  ",
        f"**Idempotence:** {md(plan.idempotence)}",
    ]
    if plan.analysis:
        lines += ["", "**Analysis (metrics under traffic, after each wave's checks):**", ""]
        lines += [f"- {md(line)}" for line in plan.analysis]
    if plan.ansible_cfg:
        lines += ["", "**Your ansible.cfg, as the run takes it:**", ""]
        lines += [f"- {md(line)}" for line in plan.ansible_cfg]
    if plan.requirements:
        lines += ["", "**Installed from requirements.yml (part of the digest):**", ""]
        lines += [f"- {md(line)}" for line in plan.requirements]
    return "\n".join(lines) + "\n"


REPORTERS: dict[str, Reporter] = {"text": text, "json": as_json, "markdown": markdown}


def report(plan: Plan, output: str) -> str:
    return REPORTERS[output](plan)
