"""The run journal: one SQLite file (WAL) per run directory, a row per job key (opened by `journal.session`).

Changes are group-committed: `transition` updates the in-memory mirror at once and queues the write;
everything queued in one turn of the event loop is committed in one transaction at the end of that turn
(`flush`). A caller whose next side effect depends on a change being durable (a POST after `submitting`)
calls `flush()` first. A crash loses at most the queued changes of the current turn, all of which a
resume recovers: the journal is then only behind the provider, never ahead of it.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import quote

from batchgen.errors import StorageError, UsageError
from batchgen.journal.schema import JOURNAL_NAME as JOURNAL_NAME
from batchgen.journal.schema import (
    SCHEMA,
    SCHEMA_VERSION,
    add_missing_columns,
    journal_problem,
    select_columns,
    shadow_missing_tables,
)
from batchgen.naming import shown_or_fallback
from batchgen.rundir.lock import lock_holder
from batchgen.states import SANDBOX_IDENTITY, JobState, check_transition


@dataclass(frozen=True, slots=True)
class JobRecord:
    """A job as the journal knows it."""

    key: str
    idx: int
    name: str
    model: str
    output_path: str
    state: JobState
    attempts: int = 0
    generation_id: str | None = None
    sent_request: str | None = None  # the exact JSON body POSTed for the current attempt
    submitted_at: float | None = None
    started_at: float | None = None
    completed_at: float | None = None
    downloaded_at: float | None = None
    sha256: str | None = None
    size: int | None = None
    mtime_ns: int | None = None  # of the final file when it was verified: a cheap "unchanged" check
    error: str | None = None
    updated_at: float = 0.0
    api: str | None = None  # which API created its generation: an origin, or "sandbox"
    planned: bool = True  # part of the plan of the run directory's latest run
    quote_usd: str | None = None  # its quote by the latest plan that held it (a decimal; None: unpriced)
    server_submitted_at: float | None = None  # submitted_at on the provider's clock (None: unknown)
    title: str | None = None  # its readable name by the latest plan that held it (batchgen.naming)

    @property
    def label(self) -> str:  # for people: its title, else (journaled before titles) name and key prefix
        return shown_or_fallback(self.title, self.name, self.key)

    def sent_body(self) -> dict[str, Any] | None:
        return None if self.sent_request is None else dict(json.loads(self.sent_request))


_COLUMNS = tuple(f.name for f in fields(JobRecord))
_STATE_AT, _PLANNED_AT = _COLUMNS.index("state"), _COLUMNS.index("planned")
_UPDATABLE = frozenset(_COLUMNS) - {
    "key",
    "idx",
    "name",
    "model",
    "output_path",
    "state",
    "updated_at",
    "planned",
    "quote_usd",
    "title",
}
_WRITTEN = tuple(sorted(_UPDATABLE))  # the columns a transition may change, in a fixed order
_UPDATE_ROW = (
    f"UPDATE jobs SET state=?, {', '.join(f'{name}=?' for name in _WRITTEN)}, updated_at=? WHERE key=?"
)


@contextlib.contextmanager
def _storage_errors(what: str) -> Iterator[None]:
    try:
        yield
    except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as exc:
        raise StorageError(f"cannot {what}: {exc}") from exc


class PlanRow(NamedTuple):
    """A job of the latest plan, as the journal keeps it (`Journal.plan_jobs`)."""

    key: str
    idx: int
    name: str
    model: str
    output_path: str
    quote_usd: str | None  # what a generation of it counts for until its billed cost is read
    title: str | None  # its readable name (batchgen.naming)


class Journal:
    """The SQLite journal of one run directory. Keeps an in-memory mirror of the job rows."""

    def __init__(self, conn: sqlite3.Connection, path: Path) -> None:
        self._conn = conn
        self.path = path
        self._records: dict[str, JobRecord] = {}
        self._observer: Callable[[str, JobState, JobState], None] | None = None  # `observed`
        self._dirty: dict[str, JobRecord] = {}  # changed rows not yet committed
        self._log: list[tuple[str, str, str, float, str | None]] = []  # transitions not yet committed
        self._claims: list[tuple[str, str, int, float]] = []  # generation claims not yet committed
        self._flush_scheduled = False
        self._failure: StorageError | None = None  # a scheduled commit failed (disk full, say)
        self._loop_thread: int | None = None  # the thread of the event loop that changes it, once known
        self._committed: asyncio.Future[None] | None = None  # resolved by the next scheduled commit
        self.revision = 0  # commits by this process: what is read and summed from it can be kept until then
        self.spend_cache: tuple[int, object] | None = None  # `journal.spend.journal_spend`'s, at a revision
        for row in conn.execute(f"SELECT {select_columns(conn, _COLUMNS)} FROM jobs"):
            values = list(row)
            state = values[_STATE_AT]
            values[_STATE_AT] = JobState.SUCCEEDED if state == "downloading" else JobState(state)  # see open
            values[_PLANNED_AT] = bool(values[_PLANNED_AT])
            self._records[values[0]] = JobRecord(*values)
        self._claimed = {row[0] for row in conn.execute("SELECT generation_id FROM generations")}

    @classmethod
    def open(cls, run_dir: Path) -> Journal:
        path = run_dir / JOURNAL_NAME
        with _storage_errors(f"open the journal {path}"):
            conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            # NORMAL in WAL mode survives a killed process (every commit is in the WAL file);
            # only a power cut can lose the last commits, and those are reconciled on resume.
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.executescript(SCHEMA)
            add_missing_columns(conn)
            # The `downloading` state is no longer written: a `.part` file plus `succeeded` says the same.
            conn.execute("UPDATE jobs SET state='succeeded' WHERE state='downloading'")
            conn.execute(
                "INSERT OR IGNORE INTO meta VALUES ('schema_version', ?), ('created_at', ?)",
                (SCHEMA_VERSION, repr(time.time())),
            )
        return cls(conn, path)

    @classmethod
    def open_existing(cls, run_dir: Path, *, read_only: bool = False) -> Journal:
        """Open the journal of an existing run directory; a missing or empty one is a user error, not a
        new run. `read_only` (`status`, `report`, `plan`): nothing is created, changed or left beside it."""
        problem = journal_problem(run_dir)
        if problem is not None:
            raise UsageError(problem)
        if not read_only:
            return cls.open(run_dir)
        path = run_dir / JOURNAL_NAME
        with _storage_errors(f"read the journal {path}"):
            # A journal no process has open (no `-wal` beside it either) is read as immutable, so
            # SQLite leaves no `-wal`/`-shm` files behind.
            quiet = lock_holder(run_dir) is None and not path.with_name(path.name + "-wal").exists()
            flags = "mode=ro&immutable=1" if quiet else "mode=ro"
            conn = sqlite3.connect(f"file:{quote(str(path.absolute()))}?{flags}", uri=True, timeout=2.0)
            shadow_missing_tables(conn)
            journal = cls(conn, path)
            journal.revision = -1  # another process may be writing it: nothing read is kept
            return journal

    def close(self) -> None:
        with contextlib.suppress(StorageError):
            self.flush()
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()

    # -- reading -------------------------------------------------------------------------

    def records(self) -> dict[str, JobRecord]:
        return dict(self._records)

    def get(self, key: str) -> JobRecord:
        return self._records[key]

    def __contains__(self, key: object) -> bool:
        return key in self._records

    def digest(self) -> str:
        """A digest of every job row and billed cost, for files made from them to tell they are current:
        a transition stamps `updated_at`; the other writers (plan, api) change columns it includes.
        Fed a row at a time: a run's peak memory is at its end, where this is asked."""
        self.flush()
        digest = hashlib.sha256(repr(self.meta("api")).encode())
        for r in self._records.values():
            digest.update(
                repr((r.key, r.state, r.updated_at, r.title, r.quote_usd, r.planned, r.api)).encode()
            )
        with _storage_errors("read the journal"):
            for row in self._conn.execute("SELECT generation_id, cost FROM billing ORDER BY generation_id"):
                digest.update(repr(row).encode())
        return digest.hexdigest()

    def meta(self, name: str) -> str | None:
        row = self._conn.execute("SELECT value FROM meta WHERE key=?", (name,)).fetchone()
        return None if row is None else str(row[0])

    def set_meta(self, name: str, value: str) -> None:
        self.write_rows("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(name, value)])

    def created_at(self) -> float:
        row = self._conn.execute("SELECT value FROM meta WHERE key='created_at'").fetchone()
        return float(row[0])

    def claimed_generation_ids(self) -> set[str]:
        return set(self._claimed)

    def billed_costs(self) -> dict[str, str | None]:
        """What the provider's history billed, per generation id (None: it finished and the history
        shows no charge). A generation missing here has not been looked up yet."""
        return {str(row[0]): row[1] for row in self.read_rows("SELECT generation_id, cost FROM billing")}

    # -- writing -------------------------------------------------------------------------

    def add_jobs(self, jobs: Iterable[tuple[str, int, str, str, str]]) -> int:
        """Insert (key, index, name, model, output_path) rows that are not journaled yet; others untouched."""
        new = [PlanRow(*job, quote_usd=None, title=None) for job in jobs if job[0] not in self._records]
        self._write_plan(new, [])
        return len(new)

    def plan_jobs(self, jobs: Iterable[PlanRow]) -> int:
        """Journal the latest plan in one commit: its new jobs as pending; each planned job's quote and
        title; which jobs it holds (the others are kept, shown apart by `status`). Returns how many were
        new. One pass and no rewrite of unchanged rows, so a resume of a large run starts at once."""
        new: list[PlanRow] = []
        changed: list[tuple[str | None, str | None, bool, str]] = []
        planned: set[str] = set()
        for job in jobs:
            planned.add(job.key)
            old = self._records.get(job.key)
            if old is None:
                new.append(job)
            elif (old.quote_usd, old.title, old.planned) != (job.quote_usd, job.title, True):
                changed.append((job.quote_usd, job.title, True, job.key))
        changed += [
            (r.quote_usd, r.title, False, k)
            for k, r in self._records.items()
            if r.planned and k not in planned
        ]
        self._write_plan(new, changed)
        return len(new)

    def _write_plan(
        self, new: list[PlanRow], changed: list[tuple[str | None, str | None, bool, str]]
    ) -> None:
        """Insert `new` jobs as pending and set (quote, title, planned) of `changed` keys, in one commit."""
        now = time.time()
        self.flush()
        with _storage_errors("write the journal"), self._transaction():
            self._conn.executemany(
                "INSERT INTO jobs (key, idx, name, model, output_path, quote_usd, title, state, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 'pending', ?)",
                [(*job, now) for job in new],
            )
            self._conn.executemany("UPDATE jobs SET quote_usd=?, title=?, planned=? WHERE key=?", changed)
        for job in new:
            self._records[job.key] = JobRecord(
                *job[:5], JobState.PENDING, updated_at=now, quote_usd=job.quote_usd, title=job.title
            )
        for quote_usd, title, is_planned, key in changed:
            self._records[key] = replace(
                self._records[key], quote_usd=quote_usd, title=title, planned=is_planned
            )

    def transition(self, key: str, new: JobState, detail: str | None = None, **changes: Any) -> JobRecord:
        """Change a job's state (and fields); raises on an illegal change. Committed with everything else
        of this turn of the event loop (or at once outside one); `flush()` commits it now."""
        if self._failure is not None:
            raise self._failure
        old = self._records[key]
        # A generation the sandbox made (the journal says so per job) may be forgotten: see SANDBOX_ONLY.
        check_transition(old.state, new, sandbox=old.api == SANDBOX_IDENTITY)
        unknown = set(changes) - _UPDATABLE
        if unknown:
            raise TypeError(f"not journal fields: {sorted(unknown)}")
        now = time.time()
        record = replace(old, state=new, updated_at=now, **changes)
        self._records[key] = self._dirty[key] = record
        if old.state != new:
            self._log.append((key, str(old.state), str(new), now, detail))
        self._schedule_flush()
        if old.state != new and self._observer is not None:
            self._observer(key, old.state, new)
        return record

    @contextlib.contextmanager
    def observed(self, on_transition: Callable[[str, JobState, JobState], None]) -> Iterator[None]:
        """Call `on_transition(key, old, new)` after every state change made inside the block (a run's)."""
        self._observer = on_transition
        try:
            yield
        finally:
            self._observer = None

    def claim_generation(
        self, key: str, generation_id: str, attempt: int, new: JobState, **changes: Any
    ) -> JobRecord:
        """Record that `generation_id` belongs to job `key` and move the job to `new` (one transaction)."""
        self._claims.append((generation_id, key, attempt, time.time()))
        self._claimed.add(generation_id)
        return self.transition(key, new, generation_id=generation_id, **changes)

    def flush(self) -> None:
        """Commit every queued change in one transaction (a no-op when nothing is queued)."""
        self._flush_scheduled = False
        if self._failure is not None:
            raise self._failure
        if not (self._dirty or self._log or self._claims):
            return
        rows = [
            (str(r.state), *(getattr(r, name) for name in _WRITTEN), r.updated_at, r.key)
            for r in self._dirty.values()
        ]
        with _storage_errors("write the journal"), self._transaction():
            self._conn.executemany("INSERT OR IGNORE INTO generations VALUES (?, ?, ?, ?)", self._claims)
            self._conn.executemany(_UPDATE_ROW, rows)
            self._conn.executemany(
                "INSERT INTO transitions (job_key, from_state, to_state, at, detail) VALUES (?,?,?,?,?)",
                self._log,
            )
        self._dirty, self._log, self._claims = {}, [], []

    async def durable(self) -> None:
        """Wait until every change made so far is committed: the commit at the end of this turn of the
        event loop, shared by everyone who waits in it (64 submissions in one turn cost one commit)."""
        if not (self._dirty or self._log or self._claims):
            return
        if self._committed is None or self._committed.done():
            self._committed = asyncio.get_running_loop().create_future()
        self._schedule_flush()
        await asyncio.shield(self._committed)

    def _schedule_flush(self) -> None:
        if self._flush_scheduled:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no event loop (start-up, tools, tests): commit at once
            if self._loop_thread is not None and threading.get_ident() != self._loop_thread:
                raise RuntimeError(
                    "the journal was changed from a worker thread; change it on the loop's"
                ) from None
            self.flush()
            return
        self._loop_thread = threading.get_ident()
        self._flush_scheduled = True
        loop.call_soon(self._flush_soon)

    def _flush_soon(self) -> None:
        if self._flush_scheduled:
            try:
                self.flush()
            except StorageError as exc:  # raised by the next change, in the task that makes it
                self._failure = exc
        waiting, self._committed = self._committed, None
        if waiting is not None and not waiting.done():
            if self._failure is not None:
                waiting.set_exception(self._failure)
            else:
                waiting.set_result(None)

    def restore(self, records: Iterable[JobRecord]) -> None:
        """Journal whole job rows and their generation claims at once (a journal rebuilt from the
        results' sidecars: `rebuild.py`), in one transaction."""
        self.flush()
        rows = [r for r in records if r.key not in self._records]
        with _storage_errors("write the journal"), self._transaction():
            self._conn.executemany(
                f"INSERT INTO jobs ({', '.join(_COLUMNS)}) VALUES ({', '.join('?' * len(_COLUMNS))})",
                [tuple(str(r.state) if c == "state" else getattr(r, c) for c in _COLUMNS) for r in rows],
            )
            self._conn.executemany(
                "INSERT OR IGNORE INTO generations VALUES (?, ?, ?, ?)",
                [(r.generation_id, r.key, r.attempts, r.updated_at) for r in rows if r.generation_id],
            )
        for record in rows:
            self._records[record.key] = record
            if record.generation_id:
                self._claimed.add(record.generation_id)

    def stamp_api(self, keys: Iterable[str], api: str) -> None:
        """Record which API created the generations of `keys` (journals from before that was kept),
        committed at once."""
        changed = [k for k in dict.fromkeys(keys) if k in self._records and self._records[k].api != api]
        if changed:
            self.write_rows("UPDATE jobs SET api=? WHERE key=?", [(api, key) for key in changed])
        for key in changed:
            self._records[key] = replace(self._records[key], api=api)

    def record_billed_costs(self, costs: Mapping[str, str | None]) -> None:
        """Keep the billed cost read from the history for each generation id (see `billed_costs`)."""
        now = time.time()
        self.write_rows(
            "INSERT OR REPLACE INTO billing VALUES (?, ?, ?)", [(g, c, now) for g, c in costs.items()]
        )

    def set_asset_url(self, sha256: str, url: str) -> None:
        self.write_rows("INSERT OR REPLACE INTO assets VALUES (?, ?, ?)", [(sha256, url, time.time())])

    def write_rows(self, sql: str, rows: Iterable[Sequence[Any]]) -> None:
        """`sql` once per row, committed (durably) before it returns (after what is queued)."""
        self.flush()
        with _storage_errors("write the journal"), self._transaction():
            self._conn.executemany(sql, rows)

    def read_rows(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with _storage_errors("read the journal"):
            return list(self._conn.execute(sql, params))

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[None]:
        if self._conn.in_transaction:  # nested: the outer block commits
            yield
            return
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        self._conn.execute("COMMIT")
        if self.revision >= 0:
            self.revision += 1
