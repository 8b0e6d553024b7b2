"""The plan note: one per change and merge request, python-gitlab faked at the boundary."""

from __future__ import annotations

import socket
from dataclasses import dataclass, field
from typing import Any

import pytest

from gcmschange.ci import mrnote
from gcmschange.errors import ExternalError


@dataclass
class FakeNote:
    id: int
    body: str
    saves: int = 0

    def save(self) -> None:
        self.saves += 1


@dataclass
class FakeNotes:
    notes: list[FakeNote] = field(default_factory=list)
    list_kwargs: list[dict[str, Any]] = field(default_factory=list)

    def list(self, **kwargs: Any) -> list[FakeNote]:
        self.list_kwargs.append(kwargs)
        return list(self.notes)

    def create(self, data: dict[str, Any]) -> FakeNote:
        note = FakeNote(100 + len(self.notes), data["body"])
        self.notes.append(note)
        return note


@dataclass
class FakeMergeRequest:
    notes: FakeNotes = field(default_factory=FakeNotes)


PLAN = "### Plan CHG-LAB-0001\n\n2 host(s) would change\n"


def test_first_plan_creates_one_note_with_the_marker() -> None:
    mr = FakeMergeRequest(FakeNotes([FakeNote(1, "LGTM")]))
    result = mrnote.upsert(mr, "CHG-LAB-0001", PLAN)
    assert result == mrnote.NoteResult("created", 101)
    body = mr.notes.notes[-1].body
    assert body.splitlines()[0] == "<!-- gcmschange:plan CHG-LAB-0001 -->"
    assert body.endswith(PLAN)
    # python-gitlab pages lists by default: the marker could hide on page 2 otherwise
    assert mr.notes.list_kwargs == [{"iterator": True}]


def test_a_new_plan_edits_the_same_note() -> None:
    mr = FakeMergeRequest()
    mrnote.upsert(mr, "CHG-LAB-0001", PLAN)
    result = mrnote.upsert(mr, "CHG-LAB-0001", PLAN.replace("2 host", "3 host"))
    assert result == mrnote.NoteResult("updated", 100)
    assert len(mr.notes.notes) == 1
    assert "3 host(s)" in mr.notes.notes[0].body
    assert mr.notes.notes[0].saves == 1


def test_the_same_plan_leaves_the_note_alone() -> None:
    mr = FakeMergeRequest()
    mrnote.upsert(mr, "CHG-LAB-0001", PLAN)
    assert mrnote.upsert(mr, "CHG-LAB-0001", PLAN) == mrnote.NoteResult("unchanged", 100)
    assert mr.notes.notes[0].saves == 0


def test_each_change_has_its_own_note() -> None:
    mr = FakeMergeRequest()
    mrnote.upsert(mr, "CHG-LAB-0001", PLAN)
    mrnote.upsert(mr, "CHG-LAB-0002", "### Plan CHG-LAB-0002\n")
    mrnote.upsert(mr, "CHG-LAB-0001", PLAN + "more\n")
    assert [n.body.splitlines()[0] for n in mr.notes.notes] == [
        mrnote.marker("CHG-LAB-0001"),
        mrnote.marker("CHG-LAB-0002"),
    ]


def test_a_quote_of_the_marker_inside_another_note_is_not_ours() -> None:
    quoted = f"> see the plan\n> {mrnote.marker('CHG-LAB-0001')}\n"
    mr = FakeMergeRequest(FakeNotes([FakeNote(5, quoted)]))
    assert mrnote.upsert(mr, "CHG-LAB-0001", PLAN).action == "created"
    assert mr.notes.notes[0].body == quoted


def test_a_huge_plan_is_cut_to_what_gitlab_accepts() -> None:
    body = mrnote.note_body("CHG-LAB-0001", "x" * 2_000_000)
    assert len(body) <= mrnote.MAX_BODY
    assert body.endswith(mrnote.TRUNCATED)


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_an_unreachable_gitlab_is_one_external_error() -> None:
    # Real python-gitlab against a loopback port nobody listens on: no traceback, one line.
    target = mrnote.Target(f"http://127.0.0.1:{_closed_port()}", "t0ken", "platform/gitops", 7)
    with pytest.raises(ExternalError) as caught:
        mrnote.post_plan(target, "CHG-LAB-0001", PLAN)
    assert caught.value.message.startswith("GitLab http://127.0.0.1:")
    assert "platform/gitops!7: cannot reach the server" in caught.value.message
    assert "t0ken" not in caught.value.message
