"""One `deploy.push` as its own process: the gcmschange side of the apply and fan-out cases.

The peer (`ansible-playbook`) is a process that starts, imports Ansible, runs and exits, and
the benchmark measures it from outside. So is this side now: the interpreter's start, the
imports of gcmschange and ansible-runner, the push, its result, timed by the same
`common.run_process` with the same settings. Prints one JSON line: rc, changed hosts,
failures.

    python -m benchmarks.push_once ROOT INVENTORY WORK_DIR RENDERED_DIR [--accelerate] [--nodes K]

`--nodes K`: through the environment's first K execution nodes (0: from this process).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from gcmschange.apply import push as deploy
from gcmschange.execution import nodes
from gcmschange.render.configs import RenderedFile, RenderedSet
from gcmschange.rules.estate import load_estate, load_inventory


def read_tree(tree: Path, environment: str) -> RenderedSet:
    """The rendered set back from `<tree>/<host>/<dest>`, as `RenderedSet.write` left it."""
    files = []
    for host_dir in sorted(p for p in tree.iterdir() if p.is_dir()):
        for path in sorted(p for p in host_dir.rglob("*") if p.is_file()):
            dest = "/" + path.relative_to(host_dir).as_posix()
            files.append(RenderedFile(host_dir.name, dest, "", path.read_text(encoding="utf-8")))
    return RenderedSet(environment, tuple(files))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="push_once")
    parser.add_argument("root", type=Path)
    parser.add_argument("inventory", type=Path)
    parser.add_argument("work_dir", type=Path)
    parser.add_argument("rendered", type=Path)
    parser.add_argument("--accelerate", action="store_true")
    parser.add_argument("--nodes", type=int, default=0)
    args = parser.parse_args(argv)
    rendered = read_tree(args.rendered, args.inventory.name)
    placement: dict[str, nodes.ExecNode | None] = {}
    if args.nodes:
        inventory = load_inventory(args.root, args.inventory.name)
        configured = load_estate(args.root).execution_nodes.get(inventory.environment, ())
        found = nodes.of_environment(configured, tuple(inventory.hosts.values()))
        if len(found) < args.nodes:
            parser.error(f"--nodes {args.nodes}: the environment has {len(found)}")
        targets = [inventory.hosts[h] for h in rendered.hosts()]
        placement = nodes.place(found[: args.nodes], targets)
    result = deploy.push(
        args.root,
        args.inventory,
        rendered,
        args.work_dir,
        hosts=rendered.hosts(),
        accelerate=args.accelerate,
        placement=placement,
    )
    summary = {
        "rc": result.rc,
        "status": result.status,
        "changed": list(result.changed_hosts),
        "failures": result.failures,
        "accelerated": result.accelerated,
    }
    print(json.dumps(summary))
    return 0 if result.rc == 0 and not result.failures else 1


if __name__ == "__main__":
    sys.exit(main())
