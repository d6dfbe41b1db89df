"""Cancelling a run's in-flight generations at the provider, journaling what really happened."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import Any

from batchgen.client.api import OxenClient
from batchgen.client.reconcile import earliest_match, match_submissions, search_scopes
from batchgen.journal.store import Journal
from batchgen.run.submitter import pending_submission
from batchgen.states import AT_PROVIDER, JobState

_OUTCOME = {"cancelled": JobState.CANCELLED, "succeeded": JobState.SUCCEEDED, "failed": JobState.FAILED}


async def cancel_in_flight(
    journal: Journal,
    client: OxenClient,
    model_defaults: Mapping[str, Mapping[str, Any]] | None = None,
    *,
    api: str | None = None,
    keys: Collection[str] | None = None,
) -> dict[str, int]:
    """Cancel every generation the journal waits for, including submissions a crash left
    ambiguous (found at the provider by their echoed parameters first, in every namespace they bill
    to). A generation that finished meanwhile is journaled as what it is: cancelling it would lose a
    paid result. `keys` limits it to those jobs. Returns how many ended in each provider status."""
    records = [r for r in journal.records().values() if keys is None or r.key in keys]
    offset = client.server_clock.offset
    ambiguous = [pending_submission(r, offset) for r in records if r.state is JobState.SUBMITTING]
    if ambiguous:
        rows = await client.find_rows(search_scopes(p.body for p in ambiguous), earliest_match(ambiguous))
        found = match_submissions(ambiguous, rows, journal.claimed_generation_ids(), model_defaults)
        for key, row in found.items():
            journal.claim_generation(
                key, str(row["generation_id"]), journal.get(key).attempts, JobState.QUEUED, api=api
            )
    counts: dict[str, int] = {}
    chosen = {r.key for r in records}
    for record in [r for r in journal.records().values() if r.key in chosen and r.state in AT_PROVIDER]:
        if not record.generation_id:
            continue
        await client.cancel(record.generation_id)
        status = str((await client.get_generation(record.generation_id)).get("status"))
        if status in _OUTCOME:
            journal.transition(record.key, _OUTCOME[status], f"{status} at the provider (cancel)")
            counts[status] = counts.get(status, 0) + 1
    return counts
