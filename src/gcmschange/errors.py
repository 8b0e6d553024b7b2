"""The root error type, the problems it carries, and the exit codes.

Every expected failure is a `GcmsError`; the CLI maps it to its `exit_code` in one
place (`gcmschange.cli.app.run_command`). Anything else that escapes is a bug (exit 3).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field


class ExitCode(enum.IntEnum):
    """Documented exit codes (README, section "Exit codes")."""

    OK = 0
    FAILURE = 1  # invalid input, refused gate, failed check: the user can act on it
    USAGE = 2  # wrong command line, or a verb that is not available yet
    BUG = 3  # an internal error: please report it
    ROLLED_BACK = 4  # apply failed and every touched host was rolled back and verified
    ROLLBACK_FAILED = 5  # apply failed and rollback did not restore a verified state: page someone
    INCOMPLETE = 6  # the work ran, but some hosts could not be reached (plan, drift, verify)
    INTERRUPTED = 130


@dataclass(frozen=True)
class Location:
    """Where a problem is: a file, a line and column (1-based), and a JSON path."""

    file: str = ""
    line: int = 0
    column: int = 0
    path: str = ""

    def __str__(self) -> str:
        parts = [self.file or "<input>"]
        if self.line:
            parts.append(str(self.line))
            if self.column:
                parts.append(str(self.column))
        where = ":".join(parts)
        return f"{where}: {self.path}" if self.path else where


@dataclass(frozen=True)
class Problem:
    """One thing wrong with the input, with where and why."""

    message: str
    location: Location = field(default_factory=Location)
    code: str = "invalid"
    severity: str = "error"  # "error" or "warning"

    def __str__(self) -> str:
        return f"{self.location}: {self.message}"


class GcmsError(Exception):
    """Root of every expected failure; carries its exit code and its problems."""

    exit_code: ExitCode = ExitCode.FAILURE

    def __init__(self, message: str, problems: tuple[Problem, ...] = ()) -> None:
        super().__init__(message)
        self.message = message
        self.problems = problems


class UsageError(GcmsError):
    exit_code = ExitCode.USAGE


class NotAvailableError(UsageError):
    """A verb a later issue fills in; it says so instead of pretending to work."""


class InvalidInputError(GcmsError):
    """A file or argument that cannot be used: bad YAML, schema or reference errors."""


class ValidationError(InvalidInputError):
    """Validation found problems; `problems` lists every one of them."""


class GateRefusedError(GcmsError):
    """Approval gate, window, freeze or policy refused the change."""


class LockHeldError(GcmsError):
    """Another change holds a lock this one needs."""


class ExternalError(GcmsError):
    """A tool we run (ssh-keygen, ansible, git, ip) failed in an expected way."""


class LabError(GcmsError):
    """The lab fleet cannot be brought up, changed or brought down."""


class UnreachableError(GcmsError):
    exit_code = ExitCode.INCOMPLETE


class RolledBackError(GcmsError):
    exit_code = ExitCode.ROLLED_BACK


class RollbackFailedError(GcmsError):
    exit_code = ExitCode.ROLLBACK_FAILED


class CancelledError(GcmsError, KeyboardInterrupt):
    """A signal (Ctrl-C, SIGTERM) stopped the work; what ran is recorded, nothing is undone.

    Also a KeyboardInterrupt, so a program that calls gcmschange as a library (a test
    runner, a script) is interrupted as by Ctrl-C, not handed an ordinary failure.
    """

    exit_code = ExitCode.INTERRUPTED
