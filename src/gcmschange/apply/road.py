"""The road, one stage per function, each taking the previous stage's result.

    load -> render -> (plan) -> (gate) -> (apply in waves) -> (verify) -> evidence

Later stages live in their own modules and start from a `Prepared` change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gcmschange.masking import secret_values
from gcmschange.model import ChangeRequest, Host
from gcmschange.plan.digest import change_digest
from gcmschange.render.cache import RenderCache, default_cache
from gcmschange.render.configs import RenderedSet, Renderer, render_hosts
from gcmschange.rules.estate import Estate, Inventory, load_estate, load_inventory
from gcmschange.validate.load import load_change


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
    secrets: tuple[str, ...] = ()  # values to mask in every output and artifact


def load(root: Path, ref: str, environment: str | None = None) -> Loaded:
    """The change, the estate, and the inventory of `environment` (default: the change's)."""
    change = load_change(root, ref)
    estate = load_estate(root)
    inventory = load_inventory(root, environment or change.environment)
    return Loaded(root, change, estate, inventory, inventory.hosts_of(change.systems))


def render(
    loaded: Loaded, renderer: Renderer | None = None, cache: RenderCache | None = None
) -> RenderedSet:
    return render_hosts(
        loaded.estate,
        loaded.inventory,
        loaded.targets,
        loaded.change.variables,
        renderer,
        cache=cache,
    )


def prepare(root: Path, ref: str, *, use_cache: bool = True) -> Prepared:
    loaded = load(root, ref)
    secrets = secret_values(root, loaded.change)
    # A rendering that holds secret values is never written to the cache.
    cache = default_cache(root) if use_cache and not secrets else None
    rendered = render(loaded, cache=cache)
    digest = change_digest(root, loaded.estate, loaded.inventory, loaded.change, rendered)
    return Prepared(loaded, rendered, digest, secrets)


def baseline(root: Path, environment: str) -> RenderedSet:
    """The estate's standard configuration for every host of an environment, no change applied."""
    estate = load_estate(root)
    inventory = load_inventory(root, environment)
    return render_hosts(estate, inventory, tuple(inventory.hosts.values()), {})
