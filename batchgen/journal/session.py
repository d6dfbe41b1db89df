"""One run directory, opened: the session every command reads or changes a run directory through.

A writer (`run`, `deliver`, `cancel`, `unverified --accept`) takes the run directory's lock, then opens
its journal read-write; a reader (`status`, `ls`, `report`, `plan`) opens it read-only and takes no
lock: it never waits for a live run and changes nothing. This module is the one place that takes the
lock and opens the journal, and the one place that holds a run directory to one API (`check_api`):
the sandbox's placeholders and one origin's paid generations are never mixed.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from batchgen.errors import NotFound, UsageError
from batchgen.journal.schema import journal_problem
from batchgen.journal.store import Journal
from batchgen.rundir.lock import RunLock
from batchgen.states import SANDBOX_IDENTITY

if TYPE_CHECKING:
    from batchgen.planning import Plan

__all__ = ["Provider", "Session", "existing_run_dir"]


class Provider(Protocol):
    """What the API check asks of the API a command talks to."""

    async def get_generation(self, generation_id: str) -> Any: ...


class Session:
    """A run directory with its journal open (and, for a writer, its lock held)."""

    def __init__(self, run_dir: Path, journal: Journal) -> None:
        self.run_dir = run_dir
        self.journal = journal

    @property
    def api(self) -> str | None:
        """The API the run directory's results came from: an origin, or "sandbox" (None: none yet)."""
        return self.journal.meta("api")

    @property
    def sandbox(self) -> bool:
        return self.api == SANDBOX_IDENTITY

    @classmethod
    @contextlib.contextmanager
    def reading(cls, run_dir: Path) -> Iterator[Session]:
        """The journal read-only, without the lock. A missing or empty one is a UsageError saying so."""
        journal = Journal.open_existing(run_dir, read_only=True)
        try:
            yield cls(run_dir, journal)
        finally:
            journal.close()

    @classmethod
    @contextlib.contextmanager
    def writing(
        cls, run_dir: Path, plan: Plan | None = None, say: Callable[[str], None] | None = None
    ) -> Iterator[Session]:
        """The lock (RunLocked while a process holds it), then the journal read-write. Without a plan the
        journal must exist: a plain folder is refused before the lock, so nothing is left in it. With
        the plan of a run it is created, or rebuilt from the results' sidecars when it was lost."""
        if plan is None:
            existing_run_dir(run_dir)
        with RunLock(run_dir):
            journal = Journal.open(run_dir) if plan is None else _run_journal(run_dir, plan, say)
            try:
                yield cls(run_dir, journal)
            finally:
                journal.close()

    def refuse_sandbox(self, why: str) -> None:
        """For a command that needs the real provider: a run directory of the sandbox is refused."""
        if self.sandbox:
            raise UsageError(f"{self.run_dir} was run in the sandbox: {why}")

    async def check_api(self, identity: str, client: Provider) -> None:
        """Refuse to work on results of another API than `identity` (the API `client` talks to): a
        sandbox placeholder is not a result, and another API does not know these generations. Records
        `identity` when the run directory has none yet."""
        journal = self.journal
        recorded = journal.meta("api")
        with_generation = [r for r in journal.records().values() if r.generation_id]
        foreign = sorted({r.api for r in with_generation if r.api and r.api != identity})
        legacy = [r for r in with_generation if not r.api]
        if not foreign and legacy and identity != SANDBOX_IDENTITY:
            # Journals from before the API was recorded: ask the API about a few of their generations.
            for record in legacy[:3]:
                try:
                    await client.get_generation(str(record.generation_id))
                except NotFound:
                    foreign = ["an unknown API (its generations are not known here)"]
                    break
            else:
                journal.stamp_api([r.key for r in legacy], identity)
        elif legacy:
            foreign = ["an unknown API (made before batchgen recorded which)"]
        if recorded and recorded != identity and not foreign and with_generation:
            foreign = [recorded]
        if foreign:
            raise _mixed(self.run_dir, foreign, identity)
        if recorded != identity:
            journal.set_meta("api", identity)


def existing_run_dir(run_dir: str | os.PathLike[str]) -> Path:
    """`run_dir` as a Path, when it holds a journal; a UsageError saying why not, otherwise (checked
    before anything is written into it: a plain folder is never littered)."""
    path = Path(run_dir)
    problem = journal_problem(path)
    if problem is not None:
        raise UsageError(problem)
    return path


def _mixed(run_dir: Path, foreign: list[str], identity: str) -> UsageError:
    """The refusal, said for a Python caller and, with its flags, for the command line."""
    said = (
        f"{run_dir} holds results from {' and '.join(foreign)}, and this run is against {identity}: they "
        "must never be mixed (a sandbox placeholder is not a result; another API does not know these "
        "generations). Use another "
    )
    if foreign == [SANDBOX_IDENTITY]:
        fix = (", or run with sandbox=True to continue it", ", or run without --sandbox to continue it")
    else:
        again = f", or run it against {foreign[0]} again to continue it" if "://" in foreign[0] else ""
        fix = (again, again)
    return UsageError(f"{said}output_dir{fix[0]}", cli=f"{said}--output-dir{fix[1]}")


def _run_journal(run_dir: Path, plan: Plan, say: Callable[[str], None] | None) -> Journal:
    """The journal a run works with: opened (created for a new run directory), or, when it was lost
    while results are on disk, rebuilt from their sidecars first (said in one line). Raises UsageError,
    having written nothing, when a result on disk cannot be attributed to a job."""
    from batchgen.journal.rebuild import journal_lost, recover_lost_journal, set_aside_stale_files

    found = recover_lost_journal(run_dir, plan)
    if journal_lost(run_dir):
        set_aside_stale_files(run_dir)
    journal = Journal.open(run_dir)
    if found is not None:
        recovered, how = found
        try:
            journal.restore(recovered.records)
        except BaseException:
            journal.close()
            raise
        if say is not None:
            say(recovered.summary(how))
    return journal
