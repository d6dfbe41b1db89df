"""Billed costs, the pure part: which generations to look up, and what the history rows say."""

from __future__ import annotations

from typing import Any

from batchgen.journal.store import JobRecord
from batchgen.run.billing import billed_from_rows, to_look_up
from batchgen.states import JobState


def record(key: str, state: JobState, generation_id: str | None) -> JobRecord:
    return JobRecord(key, 0, "job", "m", f"{key}.mp4", state, generation_id=generation_id)


def test_only_finished_generations_not_looked_up_yet_are_wanted() -> None:
    """In-flight generations are not charged yet, and one already journaled is not read again."""
    records = [
        record("a", JobState.DONE, "g-a"),
        record("b", JobState.FAILED, "g-b"),
        record("c", JobState.PROCESSING, "g-c"),
        record("d", JobState.DONE, "g-d"),
        record("e", JobState.PENDING, None),
        record("f", JobState.SUCCEEDED, "g-f"),
    ]
    wanted = to_look_up(records, {"g-d": "1.12"})
    assert [w.key for w in wanted] == ["a", "b", "f"]


def test_rows_give_costs_of_wanted_generations_only() -> None:
    """A decimal cost is kept as written; a failed one with no cost was charged nothing; a succeeded one
    with no cost yet, a cost that is not a non-negative decimal, and other rows are left out."""
    wanted = {"ok": JobState.DONE, "free": JobState.FAILED, "later": JobState.DONE, "odd": JobState.DONE}
    wanted |= {"neg": JobState.DONE, "num": JobState.DONE, "bool": JobState.DONE}
    rows: list[dict[str, Any]] = [
        {"generation_id": "ok", "cost": "1.12"},
        {"generation_id": "free", "cost": None},
        {"generation_id": "later", "cost": None},
        {"generation_id": "odd", "cost": "n/a"},
        {"generation_id": "neg", "cost": "-1"},
        {"generation_id": "num", "cost": 2.5},
        {"generation_id": "bool", "cost": True},
        {"generation_id": "someone-else", "cost": "9.99"},
        {"cost": "1"},
    ]
    assert billed_from_rows(rows, wanted) == {"ok": "1.12", "free": None, "num": "2.5"}


def test_earlier_attempts_and_superseded_results_are_looked_up_too() -> None:
    """A job submitted again leaves its earlier generation behind (the journal's claims): it is looked
    up as one that did not become the result, from when it was claimed; a superseded result too."""
    records = [record("a", JobState.PROCESSING, "g-a2"), record("s", JobState.SUPERSEDED, "g-s")]
    claims = [("g-a1", "a", 100.0), ("g-a2", "a", 200.0), ("g-s", "s", 50.0), ("g-x", "gone", 1.0)]
    wanted = to_look_up(records, {}, claims)
    assert [(w.key, w.generation_id, w.state, w.since) for w in wanted] == [
        ("s", "g-s", JobState.SUPERSEDED, None),
        ("a", "g-a1", JobState.FAILED, 100.0),
    ]
    assert to_look_up(records, {"g-a1": None, "g-s": "1.12"}, claims) == []


def test_a_rows_own_status_says_whether_no_cost_means_nothing_was_charged() -> None:
    """A failed or cancelled row with no cost was charged nothing, whatever its job's state; a
    succeeded row with no cost yet is looked up again."""
    wanted = {"f": JobState.DONE, "c": JobState.DONE, "s": JobState.FAILED, "n": JobState.FAILED}
    rows: list[dict[str, Any]] = [
        {"generation_id": "f", "status": "failed", "cost": None},
        {"generation_id": "c", "status": "cancelled", "cost": None},
        {"generation_id": "s", "status": "succeeded", "cost": None},
        {"generation_id": "n", "cost": None},  # no status: the job's state decides
    ]
    assert billed_from_rows(rows, wanted) == {"f": None, "c": None, "n": None}


def test_the_failed_generation_a_job_waiting_to_go_again_still_names_is_looked_up() -> None:
    """A transient failure puts the job back to pending with its generation id: that generation has
    finished (failed) and is looked up; one still queued or processing is not."""
    records = [record("p", JobState.PENDING, "g-p"), record("q", JobState.QUEUED, "g-q")]
    claims = [("g-p", "p", 10.0), ("g-q", "q", 20.0)]
    assert [(w.generation_id, w.state) for w in to_look_up(records, {}, claims)] == [("g-p", JobState.FAILED)]
