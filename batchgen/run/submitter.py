"""Submitting: the loop that carries out the scheduler's submit decisions, one POST per job sent
through the outbox (`journal.outbox`: journaled `submitting` first, a lost answer looked for before
it is sent again), and the look at the provider's rows that finds a submission."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Mapping
from functools import partial
from typing import Any

from batchgen.client.reconcile import (
    Pending,
    earliest_match,
    match_submissions,
    provider_time,
    search_scopes,
    unaccounted_rows,
)
from batchgen.errors import ApiError, HistoryUnreadable
from batchgen.journal.outbox import CannotTell, NotSent, Outbox
from batchgen.journal.store import JobRecord
from batchgen.logs import job_key
from batchgen.planning import Job, canonical_json, resolve_request
from batchgen.retry import Action
from batchgen.run import scheduler
from batchgen.run.assets import AssetPlacer, AssetUnavailable
from batchgen.run.context import RunContext
from batchgen.run.takes import adopt_extra_takes
from batchgen.run.tracker import Tracker
from batchgen.states import JobState

log = logging.getLogger(__name__)


class Submitter:
    """Submits the plan's jobs as the scheduler allows, and finds the ones whose answer was lost."""

    def __init__(self, ctx: RunContext, assets: AssetPlacer, tracker: Tracker) -> None:
        self.ctx = ctx
        self.assets = assets
        self.tracker = tracker  # a generation the submitter claims is the tracker's to follow
        self.outbox: Outbox[str, Mapping[str, Any]] = Outbox(
            self._look,
            request_s=ctx.options.timeouts.request_s,
            policy=ctx.client.retry_policy,
            rng=ctx.rng,
        )
        self._lock = asyncio.Lock()  # looks at the provider are serialised
        self._posts = itertools.count(1)  # a ticket per POST, in the order they are sent
        self._sent = 0  # the ticket of the last POST sent
        self._unanswered: dict[int, str] = {}  # ticket -> body of each POST not answered yet
        self.tasks: set[asyncio.Task[None]] = set()  # one per job being submitted (cancelled if a drain ends)

    # -- the loop --------------------------------------------------------------------------------

    async def submit_all(self, group: asyncio.TaskGroup, *, finished: Any) -> None:
        """Look for what a crash left `submitting`, then submit until the scheduler says no more."""
        ctx, state = self.ctx, self.ctx.state
        ambiguous = [k for k in state.slots.held if ctx.record(k).state is JobState.SUBMITTING]
        try:
            await self._resolve_leftovers(ambiguous)
        except CannotTell as exc:
            log.error("cannot reconcile earlier submissions (%s); nothing new is sent until that works", exc)
            self._unresolved(ambiguous, exc)
            return
        while not finished():
            state.pause.extend(ctx.client.throttle.until)
            decision = scheduler.next_submission(state, time.monotonic())
            if isinstance(decision, scheduler.Submit):
                scheduler.dispatch(state, decision.key)
                task = group.create_task(self.submit(decision.key), name=f"submit-{decision.key[:8]}")
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)
            elif isinstance(decision, scheduler.Stop):
                ctx.stop(decision.reason)
                return
            elif decision is None and state.stopping is not None:
                return
            else:
                until = decision.until if isinstance(decision, scheduler.Wait) else None
                await self._wait(None if until is None else until - time.monotonic())

    async def _wait(self, seconds: float | None) -> None:
        """Until something changes (a slot given back, a stop), or `seconds` pass."""
        self.ctx.changed.clear()
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(None if seconds is None else max(0.0, seconds)):
                await self.ctx.changed.wait()

    # -- one job ---------------------------------------------------------------------------------

    async def submit(self, key: str) -> None:
        ctx = self.ctx
        try:
            body = await self._request_body(ctx.jobs[key])
        except AssetUnavailable as exc:
            ctx.release(key, JobState.FAILED, str(exc), error=str(exc))
            return
        sent = canonical_json(body)
        try:
            outcome = await self.outbox.send(
                key,
                partial(self._intend, key, sent),
                partial(self._post, key, body, sent),
                what=f"enqueue of {ctx.label(key)}",
                extra=job_key(key),
                not_sent=partial(self._not_created, key),
            )
        except CannotTell as exc:
            log.error(
                "cannot tell whether job %s was created (%s); stopping submissions",
                ctx.label(key),
                exc,
                extra=job_key(key),
            )
            self._unresolved([key], exc)
            return
        if isinstance(outcome, NotSent):
            self._not_sent(key, outcome)

    def _unresolved(self, keys: list[str], exc: CannotTell) -> None:
        """Whether these jobs' POSTs took effect could not even be asked: they stay `submitting`, for
        the next run to look for first, nothing more is sent into an API that is down, and the closing
        words say what failed and what it means."""
        for key in keys:
            scheduler.release(self.ctx.state, key, JobState.SUBMITTING)
        jobs, they = ("1 job", "it stays") if len(keys) == 1 else (f"{len(keys)} jobs", "they stay")
        error = exc.error
        why = str(error) if isinstance(error, HistoryUnreadable) else f"the API kept failing ({error})"
        self.ctx.stop(
            scheduler.StopReason.API_UNAVAILABLE,
            f"whether {jobs} reached the provider cannot be told: {why}. {they.capitalize()} `submitting`, "
            "never sent again before it is found or ruled out: run the same command again to look again.",
        )

    async def _intend(self, key: str, sent: str) -> float | None:
        """Journal `submitting` with the exact body, durably: after a crash the job is looked for, not
        sent again. The time it is sent; None when `batchgen cancel` came between dispatch and POST."""
        ctx = self.ctx
        await ctx.client.throttle.wait_clear()  # wait out a 429 pause before journaling `submitting`
        if key in ctx.state.withdrawn:
            ctx.release(key, JobState.PENDING, "not sent: cancelled")
            return None
        now = time.time()
        ctx.journal.transition(
            key,
            JobState.SUBMITTING,
            attempts=ctx.record(key).attempts + 1,
            sent_request=sent,
            submitted_at=now,
            server_submitted_at=ctx.client.server_clock.to_server(now),  # what a look compares
            generation_id=None,
            error=None,
        )
        await ctx.journal.durable()
        return now

    async def _post(self, key: str, body: Mapping[str, Any], sent: str) -> None:
        """One enqueue. The generation is claimed (or, the answer lost, the job is being looked for)
        before a look that listed rows while it was unanswered matches them (`_answered`), so two
        replicas never adopt one row."""
        ticket = self._sent = next(self._posts)
        self._unanswered[ticket] = sent
        try:
            generation_ids = await self.ctx.client.enqueue(body)
        finally:
            del self._unanswered[ticket]
            self.ctx.notify()
        self.tracker.claim(key, generation_ids[0], JobState.QUEUED)

    async def _not_created(self, key: str, error: ApiError) -> None:
        """Surely not created (a 429 is answered before anything is done; a refused connection sent
        nothing): journaled before the wait, so a crash during it leaves nothing to look for."""
        self.ctx.journal.transition(key, JobState.PENDING, f"not created: {type(error).__name__}", error=None)
        await self.ctx.journal.durable()

    def _not_sent(self, key: str, outcome: NotSent) -> None:
        ctx, error = self.ctx, outcome.error
        if outcome.action is Action.STOP_RUN:
            ctx.release(key, JobState.PENDING, "no credits", error=str(getattr(error, "detail", error)))
            ctx.stop(scheduler.StopReason.NO_CREDITS)
        elif outcome.action is Action.REJECT_JOB:
            ctx.release(key, JobState.INVALID, "rejected at enqueue", error=str(error))
        else:
            ctx.release(key, JobState.PENDING, "enqueue kept failing", error="enqueue kept failing")
            scheduler.requeue(ctx.state, key, front=True)
            ctx.stop(
                scheduler.StopReason.API_UNAVAILABLE,
                f"the API kept failing ({error}): run the same command again to resume.",
            )

    async def _request_body(self, job: Job) -> dict[str, Any]:
        if not job.assets:
            return dict(job.request)
        urls = {asset.sha256: await self.assets.url(asset) for asset in job.assets}
        return resolve_request(job.request, urls)

    # -- finding lost submissions ----------------------------------------------------------------

    async def _resolve_leftovers(self, keys: list[str]) -> None:
        """Submissions a stopped run left `submitting`: adopted where found; the ones the provider
        surely never made go back to pending, first in line."""
        _, absent = await self.outbox.look_for(
            {key: self.ctx.record(key).submitted_at or 0.0 for key in keys}
        )
        for key in absent:
            self.ctx.release(key, JobState.PENDING, "not found at the provider")
            scheduler.requeue(self.ctx.state, key, front=True)

    async def _look(self, keys: list[str]) -> dict[str, Mapping[str, Any]]:
        """One look at the provider's rows for these jobs' submissions; each row found is adopted at
        once. Looks are serialised, and match only once every identical POST sent before the rows were
        listed has been answered and claimed (or is known lost and being looked for), so two replicas
        never adopt one row, nor take one another's as an extra take."""
        ctx = self.ctx
        offset = ctx.client.server_clock.offset
        pending = [pending_submission(ctx.record(key), offset) for key in keys]
        async with self._lock:
            rows = await self._rows_for(pending)
            # A row listed may be an identical POST's of ours whose answer was still on its way:
            # matched only once that POST is answered and claimed, or known lost (`outbox.looking`).
            bodies, listed_after = {canonical_json(p.body) for p in pending}, self._sent
            await ctx.wait_until(partial(self._answered, bodies, listed_after))
            claimed = ctx.journal.claimed_generation_ids()
            found = match_submissions(pending, rows, claimed, ctx.plan.model_defaults)
            for key, row in found.items():
                self._adopt_row(key, row)
            # Rows we cannot rule out as ours, beyond the one adopted: fetched too (`takes`).
            others = [pending_submission(ctx.record(k), offset) for k in self.outbox.looking.difference(keys)]
            extra = unaccounted_rows(pending, rows, claimed, found, ctx.plan.model_defaults, others=others)
            adopt_extra_takes(ctx, self.tracker, extra)
        return found

    async def _rows_for(self, pending: list[Pending]) -> list[Mapping[str, Any]]:
        """The provider's rows the pending submissions may be. A history that cannot be read back far
        enough is no obstacle when what was found (the active rows) already accounts for all of them."""
        try:
            return await self.ctx.client.find_rows(
                search_scopes(p.body for p in pending), earliest_match(pending)
            )
        except HistoryUnreadable as exc:
            claimed = self.ctx.journal.claimed_generation_ids()
            found = match_submissions(pending, exc.rows, claimed, self.ctx.plan.model_defaults)
            if len(found) < len(pending):
                raise
            log.warning("%s; the active rows account for the submissions looked for", exc)
            return exc.rows

    def _answered(self, bodies: set[str], up_to: int) -> bool:
        """Every POST of one of `bodies` sent up to ticket `up_to` has been answered (or lost)."""
        return not any(ticket <= up_to and body in bodies for ticket, body in self._unanswered.items())

    def _adopt_row(self, key: str, row: Mapping[str, Any]) -> None:
        ctx = self.ctx
        generation_id = str(row["generation_id"])
        status = row.get("status")
        log.info(
            "job %s was already created at the provider as %s (%s)",
            ctx.label(key),
            generation_id,
            status,
            extra=job_key(key),
        )
        if status == "cancelled":  # claimed (never adopted by another job), and the job goes again
            ctx.journal.claim_generation(
                key, generation_id, ctx.record(key).attempts, JobState.PENDING, api=ctx.options.api_identity
            )
            scheduler.release(ctx.state, key, JobState.PENDING)
            scheduler.requeue(ctx.state, key, front=True)
            ctx.notify()
            return
        self.tracker.claim(key, generation_id, JobState.QUEUED)
        if status != "queued":
            self.tracker.apply_row(key, row)  # found running or finished: the tracker takes it from there


def pending_submission(record: JobRecord, offset: float | None) -> Pending:
    """A journaled submission to look for, timed on the provider's clock (`offset`: measured now)."""
    at = provider_time(record.server_submitted_at, record.submitted_at, offset)
    return Pending(record.key, record.sent_body() or {}, at)
