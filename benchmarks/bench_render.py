"""Rendering at scale: 10,000 hosts x one 100-line template.

gcmschange (sandboxed, StrictUndefined, per-host context, a `RenderedSet` at the end) beside
the practical limit: a plain Jinja2 loop with one reused Environment rendering the same
template with the same per-host data. Target: within 1.3x. Then the same rendering again
with no input changed, answered by the render cache: it should do almost no work.

    python -m benchmarks.bench_render [--repeats 3] [--hosts 10000]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jinja2
import yaml

from benchmarks.common import Action, Row, format_table, median, row_from
from gcmschange.render.cache import RenderCache
from gcmschange.render.configs import Renderer, render_hosts, shared_context
from gcmschange.rules.estate import Estate, Inventory, load_estate, load_inventory

HOSTS = 10_000
TEMPLATE = "web/app.conf.j2"
MAX_RATIO = 1.3
# "Almost no work": a cache hit must cost at most a fifth of the plain loop.
CACHED_MAX_RATIO = 0.2


def _template() -> str:
    """A 100-line configuration template of the usual kind: values, filters, a loop, tests."""
    head = [
        "# Managed by gcmschange: {{ gcms_system }} on {{ inventory_hostname }}",
        "worker_processes {{ workers }};",
        "events {",
        "    worker_connections {{ nginx_worker_connections }};",
        "}",
        "upstream app {",
        "{% for u in upstreams %}",
        "    server {{ u.host }}:{{ u.port }} weight={{ u.weight | default(1) }};",
        "{% endfor %}",
        "}",
        "server {",
        "    listen {{ port }}{% if tls.enabled %} ssl{% endif %};",
        "    server_name {{ inventory_hostname }} {{ aliases | join(' ') }};",
        "    ssl_protocols {{ tls.protocols }};",
        "    root {{ root_dir }};",
    ]
    body = [
        f"    location /svc{i:02d} {{ proxy_pass http://app/{{{{ service_prefix }}}}/{i}; "
        f"proxy_read_timeout {{{{ timeout_s * {i % 5 + 1} }}}}s; }}"
        if i % 3
        else f"    # setting {i}: {{{{ settings['key{i % 10}'] | upper }}}}"
        for i in range(80)
    ]
    tail = [
        "    access_log /var/log/nginx/{{ gcms_system }}.log;",
        "    error_log /var/log/nginx/{{ gcms_system }}.err {{ log_level }};",
        "}",
        "# zone {{ zone }} rack {{ rack }}",
        "# environment {{ gcms_environment }}",
    ]
    lines = head + body + tail
    assert len(lines) == 100, len(lines)
    return "\n".join(lines) + "\n"


def make_estate(root: Path, hosts: int) -> None:
    (root / "templates/web").mkdir(parents=True)
    (root / "templates" / TEMPLATE).write_text(_template(), encoding="utf-8")
    estate = {
        "version": 1,
        "environments": ["lab"],
        "systems": {
            "web": {
                "name_en": "Web",
                "name_fr": "Web",
                "owner": "owner-web",
                "configs": [{"template": TEMPLATE, "dest": "/etc/nginx/conf.d/app.conf"}],
            }
        },
    }
    (root / "estate.yml").write_text(yaml.safe_dump(estate), encoding="utf-8")
    members = {
        f"web-{i:05d}": {
            "ansible_host": f"10.{i // 65536}.{i // 256 % 256}.{i % 256}",
            "zone": f"z{i % 3}",
            "rack": i % 40,
            "workers": 1 + i % 4,
        }
        for i in range(hosts)
    }
    inventory = {"all": {"children": {"web": {"hosts": members}}}}
    inv_dir = root / "inventories/lab"
    (inv_dir / "group_vars").mkdir(parents=True)
    (inv_dir / "hosts.yml").write_text(yaml.safe_dump(inventory), encoding="utf-8")
    group_vars = {
        "gcms_environment": "lab",
        "nginx_worker_connections": 512,
        "upstreams": [{"host": f"app-{n}", "port": 8080 + n, "weight": n + 1} for n in range(4)],
        "port": 443,
        "tls": {"enabled": True, "protocols": "TLSv1.2 TLSv1.3"},
        "aliases": ["www", "app"],
        "root_dir": "/srv/www",
        "service_prefix": "api",
        "timeout_s": 5,
        "settings": {f"key{n}": f"value{n}" for n in range(10)},
        "log_level": "warn",
    }
    (inv_dir / "group_vars/all.yml").write_text(yaml.safe_dump(group_vars), encoding="utf-8")


def plain_loop(estate: Estate, inventory: Inventory, variables: dict[str, Any]) -> list[str]:
    """The practical limit: one Environment, one compiled template, one render per host."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(estate.root / "templates")),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    # Configuration, not HTML: nothing is escaped, as on the gcmschange side. A plain False,
    # set before the template compiles (a select_autoescape function would make every output
    # check at run time and handicap the peer).
    env.autoescape = False
    template = env.get_template(TEMPLATE)
    shared = shared_context(inventory)
    return [
        template.render(
            {
                **host.vars,
                **variables,
                "inventory_hostname": host.name,
                "gcms_system": host.system,
                **shared,
            }
        )
        for host in inventory.hosts.values()
    ]


def run(repeats: int = 3, hosts: int = HOSTS) -> list[dict[str, Any]]:
    with tempfile.TemporaryDirectory(prefix="gcms-bench-render-") as tmp:
        root = Path(tmp)
        make_estate(root, hosts)
        estate, inventory = load_estate(root), load_inventory(root, "lab")
        targets = tuple(inventory.hosts.values())
        variables = {"nginx_worker_connections": 1024}
        cache = RenderCache(root / ".gcmschange/cache/render")

        def ours() -> object:
            return render_hosts(estate, inventory, targets, variables, Renderer(root / "templates"))

        def cached() -> object:
            renderer = Renderer(root / "templates")
            return render_hosts(estate, inventory, targets, variables, renderer, cache=cache)

        def peer() -> object:
            return plain_loop(estate, inventory, variables)

        expected = [f.content for f in render_hosts(estate, inventory, targets, variables).files]
        assert expected == plain_loop(estate, inventory, variables), "sides render differently"
        cached()  # fills the cache
        disk = {
            "cache_disk_mb": round(_disk_bytes(root / ".gcmschange/cache/render") / 2**20, 2),
            "rendered_mb": round(sum(len(t.encode()) for t in expected) / 2**20, 2),
        }
        cold = _alternate({"gcmschange": ours, "peer": peer}, repeats)
        warm = _alternate({"gcmschange": cached, "peer": peer}, repeats)
        return [
            _row(f"render {hosts} hosts", cold, MAX_RATIO),
            {
                **_row(f"render {hosts} hosts, no change (cache)", warm, CACHED_MAX_RATIO),
                **disk,
            },
        ]


def _disk_bytes(folder: Path) -> int:
    """What the folder takes on disk (allocated blocks, as `du` counts), not its files' sizes."""
    return sum(p.stat().st_blocks * 512 for p in folder.rglob("*") if p.is_file())


def _alternate(sides: dict[str, Action], repeats: int) -> dict[str, dict[str, list[float]]]:
    """CPU and wall seconds per side, rounds rotating who goes first. Both sides are one
    process's pure computation, so CPU time is the measure that survives a shared machine."""
    names = list(sides)
    times: dict[str, dict[str, list[float]]] = {n: {"cpu": [], "wall": []} for n in names}
    for round_no in range(repeats):
        shift = round_no % len(names)
        for name in names[shift:] + names[:shift]:
            cpu, wall = time.process_time(), time.perf_counter()
            sides[name]()
            times[name]["cpu"].append(time.process_time() - cpu)
            times[name]["wall"].append(time.perf_counter() - wall)
    return times


def _row(case: str, times: dict[str, dict[str, list[float]]], max_ratio: float) -> dict[str, Any]:
    ours, peer = times["gcmschange"], times["peer"]
    return Row(
        case=case,
        gcmschange_s=median(ours["cpu"]),
        peer="plain Jinja2 loop, one Environment",
        peer_s=median(peer["cpu"]),
        target=f"ratio <= {max_ratio:g} (CPU time)",
        max_ratio=max_ratio,
        runs={"gcmschange": ours["cpu"], "peer": peer["cpu"]},
        extra={
            "measure": "cpu",
            "gcmschange_wall_s": round(median(ours["wall"]), 3),
            "peer_wall_s": round(median(peer["wall"]), 3),
        },
    ).as_dict()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.bench_render")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--hosts", type=int, default=HOSTS)
    args = parser.parse_args(argv)
    rows = run(args.repeats, args.hosts)
    print(format_table([row_from(r) for r in rows]))
    return 0 if all(r["met"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
