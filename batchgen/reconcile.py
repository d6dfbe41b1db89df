"""Pure matching of the provider's queue rows to journaled jobs (no I/O).

Enqueue has no idempotency key, so after a crash or a lost POST response the only way to know
whether a job was created is to find a row whose echoed request parameters equal what we sent.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

# Fields the provider does not echo back at the top level of a queue row.
_NOT_ECHOED = frozenset({"model", "num_generations", "target_namespace"})

# A queue row's own fields (oxen-api.md §2); every other top-level field is an echoed request
# parameter, and must then be one we sent.
_ROW_FIELDS = frozenset({
    "generation_id", "model_name", "prompt", "media_type", "status", "result_url", "error_message",
    "enqueued_at", "started_at", "completed_at", "target_namespace", "target_repo", "target_directory",
    "cost", "user_id", "user_image", "username", "num_generations", "model",
})

# Rows enqueued this long before our journaled submit time still count (clock skew).
CLOCK_SKEW_S = 120.0


@dataclass(frozen=True, slots=True)
class Pending:
    """A journaled submission whose outcome we do not know."""

    key: str
    body: Mapping[str, Any]
    submitted_at: float


def row_matches(body: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    """True when a queue row could be the generation created by POSTing exactly `body`:
    every parameter we sent is echoed equal, and the row echoes no parameter we did not send."""
    if row.get("model_name", body.get("model")) != body.get("model"):
        return False
    if any(row.get(name) != value for name, value in body.items() if name not in _NOT_ECHOED):
        return False
    return all(name in body or name in _ROW_FIELDS or value is None for name, value in row.items())


def match_submissions(pending: Sequence[Pending], rows: Iterable[Mapping[str, Any]],
                      claimed: set[str]) -> dict[str, Mapping[str, Any]]:
    """Assign to each pending submission at most one unclaimed matching row, oldest first.

    Identical requests (replicas of one prompt) are interchangeable, so any one-to-one
    assignment between them is correct. `claimed` is not modified.
    """
    taken = set(claimed)
    ordered_rows = sorted(rows, key=lambda r: (r.get("enqueued_at") or 0, str(r.get("generation_id"))))
    found: dict[str, Mapping[str, Any]] = {}
    for item in sorted(pending, key=lambda p: p.submitted_at):
        for row in ordered_rows:
            generation_id = str(row.get("generation_id"))
            if generation_id in taken:
                continue
            enqueued_at = row.get("enqueued_at")
            if isinstance(enqueued_at, int | float) and enqueued_at < item.submitted_at - CLOCK_SKEW_S:
                continue
            if row_matches(item.body, row):
                found[item.key] = row
                taken.add(generation_id)
                break
    return found
