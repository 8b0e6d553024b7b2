"""`gcmschange ci note` through real python-gitlab, against a small GitLab API on loopback.

The server answers the four requests a plan note needs (get the merge request, list, create
and edit its notes), so the calls python-gitlab makes for `mrnote` are checked for real.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest

from gcmschange.audit.trail import read_events
from gcmschange.cli import main

MR = "/api/v4/projects/42/merge_requests/7"


class FakeGitLab(BaseHTTPRequestHandler):
    notes: ClassVar[list[dict[str, Any]]] = []
    tokens: ClassVar[set[str]] = set()
    calls: ClassVar[list[str]] = []

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet: the test reads `calls` instead."""

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _body(self) -> dict[str, Any]:
        raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        return dict(json.loads(raw or b"{}"))

    def _route(self) -> str:
        self.tokens.add(self.headers.get("PRIVATE-TOKEN", ""))
        path = self.path.split("?", 1)[0]
        self.calls.append(f"{self.command} {path}")
        return path

    def _get(self) -> None:
        path = self._route()
        if path == MR:
            self._send(200, {"id": 1007, "iid": 7, "project_id": 42})
        elif path == f"{MR}/notes":
            self._send(200, self.notes)
        else:
            self._send(404, {"message": "404 Not Found"})

    def _post(self) -> None:
        if self._route() != f"{MR}/notes":
            self._send(404, {"message": "404 Not Found"})
            return
        note = {"id": 500 + len(self.notes), "body": self._body()["body"]}
        self.notes.append(note)
        self._send(201, note)

    def _put(self) -> None:
        path = self._route()
        note = next((n for n in self.notes if path == f"{MR}/notes/{n['id']}"), None)
        if note is None:
            self._send(404, {"message": "404 Not Found"})
            return
        note["body"] = self._body()["body"]
        self._send(200, note)


# http.server dispatches to do_<METHOD>, names our naming rules would refuse in a class body
for _method in ("GET", "POST", "PUT"):
    setattr(FakeGitLab, f"do_{_method}", getattr(FakeGitLab, f"_{_method.lower()}"))


@pytest.fixture
def gitlab(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeGitLab]]:
    FakeGitLab.notes, FakeGitLab.tokens, FakeGitLab.calls = [], set(), []
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeGitLab)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    env = {
        "CI_SERVER_URL": f"http://127.0.0.1:{server.server_address[1]}",
        "CI_PROJECT_ID": "42",
        "CI_MERGE_REQUEST_IID": "7",
        "GITLAB_USER_LOGIN": "rm-alice",
        "GCMS_GITLAB_TOKEN": "glpat-test",
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("GCMS_GITLAB_URL", raising=False)
    try:
        yield FakeGitLab
    finally:
        server.shutdown()
        server.server_close()


def test_plan_note_is_created_then_edited_in_place(
    estate_repo: Path, tmp_path: Path, gitlab: type[FakeGitLab]
) -> None:
    gitlab.notes.append({"id": 1, "body": "Looks good to me"})
    plan = tmp_path / "plan.md"
    repo = ["--repo", str(estate_repo)]
    for text in ("### Plan v1\n", "### Plan v2\n", "### Plan v2\n"):
        plan.write_text(text, encoding="utf-8")
        assert main([*repo, "ci", "note", "CHG-LAB-0001", "--file", str(plan)]) == 0

    ours = [n for n in gitlab.notes if n["id"] != 1]
    assert len(ours) == 1
    assert ours[0]["body"] == "<!-- gcmschange:plan CHG-LAB-0001 -->\n### Plan v2\n"
    assert gitlab.tokens == {"glpat-test"}
    assert [c for c in gitlab.calls if not c.startswith("GET")] == [
        f"POST {MR}/notes",
        f"PUT {MR}/notes/{ours[0]['id']}",
    ]
    events = [e for e in read_events(estate_repo) if e.event == "plan.noted"]
    assert [e.outcome for e in events] == ["created", "updated", "unchanged"]
    assert events[0].actor == "gitlab:rm-alice"
    assert events[0].details["merge_request"] == "42!7"


def test_a_refusing_gitlab_is_one_line_exit_1(
    estate_repo: Path,
    tmp_path: Path,
    gitlab: type[FakeGitLab],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CI_MERGE_REQUEST_IID", "8")  # the server knows only !7
    plan = tmp_path / "plan.md"
    plan.write_text("### Plan\n", encoding="utf-8")
    assert (
        main(["--repo", str(estate_repo), "ci", "note", "CHG-LAB-0001", "--file", str(plan)]) == 1
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("gcmschange: error: GitLab http://127.0.0.1:")
    assert "42!8: cannot post the plan note: 404" in err
    assert len(err.splitlines()) == 1
    assert "glpat-test" not in err


def _journal_with_analysis(root: Path, change: str) -> str:
    """A real journal of a run whose canary analysis failed; returns the query it measured."""
    from gcmschange.apply import journal
    from gcmschange.apply.journal import Stage, Step

    query = 'sum(rate(gcms_probe_requests_total{code=~"5..|000"}[30s])) / sum(rate(x[30s]))'
    measurement = {
        "check": "error-rate@portal",
        "query": query,
        "value": 0.19,
        "verdict": "failed",
        "time": "2026-12-02T09:00:03+00:00",
        "message": "",
    }
    book = journal.Journal(journal.path_of(root, change), "r1")
    book.begin(Step(Stage.RUN), kind="apply", waves=[["portal-1"]], threshold=0)
    book.begin(Step.wave_pass(1).analysis, hosts=["portal-1"], checks=["error-rate@portal"])
    book.failed(
        Step.wave_pass(1).analysis, hosts=["portal-1"], verdict="failed", measurements=[measurement]
    )
    return query


def test_the_note_carries_each_measurement_of_the_last_run(
    estate_repo: Path, tmp_path: Path, gitlab: type[FakeGitLab]
) -> None:
    from gcmschange.textsafe import markdown_inline

    query = _journal_with_analysis(estate_repo, "CHG-LAB-0001")
    plan = tmp_path / "plan.md"
    plan.write_text("### Plan\n", encoding="utf-8")
    assert (
        main(["--repo", str(estate_repo), "ci", "note", "CHG-LAB-0001", "--file", str(plan)]) == 0
    )
    [note] = gitlab.notes
    body = str(note["body"])
    assert "**Canary analysis of the last run:** wave-1 failed" in body
    cells = ("wave-1", "error-rate@portal", query, "0.19", "failed", "2026-12-02T09:00:03+00:00")
    row = "| " + " | ".join(markdown_inline(c) for c in cells) + " |"
    assert row in body.splitlines()
    assert "\\|000" in row  # a pipe in the query cannot split the table's row
