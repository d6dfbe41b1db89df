"""Submitting: the loop that carries out the scheduler's submit decisions, one POST per job journaled
`submitting` first, and the reconcile that finds a submission whose answer was lost before it is sent
again (the API has no idempotency key)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Iterable, Mapping
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
from batchgen.errors import ApiError, HistoryUnreadable, Unauthenticated
from batchgen.journal.store import JobRecord
from batchgen.logs import job_key
from batchgen.planning import Job, canonical_json, resolve_request
from batchgen.retry import Action, Verdict, attempts, decide, retryable
from batchgen.run import scheduler
from batchgen.run.assets import AssetPlacer, AssetUnavailable
from batchgen.run.context import RunContext
from batchgen.run.takes import adopt_extra_takes
from batchgen.states import JobState

log = logging.getLogger(__name__)


class Submitter:
    """Submits the plan's jobs as the scheduler allows, and reconciles ambiguous submissions."""

    def __init__(self, ctx: RunContext, assets: AssetPlacer) -> None:
        self.ctx = ctx
        self.assets = assets
        self._lock = asyncio.Lock()  # looks at the provider are serialised
        self._posts = itertools.count(1)  # a ticket per POST, in the order they are sent
        self._sent = 0  # the ticket of the last POST sent
        self._unanswered: dict[int, str] = {}  # ticket -> body of each POST not answered yet
        self._looking: set[str] = set()  # jobs whose lost submissions are being (or about to be) looked for
        self.tasks: set[asyncio.Task[None]] = set()  # one per job being submitted (cancelled if a drain ends)

    # -- the loop --------------------------------------------------------------------------------

    async def submit_all(self, group: asyncio.TaskGroup, *, finished: Any) -> None:
        """Reconcile what a crash left ambiguous, then submit until the scheduler says no more."""
        ctx, state = self.ctx, self.ctx.state
        ambiguous = [k for k in state.slots.held if ctx.record(k).state is JobState.SUBMITTING]
        try:
            await self.reconcile(ambiguous, at_start=True)
        except ApiError as exc:
            if isinstance(exc, Unauthenticated):
                raise
            log.error("cannot reconcile earlier submissions (%s); nothing new is sent until that works", exc)
            for key in ambiguous:  # left `submitting` for the next run to reconcile
                scheduler.release(state, key, JobState.SUBMITTING)
            ctx.stop(scheduler.StopReason.API_UNAVAILABLE, unresolved(len(ambiguous), exc))
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
        job = ctx.jobs[key]
        try:
            body = await self._request_body(job)
        except AssetUnavailable as exc:
            ctx.release(key, JobState.FAILED, str(exc), error=str(exc))
            return
        sent, policy = canonical_json(body), ctx.client.retry_policy
        what, limit = f"the enqueue of {ctx.label(key)}", policy.request_attempts
        tries = attempts(
            policy, limit=limit, on=retryable, what=what, sleep=ctx.sleep, rng=ctx.rng, extra=job_key(key)
        )
        async for attempt in tries:
            with attempt:
                await ctx.client.throttle.wait_clear()  # wait out a 429 pause before journaling `submitting`
                if key in ctx.state.withdrawn:  # `batchgen cancel` came between dispatch and POST: never sent
                    ctx.release(key, JobState.PENDING, "not sent: cancelled")
                    return
                await self._journal_submitting(key, sent)
                try:
                    error = await self._post(key, body, sent)
                    if error is None:
                        return
                    verdict = decide(
                        error, attempt=attempt.number, policy=policy, rng=ctx.rng, idempotent=False
                    )
                    if not await self._after_failed_post(key, error, verdict):
                        return
                except ApiError as exc:
                    if isinstance(exc, Unauthenticated):
                        raise
                    # Could not even ask whether the POST took effect: leave the job `submitting`, so the
                    # next run reconciles it first, and stop sending more into an API that is down.
                    log.error(
                        "cannot tell whether job %s was created (%s); stopping submissions",
                        ctx.label(key),
                        exc,
                        extra=job_key(key),
                    )
                    scheduler.release(ctx.state, key, JobState.SUBMITTING)
                    ctx.stop(scheduler.StopReason.API_UNAVAILABLE, unresolved(1, exc))
                    return
                raise error  # surely not created: the loop sends it again, or gives up
        ctx.release(key, JobState.PENDING, "enqueue kept failing", error="enqueue kept failing")
        scheduler.requeue(ctx.state, key, front=True)
        ctx.stop(
            scheduler.StopReason.API_UNAVAILABLE,
            f"the API kept failing ({tries.error}): run the same command again to resume.",
        )

    async def _journal_submitting(self, key: str, sent: str) -> None:
        ctx, now = self.ctx, time.time()
        ctx.journal.transition(
            key,
            JobState.SUBMITTING,
            attempts=ctx.record(key).attempts + 1,
            sent_request=sent,
            submitted_at=now,
            server_submitted_at=ctx.client.server_clock.to_server(now),  # what a reconcile compares
            generation_id=None,
            error=None,
        )
        await ctx.journal.durable()  # before the POST: after a crash, this job is looked for, not resent

    async def _post(self, key: str, body: Mapping[str, Any], sent: str) -> ApiError | None:
        """One enqueue; the error when it failed. The generation is claimed (or, the answer lost, the
        job is being looked for) before a reconcile that listed rows while it was unanswered matches
        them (`_answered`), so two replicas never adopt one row."""
        ticket = self._sent = next(self._posts)
        self._unanswered[ticket] = sent
        try:
            generation_ids = await self.ctx.client.enqueue(body)
        except ApiError as exc:
            return exc
        finally:
            del self._unanswered[ticket]
            self.ctx.notify()
        self.ctx.claim(key, generation_ids[0], JobState.QUEUED)
        return None

    async def _after_failed_post(self, key: str, error: ApiError, verdict: Verdict) -> bool:
        """Carry the retry decision out; True when the job was surely not created (sent again, or
        given up on when the attempts are used up)."""
        ctx = self.ctx
        action = verdict.action
        if action is Action.FATAL:
            raise error
        if action is Action.STOP_RUN:
            ctx.release(key, JobState.PENDING, "no credits", error=str(getattr(error, "detail", error)))
            ctx.stop(scheduler.StopReason.NO_CREDITS)
            return False
        if action is Action.REJECT_JOB:
            ctx.release(key, JobState.INVALID, "rejected at enqueue", error=str(error))
            return False
        if action is Action.RETRY:
            # Surely not created (a 429 is answered before anything is done; a refused connection sent
            # nothing): journal that now, so a crash during the wait leaves nothing to reconcile.
            ctx.journal.transition(key, JobState.PENDING, f"not created: {type(error).__name__}", error=None)
            await ctx.journal.durable()  # before the wait: a crash during it leaves nothing to reconcile
            return True
        if action is Action.LOOK_FIRST:
            log.info(
                "enqueue of %s may or may not have happened (%s): reconciling",
                ctx.label(key),
                error,
                extra=job_key(key),
            )
            return not await self.reconcile([key])
        return True  # GIVE_UP: the last attempt failed too, still `submitting`

    async def _request_body(self, job: Job) -> dict[str, Any]:
        if not job.assets:
            return dict(job.request)
        urls = {asset.sha256: await self.assets.url(asset) for asset in job.assets}
        return resolve_request(job.request, urls)

    # -- finding lost submissions ----------------------------------------------------------------

    async def reconcile(self, keys: Iterable[str], *, at_start: bool = False) -> bool:
        """Find the provider's rows for submissions whose outcome we do not know.

        Returns True when every key was resolved from what the provider has. Looks at once (a cut
        answer: the server is done), and if anything is missing, looks again once every submission is
        two request timeouts old, since a slow server or a gateway that answered 5xx may still be
        creating the generation. Looks are serialised, and match only once every identical POST sent
        before the rows were listed has been answered and claimed (or is known lost and being looked
        for), so two replicas never adopt one row, nor take one another's as an extra take.
        """
        keys = list(keys)
        self._looking.update(keys)  # before any await: a look under way keeps a row for each of them
        try:
            return await self._reconcile(keys, at_start=at_start)
        finally:
            self._looking.difference_update(keys)

    async def _reconcile(self, keys: list[str], *, at_start: bool) -> bool:
        ctx = self.ctx
        pending = [pending_submission(ctx.record(k), ctx.client.server_clock.offset) for k in keys]
        for look in range(2):
            if not pending:
                return True
            if look:  # on our clock: how long ago we sent it is ours to measure
                sent = max(ctx.record(p.key).submitted_at or 0.0 for p in pending)
                await ctx.sleep(max(0.0, sent + 2 * ctx.options.timeouts.request_s - time.time()))
            async with self._lock:
                rows = await self._rows_for(pending)
                # A row listed may be an identical POST's of ours whose answer was still on its way:
                # matched only once that POST is answered and claimed, or known lost (`_looking`).
                bodies, listed_after = {canonical_json(p.body) for p in pending}, self._sent
                await ctx.wait_until(partial(self._answered, bodies, listed_after))
                claimed = ctx.journal.claimed_generation_ids()
                found = match_submissions(pending, rows, claimed, ctx.plan.model_defaults)
                for item in pending:
                    if item.key in found:
                        self._adopt_row(item.key, found[item.key])
                # Rows we cannot rule out as ours, beyond the one adopted: fetched too (`takes`).
                others = [
                    pending_submission(ctx.record(k), ctx.client.server_clock.offset)
                    for k in self._looking.difference(keys)
                ]
                extra = unaccounted_rows(
                    pending, rows, claimed, found, ctx.plan.model_defaults, others=others
                )
                adopt_extra_takes(ctx, extra)
            pending = [p for p in pending if p.key not in found]
        if pending and at_start:  # still nothing, so the POST never reached the provider
            for item in pending:
                ctx.release(item.key, JobState.PENDING, "not found at the provider")
                scheduler.requeue(ctx.state, item.key, front=True)
        return not pending

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
        ctx.claim(key, generation_id, JobState.QUEUED)
        if status != "queued":
            ctx.apply_row(key, row)  # found running or finished: the tracker takes it from there


def pending_submission(record: JobRecord, offset: float | None) -> Pending:
    """A journaled submission to look for, timed on the provider's clock (`offset`: measured now)."""
    at = provider_time(record.server_submitted_at, record.submitted_at, offset)
    return Pending(record.key, record.sent_body() or {}, at)


def unresolved(count: int, error: ApiError) -> str:
    """The closing words for submissions that could not be looked for: what failed, and what it means."""
    jobs, they = ("1 job", "it stays") if count == 1 else (f"{count} jobs", "they stay")
    why = str(error) if isinstance(error, HistoryUnreadable) else f"the API kept failing ({error})"
    return (
        f"whether {jobs} reached the provider cannot be told: {why}. {they.capitalize()} `submitting`, "
        "never sent again before it is found or ruled out: run the same command again to look again."
    )
