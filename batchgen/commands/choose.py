"""Which results `batchgen deliver` sends and for whom: `--picks FILE` (`results.picks`), `--only
KEY=VALUE` (`planning.select`, over the run's plan.json) and `--for team|client` (default: what the
run's `deliver:` said, else team). Every pick or term that cannot be honoured is refused before
anything is sent."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from batchgen.errors import UsageError
from batchgen.journal.session import Session
from batchgen.planning.select import Selection, json_job_facts, nothing_matched, selected_keys
from batchgen.results.picks import read_picks, resolve_picks
from batchgen.sinks.oxen.selected import Choice
from batchgen.sinks.oxen.wanted import done_records
from batchgen.target import CLIENT

__all__ = ["AUDIENCES", "choose"]

AUDIENCES = ("team", CLIENT)


def choose(
    session: Session,
    plan: dict[str, Any],
    *,
    picks: Path | None,
    only: Sequence[str] | None,
    audience: str | None,
    recorded: dict[str, Any],
) -> Choice:
    """The choice a `deliver` asks for (UsageError naming every refused pick or unmatched `--only`)."""
    audience = audience or str(recorded.get("for") or "team")
    if audience not in AUDIENCES:
        raise UsageError(f"for: expected one of {', '.join(AUDIENCES)}, got {audience!r}")
    records = session.journal.records()
    keys: set[str] | None = None
    if picks is not None:
        keys = set(resolve_picks(read_picks(picks), records))
    selection = Selection.parse(only)
    if selection is not None:
        jobs = [json_job_facts(job) for job in plan.get("jobs", ()) if isinstance(job, dict)]
        matched = set(selected_keys(selection, jobs))
        if not matched:
            raise UsageError(nothing_matched(selection, jobs, len(jobs)))
        done = {record.key for record in done_records(records.values())}
        keys = (matched & done) if keys is None else (keys & matched)
        if not keys:
            raise UsageError(f"{selection.describe()}: no done result to deliver among the jobs it matches")
    return Choice(keys=None if keys is None else frozenset(keys), client=audience == CLIENT)
