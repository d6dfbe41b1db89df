"""The run shell: one TaskGroup that carries out the scheduler's decisions, with the event stream, the
reconcile loop and the download workers, journaling each step before the next.

Policy lives in pure modules (`run.scheduler`, `retry`, `run.overdue`, `client.reconcile`, `states`); the
work is done by `startup` (what is missing), `submitter`, `tracker` and `fetcher`, which share a `RunContext`.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

import aiohttp

from batchgen.client.api import OxenClient
from batchgen.client.events import EventStream
from batchgen.config import RunOptions
from batchgen.errors import InsufficientCredits, StorageError, Unauthenticated
from batchgen.journal.store import Journal
from batchgen.planning import Plan
from batchgen.run import live_cancel, scheduler
from batchgen.run.assets import AssetPlacer
from batchgen.run.context import RunContext
from batchgen.run.fetcher import Fetcher
from batchgen.run.scheduler import StopReason
from batchgen.run.startup import prepare
from batchgen.run.submitter import Submitter
from batchgen.run.takes import is_take
from batchgen.run.tracker import Tracker
from batchgen.sinks.base import LocalSink, ResultSink

__all__ = ["RunOutcome", "RunStats", "Runner", "StopReason"]

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
    delivered: tuple[int, int] | None = None  # files delivered to the repository / to deliver so far


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
    once. `on_change` is called after every change (progress displays read `stats()`)."""

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
        sinks: Sequence[ResultSink] | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        only: Collection[str] | None = None,
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
            sleep=sleep,
            only=None if only is None else frozenset(only),
        )
        self.plan, self.run_dir, self.journal, self.client, self.options = (
            plan,
            run_dir,
            journal,
            client,
            options,
        )
        self._retry_invalid = retry_invalid
        self._assets = AssetPlacer(client, journal, upload=options.upload, inline=options.inline_assets)
        self.submitter = Submitter(self.ctx, self._assets)
        self.tracker = Tracker(self.ctx)
        self.fetcher = Fetcher(self.ctx, sinks if sinks is not None else [LocalSink()])
        self.cancels = live_cancel.CancelWatcher(self.ctx)  # `batchgen cancel` while the run is live
        self._initial_downloads: list[str] | None = None
        self._started_at = time.time()

    # -- the public surface ----------------------------------------------------------------------

    @property
    def jobs(self) -> dict[str, object]:
        return dict(self.ctx.jobs)

    @property
    def stopping(self) -> StopReason | None:
        return self.ctx.state.stopping

    @property
    def on_change(self) -> Callable[[], None]:
        return self.ctx.on_change

    @on_change.setter
    def on_change(self, callback: Callable[[], None]) -> None:
        self.ctx.on_change = callback

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
        ctx, stream = self.ctx, self.ctx.stream
        return RunStats(
            counts={str(s): n for s, n in ctx.counts.items() if n},
            total=len(ctx.jobs),
            spent_usd=ctx.state.budget.spent,
            retried=ctx.state.retried,
            throttled_s=self.client.throttle.paused_s,
            stream_connected=stream is None or stream.connected.is_set() or not ctx.state.slots.held,
            stopping=ctx.state.stopping,
            started_at=self._started_at,
            budget_usd=ctx.state.budget.limit,
        )

    def spent_usd(self) -> Decimal:
        """What the budget counts: the run directory's spend when the run started (`batchgen.journal.spend`),
        plus the quote of each generation this run has created or may be creating."""
        return self.ctx.state.budget.spent

    async def prepare_assets(self) -> None:
        """Make every local reference image of the work left reachable before anything is submitted
        (raises UsageError when the upload repository is missing)."""
        self._prepare()
        assets = [asset for key in self.ctx.state.pending for asset in self.ctx.jobs[key].assets]
        if assets:
            await self._assets.prepare(assets)

    async def run(self) -> RunOutcome:
        self._prepare()
        fatal: str | None = None
        bad_key = False
        if self._has_work():
            try:
                await self._run_tasks()
            except* Unauthenticated as group:
                fatal, bad_key = str(group.exceptions[0]), True
            except* InsufficientCredits as group:
                scheduler.stop(self.ctx.state, StopReason.NO_CREDITS)
                fatal = str(group.exceptions[0])
            except* StorageError as group:
                fatal = str(group.exceptions[0])
        return self._outcome(fatal, bad_key)

    # -- inside --------------------------------------------------------------------------------

    def _prepare(self) -> None:
        if self._initial_downloads is None:
            self._initial_downloads = prepare(self.ctx, retry_invalid=self._retry_invalid)
            for key in self._initial_downloads:
                self.fetcher.queue.put_nowait(key)

    def _has_work(self) -> bool:
        state = self.ctx.state
        return bool(state.pending or state.slots.held or self.fetcher.busy())

    def _finished(self) -> bool:
        return self.ctx.drain_over or (
            scheduler.finished(self.ctx.state, downloads_left=self.fetcher.busy()) and not self.cancels.busy
        )

    async def _run_tasks(self) -> None:
        ctx = self.ctx
        stream = EventStream(
            self.client,
            on_completion=self.tracker.on_event,
            on_connect=self.tracker.want_reconcile,
            idle_timeout_s=self.options.timeouts.stream_idle_s,
        )
        ctx.stream = stream
        timeouts = self.options.timeouts
        session_timeout = aiohttp.ClientTimeout(
            total=None, connect=timeouts.connect_s, sock_read=timeouts.download_read_s
        )
        async with aiohttp.ClientSession(timeout=session_timeout) as session:
            self.fetcher.session = session
            async with asyncio.TaskGroup() as group:
                background = [
                    group.create_task(stream.run(), name="event-stream"),
                    group.create_task(self.tracker.reconcile_loop(), name="reconcile"),
                    group.create_task(self.cancels.run(), name="cancel-requests"),
                    *(
                        group.create_task(self.fetcher.worker(), name=f"download-{i}")
                        for i in range(self.options.limits.downloads)
                    ),
                ]
                submitting = group.create_task(self._submit_all(stream, group), name="submit-loop")
                await ctx.wait_until(lambda: ctx.drain_over or (submitting.done() and self._finished()))
                for task in background:
                    task.cancel()
                if ctx.drain_over:  # POSTs under way stay `submitting`: the rerun reconciles them first
                    for task in (submitting, *self.submitter.tasks):
                        task.cancel()
            await self.fetcher.close()
            for sink in self.fetcher.sinks:
                await sink.close()
        self.journal.flush()  # a commit that failed in the background (a full disk) is reported here

    async def _submit_all(self, stream: EventStream, group: asyncio.TaskGroup) -> None:
        try:
            await self._wait_for_stream(stream)
            await self.submitter.submit_all(group, finished=self._finished)
        finally:
            self.ctx.notify()

    async def _wait_for_stream(self, stream: EventStream) -> None:
        try:  # no event may fire before we listen...
            async with asyncio.timeout(self.options.timeouts.stream_idle_s):
                await stream.wait_connected()
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
