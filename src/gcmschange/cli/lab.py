"""`gcmschange lab ...`: the lab fleet of real SSH hosts (thin: parse, call `gcmschange.lab`)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import click

from gcmschange import lab
from gcmschange.audit import trail
from gcmschange.cli import app
from gcmschange.execution import nodes
from gcmschange.execution.nodes import NodeHealth
from gcmschange.lab import loadgen, preflight
from gcmschange.lab import monitoring as lab_monitoring
from gcmschange.lab.fleet import LabState
from gcmschange.lab.preflight import DEFAULT_SYSTEMS
from gcmschange.rules.estate import load_estate


def _state_json(state: LabState) -> dict[str, Any]:
    payload = asdict(state)
    payload["up"] = state.is_up
    return payload


def _state_text(state: LabState) -> str:
    if not state.is_up:
        return f"no lab is up for {state.root}"
    latency = f", +{state.latency_ms} ms round trip" if state.latency_ms else ""
    lines = [f"lab {state.id} ({state.mode}, {state.network}{latency}), {len(state.hosts)} hosts:"]
    width = max(len(h.name) for h in state.hosts)
    for host in state.hosts:
        pid = f"pid {host.pid}" if host.pid else ""
        role = "(exec node)" if host.exec_node else host.system
        lines.append(
            f"  {host.name:<{width}}  {role:<16} {host.address:<15} {host.state:<11} {pid}"
        )
    return "\n".join(lines)


def _nodes_text(health: tuple[NodeHealth, ...]) -> str:
    lines = ["execution nodes:"] if health else []
    for node in health:
        said = f"ansible-runner {node.version}" if node.reachable else f"UNREACHABLE: {node.detail}"
        lines.append(f"  {node.name:<16} {said}")
    return "\n".join(lines)


def _exec_health(root: Path, state: LabState) -> tuple[NodeHealth, ...]:
    if not any(h.exec_node for h in state.hosts):
        return ()
    return nodes.health_of(lab.exec_nodes(root))


def _reach_text(state: LabState) -> str:
    first = state.hosts[0].name if state.hosts else "HOST"
    return (
        f"reach a host:   ssh -F {state.ssh_config} HOST   (HOST: a name above, e.g. {first})\n"
        f"inventory:      {state.inventory}  (environment 'lab')"
    )


def _record(event: str, state: LabState, **details: Any) -> None:
    trail.record(state.root, event, details={"lab": state.id, **details})


@app.root.group("lab")
def lab_group() -> None:
    """Manage the lab fleet of real SSH hosts (needs root, sshd, nginx, unshare)."""


@lab_group.command("up")
@click.option(
    "--systems",
    default=",".join(DEFAULT_SYSTEMS),
    show_default=True,
    help="Comma-separated systems of estate.yml, or 'all'.",
)
@click.option("--hosts-per-system", type=int, default=2, show_default=True)
@click.option(
    "--mode",
    type=click.Choice(["auto", "netns", "loopback"]),
    default="auto",
    show_default=True,
    help="netns: each host has its own network namespace; loopback: its own 127.x address.",
)
@click.option(
    "--monitoring/--no-monitoring",
    default=False,
    show_default=True,
    help="Also start Prometheus (on the lab bridge) and an nginx exporter on every host, "
    "for canary analysis and the health gate (netns mode; Debian's prometheus packages).",
)
@click.option(
    "--exec-nodes",
    type=click.IntRange(0, 8),
    default=0,
    show_default=True,
    help="Also start N execution nodes (exec-node-1..N, in no system): the lab inventory "
    "names them in gcms_execution_nodes, so playbooks run there, split between them.",
)
@click.option(
    "--latency",
    default="0ms",
    show_default=True,
    help="Round trip added between lab machines with tc netem, e.g. 30ms (netns mode, "
    "at most 1000ms; removed by `lab down`).",
)
@app.output_option
def up_cmd(
    *,
    systems: str,
    hosts_per_system: int,
    mode: str,
    monitoring: bool,
    exec_nodes: int,
    latency: str,
    verb_output: str | None,
) -> None:
    """Start the lab: one host per system x N, then write inventory and ssh_config."""
    ctx = app.get_context(verb_output)
    began = time.monotonic()
    names = [s.strip() for s in systems.split(",") if s.strip()]
    estate = load_estate(ctx.repo)
    if names and all(n in estate.systems for n in names):  # else lab.up names the unknown one
        chosen = preflight.with_groups_read(estate, tuple(names))
        if len(chosen) > len(names):
            added = ", ".join(chosen[len(names) :])
            click.echo(
                f"also starting {added}: templates of the systems named read its hosts", err=True
            )
        names = list(chosen)
    state = lab.up(
        ctx.repo,
        names,
        hosts_per_system,
        mode,
        exec_nodes=exec_nodes,
        latency_ms=lab.parse_latency(latency),
    )
    watched = lab_monitoring.start(ctx.repo) if monitoring else None
    seconds = round(time.monotonic() - began, 2)
    _record("lab.up", state, hosts=len(state.hosts), mode=state.mode, seconds=seconds)
    text = f"{_state_text(state)}\nup in {seconds}s\n{_reach_text(state)}"
    if watched is not None:
        text += f"\n{_monitoring_text(watched)}"
    payload = {**_state_json(state), "seconds": seconds}
    payload["monitoring"] = asdict(watched) if watched else None
    app.emit(ctx, payload, text)


def _monitoring_text(watched: lab_monitoring.Monitoring) -> str:
    return (
        f"prometheus:     {watched.prometheus}  (scrapes each host's nginx exporter and the "
        f"load generator at {watched.probe})\n"
        "traffic:        gcmschange lab load --rps 20 --duration 300"
    )


@lab_group.command("monitoring")
@click.argument("action", type=click.Choice(["start", "stop", "status"]))
@app.output_option
def monitoring_cmd(action: str, verb_output: str | None) -> None:
    """Start, stop or show the lab's Prometheus and nginx exporters.

    `stop` stops only Prometheus (its data is kept), as an outage of the monitoring would:
    analysis during a change then measures nothing and is inconclusive.
    """
    ctx = app.get_context(verb_output)
    if action == "start":
        watched: lab_monitoring.Monitoring | None = lab_monitoring.start(ctx.repo)
    elif action == "stop":
        lab_monitoring.stop(ctx.repo)
        watched = None
    else:
        watched = lab_monitoring.load(ctx.repo)
    text = _monitoring_text(watched) if watched else "lab monitoring is not running"
    app.emit(ctx, {"running": watched is not None, **(asdict(watched) if watched else {})}, text)


@lab_group.command("load")
@click.option(
    "--rps",
    type=float,
    default=20.0,
    show_default=True,
    help="Requests per second, in all (at most 200).",
)
@click.option(
    "--duration", type=float, default=60.0, show_default=True, help="Seconds (at most 3600)."
)
@click.option(
    "--systems",
    default="portal,case_api",
    show_default=True,
    help="Whose hosts to ask: the portal through to the case API, the case API directly.",
)
@app.output_option
def load_cmd(rps: float, duration: float, systems: str, verb_output: str | None) -> None:
    """Send bounded traffic to the lab's hosts, counted per host and status code for Prometheus.

    Runs in the foreground for DURATION seconds (Ctrl-C stops it); the counts are served on the
    lab bridge where the lab's Prometheus scrapes them, so a change applied meanwhile is judged
    by how its hosts answer.
    """
    ctx = app.get_context(verb_output)
    wanted = [s.strip() for s in systems.split(",") if s.strip()]
    watched = lab_monitoring.load(ctx.repo)
    at = None
    if watched is not None:
        address, _, port = watched.probe.rpartition(":")
        at = (address, int(port))
    generator = loadgen.LoadGenerator(
        loadgen.lab_targets(ctx.repo, wanted), rps=rps, duration=duration, metrics_at=at
    )
    began = time.monotonic()
    generator.start()
    try:
        generator.wait()
    finally:
        generator.stop()
    seconds = round(time.monotonic() - began, 1)
    codes = generator.counts.by_code()
    shown = ", ".join(f"{code}: {n}" for code, n in sorted(codes.items())) or "none"
    text = f"{generator.counts.sent} requests in {seconds}s ({shown})"
    app.emit(ctx, {"requests": generator.counts.sent, "seconds": seconds, "codes": codes}, text)


@lab_group.command("down")
@app.output_option
def down_cmd(verb_output: str | None) -> None:
    """Stop every host and remove every mount, namespace, link and file of the lab."""
    ctx = app.get_context(verb_output)
    root = ctx.repo
    was = lab.status(root)
    lab.down(root)
    if was.is_up:
        _record("lab.down", was, hosts=len(was.hosts))
    app.emit(ctx, {"ok": True, "id": was.id, "was_up": was.is_up}, f"lab {was.id} is down")


@lab_group.command("status")
@app.output_option
def status_cmd(verb_output: str | None) -> None:
    """Show each lab host: address, up / down / partitioned, PID."""
    ctx = app.get_context(verb_output)
    state = lab.status(ctx.repo)
    health = _exec_health(ctx.repo, state)
    text = _state_text(state) + (f"\n{_reach_text(state)}" if state.is_up else "")
    if health:
        text += f"\n{_nodes_text(health)}"
    app.emit(ctx, {**_state_json(state), "exec_nodes": [asdict(h) for h in health]}, text)


def _host_verb(verb: str, action: Callable[[Path, str], None], summary: str) -> None:
    @lab_group.command(verb, help=summary)
    @click.argument("host")
    @app.output_option
    def command(host: str, verb_output: str | None) -> None:
        ctx = app.get_context(verb_output)
        action(ctx.repo, host)
        _record(f"lab.{verb}", lab.status(ctx.repo), host=host)
        app.emit(ctx, {"ok": True, "host": host, "action": verb}, f"{verb}: {host}")


_host_verb("crash", lab.crash, "Kill a host's PID 1: the whole host dies at once.")
_host_verb("start", lab.start, "Start a crashed host again (same data, key and address).")
_host_verb("partition", lab.partition, "Cut a host's network link (netns mode only).")
_host_verb("heal", lab.heal, "Restore a partitioned host's network link.")


@lab_group.command("converge")
@click.option("--hosts", default="", help="Comma-separated lab hosts (default: all).")
@app.accelerate_option
@app.output_option
def converge_cmd(hosts: str, accelerate: bool, verb_output: str | None) -> None:
    """Push the estate's standard configuration (as committed) to the lab hosts."""
    from gcmschange.apply.converge import converge

    ctx = app.get_context(verb_output)
    wanted = [h.strip() for h in hosts.split(",") if h.strip()] or None
    began = time.monotonic()
    result = converge(ctx.repo, "lab", hosts=wanted, accelerate=accelerate)
    seconds = round(time.monotonic() - began, 1)
    trail.record(ctx.repo, "lab.converge", details={"hosts": sorted(result.hosts)})
    changed = len(result.changed_hosts)
    text = f"lab converged: {len(result.hosts)} hosts, {changed} changed, in {seconds}s"
    app.emit(ctx, {"ok": True, "hosts": sorted(result.hosts), "changed": changed}, text)


@lab_group.command("workspace")
@click.argument("dest", type=click.Path(path_type=Path, file_okay=False))
@click.option(
    "--from",
    "source",
    type=click.Path(path_type=Path, file_okay=False, exists=True),
    help="Estate repository to copy (default: the reference estate shipped with gcmschange).",
)
@click.option("--origin/--no-origin", default=True, show_default=True, help="Bare origin beside.")
@click.option(
    "--lab-keys/--no-lab-keys",
    default=True,
    show_default=True,
    help="Copy the LAB-ONLY approver keys (lab/keys), so approvals can be signed in the lab.",
)
@app.output_option
def workspace_cmd(
    dest: Path, source: Path | None, origin: bool, lab_keys: bool, verb_output: str | None
) -> None:
    """Create a throw-away GitOps repository holding the estate, to try the road on the lab.

    DEST becomes a git repository (the estate committed once on `main`, `.gcmschange/`
    ignored) with a bare `DEST-origin.git` as its `origin`, where approvals are pushed and
    apply's locks live. Then: `gcmschange --repo DEST lab up`, `... lab converge`, and the
    verbs of the README.
    """
    from gcmschange.lab import workspace

    ctx = app.get_context(verb_output)
    made = workspace.create(dest, source, origin=origin, lab_keys=lab_keys)
    text = f"workspace {made.root} (commit {made.commit[:12]})"
    if made.origin:
        text += f", origin {made.origin}"
    text += f"\nnext: gcmschange --repo {made.root} lab up"
    payload = {
        "ok": True,
        "root": str(made.root),
        "origin": str(made.origin or ""),
        "commit": made.commit,
    }
    app.emit(ctx, payload, text)
