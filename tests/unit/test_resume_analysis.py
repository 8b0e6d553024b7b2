"""resume re-judges by analysis the waves a crash cut before their verdict (issue 17): which
waves those are, read from a real journal."""

from __future__ import annotations

from pathlib import Path

from gcmschange.apply import journal
from gcmschange.apply import waves as wv
from gcmschange.apply.journal import Stage, Step
from gcmschange.apply.verbs import unjudged


def test_waves_cut_before_or_during_their_analysis_are_judged_again(tmp_path: Path) -> None:
    book = journal.Journal(tmp_path / "journal.jsonl", "r1")
    book.begin(Step(Stage.RUN), kind="apply", waves=[["p-1"], ["p-2"], ["p-3"]], threshold=0)
    for number, host in ((1, "p-1"), (2, "p-2"), (3, "p-3")):
        book.begin(Step.wave_pass(number).push, hosts=[host])
    for number, host in ((1, "p-1"), (2, "p-2")):
        book.done(Step.wave_pass(number).push, hosts=[host], failed={}, unreachable=[])
    book.begin(Step.wave_pass(1).analysis, hosts=["p-1"])
    book.done(Step.wave_pass(1).analysis, hosts=["p-1"], verdict="successful")
    book.begin(Step.wave_pass(2).analysis, hosts=["p-2"])  # the crash: during wave 2's
    episode = journal.episode(journal.read(tmp_path / "journal.jsonl"))
    plan = [wv.Wave(1, ("p-1",), canary=True), wv.Wave(2, ("p-2",)), wv.Wave(3, ("p-3",))]
    assert [w.number for w in unjudged(episode, plan)] == [2, 3]
