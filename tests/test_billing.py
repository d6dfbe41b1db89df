"""Billed costs, the pure part: which generations to look up, and what the history rows say."""

from __future__ import annotations

from typing import Any

from batchgen.billing import billed_from_rows, to_look_up
from batchgen.states import JobState
from batchgen.store import JobRecord


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
    assert [r.key for r in wanted] == ["a", "b", "f"]


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
