"""What each run directory under an output directory holds, read without disturbing a live run.

The journal is opened read-only through the run directory's session (SQLite `mode=ro`: in WAL mode a
reader never waits for the writer; an idle one as immutable, so no `-wal`/`-shm` file is left behind),
no lock is taken, and nothing is written. Whether a process runs it is asked of the lock without
waiting (`rundir.lock.lock_holder`). The spend is the run directory's (`batchgen.journal.spend`): every generation
it made, superseded ones included, billed where the history was read, else quoted; a sandbox run has
none (nothing was paid).

Each run directory is read under a guard: a damaged one (a journal that is missing, empty or broken, a
field that is not what batchgen writes, a `.lock` or plan.json that is not a regular file) is one
summary whose `error` says why, and the others are listed as usual. Nothing is opened in a way that
could block (a FIFO is opened non-blocking and refused), and no lock is waited for.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
from collections import Counter
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from batchgen.errors import StorageError
from batchgen.journal.schema import JOURNAL_NAME, journal_problem
from batchgen.journal.session import Session
from batchgen.journal.spend import Spend, journal_charges, spend_of
from batchgen.rundir.layout import PLAN_NAME, read_plan_json
from batchgen.rundir.lock import lock_holder

__all__ = ["RunSummary", "list_runs", "summarise_guarded", "summarise_run"]


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_dir: Path
    campaign: str
    jobs: int  # jobs of the latest plan
    counts: dict[str, int] = field(default_factory=dict)  # of those, by state
    spend: Spend | None = None  # None for a sandbox run: nothing was paid
    last_activity: float | None = None  # the latest journaled change (seconds since the epoch)
    sandbox: bool = False
    live_pid: int | None = None  # the process running it now (0: one that recorded no pid)
    error: str | None = None  # why the run directory could not be read (then nothing else is known)


def list_runs(output_dir: Path) -> list[RunSummary]:
    """Every run directory directly under `output_dir` (one with a journal or a plan.json), by name. A
    run directory that cannot be read is listed with `error` saying why, never in place of the others."""
    found = sorted((p for p in output_dir.iterdir() if _is_run_dir(p)), key=lambda p: p.name)
    return [summarise_guarded(p) for p in found]


def _is_run_dir(path: Path) -> bool:
    try:
        return path.is_dir() and any(os.path.lexists(path / name) for name in (JOURNAL_NAME, PLAN_NAME))
    except OSError:
        return False


class Unreadable(Exception):
    """What makes one run directory impossible to summarise, in words."""


def summarise_guarded(run_dir: Path) -> RunSummary:
    """`summarise_run`, or a summary whose `error` says why it could not be made."""
    try:
        return summarise_run(run_dir)
    except Exception as exc:  # one damaged run directory is one line, never the end of the listing
        why = str(exc) if isinstance(exc, Unreadable | StorageError) else f"{type(exc).__name__}: {exc}"
        if isinstance(exc, sqlite3.Error):
            why = f"cannot read the journal: {exc}"
        return RunSummary(run_dir, run_dir.name, 0, error=why)


def summarise_run(run_dir: Path) -> RunSummary:
    """What the run directory's journal and plan.json say. Raises on anything odd about them."""
    problem = journal_problem(run_dir)
    if problem is not None:
        raise Unreadable(problem)
    for beside in (f"{JOURNAL_NAME}-wal", f"{JOURNAL_NAME}-shm"):  # SQLite opens these: never a FIFO
        if os.path.lexists(run_dir / beside) and not (run_dir / beside).is_file():
            raise Unreadable(f"{run_dir / beside} is not a regular file")
    live = lock_holder(run_dir)
    name, costs = _read_plan(run_dir)
    with Session.reading(run_dir) as session:
        records = list(session.journal.records().values())
        charges, billed = journal_charges(session.journal, costs)
        sandbox = session.sandbox or run_dir.name.endswith(".sandbox")
    odd = [
        r.updated_at
        for r in records
        if isinstance(r.updated_at, bool) or not isinstance(r.updated_at, int | float)
    ]
    if odd:
        raise Unreadable(f"the journal's updated_at holds {str(odd[0])[:40]!r}, not a time")
    counts = Counter(str(record.state) for record in records if record.planned)
    return RunSummary(
        run_dir,
        name or run_dir.name,
        sum(counts.values()),
        dict(sorted(counts.items())),
        None if sandbox else spend_of(charges.values(), billed),
        max((float(r.updated_at) for r in records), default=None),
        sandbox,
        live,
    )


def _read_plan(run_dir: Path) -> tuple[str | None, dict[str, Decimal]]:
    """The plan's name and each job's quote (nothing when plan.json is missing or unreadable)."""
    costs: dict[str, Decimal] = {}
    try:
        data = read_plan_json(run_dir)  # a FIFO there: StorageError, the summary's error
        for job in data.get("jobs", []):
            with contextlib.suppress(InvalidOperation, TypeError):
                costs[str(job["key"])] = Decimal(job["cost_usd"])
        name = data.get("name")
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None, {}
    return (name if isinstance(name, str) and name else None), costs
