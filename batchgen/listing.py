"""What each run directory under an output directory holds, read without disturbing a live run.

The journal is opened read-only (SQLite `mode=ro`: in WAL mode a reader never waits for the writer;
an idle one as immutable, so no `-wal`/`-shm` file is left behind),
no lock is taken, and nothing is written. Whether a process runs it is asked of the lock without
waiting (`runlock.lock_holder`). The committed spend is the quote (plan.json) of every planned job whose
generation exists or may exist: in flight, succeeded, or done.
"""

from __future__ import annotations

import contextlib
import json
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from urllib.parse import quote

from batchgen.config import SANDBOX_IDENTITY
from batchgen.runlock import lock_holder
from batchgen.states import BILLED
from batchgen.store import JOURNAL_NAME

__all__ = ["RunSummary", "list_runs", "summarise_run"]

_BILLED = {str(state) for state in BILLED}


@dataclass(frozen=True, slots=True)
class RunSummary:
    run_dir: Path
    campaign: str
    jobs: int  # jobs of the latest plan
    counts: dict[str, int] = field(default_factory=dict)  # of those, by state
    committed_usd: Decimal | None = None  # None: plan.json has no quote for some of them
    last_activity: float | None = None  # the latest journaled change (seconds since the epoch)
    sandbox: bool = False
    live_pid: int | None = None  # the process running it now (0: one that recorded no pid)
    error: str | None = None  # why the journal could not be read


def list_runs(output_dir: Path) -> list[RunSummary]:
    """Every run directory directly under `output_dir`, by name."""
    found = sorted(
        (p for p in output_dir.iterdir() if p.is_dir() and (p / JOURNAL_NAME).is_file()),
        key=lambda p: p.name,
    )
    return [summarise_run(p) for p in found]


def summarise_run(run_dir: Path) -> RunSummary:
    live = lock_holder(run_dir)
    name, costs = _read_plan(run_dir)
    campaign = name or run_dir.name
    try:
        with _read_only(run_dir / JOURNAL_NAME, idle=live is None) as conn:
            columns = {row[1] for row in conn.execute("PRAGMA table_info(jobs)")}
            planned = "planned" if "planned" in columns else "1"
            rows = conn.execute(f"SELECT key, state, updated_at FROM jobs WHERE {planned}").fetchall()
            last = conn.execute("SELECT MAX(updated_at) FROM jobs").fetchone()[0]
            api_row = conn.execute("SELECT value FROM meta WHERE key='api'").fetchone()
    except sqlite3.Error as exc:
        return RunSummary(run_dir, campaign, 0, live_pid=live, error=f"cannot read the journal: {exc}")
    counts: dict[str, int] = {}
    for _, state, _ in rows:
        counts[state] = counts.get(state, 0) + 1
    committed: Decimal | None = Decimal(0)
    for key, state, _ in rows:
        if state in _BILLED:
            cost = costs.get(key)
            committed = None if committed is None or cost is None else committed + cost
    api = api_row[0] if api_row else None
    sandbox = api == SANDBOX_IDENTITY or run_dir.name.endswith(".sandbox")
    return RunSummary(
        run_dir,
        campaign,
        len(rows),
        dict(sorted(counts.items())),
        committed,
        None if last is None else float(last),
        sandbox,
        live,
    )


@contextlib.contextmanager
def _read_only(path: Path, *, idle: bool) -> Iterator[sqlite3.Connection]:
    """A read-only connection. A journal no process has open (no lock holder, no `-wal` beside it) is
    read as immutable, so SQLite leaves no `-wal`/`-shm` files behind: listing changes nothing."""
    quiet = idle and not path.with_name(path.name + "-wal").exists()
    flags = "mode=ro&immutable=1" if quiet else "mode=ro"
    conn = sqlite3.connect(f"file:{quote(str(path.absolute()))}?{flags}", uri=True, timeout=2.0)
    try:
        yield conn
    finally:
        conn.close()


def _read_plan(run_dir: Path) -> tuple[str | None, dict[str, Decimal]]:
    """The plan's name and each job's quote (nothing when plan.json is missing or unreadable)."""
    costs: dict[str, Decimal] = {}
    try:
        data = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
        for job in data.get("jobs", []):
            with contextlib.suppress(InvalidOperation, TypeError):
                costs[str(job["key"])] = Decimal(job["cost_usd"])
        name = data.get("name")
    except (OSError, ValueError, AttributeError, KeyError, TypeError):
        return None, {}
    return (name if isinstance(name, str) and name else None), costs
