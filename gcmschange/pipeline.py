"""The road, one stage per function, each taking the previous stage's result.

    load -> render -> (plan) -> (gate) -> (apply in waves) -> (verify) -> evidence

Later stages live in their own modules and start from a `Prepared` change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gcmschange.changes import load_change
from gcmschange.digest import change_digest
from gcmschange.estate import Estate, Inventory, load_estate, load_inventory
from gcmschange.model import ChangeRequest, Host
from gcmschange.render import RenderedSet, Renderer, render_hosts


@dataclass(frozen=True)
class Loaded:
    root: Path
    change: ChangeRequest
    estate: Estate
    inventory: Inventory
    targets: tuple[Host, ...]


@dataclass(frozen=True)
class Prepared:
    loaded: Loaded
    rendered: RenderedSet
    digest: str


def load(root: Path, ref: str) -> Loaded:
    change = load_change(root, ref)
    estate = load_estate(root)
    inventory = load_inventory(root, change.environment)
    return Loaded(root, change, estate, inventory, inventory.hosts_of(change.systems))


def render(loaded: Loaded, renderer: Renderer | None = None) -> RenderedSet:
    return render_hosts(
        loaded.estate, loaded.inventory, loaded.targets, loaded.change.variables, renderer
    )


def prepare(root: Path, ref: str) -> Prepared:
    loaded = load(root, ref)
    rendered = render(loaded)
    digest = change_digest(root, loaded.estate, loaded.inventory, loaded.change, rendered)
    return Prepared(loaded, rendered, digest)


def baseline(root: Path, environment: str) -> RenderedSet:
    """The estate's standard configuration for every host of an environment, no change applied."""
    estate = load_estate(root)
    inventory = load_inventory(root, environment)
    return render_hosts(estate, inventory, tuple(inventory.hosts.values()), {})
