"""Render the standardised configuration a change produces, per host.

One sandboxed Jinja2 environment and one compiled template per file are reused for every
host: compiling per host is two orders of magnitude slower. StrictUndefined turns a
missing variable into an error naming template, line and variable. Variables from the
change are data handed to the template as values, so `{{ ... }}` inside them is never
evaluated.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import jinja2
from jinja2.sandbox import SandboxedEnvironment

from gcmschange.errors import InvalidInputError, Location, Problem, ValidationError
from gcmschange.estate import Estate, Inventory
from gcmschange.model import Host


@dataclass(frozen=True)
class RenderedFile:
    host: str
    dest: str  # absolute path on the host
    template: str
    content: str

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.content.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RenderedSet:
    environment: str
    files: tuple[RenderedFile, ...]

    def hosts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.host for f in self.files))

    def manifest(self) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {}
        for f in self.files:
            out.setdefault(f.host, []).append(f.dest)
        return out

    def for_hosts(self, hosts: Sequence[str]) -> RenderedSet:
        wanted = set(hosts)
        return RenderedSet(self.environment, tuple(f for f in self.files if f.host in wanted))

    def write(self, out_dir: Path) -> Path:
        """Write `<out_dir>/<host>/<dest>`; refuse any path that would escape `out_dir`."""
        out_dir.mkdir(parents=True, exist_ok=True)
        base = out_dir.resolve()
        targets = [(f, safe_output_path(base, f.host, f.dest)) for f in self.files]
        for f, target in targets:
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(f.content, encoding="utf-8")
        return out_dir


def _inside(path: Path, base: Path) -> bool:
    try:
        path.resolve().relative_to(base)
    except ValueError:
        return False
    return True


def safe_output_path(base: Path, host: str, dest: str) -> Path:
    """The output path for a host's file, refused when absolute-escaping, `..` or symlinked out."""
    host_part = PurePosixPath(host)
    dest_part = PurePosixPath(dest)
    where = f"{host}:{dest}"
    if len(host_part.parts) != 1 or host in {".", ".."}:
        raise InvalidInputError(f"{where}: host name is not a single path component")
    if not dest_part.is_absolute():
        raise InvalidInputError(f"{where}: destination must be an absolute path on the host")
    if ".." in dest_part.parts:
        raise InvalidInputError(f"{where}: destination contains '..'")
    target = base / host / dest_part.relative_to("/")
    # Resolve what exists of the path: a symlink planted in the output dir must not lead out.
    probe = target
    while not probe.exists() and probe != base:
        probe = probe.parent
    if not _inside(probe, base):
        raise InvalidInputError(f"{where}: output path resolves outside {base}")
    return target


class Renderer:
    """Compiles each template once and renders it for any number of hosts."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        self.env = SandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(templates_dir)),
            undefined=jinja2.StrictUndefined,
            autoescape=False,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._cache: dict[str, jinja2.Template] = {}

    def template(self, name: str) -> jinja2.Template:
        cached = self._cache.get(name)
        if cached is None:
            try:
                cached = self.env.get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                raise ValidationError(
                    f"template {name} has a syntax error",
                    (Problem(exc.message or str(exc), Location(f"templates/{name}", exc.lineno)),),
                ) from exc
            except jinja2.TemplateNotFound as exc:
                raise InvalidInputError(f"templates/{name}: template not found") from exc
            self._cache[name] = cached
        return cached

    def render(self, name: str, context: dict[str, Any]) -> str:
        template = self.template(name)
        try:
            return template.render(context)
        except jinja2.UndefinedError as exc:
            line = _template_line(exc, name)
            raise ValidationError(
                f"template {name} uses an undefined variable",
                (Problem(exc.message or str(exc), Location(f"templates/{name}", line)),),
            ) from exc
        except jinja2.exceptions.SecurityError as exc:
            line = _template_line(exc, name)
            raise ValidationError(
                f"template {name} tried an unsafe operation",
                (Problem(str(exc), Location(f"templates/{name}", line), code="sandbox"),),
            ) from exc


def _template_line(exc: BaseException, name: str) -> int:
    """The template line of the innermost traceback frame that belongs to template `name`."""
    line = 0
    tb = exc.__traceback__
    while tb is not None:
        if tb.tb_frame.f_code.co_filename.endswith(name):
            line = tb.tb_lineno
        tb = tb.tb_next
    return line


def host_context(host: Host, inventory: Inventory, variables: dict[str, Any]) -> dict[str, Any]:
    """What a template sees for one host: inventory vars, then the change's, then facts."""
    return {
        **host.vars,
        **variables,
        "inventory_hostname": host.name,
        "gcms_system": host.system,
        "groups": {name: list(members) for name, members in inventory.groups.items()},
        "hostvars": {name: h.vars for name, h in inventory.hosts.items()},
    }


def render_hosts(
    estate: Estate,
    inventory: Inventory,
    hosts: Sequence[Host],
    variables: dict[str, Any],
    renderer: Renderer | None = None,
) -> RenderedSet:
    renderer = renderer or Renderer(estate.root / "templates")
    files: list[RenderedFile] = []
    for host in hosts:
        system = estate.systems.get(host.system)
        if system is None:
            continue
        context = host_context(host, inventory, variables)
        for config in system.configs:
            content = renderer.render(config.template, context)
            files.append(RenderedFile(host.name, config.dest, config.template, content))
    return RenderedSet(inventory.environment, tuple(files))
