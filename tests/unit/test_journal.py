"""The journal: durable entries, torn tails ignored, episodes and host states derived from it."""

from __future__ import annotations

from pathlib import Path

from gcmschange.apply import journal

S = journal.Step.parse


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
        j.write(S(step), journal.Status(status), **data)
        if f"{step}:{status}" == crash_after:
            return


def test_entries_are_read_back_in_order_and_secrets_masked(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    j = journal.Journal(path, "run-1", secrets=("s3cret",))
    j.begin(S("wave-1-push"), hosts=["a"], note="token s3cret")
    entries = journal.read(path)
    assert [(e.seq, str(e.step), e.status) for e in entries] == [(1, "wave-1-push", "begin")]
    assert entries[0].data["note"] == "token ********"
    assert "s3cret" not in path.read_text()


def test_a_torn_last_line_is_ignored_and_numbering_continues(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    journal.Journal(path, "r").begin(S("lock"))
    with path.open("a") as handle:
        handle.write('{"seq": 2, "step": "wave-1-pu')
    assert [str(e.step) for e in journal.read(path)] == ["lock"]
    assert journal.Journal(path, "r2").done(S("lock")).seq == 2


def test_episode_tracks_touched_hosts_locks_and_open_steps(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    write_apply(journal.Journal(path, "r1"), crash_after="wave-2-push:begin")
    ep = journal.episode(journal.read(path))
    assert ep.finished is None
    assert ep.touched == ("a-1", "a-2", "b-1")
    assert ep.locks == {"r": "sha"}
    assert ep.closed(S("wave-1-push")) is not None
    assert ep.began(S("wave-2-push")) and ep.closed(S("wave-2-push")) is None
    states = journal.host_states(ep)
    assert states == {"a-1": "applied, verified", "a-2": "pushing", "b-1": "pushing"}


def test_host_states_after_a_failed_wave_and_rollback(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    j = journal.Journal(path, "r1")
    write_apply(j)
    j.done(S("decision"), rollback=True, hosts=["a-1", "a-2", "b-1"])
    j.begin(S("rollback-push"), hosts=["a-1", "a-2", "b-1"])
    j.done(
        S("rollback-push"),
        hosts=["a-1", "a-2", "b-1"],
        failed={"b-1": "unreachable: x"},
        unreachable=["b-1"],
    )
    j.done(S("rollback-verify"), hosts=["a-1", "a-2"], failed={})
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
    j.done(S("end"), outcome="applied")
    assert journal.episode(journal.read(path)).finished is not None
    journal.Journal(path, "r2").begin(S("run"), kind="apply", waves=[["a-1"]])
    ep = journal.episode(journal.read(path))
    assert ep.finished is None and ep.touched == ()
    assert [e.run for e in ep.entries] == ["r2"]


def test_every_step_name_round_trips_and_typos_are_refused() -> None:
    names = ["run", "lock", "wave-1-push", "wave-12-verify", "rollback-push", "rollback-verify"]
    names += ["resume-push", "resume-verify", "decision", "idempotence", "notify-started"]
    names += ["interrupted", "unlock", "end"]
    for name in names:
        assert str(S(name)) == name
    assert S("wave-3-push") == journal.Step.wave_pass(3).push
    assert S("wave-3-push").folder == "wave-3"
    for bad in ("wave-x-push", "wave-1-pull", "lock-2", "launch", "wave-\u0661-push"):
        try:
            S(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")


# Written by gcmschange 0.1.0 before steps were typed: the text on disk is unchanged, so a run
# interrupted under the old version resumes under this one.
OLDER = (
    '{"data": {"kind": "apply", "waves": [["a-1"], ["a-2"]]}, "run": "r1", "seq": 1, '
    '"status": "begin", "step": "run", "time": "2026-11-01T10:00:00.000+00:00"}\n'
    '{"data": {"refs": {"r": "sha"}}, "run": "r1", "seq": 2, "status": "done", "step": "lock", '
    '"time": "2026-11-01T10:00:01.000+00:00"}\n'
    '{"data": {"hosts": ["a-1"]}, "run": "r1", "seq": 3, "status": "begin", '
    '"step": "wave-1-push", "time": "2026-11-01T10:00:02.000+00:00"}\n'
)


def test_an_older_journal_is_read_into_typed_steps(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    path.write_text(OLDER, encoding="utf-8")
    ep = journal.episode(journal.read(path))
    assert ep.began(journal.Step.wave_pass(1).push)
    assert ep.closed(journal.Step.wave_pass(1).push) is None
    assert ep.touched == ("a-1",) and ep.locks == {"r": "sha"}
    assert journal.host_states(ep) == {"a-1": "pushing", "a-2": "pending"}


def test_a_damaged_line_refuses_the_journal_and_names_the_line(tmp_path: Path) -> None:
    import pytest

    from gcmschange.errors import ExitCode

    path = tmp_path / "journal.jsonl"
    lines = OLDER.splitlines(keepends=True)
    cases = {
        "wrong type": lines[1].replace('"seq": 2', '"seq": "2"'),
        "unknown step": lines[1].replace('"step": "lock"', '"step": "launch"'),
        "not JSON": "garbage\n",
        "missing key": lines[1].replace('"run": "r1", ', ""),
    }
    for why, line in cases.items():
        path.write_text(lines[0] + line + lines[2], encoding="utf-8")
        with pytest.raises(journal.JournalDamagedError) as caught:
            journal.read(path)
        assert f"{path}:2" in caught.value.message, why
        assert caught.value.exit_code == ExitCode.FAILURE


def test_a_failed_wave_is_seen_even_when_the_decision_was_cut_off(tmp_path: Path) -> None:
    """Truncated at the decision line, the journal still holds the wave's failures: resume
    must roll back, never push the known-bad change beyond the canary."""
    path = tmp_path / "journal.jsonl"
    j = journal.Journal(path, "r1")
    j.begin(S("run"), kind="apply", waves=[["a-1"], ["a-2"]], threshold=0)
    j.begin(S("wave-1-push"), hosts=["a-1"])
    j.done(S("wave-1-push"), hosts=["a-1"], failed={}, unreachable=[])
    j.begin(S("wave-1-verify"), hosts=["a-1"])
    j.done(S("wave-1-verify"), hosts=["a-1"], failed={"a-1": ["test_status"]})
    ep = journal.episode(journal.read(path))
    assert ep.failed_wave and not ep.rollback_began


def test_failures_within_the_threshold_do_not_stop_the_change(tmp_path: Path) -> None:
    path = tmp_path / "journal.jsonl"
    j = journal.Journal(path, "r1")
    j.begin(S("run"), kind="apply", waves=[["a-1", "a-2"]], threshold=1)
    j.done(S("wave-1-push"), hosts=["a-1", "a-2"], failed={"a-2": "x"}, unreachable=[])
    assert not journal.episode(journal.read(path)).failed_wave
