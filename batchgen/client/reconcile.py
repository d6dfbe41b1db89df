"""Pure matching of the provider's rows to journaled jobs (no I/O).

Enqueue has no idempotency key, so after a crash or a lost POST response the only way to know
whether a job was created is to find a row whose echoed request parameters equal what we sent.
Where to look follows from what was sent: rows billed to an organisation (`target_namespace`) are
listed only under that namespace, and only rows enqueued since the submission can be ours. "Since" is
on the provider's clock (a row's `enqueued_at`): our own clock may be minutes off, and must never
decide that a row is not ours. Where the submission's time on the provider's clock is unknown, no row
is ruled out by its time.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from batchgen.client.history import enqueued_before

# Fields the provider does not echo back at the top level of a queue row.
_NOT_ECHOED = frozenset({"model", "num_generations", "target_namespace"})

# A queue or history row's own fields (docs/api-contract.md §2 "Queue rows", §7 "History"); every other
# top-level field is an echoed request parameter, and must then be one we sent (or a default).
_ROW_FIELDS = frozenset(
    {
        "generation_id",
        "model_name",
        "prompt",
        "media_type",
        "status",
        "result_url",
        "error_message",
        "enqueued_at",
        "started_at",
        "completed_at",
        "target_namespace",
        "target_repo",
        "target_directory",
        "cost",
        "user_id",
        "user_image",
        "username",
        "num_generations",
        "model",
    }
)

# Rows enqueued this long before our submit time (both on the provider's clock) still count: the
# offset between the clocks is measured to a second or two, and the provider's own machines may differ.
CLOCK_SKEW_S = 120.0

_PROGRESS = {"queued": 0, "processing": 1, "succeeded": 2, "failed": 2, "cancelled": 2}


@dataclass(frozen=True, slots=True)
class Pending:
    """A journaled submission whose outcome we do not know; `submitted_at` on the provider's clock
    (None: unknown, so no row is too old to be it)."""

    key: str
    body: Mapping[str, Any]
    submitted_at: float | None


def provider_time(journaled: float | None, local: float | None, offset: float | None) -> float | None:
    """When a submission was sent, on the provider's clock: as journaled with it; else (a journal from
    before that was kept) our clock's time moved by the offset measured now; else unknown."""
    if journaled is not None:
        return journaled
    return None if local is None or offset is None else local + offset


@dataclass(frozen=True, slots=True, order=True)
class Scope:
    """One listing to search: a namespace (None: the caller's own, the listings' default) and a model."""

    namespace: str | None
    model: str


def search_scopes(bodies: Iterable[Mapping[str, Any]]) -> list[Scope]:
    """Every (namespace, model) the given request bodies bill to, in a stable order."""
    scopes = set()
    for body in bodies:
        namespace = body.get("target_namespace")
        scopes.add(
            Scope(namespace if isinstance(namespace, str) and namespace else None, str(body.get("model")))
        )
    return sorted(scopes, key=lambda s: (s.namespace or "", s.model))


def earliest_match(pending: Iterable[Pending]) -> float | None:
    """The oldest `enqueued_at` a row may have and still be one of `pending` (bounds history paging);
    None when the provider's time of one of them is unknown (every row may be it)."""
    times = [p.submitted_at for p in pending]
    if not times or any(t is None for t in times):
        return None
    return min(t for t in times if t is not None) - CLOCK_SKEW_S


def row_matches(
    body: Mapping[str, Any], row: Mapping[str, Any], defaults: Mapping[str, Any] | None = None
) -> bool:
    """True when a row could be the generation created by POSTing exactly `body`: every parameter we
    sent is echoed equal, and every other parameter the row echoes is one the service may have filled
    in itself: its value equals the model schema's default (`defaults`)."""
    if row.get("model_name", body.get("model")) != body.get("model"):
        return False
    if any(row.get(name) != value for name, value in body.items() if name not in _NOT_ECHOED):
        return False
    defaults = defaults or {}
    return all(
        name in body or name in _ROW_FIELDS or value is None or (name in defaults and defaults[name] == value)
        for name, value in row.items()
    )


def merge_rows(*listings: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """One row per generation id from several listings, keeping the furthest-along status (a row only
    moves forward, so an older listing may show it active while a newer one shows it finished)."""
    merged: dict[str, Mapping[str, Any]] = {}
    for rows in listings:
        for row in rows:
            generation_id = str(row.get("generation_id"))
            seen = merged.get(generation_id)
            if seen is None or _PROGRESS.get(str(row.get("status")), 0) > _PROGRESS.get(
                str(seen.get("status")), 0
            ):
                merged[generation_id] = row
    return list(merged.values())


def match_submissions(
    pending: Sequence[Pending],
    rows: Iterable[Mapping[str, Any]],
    claimed: set[str],
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
) -> dict[str, Mapping[str, Any]]:
    """Assign to each pending submission at most one unclaimed matching row, oldest first.

    Identical requests (replicas of one prompt) are interchangeable, so any one-to-one
    assignment between them is correct. `claimed` is not modified. `defaults` maps a model id to
    the defaults its rows may echo.
    """
    taken = set(claimed)
    ordered_rows = _oldest_first(rows)
    found: dict[str, Mapping[str, Any]] = {}
    for item in sorted(pending, key=lambda p: (p.submitted_at is None, p.submitted_at or 0.0)):
        for row in ordered_rows:
            if str(row.get("generation_id")) not in taken and _could_be(item, row, defaults):
                found[item.key] = row
                taken.add(str(row.get("generation_id")))
                break
    return found


def unaccounted_rows(
    pending: Sequence[Pending],
    rows: Iterable[Mapping[str, Any]],
    claimed: set[str],
    found: Mapping[str, Mapping[str, Any]],
    defaults: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    others: Sequence[Pending] = (),
) -> dict[str, list[Mapping[str, Any]]]:
    """Rows a pending submission could be, beyond the one `found` gave it, that no submission of ours
    claims or may claim: another run's identical requests, or one of them ours (identical requests
    cannot be told apart). `others` are our own submissions still to be looked for: a row each of them
    could be is kept for it. Each row is listed under the first pending key it matches. Only
    submissions whose provider time is known take part: without it, every identical row of the
    account's history would qualify."""
    taken = set(claimed) | {str(row.get("generation_id")) for row in found.values()}
    rows = list(rows)
    taken |= {
        str(row.get("generation_id")) for row in match_submissions(others, rows, taken, defaults).values()
    }
    timed = sorted((p for p in pending if p.submitted_at is not None), key=lambda p: p.submitted_at or 0.0)
    extra: dict[str, list[Mapping[str, Any]]] = {}
    for row in _oldest_first(rows):
        if str(row.get("generation_id")) in taken:
            continue
        for item in timed:
            if _could_be(item, row, defaults):
                extra.setdefault(item.key, []).append(row)
                taken.add(str(row.get("generation_id")))
                break
    return extra


def _oldest_first(rows: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    return sorted(rows, key=lambda r: (r.get("enqueued_at") or 0, str(r.get("generation_id"))))


def _could_be(
    item: Pending, row: Mapping[str, Any], defaults: Mapping[str, Mapping[str, Any]] | None
) -> bool:
    """The row could be the generation `item` created: not enqueued well before it (both on the
    provider's clock), billed alike, echoing its request."""
    earliest = None if item.submitted_at is None else item.submitted_at - CLOCK_SKEW_S
    if enqueued_before(row, earliest) or _namespace_differs(item.body, row):
        return False
    return row_matches(item.body, row, (defaults or {}).get(str(item.body.get("model"))))


def _namespace_differs(body: Mapping[str, Any], row: Mapping[str, Any]) -> bool:
    """A row that names its namespace must name the one we billed (when we named one)."""
    sent, listed = body.get("target_namespace"), row.get("target_namespace")
    return isinstance(sent, str) and isinstance(listed, str) and sent != listed
