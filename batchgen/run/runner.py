"""The run shell: one TaskGroup that carries out the scheduler's decisions, with the event stream, the
reconcile loop and the download workers, journaling each step before the next.

Policy lives in pure modules (`run.scheduler`, `retry`, `run.overdue`, `client.reconcile`, `states`); the
work is done by `startup` (what is missing), `submitter`, `tracker` and `fetcher`, which share a `RunContext`
and hand work on through their constructors (the submitter claims through the tracker), the download queue
and return values. Progress observers and a stop event are passed in, each watched by a task of the group.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from batchgen.aio import no_gc_pauses
from batchgen.client.api import OxenClient
from batchgen.config import RunOptions
from batchgen.errors import InsufficientCredits, StorageError, Unauthenticated
from batchgen.journal.store import Journal
from batchgen.planning import Plan
from batchgen.run import live_cancel, scheduler
from batchgen.run.assets import AssetPlacer
from batchgen.run.breaker import FailureBreaker
from batchgen.run.context import RunContext
from batchgen.run.fetcher import Fetcher
from batchgen.run.scheduler import StopReason
from batchgen.run.startup import prepare
from batchgen.run.submitter import Submitter
from batchgen.run.takes import is_take
from batchgen.run.tracker import Tracker
from batchgen.sinks.base import ResultSink

__all__ = ["Progress", "RunOutcome", "RunStats", "Runner", "StopReason"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunStats:
    """A snapshot of a run for progress displays."""

    counts: Mapping[str, int]
    total: int
    spent_usd: Decimal
    retried: int
    throttled_s: float
    stream_connected: bool
    stopping: StopReason | None
    started_at: float
    budget_usd: Decimal | None = None
    delivered: tuple[int, int] | None = None  # files the sinks delivered / are to deliver so far


#: A progress observer: called after changes with a function that takes the run's snapshot.
Progress = Callable[[Callable[[], RunStats]], None]


@dataclass(slots=True)
class RunOutcome:
    counts: dict[str, int]  # planned jobs by state
    stop_reason: StopReason | None = None
    stop_detail: str | None = None  # why, in words, when the reason alone would mislead
    fatal: str | None = None
    bad_key: bool = False  # the fatal error was a 401: fix the key, nothing to resume
    download_failures: int = 0
    requests_sent: int = 0
    leftovers: dict[str, int] = field(default_factory=dict)  # jobs no longer planned, by state
    takes: dict[str, int] = field(default_factory=dict)  # extra takes (`takes.py`), by state
    spent_usd: Decimal = Decimal(0)  # the budget's figure at the end (see `Runner.spent_usd`)
    drain_timed_out: bool = False  # the drain after a stop ran out of time: in-flight work left to the rerun


class Runner:
    """Runs one plan in one run directory. Create, optionally `await prepare_assets()`, then `await run()`
    once. Each verified result goes to every sink (`land`, `deliver`; their lifecycle around the run is
    `run_with_sinks`'s); `progress` is called after changes with `stats` (a display rate-limits itself)."""

    def __init__(
        self,
        plan: Plan,
        run_dir: Path,
        journal: Journal,
        client: OxenClient,
        options: RunOptions,
        *,
        rng: random.Random | None = None,
        retry_invalid: bool = False,
        sinks: Sequence[ResultSink] = (),
        only: Collection[str] | None = None,
        progress: Progress | None = None,
    ) -> None:
        costs = {job.key: job.cost_usd or Decimal(0) for job in plan.jobs}
        state = scheduler.RunState(
            costs=costs,
            slots=scheduler.Slots(options.limits.concurrency, "provider slots"),
            budget=scheduler.Budget(options.budget_usd),
            retries=options.retry.generation_retries,
        )
        self.ctx = RunContext(
            plan,
            run_dir,
            journal,
            client,
            options,
            state,
            rng=rng or random.Random(),
            only=None if only is None else frozenset(only),
            breaker=None
            if options.halt_after_failures is None
            else FailureBreaker(options.halt_after_failures),
        )
        self.plan, self.journal, self.client, self.options = plan, journal, client, options
        self._retry_invalid = retry_invalid
        self._progress = progress
        self._assets = AssetPlacer(client, journal, upload=options.upload, inline=options.inline_assets)
        self.tracker = Tracker(self.ctx)
        self.submitter = Submitter(self.ctx, self._assets, self.tracker)
        self.fetcher = Fetcher(self.ctx, sinks)
        self.cancels = live_cancel.CancelWatcher(self.ctx, self.tracker)  # `batchgen cancel` while live
        self._initial_downloads: list[str] | None = None
        self._started_at = time.time()

    # -- the public surface ----------------------------------------------------------------------

    @property
    def stopping(self) -> StopReason | None:
        return self.ctx.state.stopping

    def request_stop(self, reason: StopReason = StopReason.INTERRUPTED) -> None:
        """Stop submitting; whatever is in flight is still tracked and downloaded."""
        self.ctx.stop(reason)

    def end_drain(self) -> None:
        """Stop waiting for what is in flight: the run ends now, without another request. Renders under
        way, POSTs not answered and downloads not finished stay in the journal (`submitting`, `queued`,
        `succeeded`, a `.part`): the rerun reconciles, tracks and resumes them, paying nothing twice."""
        if not self.ctx.drain_over:
            self.ctx.drain_over = True
            log.warning("the drain ran out of time: what is still in flight is left for the rerun")
            self.ctx.notify()

    def stats(self) -> RunStats:
        ctx, stream = self.ctx, self.tracker.stream
        counted = [
            counts for counts in (sink.progress() for sink in self.fetcher.sinks) if counts is not None
        ]
        delivered = (sum(done for done, _ in counted), sum(n for _, n in counted)) if counted else None
        return RunStats(
            counts={str(s): n for s, n in ctx.counts.items() if n},
            total=len(ctx.jobs),
            spent_usd=ctx.state.budget.spent,
            retried=ctx.state.retried,
            throttled_s=self.client.throttle.paused_s,
            stream_connected=stream.connected.is_set() or not ctx.state.slots.held,
            stopping=ctx.state.stopping,
            started_at=self._started_at,
            budget_usd=ctx.state.budget.limit,
            delivered=delivered,
        )

    async def prepare_assets(self) -> None:
        """Make every local reference image of the work left reachable before anything is submitted
        (raises UsageError when the upload repository is missing)."""
        with self.journal.observed(self.ctx.journaled):
            self._prepare()
            assets = [asset for key in self.ctx.state.pending for asset in self.ctx.jobs[key].assets]
            if assets:
                await self._assets.prepare(assets)

    async def run(self, stop: asyncio.Event | None = None) -> RunOutcome:
        """Run to the end. Setting `stop` stops submitting (in-flight work is still tracked and
        downloaded for up to the options' drain_timeout_s, then left to the journal)."""
        fatal: str | None = None
        bad_key = False
        with self.journal.observed(self.ctx.journaled):
            self._prepare()
            if self._has_work():
                try:
                    await self._run_tasks(stop)
                except* Unauthenticated as group:
                    fatal, bad_key = _first(group), True
                except* InsufficientCredits as group:
                    scheduler.stop(self.ctx.state, StopReason.NO_CREDITS)
                    fatal = _first(group)
                except* StorageError as group:
                    fatal = _first(group)
        return self._outcome(fatal, bad_key)

    # -- inside --------------------------------------------------------------------------------

    def _prepare(self) -> None:
        if self._initial_downloads is None:
            with no_gc_pauses():  # the journal and the run directory brought in line with a large plan
                self._initial_downloads = prepare(self.ctx, retry_invalid=self._retry_invalid)
            for key in self._initial_downloads:
                self.ctx.downloads.put_nowait(key)

    def _has_work(self) -> bool:
        state = self.ctx.state
        return bool(state.pending or state.slots.held or self.fetcher.busy())

    def _finished(self) -> bool:
        return self.ctx.drain_over or (
            scheduler.finished(self.ctx.state, downloads_left=self.fetcher.busy()) and not self.cancels.busy
        )

    async def _run_tasks(self, stop: asyncio.Event | None) -> None:
        ctx = self.ctx
        async with self.fetcher, asyncio.TaskGroup() as group:
            background = [
                group.create_task(self.tracker.stream.run(), name="event-stream"),
                group.create_task(self.tracker.reconcile_loop(), name="reconcile"),
                group.create_task(self.cancels.run(), name="cancel-requests"),
                *(
                    group.create_task(self.fetcher.worker(), name=f"download-{i}")
                    for i in range(self.options.limits.downloads)
                ),
            ]
            if self._progress is not None:
                background.append(group.create_task(self._show(self._progress), name="progress"))
            if stop is not None:
                background.append(group.create_task(self._stop_when(stop), name="stop"))
            submitting = group.create_task(self._submit_all(group), name="submit-loop")
            await ctx.wait_until(lambda: ctx.drain_over or (submitting.done() and self._finished()))
            for task in background:
                task.cancel()
            if ctx.drain_over:  # POSTs under way stay `submitting`: the rerun reconciles them first
                for task in (submitting, *self.submitter.tasks):
                    task.cancel()
        if self._progress is not None:
            self._progress(self.stats)  # the last changes, which the cancelled observer may not have seen
        self.journal.flush()  # a commit that failed in the background (a full disk) is reported here

    async def _submit_all(self, group: asyncio.TaskGroup) -> None:
        try:
            await self._wait_for_stream()
            await self.submitter.submit_all(group, finished=self._finished)
        finally:
            self.ctx.notify()

    async def _show(self, progress: Progress) -> None:
        """Tell the progress observer of each change (those of one turn of the loop at once)."""
        while True:
            await self.ctx.changed.wait()
            progress(self.stats)
            # After the observer, whose own changes (a stop) must not wake it again; waiters clear it first.
            self.ctx.changed.clear()

    async def _stop_when(self, stop: asyncio.Event) -> None:
        """Once `stop` is set: stop submitting, and end the drain when its time has run out."""
        await stop.wait()
        self.request_stop(StopReason.INTERRUPTED)
        await asyncio.sleep(self.options.drain_timeout_s)  # the drain is bounded: then the run ends
        self.end_drain()

    async def _wait_for_stream(self) -> None:
        try:  # no event may fire before we listen...
            async with asyncio.timeout(self.options.timeouts.stream_idle_s):
                await self.tracker.stream.wait_connected()
        except TimeoutError:  # ...unless there is no stream to listen to: poll instead
            log.warning(
                "the event stream is unavailable; tracking by polling every %.0fs until it is back",
                self.options.poll_interval_s,
            )

    def _outcome(self, fatal: str | None, bad_key: bool) -> RunOutcome:
        counts: Counter[str] = Counter()
        leftovers: Counter[str] = Counter()
        takes: Counter[str] = Counter()
        for key in self.ctx.jobs:
            bucket = takes if is_take(key) else leftovers if key in self.ctx.state.leftovers else counts
            bucket[str(self.journal.get(key).state)] += 1
        return RunOutcome(
            counts=dict(counts),
            stop_reason=self.ctx.state.stopping,
            stop_detail=self.ctx.state.stop_detail,
            fatal=fatal,
            bad_key=bad_key,
            download_failures=self.fetcher.failures,
            requests_sent=self.client.requests_sent,
            leftovers=dict(leftovers),
            takes=dict(takes),
            spent_usd=self.ctx.state.budget.spent,
            drain_timed_out=self.ctx.drain_over,
        )


def _first(group: BaseExceptionGroup[BaseException]) -> str:
    """What the run reports of a failure: the first error of a group, however deeply tasks nest."""
    first = group.exceptions[0]
    return _first(first) if isinstance(first, BaseExceptionGroup) else str(first)
