"""The root command, its shared options, output and the one place errors become exit codes.

Verb modules in this package attach their commands to `root`; they stay thin: parse,
call the core, hand the result to `emit`. The core never sees click.
"""

from __future__ import annotations

import functools
import json
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import click

from gcmschange import __version__, textsafe, vault
from gcmschange.apply.locks import DEFAULT_REMOTE
from gcmschange.errors import CancelledError, ExitCode, GcmsError, NotAvailableError, Problem
from gcmschange.execution import accel
from gcmschange.execution.runner import Progress
from gcmschange.rules.estate import find_root

F = TypeVar("F", bound=Callable[..., Any])

OUTPUTS = ("text", "json")


@dataclass(frozen=True)
class Context:
    """What every verb receives: where the repository is and how to print."""

    repo_arg: Path | None
    output: str

    @property
    def repo(self) -> Path:
        root = find_root(self.repo_arg or Path.cwd())
        vault.guard_repository(root)  # the branch's files are never the vault password
        return root


def output_option(func: F) -> F:
    """`--output` on a verb, so it can follow the verb as users type it."""
    return click.option(
        "--output",
        "verb_output",
        type=click.Choice(OUTPUTS),
        default=None,
        help="Output format (overrides the global --output).",
    )(func)


def remote_option(func: F) -> F:
    """`--remote` (or GCMS_REMOTE): the git remote that holds locks and audit anchors."""
    return click.option(
        "--remote",
        default=DEFAULT_REMOTE,
        envvar="GCMS_REMOTE",
        show_envvar=True,
        show_default=True,
        help="Git remote that holds the locks and the audit anchors.",
    )(func)


def trust_ref_option(func: F) -> F:
    """`--trust-ref`: the commit whose rules (approvers, policy, catalogue) are trusted."""
    return click.option(
        "--trust-ref",
        "trust_ref",
        default=None,
        metavar="REV",
        help="Read approvers, policy.yml and catalogue/ as at this commit (default: the target "
        "branch at the merge base, or the default branch before the change arrived; "
        "also GCMS_TRUST_REF).",
    )(func)


def out_option(what: str, *, required: bool = True, dir_okay: bool = False) -> Callable[[F], F]:
    """`-o/--out`, the same on every verb that writes a file or a folder."""
    return click.option(
        "-o",
        "--out",
        "out",
        type=click.Path(dir_okay=dir_okay, file_okay=not dir_okay, path_type=Path),
        required=required,
        help=what,
    )


@dataclass(frozen=True)
class ApplyFlags:
    """The options of the apply family, as one value the verb passes on."""

    remote: str
    accelerate: bool
    trust_ref: str | None
    output: str | None
    base: str | None = None
    idempotence: str = "sample"


def apply_options(*, base: bool = True, idempotence: bool = True) -> Callable[[F], F]:
    """The options every verb of the apply family takes, in one place and one order; the verb
    receives them as `flags: ApplyFlags`."""

    def decorate(func: F) -> F:
        @functools.wraps(func)
        def packed(*args: Any, **kwargs: Any) -> Any:
            flags = ApplyFlags(
                remote=kwargs.pop("remote"),
                accelerate=kwargs.pop("accelerate"),
                trust_ref=kwargs.pop("trust_ref"),
                output=kwargs.pop("verb_output"),
                base=kwargs.pop("base", None),
                idempotence=kwargs.pop("idempotence", "sample"),
            )
            return func(*args, flags=flags, **kwargs)

        wrapped = trust_ref_option(remote_option(accelerate_option(output_option(packed))))
        if base:
            wrapped = click.option(
                "--base", default=None, help="Revision whose estate is the previous config."
            )(wrapped)
        if idempotence:
            wrapped = click.option(
                "--idempotence",
                type=click.Choice(["sample", "all"]),
                default="sample",
                show_default=True,
                help="After the last wave, re-run the playbooks in check mode on one host per "
                "system (sample) or on every touched host (all). Every host's files are "
                "checked against the approved rendering at its wave either way.",
            )(wrapped)
        return cast(F, wrapped)

    return decorate


@contextmanager
def live_progress(label: str, enabled: bool) -> Iterator[Progress | None]:
    """A one-line live display on stderr of the host and task a long run is at."""
    if not enabled:
        yield None
        return
    from rich.console import Console

    console = Console(stderr=True)
    seen: set[str] = set()
    with console.status(f"{label}: starting ansible") as status:

        def update(host: str, task: str, state: str) -> None:
            seen.add(host)
            status.update(f"{label}: {len(seen)} host(s) answered; {host}: {task} ({state})")

        yield update


def accelerate_option(func: F) -> F:
    """`--accelerate` (or GCMS_ACCELERATE=true, as a pipeline sets it) on verbs that run Ansible."""
    return click.option(
        "--accelerate",
        is_flag=True,
        envvar="GCMS_ACCELERATE",
        show_envvar=True,
        help="Use the Mitogen strategy if installed (a warning, and the native tuning, if not).",
        callback=_warn_if_no_accelerator,
    )(func)


def _warn_if_no_accelerator(ctx: click.Context, param: click.Parameter, value: bool) -> bool:
    if value and not accel.available():
        # Said once, before any host is touched, whatever the output format (stderr).
        click.echo(f"warning: {accel.MISSING}", err=True)
    return value


def get_context(verb_output: str | None = None) -> Context:
    base: Context = click.get_current_context().find_root().obj
    if verb_output is not None:
        return Context(base.repo_arg, verb_output)
    return base


def emit(ctx: Context, payload: dict[str, Any], text: str) -> None:
    """Print a result: `text` for people, `payload` as JSON for machines."""
    if ctx.output == "json":
        click.echo(json.dumps(payload, indent=2, sort_keys=True, default=str))
    elif text:
        # The one place results meet the terminal: values from inputs never drive it.
        click.echo(textsafe.plain(text, one_line=False))


def problems_json(problems: Sequence[Problem]) -> list[dict[str, Any]]:
    return [
        {
            "message": p.message,
            "file": p.location.file,
            "line": p.location.line,
            "column": p.location.column,
            "path": p.location.path,
            "code": p.code,
            "severity": p.severity,
        }
        for p in problems
    ]


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="gcmschange")
@click.option(
    "--repo",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    envvar="GCMS_REPO",
    show_envvar=True,
    help="The GitOps repository (default: the nearest directory holding estate.yml).",
)
@click.option(
    "--output", type=click.Choice(OUTPUTS), default="text", show_default=True, help="Output format."
)
@click.option(
    "--vault-password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Opens Ansible Vault values and files, as for ansible-playbook (an executable file "
    "prints the password). Or GCMS_VAULT_PASSWORD_FILE, ANSIBLE_VAULT_PASSWORD_FILE, or the "
    "password itself in GCMS_VAULT_PASSWORD.",
)
@click.pass_context
def root(
    click_ctx: click.Context, repo: Path | None, output: str, vault_password_file: Path | None
) -> None:
    """gcmschange: one road for every change.

    \b
    change request -> validate -> render -> plan -> approve -> apply (waves, lock, window)
                   -> verify -> roll back on failure -> audit, evidence, partner notices

    \b
    Exit codes:
      0   success
      1   expected failure: invalid input, refused gate, failed check
      2   usage error, or a verb that is not available yet
      3   internal error (a bug: please report it with the command line)
      4   apply failed; every touched host was rolled back and verified
      5   apply failed and rollback FAILED: the fleet needs a person now
      6   incomplete: some hosts could not be reached
      130 interrupted

    \b
    Environment: GCMS_REPO (--repo), GCMS_REMOTE (--remote), GCMS_ACCELERATE=true
    (--accelerate), GCMS_VAULT_PASSWORD_FILE (--vault-password-file), GCMS_VAULT_PASSWORD,
    GCMS_REQUIREMENTS_SOURCES (the controller's folders requirements.yml may install from,
    besides the repository; colon-separated), GCMS_DEBUG=1 (tracebacks of internal errors).
    Shell completion: eval "$(_GCMSCHANGE_COMPLETE=bash_source gcmschange)" in ~/.bashrc
    (zsh_source and fish_source for those shells).
    """
    if vault_password_file is not None:
        # Read where the password is needed, by the runs and the readers alike.
        os.environ["GCMS_VAULT_PASSWORD_FILE"] = str(vault_password_file.absolute())
    click_ctx.obj = Context(repo, output)


def _wants_json(argv: Sequence[str]) -> bool:
    return any(
        a == "--output=json" or (a == "--output" and i + 1 < len(argv) and argv[i + 1] == "json")
        for i, a in enumerate(argv)
    )


def _report_error(err: GcmsError, as_json: bool) -> None:
    if as_json:
        payload = {
            "ok": False,
            "error": err.message,
            "exit_code": int(err.exit_code),
            "problems": problems_json(err.problems),
        }
        click.echo(json.dumps(payload, indent=2, sort_keys=True))
        return
    click.echo(f"gcmschange: error: {textsafe.terminal(err.message)}", err=True)
    for problem in err.problems:
        click.echo(f"  {textsafe.terminal(str(problem))}", err=True)


def _cancellation(exc: BaseException) -> CancelledError | None:
    """The core's CancelledError behind `exc`, if any. click turns every KeyboardInterrupt
    (CancelledError is one) into a bare Abort, raised from it: the message is on the chain."""
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        if isinstance(current, CancelledError):
            return current
        seen.add(id(current))
        current = current.__cause__ or current.__context__
    return None


def _interrupted(exc: BaseException, as_json: bool) -> int:
    """Ctrl-C or SIGTERM: say what the core said (which change, resume or roll back) if it
    said anything, else just that the command was interrupted."""
    cancelled = _cancellation(exc)
    if cancelled is None:
        click.echo("gcmschange: interrupted", err=True)
        return int(ExitCode.INTERRUPTED)
    if as_json:
        _report_error(cancelled, as_json)
        return int(cancelled.exit_code)
    click.echo(f"gcmschange: interrupted: {cancelled.message}", err=True)
    for problem in cancelled.problems:
        click.echo(f"  {problem}", err=True)
    return int(cancelled.exit_code)


def run(argv: Sequence[str] | None = None) -> int:
    """Run the CLI and map every outcome to a documented exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    as_json = _wants_json(args)
    try:
        result = root.main(args=args, prog_name="gcmschange", standalone_mode=False)
    except GcmsError as err:
        _report_error(err, as_json)
        return int(err.exit_code)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.UsageError as exc:
        exc.show()
        return int(ExitCode.USAGE)
    except (KeyboardInterrupt, click.Abort) as exc:
        return _interrupted(exc, as_json)
    except Exception as exc:  # a bug: say so in one line, keep the traceback out of the way
        if os.environ.get("GCMS_DEBUG"):
            traceback.print_exc()
        click.echo(
            f"gcmschange: internal error ({type(exc).__name__}: {exc}); this is a bug, "
            "please report it with the command line (set GCMS_DEBUG=1 for the traceback)",
            err=True,
        )
        return int(ExitCode.BUG)
    return int(result) if isinstance(result, int) else int(ExitCode.OK)


# The verbs of the design. Any verb no module has registered answers "not yet available".
VERBS: dict[str, str] = {
    "validate": "Validate change requests: schema, references, policy, calendar, blast radius.",
    "render": "Render the configuration files a change produces, per host.",
    "plan": "Run the change in check + diff mode against its hosts and compute its digest.",
    "approve": "Sign an approval of a change at its current digest.",
    "approvals": "List a change's approvals and what the policy still requires.",
    "apply": "Apply an approved change in waves, inside its window, under a lock.",
    "verify": "Run a change's verification tests against its hosts.",
    "rollback": "Roll a change back on the hosts it touched.",
    "resume": "Continue or roll back a change interrupted mid-apply.",
    "run": "validate -> plan -> gate -> apply -> verify, in one go.",
    "status": "Show the state of a change from its journal.",
    "locks": "List the locks held per environment and system.",
    "unlock": "Force-release a lock, with a recorded reason.",
    "drift": "Report hosts whose state differs from what git says.",
    "notices": "Bilingual (EN/FR) partner notices for changes and incidents.",
    "calendar": "The change calendar (iCalendar) with freezes and conflicts.",
    "audit": "Verify and show the hash-chained audit log.",
    "evidence": "Build or verify a change's evidence bundle.",
    "site": "Build the bilingual status site.",
    "lab": "Manage the lab fleet of real SSH hosts.",
}


def _not_available(verb: str, summary: str) -> click.Command:
    @click.command(
        verb,
        help=f"{summary} (not yet available)",
        context_settings={"ignore_unknown_options": True, "allow_extra_args": True},
    )
    def stub() -> None:
        raise NotAvailableError(f"'{verb}' is not yet available in this version of gcmschange")

    return stub


def add_missing_verbs() -> None:
    for verb, summary in VERBS.items():
        if verb not in root.commands:
            root.add_command(_not_available(verb, summary))
