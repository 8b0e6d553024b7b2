"""Argument specs in Ansible's own format: what a change's variables may be.

A playbook's spec is `playbooks/<playbook>.meta.yml`: ansible-lint's name for a playbook's
argument spec (its `play-argspec` kind, matched before `playbooks/*.yml`), so the linter
checks it as a spec instead of failing on it as a playbook, and Ansible never loads it. A role's
spec is Ansible's `roles/<role>/meta/argument_specs.yml`; a playbook that applies a role of the
repository (`roles/`, `playbooks/roles/`) lets a change set that role's options too. Roles
installed from `requirements.yml` are not read here (validation installs nothing): Ansible
checks their specs itself when the role starts, in plan.

gcmschange adds one key, `secret: true`; Ansible's `no_log: true` means the same, and is the
one to use in a role (ansible-lint's role schema refuses unknown keys). Every reader of specs,
validation and masking alike, goes through `for_playbook`.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gcmschange import resources, yamlsafe
from gcmschange.errors import GcmsError, Location, Problem, ValidationError
from gcmschange.execution import ansiblecfg
from gcmschange.validate.schema import checker

PLAYBOOK_SPEC = ".meta.yml"  # playbooks/<name>.meta.yml
RETIRED_SPEC = ".spec.yml"  # gcmschange's private format before Ansible's (issue 14)
ROLE_SPEC = ("meta/argument_specs.yml", "meta/argument_specs.yaml")
ROLE_MODULES = frozenset(
    {
        "include_role",
        "import_role",
        "ansible.builtin.include_role",
        "ansible.builtin.import_role",
        "ansible.legacy.include_role",
        "ansible.legacy.import_role",
    }
)
TASK_LISTS = ("pre_tasks", "tasks", "post_tasks", "handlers", "block", "rescue", "always")
SCHEMA = "argument-specs"


@dataclass(frozen=True)
class Option:
    name: str
    type: str = "raw"  # Ansible's: str int float bool list dict path raw (json, bytes, ...)
    elements: str = ""  # the type of a list's items, when it says
    choices: tuple[Any, ...] = ()
    required: bool = False
    secret: bool = False  # `secret: true` or Ansible's `no_log: true`, here or in a suboption
    options: Mapping[str, Option] = field(default_factory=dict)  # a dict's keys


@dataclass(frozen=True)
class ArgSpec:
    file: str  # relative to the repository
    options: Mapping[str, Option]


@dataclass(frozen=True)
class PlaybookArgs:
    """What a change running `playbook` may set: its own spec, then each applied role's."""

    playbook: str
    own: ArgSpec | None  # playbooks/<playbook>.meta.yml, when it exists
    roles: tuple[ArgSpec, ...] = ()

    @property
    def specs(self) -> tuple[ArgSpec, ...]:
        return ((self.own,) if self.own else ()) + self.roles

    def declaring(self, name: str) -> tuple[tuple[ArgSpec, Option], ...]:
        return tuple((s, s.options[name]) for s in self.specs if name in s.options)

    def files(self) -> str:
        return " nor ".join(s.file for s in self.specs)

    def required(self) -> tuple[Option, ...]:
        """Only the playbook's own: a role's required option may come from the inventory."""
        return tuple(o for o in self.own.options.values() if o.required) if self.own else ()

    def secret_names(self) -> tuple[str, ...]:
        names = (name for s in self.specs for name, o in s.options.items() if o.secret)
        return tuple(dict.fromkeys(names))


def playbook_name(playbook: str) -> str:
    return playbook.removesuffix(".yml").removesuffix(".yaml")


def spec_path(root: Path, playbook: str) -> Path:
    return root / "playbooks" / f"{playbook_name(playbook)}{PLAYBOOK_SPEC}"


def for_playbook(root: Path, playbook: str, *, check: bool = True) -> PlaybookArgs:
    """The specs that judge a change's variables for `playbook`; with `check`, each file is
    schema-checked and every problem of every file is raised together (`ValidationError`).

    A spec left in the retired `playbooks/<name>.spec.yml` is always refused, never skipped:
    it may mark secrets, and a skipped marker would unmask them."""
    name = playbook_name(playbook)
    problems: list[Problem] = []
    retired = root / "playbooks" / f"{name}{RETIRED_SPEC}"
    if retired.is_file():
        problems.append(_retired(root, retired))
    own = _read(root, spec_path(root, name), None, check, problems)
    roles = [
        _read(root, folder / spec, entry, check, problems)
        for role, entry in applied_roles(root, name)
        if (folder := role_folder(root, role)) is not None
        for spec in ROLE_SPEC
        if (folder / spec).is_file()
    ]
    if problems:
        first = problems[0].location.file
        raise ValidationError(f"{first}: argument spec is invalid", tuple(problems))
    return PlaybookArgs(name, own, tuple(r for r in roles if r is not None))


def _retired(root: Path, path: Path) -> Problem:
    rel = path.relative_to(root).as_posix()
    new = rel.removesuffix(RETIRED_SPEC) + PLAYBOOK_SPEC
    return Problem(
        f"the {RETIRED_SPEC} format is retired: move its options to {new} under "
        "argument_specs: {main: {options: ...}} (Ansible's format; "
        "see docs/bring-your-own-content.md)",
        Location(rel),
        "deprecated",
    )


def _read(
    root: Path, path: Path, entry: str | None, check: bool, problems: list[Problem]
) -> ArgSpec | None:
    if not path.is_file():
        return None
    rel = path.relative_to(root).as_posix()
    try:
        doc = yamlsafe.load_file(path, rel, root=root)
    except ValidationError as err:
        problems.extend(err.problems)
        return None
    found = checker(resources.schema(SCHEMA)).problems(doc) if check else []
    if found:
        problems.extend(found)
        return None
    entries = doc.data.get("argument_specs") if isinstance(doc.data, dict) else None
    if not isinstance(entries, dict):
        return ArgSpec(rel, {})
    # A role runs one entry point (`main`, or the `tasks_from` a playbook names); every entry
    # of a playbook's spec applies to its plays.
    chosen = [entries.get(entry)] if entry is not None else list(entries.values())
    options: dict[str, Option] = {}
    for point in chosen:
        if isinstance(point, dict):
            options.update(_options(point.get("options")))
    return ArgSpec(rel, options)


def _options(raw: Any) -> dict[str, Option]:
    if not isinstance(raw, dict):
        return {}
    return {str(name): _option(str(name), o) for name, o in raw.items() if isinstance(o, dict)}


def _option(name: str, raw: dict[str, Any]) -> Option:
    sub = _options(raw.get("options"))
    choices = raw.get("choices")
    return Option(
        name=name,
        type=str(raw.get("type", "raw")),
        elements=str(raw.get("elements", "")),
        choices=tuple(choices) if isinstance(choices, list) else (),
        required=raw.get("required") is True,
        # A value holding a secret key is masked whole: masking replaces values, not paths.
        secret=raw.get("secret") is True
        or raw.get("no_log") is True
        or any(o.secret for o in sub.values()),
        options=sub,
    )


def role_folders(root: Path) -> tuple[str, ...]:
    """Where Ansible looks for a playbook's roles, in its order: beside the playbook, then
    roles_path as the repository's ansible.cfg sets it (default `roles`)."""
    try:
        return ("playbooks/roles", *ansiblecfg.roles_path(root))
    except GcmsError:
        return ("playbooks/roles", "roles")  # a broken ansible.cfg is refused where it runs


def role_folder(root: Path, role: str) -> Path | None:
    """The repository's folder of `role`, where Ansible would find it first; a collection's
    role (`ns.coll.role`) or one installed from requirements.yml is not in the repository."""
    if "/" in role or role.startswith("."):
        return None
    for base in role_folders(root):
        folder = root / base / role
        if folder.is_dir() and yamlsafe.folder_inside(root, folder):
            return folder
    return None


def applied_roles(root: Path, playbook: str) -> tuple[tuple[str, str], ...]:
    """(role, entry point) of every role the playbook names literally: in a play's `roles:`,
    or in an `include_role`/`import_role` task. A templated name is Ansible's to resolve."""
    path = root / "playbooks" / f"{playbook_name(playbook)}.yml"
    if not path.is_file():
        return ()
    try:
        plays = yamlsafe.load_file(path, root=root).data
    except ValidationError:
        return ()  # not plain YAML to us (a tag we refuse): Ansible still checks its roles
    found = (
        [r for play in plays if isinstance(play, dict) for r in _play_roles(play)]
        if isinstance(plays, list)
        else []
    )
    return tuple(dict.fromkeys(r for r in found if "{{" not in r[0]))


def _play_roles(play: dict[str, Any]) -> Iterator[tuple[str, str]]:
    for item in play.get("roles") or ():
        if isinstance(item, str):
            yield item, "main"
        elif isinstance(item, dict):
            name = item.get("role", item.get("name"))
            if isinstance(name, str):
                yield name, "main"
    for key in TASK_LISTS:
        yield from _task_roles(play.get(key))


def _task_roles(tasks: Any) -> Iterator[tuple[str, str]]:
    for task in tasks if isinstance(tasks, list) else ():
        if not isinstance(task, dict):
            continue
        for module in ROLE_MODULES & task.keys():
            args = task[module]
            name = args.get("name") if isinstance(args, dict) else None
            if isinstance(name, str):
                entry = args.get("tasks_from", "main")
                yield name, playbook_name(str(entry))
        for key in ("block", "rescue", "always"):
            yield from _task_roles(task.get(key))
