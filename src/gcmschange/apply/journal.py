"""The apply journal: a durable record, written before each step, of what is about to happen.

`.gcmschange/changes/<id>/journal.jsonl`, one JSON line per entry, fsynced (and the folder
fsynced when the file is new) before the step it announces runs. A step is announced with
status "begin" and closed with "done" or "failed"; a step that began and never closed was
cut short, and `resume` treats its hosts as possibly touched. Every run of the change (apply,
resume, rollback) appends to the same file under its own run id.

A `kill -9` in the middle of a write leaves a torn last line: it was never fsynced, so its
step never started, and the reader ignores it. Any other line that is not a well-formed entry
means the journal was damaged, and `read` refuses it with the line's number: resuming from a
journal that lies could push a change nobody approved beyond its canary.

On disk a step is the text older versions wrote (`wave-2-push`, `rollback-verify`,
`notify-started`); in memory it is a typed `Step`, so no reader parses names again.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any

from gcmschange.errors import InvalidInputError, Location, Problem
from gcmschange.masking import mask_data
from gcmschange.paths import change_dir


class Status(StrEnum):
    BEGIN = "begin"
    DONE = "done"
    FAILED = "failed"


BEGIN, DONE, FAILED = Status.BEGIN, Status.DONE, Status.FAILED


class Stage(StrEnum):
    """What part of a run a step belongs to."""

    RUN = "run"  # the run's start: its kind, waves and threshold
    LOCK = "lock"
    WAVE = "wave"  # a wave of the rollout (numbered)
    ROLLBACK = "rollback"
    RESUME = "resume"  # re-checking hosts a crash may have left half-done
    IDEMPOTENCE = "idempotence"
    DECISION = "decision"  # a wave judged failed: the rollback is decided before it starts
    NOTIFY = "notify"  # partner notices of a phase
    INTERRUPTED = "interrupted"
    UNLOCK = "unlock"
    END = "end"


class Action(StrEnum):
    PUSH = "push"
    VERIFY = "verify"
    ANALYSIS = "analysis"  # metrics under traffic, after the verification (issue 17)


# Stages that push and verify hosts, and so carry an action.
_PASSES = (Stage.WAVE, Stage.ROLLBACK, Stage.RESUME)


@dataclass(frozen=True)
class Step:
    """A journal step: `Step(Stage.WAVE, wave=2, action=Action.PUSH)` is `wave-2-push`."""

    stage: Stage
    wave: int | None = None
    action: Action | None = None
    phase: str | None = None  # the notice phase of a NOTIFY step

    @classmethod
    def wave_pass(cls, number: int) -> Step:
        return cls(Stage.WAVE, wave=number)

    @property
    def push(self) -> Step:
        return replace(self, action=Action.PUSH)

    @property
    def verify(self) -> Step:
        return replace(self, action=Action.VERIFY)

    @property
    def analysis(self) -> Step:
        return replace(self, action=Action.ANALYSIS)

    @property
    def folder(self) -> str:
        """The pass's name without its action: where its runner artifacts go."""
        return str(replace(self, action=None))

    def __str__(self) -> str:
        parts = [self.stage.value]
        if self.wave is not None:
            parts.append(str(self.wave))
        if self.phase is not None:
            parts.append(self.phase)
        if self.action is not None:
            parts.append(self.action.value)
        return "-".join(parts)

    @classmethod
    def parse(cls, text: str) -> Step:
        """The step a journal line names; ValueError for anything this version never wrote."""
        head, _, rest = text.partition("-")
        stage = Stage(head)  # ValueError names the unknown stage
        if stage is Stage.NOTIFY and rest:
            return cls(stage, phase=rest)
        if stage not in _PASSES:
            if rest:
                raise ValueError(f"{stage.value} takes no suffix")
            return cls(stage)
        wave: int | None = None
        if stage is Stage.WAVE:
            number, _, rest = rest.partition("-")
            if not number.isdigit() or not number.isascii():
                raise ValueError("a wave step needs a wave number")
            wave = int(number)
        return cls(stage, wave, Action(rest) if rest else None)


@dataclass(frozen=True)
class Entry:
    seq: int
    time: str
    run: str
    step: Step
    status: Status
    data: dict[str, Any] = field(default_factory=dict)

    def as_json(self) -> dict[str, Any]:
        return {
            "seq": self.seq,
            "time": self.time,
            "run": self.run,
            "step": str(self.step),
            "status": self.status.value,
            "data": self.data,
        }


def path_of(root: Path, change: str) -> Path:
    return change_dir(root, change) / "journal.jsonl"


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Journal:
    """Appends entries of one run; each `write` returns once the entry is on disk."""

    def __init__(self, path: Path, run: str, secrets: Sequence[str] = ()) -> None:
        self.path = path
        self.run = run
        self.secrets = tuple(secrets)
        self._seq = len(read(path))

    def write(self, step: Step, status: Status, **data: Any) -> Entry:
        self._seq += 1
        entry = Entry(
            seq=self._seq,
            time=datetime.now(UTC).isoformat(timespec="milliseconds"),
            run=self.run,
            step=step,
            status=status,
            data=mask_data(data, self.secrets),
        )
        line = json.dumps(entry.as_json(), sort_keys=True, ensure_ascii=False) + "\n"
        is_new = not self.path.exists()
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, line.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)
        if is_new:
            _fsync_dir(self.path.parent)
        return entry

    def begin(self, step: Step, **data: Any) -> Entry:
        return self.write(step, BEGIN, **data)

    def done(self, step: Step, **data: Any) -> Entry:
        return self.write(step, DONE, **data)

    def failed(self, step: Step, **data: Any) -> Entry:
        return self.write(step, FAILED, **data)


_FIELDS = {"seq": int, "time": str, "run": str, "step": str, "status": str, "data": dict}


def _parse(line: str) -> Entry:
    """One entry, or ValueError saying what is wrong with the line."""
    raw = json.loads(line)
    if not isinstance(raw, dict) or set(raw) != set(_FIELDS):
        raise ValueError(f"expected the fields {', '.join(_FIELDS)}")
    for name, kind in _FIELDS.items():
        if not isinstance(raw[name], kind) or isinstance(raw[name], bool):
            raise ValueError(f"{name} is not a {kind.__name__}")
    hosts = raw["data"].get("hosts", [])
    if not isinstance(hosts, list) or not all(isinstance(h, str) for h in hosts):
        raise ValueError("data.hosts is not a list of host names")  # every reader walks it
    return Entry(
        seq=raw["seq"],
        time=raw["time"],
        run=raw["run"],
        step=Step.parse(raw["step"]),
        status=Status(raw["status"]),
        data=raw["data"],
    )


class JournalDamagedError(InvalidInputError):
    """A journal line that no version of gcmschange wrote: nothing is resumed from it."""


def read(path: Path) -> list[Entry]:
    """Every entry; a torn last line (never fsynced, so never acted on) is left out, and any
    other bad line refuses the whole journal, naming the line."""
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8", errors="replace").splitlines()
    entries = []
    for number, line in enumerate(lines, 1):
        try:
            entries.append(_parse(line))
        except ValueError as exc:  # json.JSONDecodeError is a ValueError too
            if number == len(lines) and not path.read_bytes().endswith(b"\n"):
                break  # torn by a kill -9 mid-write: never fsynced, never acted on
            where = Location(str(path), number)
            problem = Problem(f"damaged journal entry: {exc}", where, "journal-damaged")
            raise JournalDamagedError(
                f"{problem}; nothing was resumed from it: inspect it, then "
                "`gcmschange rollback` or restore the file",
                (problem,),
            ) from None
    return entries


def runs(entries: Iterable[Entry]) -> dict[str, list[Entry]]:
    out: dict[str, list[Entry]] = {}
    for entry in entries:
        out.setdefault(entry.run, []).append(entry)
    return out


@dataclass(frozen=True)
class Episode:
    """The entries since the last finished run: one apply and the resumes that followed it."""

    entries: tuple[Entry, ...]

    @property
    def start(self) -> dict[str, Any]:
        first = next(
            (e for e in self.entries if e.step.stage is Stage.RUN and e.status == BEGIN), None
        )
        return dict(first.data) if first else {}

    @property
    def finished(self) -> Entry | None:
        return next((e for e in reversed(self.entries) if e.step.stage is Stage.END), None)

    @property
    def last(self) -> Entry | None:
        return self.entries[-1] if self.entries else None

    def closed(self, step: Step) -> Entry | None:
        """The last done/failed entry of `step`, if it ever finished."""
        return next(
            (e for e in reversed(self.entries) if e.step == step and e.status != BEGIN), None
        )

    def began(self, step: Step) -> bool:
        return any(e.step == step and e.status == BEGIN for e in self.entries)

    @property
    def locks(self) -> dict[str, str]:
        taken = self.closed(Step(Stage.LOCK))
        return dict(taken.data.get("refs", {})) if taken and taken.status == DONE else {}

    @property
    def touched(self) -> tuple[str, ...]:
        """Every host a push of this change may have reached (its push began)."""
        return tuple(dict.fromkeys(h for e in self.entries if _touches(e) for h in e.data["hosts"]))

    @property
    def rollback_began(self) -> bool:
        return any(e.step.stage is Stage.ROLLBACK and e.step.action for e in self.entries)

    @property
    def failed_wave(self) -> bool:
        """A wave was judged failed: the decision is journalled before the rollback starts, and
        even where the journal was cut before it, a wave step closed with more failed hosts
        than the threshold allows was a failure; nothing goes forward past it."""
        if any(e.step.stage is Stage.DECISION and e.data.get("rollback") for e in self.entries):
            return True
        if any(
            e.step.stage is Stage.WAVE and e.step.action is Action.ANALYSIS and e.status == FAILED
            for e in self.entries
        ):
            return True  # the wave's metrics stopped the change
        threshold = self.start.get("threshold", 0)
        limit = threshold if isinstance(threshold, int) else 0
        for e in self.entries:
            if e.step.stage is Stage.WAVE and e.status != BEGIN:
                failed = e.data.get("failed") or {}
                bad = set(failed) | set(e.data.get("unreachable") or ())
                if len(bad) > limit:
                    return True
        return False


def _touches(e: Entry) -> bool:
    """Entries naming hosts a push of this change (or of its rollback) may have reached."""
    if "hosts" not in e.data:
        return False
    if e.step.action is Action.PUSH and e.status == BEGIN:
        return True
    if e.step.stage is Stage.DECISION:
        return True
    return e.step.stage is Stage.RUN and e.data.get("kind") == "rollback"


def episode(entries: Sequence[Entry]) -> Episode:
    start = 0
    for index, entry in enumerate(entries):
        if entry.step.stage is Stage.END and index + 1 < len(entries):
            start = index + 1
    return Episode(tuple(entries[start:]))


def host_states(ep: Episode) -> dict[str, str]:
    """Where each host of the change stands, from the journal alone."""
    waves = ep.start.get("waves", [])
    states = {h: "pending" for wave in waves for h in wave}
    for e in ep.entries:
        kind = e.step.action
        if kind is None:
            continue
        if kind is Action.ANALYSIS:  # judges the wave, not a host's files: states stay
            if e.status == FAILED:
                for h in e.data.get("hosts", ()):
                    states[h] = f"failed: analysis {e.data.get('verdict', '')}".rstrip()
            continue
        rolling = e.step.stage is Stage.ROLLBACK
        if e.status == BEGIN:
            for h in e.data.get("hosts", ()):
                states[h] = (
                    ("rolling back" if rolling else "pushing")
                    if kind is Action.PUSH
                    else (states.get(h, "pending"))
                )
            continue
        _close(states, e, kind, rolling)
    return states


def _close(states: dict[str, str], e: Entry, kind: Action, rolling: bool) -> None:
    failed = e.data.get("failed", {})
    unreachable = set(e.data.get("unreachable", ()))
    for h in e.data.get("hosts", ()):
        if h in unreachable:
            states[h] = "unreachable" + (" (not rolled back)" if rolling else "")
        elif h in failed:
            what = "rollback failed" if rolling else "failed"
            states[h] = f"{what}: {failed[h]}" if kind is Action.PUSH else f"{what}: verification"
        elif kind is Action.PUSH:
            states[h] = "restored" if rolling else "applied"
        else:
            states[h] = "restored, verified" if rolling else "applied, verified"


def measured(ep: Episode) -> tuple[dict[str, Any], ...]:
    """Each analysis of the episode that reached a verdict, oldest first: its step, verdict
    and every measurement (check, query, value, verdict, time), as the journal holds them
    (already masked): what the evidence summary and the merge-request note carry."""
    return tuple(
        {
            "step": e.step.folder,
            "verdict": str(e.data.get("verdict", e.status.value)),
            "time": e.time,
            "measurements": list(e.data.get("measurements") or ()),
        }
        for e in ep.entries
        if e.step.action is Action.ANALYSIS and e.status != BEGIN
    )


def last_measurements(root: Path, change: str) -> tuple[dict[str, Any], ...]:
    """The analyses of `change`'s last run (none without a journal)."""
    return measured(episode(read(path_of(root, change))))
