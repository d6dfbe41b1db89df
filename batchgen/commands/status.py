"""`run_status`: what a run directory's journal says, read-only (any time, a live run's too): each job,
the spend, and how far its delivery got."""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.commands.common import chosen_keys, note, recorded_target, says
from batchgen.states import JobState

if TYPE_CHECKING:
    from batchgen.journal.session import Session
    from batchgen.journal.spend import JobSpend, Spend
    from batchgen.journal.store import JobRecord

__all__ = ["DeliveryStatus", "RunStatus", "run_status"]


@dataclass(frozen=True, slots=True)
class DeliveryStatus:
    """How far the run's results reached its delivery target, by the journal's ledger."""

    target: str  # ns/repo@branch:path
    sandbox: bool  # delivered to the sandbox's emulator (gone when it stopped): nothing is counted
    delivered: int = 0
    wanted: int = 0
    failed: tuple[str, ...] = ()  # `path: why` of each file that failed


@dataclass(frozen=True, slots=True)
class RunStatus:
    """What a run directory's journal says: each journaled job (those `only` chose) as `status --json`
    prints it (`key`, `title`, `state`, `planned`, `error`, `output_path`, `spent_usd`, ...), the API its
    results came from, the run directory's spend, and its delivery (None: no target)."""

    run_dir: Path
    jobs: list[dict[str, Any]]
    api: str | None
    sandbox: bool
    spend: Spend
    delivery: DeliveryStatus | None = None

    @property
    def complete(self) -> bool:
        """Every planned job (of those chosen) is done."""
        return all(job["state"] == JobState.DONE for job in self.jobs if job["planned"])


@says
def run_status(
    run_dir: str | os.PathLike[str],
    *,
    only: Sequence[str] | None = None,
    say: Callable[[str], None] = note,
) -> RunStatus:
    """A run directory's status from its journal, read-only (any time, a live run's too)."""
    from batchgen.journal.session import Session
    from batchgen.journal.spend import job_spend, journal_charges, spend_of

    path = Path(run_dir)
    with Session.reading(path) as session:
        records = sorted(session.journal.records().values(), key=lambda r: r.idx)
        delivery = _delivery_status(session)
        charges, billed = journal_charges(session.journal)
        api, sandbox = session.api, session.sandbox
    chosen = chosen_keys(path, only, say=say)
    jobs = [
        _job_status(r, job_spend(charges[r.key], billed))
        for r in records
        if chosen is None or r.key in chosen
    ]
    return RunStatus(path, jobs, api, sandbox, spend_of(charges.values(), billed), delivery)


def _job_status(r: JobRecord, share: JobSpend) -> dict[str, Any]:
    """One job of `status --json`: `title` is its readable name, `key` what programs go by, and
    `output_path` where its result is, relative to the run directory (as in results.* and run --json)."""
    from batchgen.rundir.layout import output_relpath, unverified_relpath

    unverified = r.state is JobState.UNVERIFIED
    return {
        "key": r.key,
        "index": r.idx,
        "name": r.name,
        "title": r.label,
        "state": r.state,
        "planned": r.planned,
        "output_path": output_relpath(r.output_path, r.key, superseded=r.state == "superseded"),
        "generation_id": r.generation_id,
        "api": r.api,
        "attempts": r.attempts,
        "sha256": r.sha256,
        "error": r.error,
        "kept_path": unverified_relpath(r.output_path, r.key) if unverified else None,
        # what its generations count for in the run directory's spend (every attempt)
        "spent_usd": str(share.total),
        "generations": share.generations,
    }


def _delivery_status(session: Session) -> DeliveryStatus | None:
    """How far the run's delivery got, by its ledger (None when the run has no target)."""
    from batchgen.journal.deliveries import DELIVERED, FAILED, DeliveryLedger
    from batchgen.sinks.oxen.wanted import done_results
    from batchgen.target import DeliveryTarget

    recorded = recorded_target(session)
    if not recorded:
        return None
    namespace, _, repo = str(recorded["repo"]).partition("/")  # as recorded: shown, not checked
    target = DeliveryTarget(
        namespace=namespace, repo=repo, branch=str(recorded["branch"]), path=str(recorded["path"])
    )
    if not session.api or session.sandbox:
        return DeliveryStatus(target.describe(), sandbox=True)
    ledger = DeliveryLedger(session.journal, target.ledger_key(session.api))
    wanted = done_results(target, session.journal.records().values())
    delivered, failed = 0, []
    for item in wanted:
        row = ledger.get(item.repo_path)
        if row is not None and row.state == DELIVERED and item.sha256 in (None, row.sha256):
            delivered += 1
        elif row is not None and row.state == FAILED:
            failed.append(f"{item.repo_path}: {row.error}")
    return DeliveryStatus(target.describe(), False, delivered, len(wanted), tuple(failed))
