"""Case 4, tuned fan-out: gcmschange as shipped against Ansible as installed.

The peer is `ansible-playbook` with Ansible's defaults (an empty ansible.cfg: 5 forks, no
pipelining, interpreter discovery) and the standard playbook as one would write it without
gcmschange's conventions, i.e. without `gather_facts: false`, so facts are gathered.
gcmschange runs it natively (pipelining, forks matched to the fleet, facts only when
asked) and with the opt-in Mitogen accelerator. A fourth side tries fewer round trips per
host: the rendered files packed into one tar per host on the controller and put in place by
one `unarchive` task (benchmarks/playbooks/configure_archive.yml).
Targets: >= 1.5x natively, >= 4x with the accelerator.
"""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path
from typing import Any

from benchmarks.bench_apply import ansible_playbook
from benchmarks.common import Row, median, rotate, speedup_target
from benchmarks.fleet import BenchError, Fleet, require_clean
from gcmschange.execution import accel
from gcmschange.execution.runner import RunSpec, run_playbook
from gcmschange.render.configs import RenderedSet

NATIVE, ACCELERATED = 1.5, 4.0
ARCHIVE_PLAYBOOK = Path(__file__).resolve().parent / "playbooks" / "configure_archive.yml"


def defaults_playbook(fleet: Fleet) -> Path:
    """The standard playbook without `gather_facts: false`: Ansible's default, facts gathered."""
    text = (fleet.root / "playbooks" / "configure.yml").read_text(encoding="utf-8")
    plain = text.replace("  gather_facts: false\n", "", 1)
    if plain == text:
        raise BenchError("playbooks/configure.yml no longer says gather_facts: false")
    path = fleet.work / "configure-defaults.yml"
    path.write_text(plain, encoding="utf-8")
    return path


def pack(rendered: RenderedSet, out: Path) -> Path:
    """One tar per host of its rendered files (root-owned, 0644), paths relative to /."""
    out.mkdir(parents=True)
    by_host: dict[str, list[tuple[str, bytes]]] = {}
    for item in rendered.files:
        by_host.setdefault(item.host, []).append((item.dest, item.content.encode("utf-8")))
    for host, files in by_host.items():
        with tarfile.open(out / f"{host}.tar", "w") as archive:
            for dest, data in sorted(files):
                info = tarfile.TarInfo(dest.lstrip("/"))
                info.size, info.mode, info.mtime = len(data), 0o644, 0
                info.uname = info.gname = "root"
                archive.addfile(info, io.BytesIO(data))
    return out


def push_archive(fleet: Fleet) -> None:
    folder = fleet.fresh_dir("fanout-archive")
    rendered = fleet.flip()
    tree = rendered.write(folder / "rendered")
    archives = pack(rendered, folder / "archives")
    spec = RunSpec(
        playbook=ARCHIVE_PLAYBOOK,
        inventory=fleet.inventory.path,
        work_dir=folder / "runner",
        extravars={
            "gcms_rendered_dir": str(tree.resolve()),
            "gcms_manifest": rendered.manifest(),
            "gcms_secret_files": {},
            "gcms_archive_dir": str(archives.resolve()),
        },
        limit=fleet.hosts,
        forks=max(5, min(50, len(fleet.hosts))),
    )
    require_clean(run_playbook(spec), "fanout-archive")


def run(repeats: int, fleet: Fleet) -> list[dict[str, Any]]:
    empty_cfg = fleet.work / "ansible-defaults.cfg"
    empty_cfg.write_text("[defaults]\n", encoding="utf-8")
    plain = defaults_playbook(fleet)
    sides = {
        "ansible defaults": lambda: ansible_playbook(fleet, plain, empty_cfg, "fanout-defaults"),
        "gcmschange": lambda: fleet.push("fanout-native"),
        "gcmschange accelerated": lambda: fleet.push("fanout-mitogen", accelerate=True),
        "gcmschange one-task push": lambda: push_archive(fleet),
    }
    if not accel.available():
        del sides["gcmschange accelerated"]
    # Ansible's default ControlPath lives under ~/.ansible/cp (the benchmark's own home).
    default_cp = Path(os.environ["HOME"]) / ".ansible" / "cp"
    times = rotate(sides, repeats, before=lambda: fleet.cold(default_cp))
    peer = median(times["ansible defaults"])
    hosts = len(fleet.hosts)
    rows = [_row(f"4a. fan-out native, {hosts} hosts", times, "gcmschange", peer, NATIVE)]
    if "gcmschange accelerated" in times:
        label = f"4b. fan-out + Mitogen, {hosts} hosts"
        rows.append(_row(label, times, "gcmschange accelerated", peer, ACCELERATED))
    else:
        rows.append({"case": "4b. fan-out + Mitogen", "skipped": accel.MISSING})
    archive = Row(
        case=f"4c. one-task push vs per-file, {hosts} hosts",
        gcmschange_s=median(times["gcmschange one-task push"]),
        peer="gcmschange per-file (shipped)",
        peer_s=median(times["gcmschange"]),
        runs={k: v for k, v in times.items() if k in {"gcmschange one-task push", "gcmschange"}},
        extra={"hosts": hosts, "experiment": True},
    )
    return [*rows, archive.as_dict()]


def _row(
    case: str, times: dict[str, list[float]], side: str, peer: float, x: float
) -> dict[str, Any]:
    target, bound = speedup_target(x)
    return Row(
        case=case,
        gcmschange_s=median(times[side]),
        peer="ansible-playbook, Ansible defaults",
        peer_s=peer,
        target=target,
        max_ratio=bound,
        runs={side: times[side], "ansible defaults": times["ansible defaults"]},
    ).as_dict()
