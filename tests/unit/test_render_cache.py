"""The whole-rendering cache: a hit returns exactly the rendering, any input change misses."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from gcmschange.render.cache import RenderCache
from gcmschange.render.configs import RenderedSet, Renderer, render_hosts
from gcmschange.rules.estate import load_estate, load_inventory

HOSTS = """\
all:
  children:
    portal:
      hosts:
        portal-1: {ansible_host: 10.0.0.1}
    case_api:
      hosts:
        caseapi-1: {ansible_host: 10.0.0.2}
        caseapi-2: {ansible_host: 10.0.0.3}
"""


@pytest.fixture
def root(estate_repo: Path) -> Path:
    (estate_repo / "inventories/lab/hosts.yml").write_text(HOSTS, encoding="utf-8")
    return estate_repo


def _render(
    root: Path, cache: RenderCache, variables: dict[str, object] | None = None
) -> RenderedSet:
    estate, inventory = load_estate(root), load_inventory(root, "lab")
    hosts = tuple(inventory.hosts.values())
    return render_hosts(
        estate, inventory, hosts, variables or {}, Renderer(root / "templates"), cache=cache
    )


def test_hit_is_identical_and_skips_rendering(
    root: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cache = RenderCache(tmp_path / "cache")
    first = _render(root, cache)
    assert len(list((tmp_path / "cache").glob("*.txt"))) == 1

    def must_not_render(*_args: object, **_kwargs: object) -> str:
        raise AssertionError("rendered on a cache hit")

    monkeypatch.setattr(Renderer, "render", must_not_render)
    assert _render(root, cache) == first


@pytest.mark.parametrize(
    "edit",
    [
        lambda r: (r / "templates/common/app.yml.j2").write_text("changed {{ gcms_system }}\n"),
        lambda r: (r / "inventories/lab/hosts.yml").write_text(
            HOSTS.replace("10.0.0.3", "10.0.0.9")
        ),
        lambda r: (r / "inventories/lab/group_vars/all.yml").write_text(
            (r / "inventories/lab/group_vars/all.yml").read_text().replace("256", "512")
        ),
    ],
    ids=["template", "other-host-var", "group-var"],
)
def test_any_input_change_misses(
    root: Path, tmp_path: Path, edit: Callable[[Path], object]
) -> None:
    cache = RenderCache(tmp_path / "cache")
    first = _render(root, cache)
    edit(root)
    second = _render(root, cache)
    assert second != first
    assert len(list((tmp_path / "cache").glob("*.txt"))) == 2


def test_variables_are_part_of_the_key(root: Path, tmp_path: Path) -> None:
    cache = RenderCache(tmp_path / "cache")
    assert _render(root, cache, {"nginx_worker_connections": 1}) != _render(
        root, cache, {"nginx_worker_connections": 2}
    )


def test_torn_entry_is_a_miss(root: Path, tmp_path: Path) -> None:
    cache = RenderCache(tmp_path / "cache")
    first = _render(root, cache)
    entry = next((tmp_path / "cache").glob("*.txt"))
    entry.write_bytes(entry.read_bytes()[:-10])
    assert _render(root, cache) == first


def test_old_entries_are_pruned(root: Path, tmp_path: Path) -> None:
    cache = RenderCache(tmp_path / "cache", keep=2)
    for n in range(4):
        _render(root, cache, {"nginx_worker_connections": n})
    assert len(list((tmp_path / "cache").glob("*.txt"))) == 2


def test_non_ascii_content_round_trips_and_a_cut_through_a_character_is_a_miss(
    root: Path, tmp_path: Path
) -> None:
    cache = RenderCache(tmp_path / "cache")
    banner: dict[str, object] = {
        "maintenance_banner_fr": "Entretien planifié à 2 h : délai prévu ✓"
    }
    first = _render(root, cache, banner)
    assert any("planifié" in f.content for f in first.files)
    assert _render(root, cache, banner) == first  # the hit, decoded per file from its bytes
    entry = next((tmp_path / "cache").glob("*.txt"))
    data = entry.read_bytes()
    cut = data.rindex("✓".encode()) + 1  # inside the 3-byte character
    entry.write_bytes(data[:cut] + data[cut + 1 :])  # one byte fewer: lengths no longer fit
    key_hits = RenderCache(tmp_path / "cache")
    assert _render(root, key_hits, banner) == first  # a miss re-renders, never garbles


def test_an_empty_entry_is_a_miss(root: Path, tmp_path: Path) -> None:
    cache = RenderCache(tmp_path / "cache")
    first = _render(root, cache)
    entry = next((tmp_path / "cache").glob("*.txt"))
    entry.write_bytes(b"")
    assert _render(root, cache) == first
