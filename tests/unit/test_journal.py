"""The journal: durable entries, torn tails ignored, episodes and host states derived from it."""

from __future__ import annotations

from pathlib import Path

from gcmschange.apply import journal


def write_apply(j: journal.Journal, *, crash_after: str = "") -> None:
    steps: list[tuple[str, str, dict[str, object]]] = [
        ("run", "begin", {"kind": "apply", "waves": [["a-1"], ["a-2", "b-1"]], "digest": "d"}),
        ("lock", "begin", {"refs": ["r"]}),
        ("lock", "done", {"refs": {"r": "sha"}}),
        ("wave-1-push", "begin", {"hosts": ["a-1"]}),
        ("wave-1-push", "done", {"hosts": ["a-1"], "failed": {}, "unreachable": []}),
        ("wave-1-verify", "begin", {"hosts": ["a-1"]}),
        ("wave-1-verify", "done", {"hosts": ["a-1"], "failed": {}}),
        ("wave-2-push", "begin", {"hosts": ["a-2", "b-1"]}),
        (
            "wave-2-push",
            "done",
            {"hosts": ["a-2", "b-1"], "failed": {"b-1": "unreachable: x"}, "unreachable": ["b-1"]},
        ),
    ]
    for step, status, data in steps:
        j.write(step, status, **data)
        if f"{step}:{status}" == crash_after:
            return


def test_entries_are_read_back_in_order_and_secrets_masked(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    j = journal.Journal(path, "run-1", secrets=("s3cret",))
    j.begin("wave-1-push", hosts=["a"], note="token s3cret")
    entries = journal.read(path)
    assert [(e.seq, e.step, e.status) for e in entries] == [(1, "wave-1-push", "begin")]
    assert entries[0].data["note"] == "token ********"
    assert "s3cret" not in path.read_text()


def test_a_torn_last_line_is_ignored_and_numbering_continues(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal.Journal(path, "r").begin("lock")
    with path.open("a") as handle:
        handle.write('{"seq": 2, "step": "wave-1-pu')
    assert [e.step for e in journal.read(path)] == ["lock"]
    assert journal.Journal(path, "r2").done("lock").seq == 2


def test_episode_tracks_touched_hosts_locks_and_open_steps(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    write_apply(journal.Journal(path, "r1"), crash_after="wave-2-push:begin")
    ep = journal.episode(journal.read(path))
    assert ep.finished is None
    assert ep.touched == ("a-1", "a-2", "b-1")
    assert ep.locks == {"r": "sha"}
    assert ep.closed("wave-1-push") is not None
    assert ep.began("wave-2-push") and ep.closed("wave-2-push") is None
    states = journal.host_states(ep)
    assert states == {"a-1": "applied, verified", "a-2": "pushing", "b-1": "pushing"}


def test_host_states_after_a_failed_wave_and_rollback(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    j = journal.Journal(path, "r1")
    write_apply(j)
    j.done("decision", rollback=True, hosts=["a-1", "a-2", "b-1"])
    j.begin("rollback-push", hosts=["a-1", "a-2", "b-1"])
    j.done(
        "rollback-push",
        hosts=["a-1", "a-2", "b-1"],
        failed={"b-1": "unreachable: x"},
        unreachable=["b-1"],
    )
    j.done("rollback-verify", hosts=["a-1", "a-2"], failed={})
    ep = journal.episode(journal.read(path))
    assert ep.rollback_began and ep.failed_wave
    assert journal.host_states(ep) == {
        "a-1": "restored, verified",
        "a-2": "restored, verified",
        "b-1": "unreachable (not rolled back)",
    }


def test_a_finished_run_starts_a_new_episode(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    j = journal.Journal(path, "r1")
    write_apply(j)
    j.done("end", outcome="applied")
    assert journal.episode(journal.read(path)).finished is not None
    journal.Journal(path, "r2").begin("run", kind="apply", waves=[["a-1"]])
    ep = journal.episode(journal.read(path))
    assert ep.finished is None and ep.touched == ()
    assert [e.run for e in ep.entries] == ["r2"]
