"""Tracking generations at the provider: the claim of each generation, completion events from the one
shared stream (the tracker's own), the reconcile after every (re)connect, and the safety look (timed
by `overdue`) for completions the stream missed. A succeeded generation goes to the download queue."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Mapping
from typing import Any

from batchgen.client.api import Completion
from batchgen.client.events import EventStream
from batchgen.client.reconcile import search_scopes
from batchgen.errors import ApiError, NotFound
from batchgen.logs import job_key
from batchgen.planning import Job, Plan
from batchgen.run import scheduler
from batchgen.run.context import RunContext
from batchgen.run.overdue import RenderWatch, Waiting
from batchgen.states import AT_PROVIDER, JobState

log = logging.getLogger(__name__)

EXPECTED_RENDER_S = {"video": 300.0, "image": 30.0}  # the docs: video 1-5 minutes, images 5-30 s
ORPHAN_LIMIT = 10_000  # completions of generations not (yet) claimed that are kept


class Tracker:
    """Turns what the provider says (events, listed rows) into journal changes and downloads. Its
    `stream` and `reconcile_loop` are tasks of the run's group; the submitter `claim`s through it."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.watch = RenderWatch(ctx.options.expected_render_s or expected_render(ctx.plan))
        self.stream = EventStream(
            ctx.client,
            on_completion=self.on_event,
            on_connect=self.want_reconcile,
            idle_timeout_s=ctx.options.timeouts.stream_idle_s,
        )
        self._orphans: dict[str, Completion] = {}
        self._stream_epoch: dict[str, int] = {}  # job key -> stream connections when it was claimed
        self._wanted = False  # a (re)connect asks for a full reconcile
        self._wake = asyncio.Event()  # wakes the reconcile loop: a reconcile wanted, or a new deadline

    # -- generations the run now waits for -------------------------------------------------------

    def claim(self, key: str, generation_id: str, state: JobState, **changes: Any) -> None:
        """Journal that `generation_id` belongs to `key` (atomically with the state change), and track it."""
        ctx = self.ctx
        attempt = ctx.record(key).attempts
        ctx.journal.claim_generation(
            key, generation_id, attempt, state, api=ctx.options.api_identity, **changes
        )
        log.debug("submitted %s as generation %s", ctx.label(key), generation_id, extra=job_key(key))
        ctx.by_generation[generation_id] = key
        self.track(key, generation_id)
        ctx.notify()

    def track(self, key: str, generation_id: str) -> None:
        """Wait for a claimed generation: count its deadline; apply a completion heard before the claim."""
        self._stream_epoch[key] = self.stream.connections
        self._wake.set()  # the reconcile loop counts this generation's deadline in
        orphan = self._orphans.pop(generation_id, None)
        if orphan is not None:
            self.on_completion(orphan)

    # -- what the provider says ------------------------------------------------------------------

    def on_event(self, completion: Completion) -> None:
        key = self.ctx.by_generation.get(completion.generation_id)
        if key is not None:  # other work on the account proves nothing about ours
            record = self.ctx.record(key)
            self.watch.event_arrived(namespace(self.ctx.jobs[key]))
            if record.state in AT_PROVIDER and record.submitted_at is not None:
                self.watch.observe_render(time.time() - record.submitted_at)
        self.on_completion(completion)

    def on_completion(self, completion: Completion) -> None:
        ctx = self.ctx
        key = ctx.by_generation.get(completion.generation_id)
        if key is None:  # may be ours, its POST answer not read yet; keep the newest few
            self._orphans[completion.generation_id] = completion
            if len(self._orphans) > ORPHAN_LIMIT:
                del self._orphans[next(iter(self._orphans))]
            return
        record = ctx.record(key)
        if record.state not in AT_PROVIDER or record.generation_id != completion.generation_id:
            return  # already handled (an event and a reconcile can both report it)
        if completion.status == "succeeded":
            log.debug(
                "generation %s of %s succeeded", completion.generation_id, ctx.label(key), extra=job_key(key)
            )
            if completion.url:
                ctx.urls[key] = completion.url
            ctx.release(key, JobState.SUCCEEDED, "succeeded", completed_at=time.time())
            ctx.downloads.put_nowait(key)
        else:
            self.on_failure(key, completion.error)

    def on_failure(self, key: str, error: str | None) -> None:
        ctx = self.ctx
        outcome = scheduler.after_generation_failed(ctx.state, key, error)
        log.warning(
            "job %s failed (%s): %s", ctx.label(key), outcome.detail, outcome.error, extra=job_key(key)
        )
        ctx.journal.transition(key, outcome.state, outcome.detail, error=outcome.error)
        if outcome.stop is not None:
            ctx.stop(outcome.stop)
        scheduler.apply_failure(ctx.state, key, outcome)
        ctx.notify()

    def apply_row(self, key: str, row: Mapping[str, Any]) -> None:
        status = row.get("status")
        record = self.ctx.record(key)
        if status == "processing" and record.state is JobState.QUEUED:
            self.ctx.journal.transition(key, JobState.PROCESSING, started_at=time.time())
        elif status in ("succeeded", "failed"):
            self.on_completion(
                Completion(
                    str(row["generation_id"]),
                    str(status),
                    url=row.get("result_url"),
                    error=row.get("error_message"),
                )
            )
        elif status == "cancelled" and record.state in AT_PROVIDER:
            self.ctx.release(key, JobState.CANCELLED, "cancelled at the provider")

    # -- looking for what the stream missed ------------------------------------------------------

    def want_reconcile(self) -> None:
        """After every (re)connect: anything may have finished while we were not listening."""
        self._wanted = True
        self._wake.set()

    async def reconcile_loop(self) -> None:
        """Reconcile after every (re)connect; while connected, when an in-flight generation is overdue
        against the renders this run has seen; poll while disconnected."""
        stream = self.stream
        while True:
            if stream.connected.is_set():
                due = self.watch.next_look_at(self._waiting())
                wait = None if due is None else due - time.time()
            else:
                wait = self.ctx.options.poll_interval_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if wait is None else max(0.0, wait)):
                    await self._wake.wait()
            self._wake.clear()
            if stream.connected.is_set() and not self._wanted:
                due = self.watch.next_look_at(self._waiting())
                if due is None or due > time.time():
                    continue  # woken by a new generation in flight: its deadline is now counted
            self._wanted = False
            self.watch.looked(time.time())
            try:
                await self.reconcile_in_flight()
            except ApiError as exc:
                log.info("reconcile failed (%s); will try again", exc)

    def _waiting(self) -> list[Waiting]:
        records = [self.ctx.record(key) for key in self.ctx.state.slots.held]
        return [
            Waiting(r.submitted_at or 0.0, namespace(self.ctx.jobs[r.key]))
            for r in records
            if r.state in AT_PROVIDER
        ]

    async def reconcile_in_flight(self) -> None:
        """Ask the provider about every generation we wait for: the stream may have missed it."""
        ctx = self.ctx
        waiting = {
            ctx.record(k).generation_id: k
            for k in ctx.state.slots.held
            if ctx.record(k).state in AT_PROVIDER and ctx.record(k).generation_id
        }
        if not waiting:
            return
        connections = self.stream.connections
        active: dict[str, Mapping[str, Any]] = {}
        for scope in search_scopes(ctx.record(k).sent_body() or {} for k in waiting.values()):
            for listed in await ctx.client.list_queue(model=scope.model, namespace=scope.namespace):
                active[str(listed["generation_id"])] = listed
        for generation_id, key in waiting.items():
            assert generation_id is not None
            row = active.get(generation_id)
            if row is None:  # finished, or past a cap of the lean list: ask for it alone
                try:
                    row = await ctx.client.get_generation(generation_id)
                except NotFound:
                    self._unknown_generation(key, generation_id)
                    continue
            if row.get("status") in ("succeeded", "failed") and ctx.record(key).state in AT_PROVIDER:
                self._learn_from_row(row, stream_missed=self._stream_epoch.get(key) == connections)
            self.apply_row(key, row)
            if row.get("status") in ("queued", "processing") and self._overdue(key):
                await self._cancel_overdue(key, generation_id)

    def _learn_from_row(self, row: Mapping[str, Any], *, stream_missed: bool) -> None:
        """A look found a finished generation: learn its render time; if the stream was connected the
        whole time since it was submitted, the stream missed its event."""
        enqueued, completed = row.get("enqueued_at"), row.get("completed_at")
        if isinstance(enqueued, int | float) and isinstance(completed, int | float):
            self.watch.observe_render(float(completed) - float(enqueued))
        if stream_missed and self.stream.connected.is_set():
            if not self.watch.missed_events:
                log.warning(
                    "the event stream did not announce generation %s (nor, perhaps, others): looking "
                    "for completions sooner, at 1.5x the longest render seen",
                    row.get("generation_id"),
                )
            self.watch.event_missed()

    def _unknown_generation(self, key: str, generation_id: str) -> None:
        """The provider has never heard of a generation we journaled: another account or API base.
        Waiting would hang the run, and resubmitting might pay twice: fail it and say why."""
        if self.ctx.record(key).generation_id != generation_id:
            return
        message = (
            f"the API does not know generation {generation_id} (was it created with another key "
            f"or --api-base?); `batchgen run --retry-invalid` would submit it again"
        )
        log.error("job %s: %s", self.ctx.label(key), message, extra=job_key(key))
        self.ctx.release(key, JobState.INVALID, "unknown at the provider", error=message)

    async def _cancel_overdue(self, key: str, generation_id: str) -> None:
        ctx = self.ctx
        await ctx.client.cancel(generation_id)
        row = await ctx.client.get_generation(generation_id)  # it may have finished meanwhile
        record = ctx.record(key)
        if record.generation_id != generation_id or record.state not in AT_PROVIDER:
            return
        if row.get("status") == "cancelled":
            self.on_failure(
                key, f"no result within {ctx.options.timeouts.generation_s:.0f}s; cancelled at the provider"
            )
        else:
            self.apply_row(key, row)

    def _overdue(self, key: str) -> bool:
        limit = self.ctx.options.timeouts.generation_s
        submitted_at = self.ctx.record(key).submitted_at
        return limit is not None and submitted_at is not None and time.time() - submitted_at > limit


def namespace(job: Job) -> str | None:
    """The namespace a job bills to (None: the caller's own): its request's `target_namespace`."""
    value = job.request.get("target_namespace")
    return value if isinstance(value, str) and value else None


def expected_render(plan: Plan) -> float:
    return max((EXPECTED_RENDER_S.get(job.media_type, 300.0) for job in plan.jobs), default=300.0)
