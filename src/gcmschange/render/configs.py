"""Render the standardised configuration a change produces, per host.

One sandboxed Jinja2 environment and one compiled template per file are reused for every
host: compiling per host is two orders of magnitude slower. StrictUndefined turns a
missing variable into an error naming template, line and variable. Variables from the
change are data handed to the template as values, so `{{ ... }}` inside them is never
evaluated. The sandbox is the immutable one: the `groups` and `hostvars` every host sees
are shared objects, and a template that could mutate them would make one host's output
depend on the hosts rendered before it.
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import jinja2
import jinja2.meta
from jinja2.sandbox import ImmutableSandboxedEnvironment

from gcmschange import vault
from gcmschange.errors import InvalidInputError, Location, Problem, ValidationError
from gcmschange.masking import mask_text
from gcmschange.model import Host
from gcmschange.rules.estate import Estate, Inventory, vault_in

if TYPE_CHECKING:
    from gcmschange.render.cache import RenderCache


@dataclass(frozen=True)
class RenderedFile:
    host: str
    dest: str  # absolute path on the host
    template: str
    content: str
    secret: bool = False  # holds a vault value: pushed without diff or log, never cached

    @property
    def sha256(self) -> str:
        # A secret file's hash is of its masked text: a hash of a weak password inside a
        # known file can be guessed back. Its ciphertext is in the digest through the inventory.
        shown = mask_text(self.content, vault.revealed()) if self.secret else self.content
        return hashlib.sha256(shown.encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class RenderedSet:
    environment: str
    files: tuple[RenderedFile, ...]

    def hosts(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(f.host for f in self.files))

    def manifest(self, *, secret: bool | None = None) -> dict[str, list[str]]:
        """host -> dests; `secret`: only the files that hold (True) or do not hold (False)
        a vault value."""
        out: dict[str, list[str]] = {}
        for f in self.files:
            if secret is None or f.secret == secret:
                out.setdefault(f.host, []).append(f.dest)
        return out

    @property
    def has_secrets(self) -> bool:
        return any(f.secret for f in self.files)

    def expected(self, hosts: Sequence[str]) -> dict[str, dict[str, str]]:
        """host -> {dest: SHA-256 of the bytes the host must now hold} for the managed-files
        check; "" for a file holding a secret, which is only checked to exist."""
        wanted = set(hosts)
        out: dict[str, dict[str, str]] = {}
        for f in self.files:
            if f.host in wanted:
                digest = "" if f.secret else hashlib.sha256(f.content.encode("utf-8")).hexdigest()
                out.setdefault(f.host, {})[f.dest] = digest
        return out

    def for_hosts(self, hosts: Sequence[str]) -> RenderedSet:
        wanted = set(hosts)
        return RenderedSet(self.environment, tuple(f for f in self.files if f.host in wanted))

    def masked(self, secrets: Sequence[str]) -> RenderedSet:
        """The same set with secret values masked, for files written for people to read."""
        if not secrets:
            return self
        files = tuple(replace(f, content=mask_text(f.content, secrets)) for f in self.files)
        return RenderedSet(self.environment, files)

    def write(self, out_dir: Path) -> Path:
        """Write `<out_dir>/<host>/<dest>`; refuse any path that would escape `out_dir`.

        Every path is checked before the first byte is written, so a refused set writes nothing.
        """
        base = out_dir.resolve()
        targets = [(f, safe_output_path(base, f.host, f.dest)) for f in self.files]
        out_dir.mkdir(parents=True, exist_ok=True)
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


def check_destination(host: str, dest: str) -> None:
    """Refuse a host name that is not one path component and a destination that is not a
    plain absolute path (relative, or with `..`)."""
    if host in {"", ".", ".."} or "/" in host:
        raise InvalidInputError(f"{host}:{dest}: host name is not a single path component")
    reason = _destination_problem(dest)
    if reason:
        raise InvalidInputError(f"{host}:{dest}: {reason}")


@functools.lru_cache(maxsize=1024)
def _destination_problem(dest: str) -> str:
    # Cached: every host of a system has the same destinations, and parsing them is a
    # measurable share of rendering 10,000 hosts.
    path = PurePosixPath(dest)
    if not path.is_absolute():
        return "destination must be an absolute path on the host"
    if ".." in path.parts:
        return "destination contains '..'"
    return ""


def safe_output_path(base: Path, host: str, dest: str) -> Path:
    """The output path for a host's file, refused when relative, `..` or symlinked out."""
    check_destination(host, dest)
    target = base / host / PurePosixPath(dest).relative_to("/")
    # Resolve what exists of the path (a dangling symlink counts): a symlink planted in the
    # output dir must not lead out of it.
    probe = target
    while not (probe.exists() or probe.is_symlink()) and probe != base:
        probe = probe.parent
    if not _inside(probe, base):
        raise InvalidInputError(f"{host}:{dest}: output path resolves outside {base}")
    return target


# Errors a template can raise at run time besides Jinja's own: bad arithmetic, a sandboxed
# range that is too large, a filter given the wrong type.
_RUNTIME_ERRORS = (ArithmeticError, LookupError, TypeError, ValueError, AttributeError)


MARKUP_SUFFIXES = (".html", ".htm", ".xml", ".xhtml")


class Renderer:
    """Compiles each template once and renders it for any number of hosts."""

    def __init__(self, templates_dir: Path) -> None:
        self.templates_dir = templates_dir
        self.env = self._environment(autoescape=False)
        # An HTML or XML template escapes what it prints: a change's value is text there, and
        # `<script>` in a banner must not become markup on a public page. Decided per template
        # by its name, with a second environment, so configuration files pay no escaping check.
        self.markup_env = self._environment(autoescape=True)
        self._cache: dict[str, jinja2.Template] = {}
        self._names: dict[str, frozenset[str] | None] = {}

    def _environment(self, *, autoescape: bool) -> ImmutableSandboxedEnvironment:
        return ImmutableSandboxedEnvironment(
            loader=jinja2.FileSystemLoader(str(self.templates_dir)),
            undefined=jinja2.StrictUndefined,
            autoescape=autoescape,
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
        )

    def names_used(self, name: str) -> frozenset[str] | None:
        """The variables template `name` and the templates it includes read; None when it
        includes one chosen at render time (then it may read anything)."""
        if name not in self._names:
            files = template_files(self.templates_dir, [name])
            every = {p for p in self.templates_dir.rglob("*") if p.is_file()}
            if len(files) > 1 and set(files) == every:
                self._names[name] = None  # template_files gave up: a dynamic include
                return None
            found: set[str] = set()
            for path in files:
                try:
                    ast = self.env.parse(path.read_text(encoding="utf-8"))
                except (jinja2.TemplateSyntaxError, UnicodeDecodeError):
                    continue  # rendering reports it, with its position
                found |= jinja2.meta.find_undeclared_variables(ast)
            self._names[name] = frozenset(found)
        return self._names[name]

    def template(self, name: str) -> jinja2.Template:
        cached = self._cache.get(name)
        if cached is None:
            try:
                markup = name.removesuffix(".j2").endswith(MARKUP_SUFFIXES)
                cached = (self.markup_env if markup else self.env).get_template(name)
            except jinja2.TemplateSyntaxError as exc:
                file = f"templates/{exc.name or name}"
                raise ValidationError(
                    f"{file}:{exc.lineno}: template syntax error: {exc.message}",
                    (Problem(exc.message or str(exc), Location(file, exc.lineno), code="syntax"),),
                ) from exc
            except jinja2.TemplateNotFound as exc:
                raise InvalidInputError(f"templates/{exc.name}: template not found") from exc
            self._cache[name] = cached
        return cached

    def render(self, name: str, context: Mapping[str, Any], host: str = "") -> str:
        template = self.template(name)
        try:
            return template.render(context)
        except jinja2.UndefinedError as exc:
            raise self._error(exc, name, host, "undefined variable", "undefined") from exc
        except jinja2.exceptions.SecurityError as exc:
            raise self._error(exc, name, host, "blocked by the sandbox", "sandbox") from exc
        except (jinja2.TemplateError, *_RUNTIME_ERRORS) as exc:
            raise self._error(exc, name, host, "template error", "template") from exc

    def _error(self, exc: Exception, name: str, host: str, what: str, code: str) -> ValidationError:
        file, line = _template_position(exc, name, self.templates_dir)
        detail = getattr(exc, "message", None) or str(exc)
        for_host = f" (host {host})" if host else ""
        return ValidationError(
            f"{file}:{line}: {what}: {detail}{for_host}",
            (Problem(f"{what}: {detail}{for_host}", Location(file, line), code=code),),
        )


def _template_position(exc: BaseException, name: str, templates_dir: Path) -> tuple[str, int]:
    """The template file and line of the innermost traceback frame that is template code
    (Jinja rewrites those frames to the template's file and line), so an error inside an
    included template names that template."""
    file, line = f"templates/{name}", 0
    base = str(templates_dir.resolve())
    tb = exc.__traceback__
    while tb is not None:
        filename = str(Path(tb.tb_frame.f_code.co_filename).resolve())
        if filename.startswith(base + "/"):
            file = f"templates/{filename[len(base) + 1 :]}"
            line = tb.tb_lineno
        tb = tb.tb_next
    return file, line


_REFERENCE = re.compile(r"\{%[-+]?\s*(include|import|extends|from)\b")


def template_files(templates_dir: Path, names: Sequence[str]) -> tuple[Path, ...]:
    """The template files `names` read, with every template they include, import or extend.

    A reference computed at render time cannot be followed, so it brings in the whole tree.
    """
    # Only parsed, never rendered: escaping plays no part here.
    env = jinja2.Environment(autoescape=True)
    seen: set[str] = set()
    todo = list(names)
    while todo:
        name = todo.pop()
        path = templates_dir / name
        if name in seen or not path.is_file():
            seen.add(name)
            continue
        seen.add(name)
        try:
            source = path.read_text(encoding="utf-8")
            # Every reference is one of these tags: without one there is nothing to parse.
            if not _REFERENCE.search(source):
                continue
            ast = env.parse(source)
        except (jinja2.TemplateSyntaxError, UnicodeDecodeError):
            continue  # the renderer reports it with its position
        for ref in jinja2.meta.find_referenced_templates(ast):
            if ref is None:
                return tuple(sorted(p for p in templates_dir.rglob("*") if p.is_file()))
            todo.append(ref)
    return tuple(sorted(templates_dir / n for n in seen))


def shared_context(inventory: Inventory) -> dict[str, Any]:
    """What every host's template sees alike; built once per rendering, not once per host."""
    opened = vault.opened if inventory.holds_vault else _as_is
    return {
        "groups": {name: list(members) for name, members in inventory.groups.items()},
        "hostvars": {name: opened(h.vars) for name, h in inventory.hosts.items()},
    }


def _as_is(value: Any) -> Any:
    return value


def host_context(
    host: Host,
    inventory: Inventory,
    variables: Mapping[str, Any],
    shared: Mapping[str, Any] | None = None,
    *,
    sealed: bool = True,
) -> dict[str, Any]:
    """What a template sees for one host: inventory vars, then the change's, then facts.
    `sealed=False`: the caller knows no vault value is among them, so none is looked for."""
    opened = vault.opened if sealed else _as_is
    return {
        **opened(host.vars),
        **opened(variables),
        "inventory_hostname": host.name,
        "gcms_system": host.system,
        **(shared if shared is not None else shared_context(inventory)),
    }


def render_hosts(
    estate: Estate,
    inventory: Inventory,
    hosts: Sequence[Host],
    variables: dict[str, Any],
    renderer: Renderer | None = None,
    *,
    cache: RenderCache | None = None,
) -> RenderedSet:
    """Render every config of each host's system; a cache hit skips the rendering itself."""
    renderer = renderer or Renderer(estate.root / "templates")
    key = cache.key(renderer.templates_dir, estate, inventory, hosts, variables) if cache else ""
    if cache is not None:
        hit = cache.load(key, inventory.environment)
        if hit is not None:
            return hit
    shared = shared_context(inventory)
    vault_anywhere = inventory.holds_vault
    # Without a vault value in the inventory or the change (the common case), no variable
    # needs opening or tracking: walking every host's variables for none cost as much as the
    # rendering itself at 10,000 hosts.
    plain = not vault_anywhere and not vault_in(variables)
    files: list[RenderedFile] = []
    for host in hosts:
        system = estate.systems.get(host.system)
        if system is None:
            continue
        context = host_context(host, inventory, variables, shared, sealed=not plain)
        tainted: set[str] = set()
        if not plain:
            tainted = {k for k, v in {**host.vars, **variables}.items() if vault_in(v)}
            if vault_anywhere:
                tainted.add("hostvars")
        for config in system.configs:
            check_destination(host.name, config.dest)
            content = renderer.render(config.template, context, host.name)
            used = renderer.names_used(config.template)
            # A file that read a vault value holds a secret, even transformed (reversed, cut,
            # encoded) where no text search would find it.
            secret = vault.holds_secret(content) or bool(
                tainted and (used is None or not tainted.isdisjoint(used))
            )
            files.append(RenderedFile(host.name, config.dest, config.template, content, secret))
    rendered = RenderedSet(inventory.environment, tuple(files))
    if cache is not None and not rendered.has_secrets:  # a vault value never goes to disk
        cache.store(key, rendered)
    return rendered
