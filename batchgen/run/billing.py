"""What each generation was billed, read from the provider's history once it has finished.

The quote (`cost_usd` in results) is batchgen's own sum from the model's published price, made before
submitting. The history (`GET /api/ai/generations`, docs/api-contract.md §7) says what each row was
actually charged: `cost`, a decimal in a string, null until charged. At the end of a run batchgen
reads it for every finished generation of the run directory not looked up yet (earlier attempts of a
job, and jobs no longer planned, included) and journals it, so the spend (`batchgen.journal.spend`), results
and the report show it offline, later. It is a courtesy, never a risk: the reading is bounded (the history
reader's page cap, and a deadline), and a failure leaves the column empty, logs one line, and does not
change the run's outcome; the next run tries again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from batchgen.client.reconcile import CLOCK_SKEW_S, provider_time, search_scopes
from batchgen.errors import BatchgenError
from batchgen.journal.store import JobRecord, Journal
from batchgen.registry.pricing import rate
from batchgen.run.scheduler import StopReason
from batchgen.states import AT_PROVIDER, NO_RESULT, JobState

if TYPE_CHECKING:
    from batchgen.client.api import OxenClient
    from batchgen.config import RunOptions
    from batchgen.run.runner import RunOutcome

__all__ = [
    "BILLING_DEADLINE_S",
    "billed_from_rows",
    "read_after_run",
    "read_billed_costs",
    "to_look_up",
]

log = logging.getLogger(__name__)

BILLING_DEADLINE_S = 60.0  # the whole reading, every page of every scope

#: States in which the job's current generation has finished at the provider.
FINISHED = frozenset(
    {
        JobState.SUCCEEDED,
        JobState.DONE,
        JobState.UNVERIFIED,
        JobState.SUPERSEDED,
        JobState.FAILED,
        JobState.INVALID,
        JobState.CANCELLED,
    }
)
#: A history row's own status that is never charged (it wins over the job's state when the row has one).
_UNCHARGED_STATUSES = frozenset({"failed", "cancelled"})


@dataclass(frozen=True, slots=True)
class Wanted:
    """A finished generation whose billed cost is to be read."""

    key: str  # its job
    generation_id: str
    state: JobState  # its job's state; FAILED for an earlier attempt (it did not become the result)
    since: float | None  # when it was submitted (or claimed), to bound the history search


def to_look_up(
    records: Iterable[JobRecord],
    known: Mapping[str, str | None],
    claims: Iterable[Sequence[Any]] = (),
) -> list[Wanted]:
    """The finished generations whose billed cost is not journaled yet: the current generation of each
    record in a finished state, and every other generation of them in `claims` (generation id, job
    key, claimed at: the journal's `generations` rows) but one still at the provider: an earlier
    attempt, or the failed one a job waiting to go again still names."""
    by_key = {r.key: r for r in records}
    wanted = [
        Wanted(r.key, r.generation_id, r.state, r.submitted_at)
        for r in by_key.values()
        if r.generation_id and r.state in FINISHED and r.generation_id not in known
    ]
    for generation_id, key, claimed_at in claims:
        record = by_key.get(str(key))
        if record is None or generation_id in known:
            continue
        if generation_id == record.generation_id and record.state in FINISHED | AT_PROVIDER:
            continue  # wanted above, or not finished yet
        wanted.append(Wanted(record.key, str(generation_id), JobState.FAILED, float(claimed_at)))
    return wanted


def billed_from_rows(
    rows: Iterable[Mapping[str, Any]], wanted: Mapping[str, JobState]
) -> dict[str, str | None]:
    """Per wanted generation id (with its job's state) found in `rows`: the cost it was billed, or None
    when it failed or was cancelled (the row's status says so, or its job's state when the row has no
    status) and the row shows no charge. One with no cost yet that may still be charged, or a cost that
    is not a non-negative decimal, is left out: looked up again next time."""
    found: dict[str, str | None] = {}
    for row in rows:
        generation_id = row.get("generation_id")
        if not isinstance(generation_id, str) or generation_id not in wanted:
            continue
        cost = rate(row.get("cost"))
        status = row.get("status")
        # a state that may never be charged: a null cost then means "nothing was billed"
        uncharged = (
            status in _UNCHARGED_STATUSES if status is not None else wanted[generation_id] in NO_RESULT
        )
        if cost is not None:
            found[generation_id] = str(cost)
        elif row.get("cost") is None and uncharged:
            found[generation_id] = None
    return found


async def read_billed_costs(
    client: OxenClient,
    journal: Journal,
    *,
    deadline_s: float = BILLING_DEADLINE_S,
    offset: float | None = None,
) -> int:
    """Read and journal the billed cost of the journal's finished generations not looked up yet; returns
    how many were found. Never raises for the API or the disk: it logs one line instead. `offset`: the
    provider's clock minus ours, for submissions journaled without their provider time."""
    records = journal.records()
    claims = journal.read_rows("SELECT generation_id, job_key, created_at FROM generations")
    wanted = to_look_up(records.values(), journal.billed_costs(), claims)
    if not wanted:
        return 0
    scopes = search_scopes(records[w.key].sent_body() or {"model": records[w.key].model} for w in wanted)
    fallback = journal.created_at()
    sent = [
        provider_time(
            records[w.key].server_submitted_at if w.generation_id == records[w.key].generation_id else None,
            w.since or fallback,
            offset,
        )
        for w in wanted
    ]
    known = [at for at in sent if at is not None]
    since = min(known) - CLOCK_SKEW_S if len(known) == len(sent) else None  # on the provider's clock
    try:
        rows: list[dict[str, Any]] = []
        async with asyncio.timeout(deadline_s):
            for scope in scopes:
                rows += await client.history_since(model=scope.model, namespace=scope.namespace, since=since)
        found = billed_from_rows(rows, {w.generation_id: w.state for w in wanted})
        if found:
            journal.record_billed_costs(found)
    except (BatchgenError, TimeoutError) as exc:
        reason = str(exc) or f"no answer within {deadline_s:.0f} s"
        log.warning(
            "billed costs were not read from the history (%s); results show the quote, the next run tries again",
            reason,
        )
        return 0
    log.info("billed costs read from the history for %d of %d finished generations", len(found), len(wanted))
    return len(found)


async def read_after_run(
    outcome: RunOutcome,
    client: OxenClient,
    journal: Journal,
    options: RunOptions,
    stop: asyncio.Event | None,
) -> None:
    """The billed costs of the run directory's finished generations, after a run that ended as planned:
    not after a fatal error (a refused key, no credits, a full disk), an API that kept failing, or a
    Ctrl-C (the next run reads them). Bounded; a Ctrl-C during it ends it at once."""
    if outcome.fatal is not None or outcome.stop_reason in (
        StopReason.INTERRUPTED,
        StopReason.API_UNAVAILABLE,
    ):
        return
    deadline = min(BILLING_DEADLINE_S, 2 * options.timeouts.request_s)
    reading = read_billed_costs(client, journal, deadline_s=deadline, offset=client.server_clock.offset)
    try:
        async with asyncio.TaskGroup() as group:
            tasks = [group.create_task(reading), group.create_task((stop or asyncio.Event()).wait())]
            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
            for task in tasks:
                task.cancel()
    except* Exception as failed:  # read_billed_costs says its own failures; this is anything else
        log.warning("billed costs were not read from the history (%s)", failed.exceptions[0])
