"""The road, one stage per function, each taking the previous stage's result.

    load -> render -> (plan) -> (gate) -> (apply in waves) -> (verify) -> evidence

Later stages live in their own modules and start from a `Prepared` change.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from gcmschange.errors import InvalidInputError, Location, Problem, ValidationError
from gcmschange.execution import verifier
from gcmschange.masking import secret_values
from gcmschange.model import ChangeRequest, Host
from gcmschange.plan.digest import change_digest
from gcmschange.plan.seal import Sealed, seal
from gcmschange.render.cache import RenderCache, default_cache
from gcmschange.render.configs import RenderedSet, Renderer, render_hosts
from gcmschange.rules.estate import (
    Estate,
    Inventory,
    inventory_sources,
    load_estate,
    load_inventory,
)
from gcmschange.validate.load import load_change


@dataclass(frozen=True)
class Loaded:
    root: Path  # the repository: state, approvals and the audit log live here
    change: ChangeRequest
    estate: Estate  # read from the sealed copy, as is the inventory
    inventory: Inventory
    targets: tuple[Host, ...]
    sealed: Sealed  # what every run of the change reads (plan.seal)

    @property
    def content(self) -> Path:
        return self.sealed.root


@dataclass(frozen=True)
class Prepared:
    loaded: Loaded
    rendered: RenderedSet
    digest: str
    secrets: tuple[str, ...] = ()  # values to mask in every output and artifact


def load(
    root: Path, ref: str, environment: str | None = None, code_from: str | None = None
) -> Loaded:
    """The change, then the sealed copy of what its runs read, and from that copy the estate
    and the inventory of `environment` (default: the change's)."""
    change = load_change(root, ref)
    env = environment or change.environment
    if code_from is None:
        load_inventory(root, env)  # a missing inventory is named where the user would look
    sealed = seal(root, change.id, env, code_from)
    if not inventory_sources(sealed.root / "inventories" / env):
        raise InvalidInputError(
            f"inventories/{env}: no inventory in commit {code_from}, whose code this run uses"
        )
    estate = load_estate(sealed.root)
    inventory = load_inventory(sealed.root, env)
    targets = inventory.hosts_of(change.systems)
    _check_verification(change, estate, inventory, targets)
    return Loaded(root, change, estate, inventory, targets, sealed)


def _check_verification(
    change: ChangeRequest, estate: Estate, inventory: Inventory, targets: tuple[Host, ...]
) -> None:
    """A test the change names must run somewhere: one that runs on no target host would let
    apply say "verified" having checked nothing."""
    names = [h.name for h in targets]
    problems = [
        Problem(
            f"{test} runs on none of {change.id}'s hosts: estate.yml lists it for other "
            f"systems than {', '.join(change.systems)}",
            Location(change.path or change.id, path=f"$.verification[{i}]"),
            "verification",
        )
        for i, test in enumerate(change.verification)
        if targets and not verifier.scope(estate, inventory, [test], names)
    ]
    if problems:
        raise ValidationError(f"{change.id}: verification would check nothing", tuple(problems))


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


def prepare(
    root: Path, ref: str, *, use_cache: bool = True, code_from: str | None = None
) -> Prepared:
    loaded = load(root, ref, code_from=code_from)
    secrets = secret_values(loaded.content, loaded.change)
    # A rendering that holds secret values is never written to the cache.
    cache = default_cache(root) if use_cache and not secrets else None
    rendered = render(loaded, cache=cache)
    digest = change_digest(loaded.change, rendered, loaded.sealed)
    return Prepared(loaded, rendered, digest, secrets)


def baseline(root: Path, environment: str) -> RenderedSet:
    """The estate's standard configuration for every host of an environment, no change applied."""
    estate = load_estate(root)
    inventory = load_inventory(root, environment)
    return render_hosts(estate, inventory, tuple(inventory.hosts.values()), {})
