"""What each run directory under an output directory holds, read without disturbing a live run.

The journal is opened read-only (SQLite `mode=ro`: in WAL mode a reader never waits for the writer;
an idle one as immutable, so no `-wal`/`-shm` file is left behind),
no lock is taken, and nothing is written. Whether a process runs it is asked of the lock without
waiting (`runlock.lock_holder`). The spend is the run directory's (`batchgen.spend`): every generation
it made, superseded ones included, billed where the history was read, else quoted; a sandbox run has
none (nothing was paid).
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
from batchgen.spend import Spend, read_charges, spend_of
from batchgen.store import JOURNAL_NAME

__all__ = ["RunSummary", "list_runs", "summarise_run"]


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
            states = [row[0] for row in conn.execute(f"SELECT state FROM jobs WHERE {planned}")]
            last = conn.execute("SELECT MAX(updated_at) FROM jobs").fetchone()[0]
            api_row = conn.execute("SELECT value FROM meta WHERE key='api'").fetchone()
            charges, billed = read_charges(conn.execute, costs)
    except sqlite3.Error as exc:
        return RunSummary(run_dir, campaign, 0, live_pid=live, error=f"cannot read the journal: {exc}")
    counts: dict[str, int] = {}
    for state in states:
        counts[state] = counts.get(state, 0) + 1
    api = api_row[0] if api_row else None
    sandbox = api == SANDBOX_IDENTITY or run_dir.name.endswith(".sandbox")
    return RunSummary(
        run_dir,
        campaign,
        len(states),
        dict(sorted(counts.items())),
        None if sandbox else spend_of(charges, billed),
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
