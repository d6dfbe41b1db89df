"""What the parts of a running batch share: the journal, the client, the scheduler's state, the jobs
and their generations, the queue of results to download, and the few moves every part makes the same
way (release, stop, notify). It holds no stage: the stages hand work to each other through their
constructors, this queue and return values."""

from __future__ import annotations

import asyncio
import logging
import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen.client.api import OxenClient
from batchgen.config import RunOptions
from batchgen.journal.store import JobRecord, Journal
from batchgen.planning import Job, Plan
from batchgen.run import scheduler
from batchgen.run.breaker import FailureBreaker
from batchgen.rundir.layout import checked_path, output_relpath
from batchgen.states import JobState

log = logging.getLogger(__name__)


@dataclass(eq=False)
class RunContext:
    """One run's shared state. Created by `Runner`; its parts hold a reference to it."""

    plan: Plan
    run_dir: Path
    journal: Journal
    client: OxenClient
    options: RunOptions
    state: scheduler.RunState
    rng: random.Random = field(default_factory=random.Random)
    jobs: dict[str, Job] = field(default_factory=dict)
    by_generation: dict[str, str] = field(default_factory=dict)  # generation id -> job key
    urls: dict[str, str] = field(default_factory=dict)  # freshest result URL per job (in memory: they expire)
    displaced: set[str] = field(default_factory=set)  # leftovers whose path a planned job owns: superseded/
    counts: Counter[JobState] = field(default_factory=Counter)  # jobs of this run by state, for progress
    downloads: asyncio.Queue[str] = field(default_factory=asyncio.Queue)  # jobs whose result to fetch
    changed: asyncio.Event = field(default_factory=asyncio.Event)  # set by `notify`, after every change
    only: frozenset[str] | None = None  # `--only`: the planned jobs this run works on (None: all)
    drain_over: bool = False  # a drain's time ran out: stop waiting, leave the rest to the journal
    takes_said: bool = False  # the warning about rows another run of this manifest may own was given
    breaker: FailureBreaker | None = None  # `run.halt_after_failures`: stops the run when failures mount

    def __post_init__(self) -> None:
        self.planned = frozenset(job.key for job in self.plan.jobs)
        # The jobs this run works on; the plan's others (not chosen by --only) stay planned, untouched.
        self.jobs = {job.key: job for job in self.plan.jobs if self.only is None or job.key in self.only}
        self.run_root = self.run_dir.resolve()  # once: result paths are checked against it lexically
        self.known_dirs: set[str] = set()  # directories under it already seen to be real ones
        self.forgotten = 0  # generations of an earlier sandbox session, gone with its emulator

    # -- changes -------------------------------------------------------------------------------

    def notify(self) -> None:
        self.changed.set()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        # No await between the check and clear(), so a change cannot slip in unseen.
        while not predicate():
            self.changed.clear()
            await self.changed.wait()

    def journaled(self, key: str, old: JobState, new: JobState) -> None:
        """Keep the counts and the scheduler in step with a journaled change (`Journal.observed`)."""
        if key not in self.jobs:
            return
        self.counts[old] -= 1
        self.counts[new] += 1
        if key not in self.state.leftovers:
            # A pending job may still name the generation that failed before it: that one is settled
            # already, and a change from pending (a reference image that cannot be placed) made none.
            created = old is not JobState.PENDING and self.journal.get(key).generation_id is not None
            scheduler.journaled(self.state, key, new, created=created)
        if self.breaker is not None and key in self.planned:
            tripped = self.breaker.finished(key, old, new)
            if tripped is not None:
                self.stop(scheduler.StopReason.FAILURES, tripped)

    # -- moves every part makes alike ------------------------------------------------------------

    def record(self, key: str) -> JobRecord:
        return self.journal.get(key)

    def label(self, key: str) -> str:
        """How a person is told about a job of this run: its readable name (`hero · mug · 9:16`)."""
        job = self.jobs.get(key)
        return job.label if job is not None else self.journal.get(key).label

    def release(self, key: str, state: JobState, detail: str, **changes: Any) -> None:
        """Journal `state` for a job holding a provider slot, and give the slot back."""
        self.journal.transition(key, state, detail, **changes)
        scheduler.release(self.state, key, state)
        self.notify()

    def stop(self, reason: scheduler.StopReason, detail: str | None = None) -> None:
        if scheduler.stop(self.state, reason, detail):
            log.warning("stopping submissions: %s", detail or reason)
        self.notify()

    def final_path(self, job: Job) -> Path:
        """Where a job's result goes, checked against the run directory (a symlinked videos/ cannot
        lead writes elsewhere)."""
        return self.checked(output_relpath(job.output_path, job.key, superseded=job.key in self.displaced))

    def checked(self, relative: str) -> Path:
        """A path inside the run directory, refused (UnsafePathError) if it would lead through a symlink."""
        return checked_path(self.run_root, relative, self.known_dirs)
