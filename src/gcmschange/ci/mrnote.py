"""The plan as ONE merge-request note, created once and then edited in place.

Every plan job of a merge request would otherwise add a note, and reviewers would have to
find the latest. A hidden marker naming the change (`<!-- gcmschange:plan CHG-... -->`) at
the top of the note finds the one to edit; a merge request with two changes gets one note
each. python-gitlab is imported only in `connect`, so nothing else pays for it; the rest
works on the small slice of its objects described by the protocols below, which fakes fit.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, cast

from gcmschange.errors import ExternalError
from gcmschange.textsafe import markdown_inline

# GitLab refuses notes longer than 1,000,000 characters; keep room for the marker and footer.
MAX_BODY = 999_000
TRUNCATED = (
    "\n\n---\n_The plan is longer than a GitLab note allows and was cut here; the whole plan "
    "is the `plan` job's artifact._\n"
)


class Note(Protocol):
    id: int
    body: str

    def save(self) -> None: ...


class NotesManager(Protocol):
    def list(self, **kwargs: Any) -> Iterable[Note]: ...

    def create(self, data: dict[str, Any]) -> Note: ...


class MergeRequest(Protocol):
    @property
    def notes(self) -> NotesManager: ...


@dataclass(frozen=True)
class Target:
    """Where to post: a GitLab server, a token that may write notes, a project and an MR."""

    url: str
    token: str
    project: str  # id or full path
    mr_iid: int


@dataclass(frozen=True)
class NoteResult:
    action: str  # "created", "updated", "unchanged" or "skipped"
    note_id: int | None = None
    reason: str = ""


def marker(change_id: str) -> str:
    # The id is an argument of the CI job: reduced to the characters ids are made of, so it
    # cannot close the HTML comment ("-->") and show what follows in the note.
    safe = re.sub(r"[^A-Za-z0-9._-]", "_", change_id)
    return f"<!-- gcmschange:plan {safe} -->"


def measurements_section(analyses: Sequence[Mapping[str, Any]]) -> str:
    """The last run's analysis as Markdown, for the note under the plan: each measurement's
    step, check, query, value, verdict and time; every field escaped as Markdown text (a
    query holds `|`, `{` and quotes). Empty when nothing was measured."""
    rows = [
        (str(a.get("step", "")), m)
        for a in analyses
        for m in a.get("measurements") or ()
        if isinstance(m, Mapping)
    ]
    if not rows:
        return ""
    md = markdown_inline
    verdicts = ", ".join(f"{md(str(a.get('step')))} {md(str(a.get('verdict')))}" for a in analyses)
    lines = [
        "",
        f"**Canary analysis of the last run:** {verdicts}",
        "",
        "| step | check | query | value | verdict | time |",
        "|---|---|---|---:|---|---|",
    ]
    for step, m in rows:
        value = m.get("value")
        shown = (
            "no data"
            if value is None
            else f"{value:.4g}"
            if isinstance(value, float | int)
            else "?"
        )
        cells = (step, m.get("check"), m.get("query"), shown, m.get("verdict"), m.get("time"))
        lines.append("| " + " | ".join(md(str(c or "")) for c in cells) + " |")
    return "\n".join(lines) + "\n"


def note_body(change_id: str, markdown: str) -> str:
    """The note's text: the marker line, then the plan, cut to what GitLab accepts."""
    head = marker(change_id) + "\n"
    room = MAX_BODY - len(head)
    text = markdown if len(markdown) <= room else markdown[: room - len(TRUNCATED)] + TRUNCATED
    return head + text


def find_note(notes: Iterable[Note], change_id: str) -> Note | None:
    """The first note that starts with this change's marker (an edited-out marker loses it)."""
    tag = marker(change_id)
    return next((n for n in notes if n.body.lstrip().startswith(tag)), None)


def upsert(mr: MergeRequest, change_id: str, markdown: str) -> NoteResult:
    """Create the change's plan note, or edit the existing one when its text differs."""
    body = note_body(change_id, markdown)
    existing = find_note(mr.notes.list(iterator=True), change_id)
    if existing is None:
        created = mr.notes.create({"body": body})
        return NoteResult("created", created.id)
    if existing.body == body:
        return NoteResult("unchanged", existing.id)
    existing.body = body
    existing.save()
    return NoteResult("updated", existing.id)


def connect(target: Target) -> MergeRequest:
    """The merge request `target` names, through python-gitlab (one request)."""
    import gitlab

    client = gitlab.Gitlab(target.url, private_token=target.token)
    project = client.projects.get(target.project, lazy=True)
    return cast(MergeRequest, project.mergerequests.get(target.mr_iid))


def post_plan(target: Target, change_id: str, markdown: str) -> NoteResult:
    """Post or update the plan note on GitLab; any failure of GitLab is one `ExternalError`."""
    import gitlab
    import requests

    where = f"{target.url} {target.project}!{target.mr_iid}"
    try:
        return upsert(connect(target), change_id, markdown)
    except gitlab.exceptions.GitlabError as exc:
        raise ExternalError(f"GitLab {where}: cannot post the plan note: {exc}") from exc
    except requests.exceptions.RequestException as exc:
        reason = type(exc).__name__
        raise ExternalError(f"GitLab {where}: cannot reach the server ({reason})") from exc
