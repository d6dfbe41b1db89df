"""The run shell: one TaskGroup that submits under the concurrency limit, tracks every generation
through the one shared event stream, downloads results, and journals each step before the next.

Policy lives in pure modules (retry, reconcile, states); this module performs it.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from batchgen.api import Completion, OxenClient, is_transient
from batchgen.assets import AssetPlacer, AssetUnavailable
from batchgen.config import RunOptions
from batchgen.download import fetch_result, verify_file
from batchgen.errors import (
    ApiError,
    ApiStatusError,
    ConnectFailed,
    DownloadCorrupt,
    DownloadError,
    DownloadExpired,
    DownloadStalled,
    InsufficientCredits,
    NotFound,
    RateLimited,
    StorageError,
    Unauthenticated,
)
from batchgen.events import EventStream
from batchgen.manifest import Location
from batchgen.overdue import RenderWatch, Waiting
from batchgen.planning import Job, Plan, canonical_json, resolve_request
from batchgen.planning.paths import fold
from batchgen.reconcile import Pending, earliest_match, match_submissions, search_scopes
from batchgen.retry import FailureKind, backoff, classify_generation_error
from batchgen.rundir import (
    VIDEOS_DIR,
    UnsafePathError,
    ensure_inside,
    move_with_sidecar,
    read_sidecar,
    result_relpath,
    set_aside_unowned,
    sidecar_path,
    superseded_relpath,
    write_json,
)
from batchgen.states import AT_PROVIDER, IN_FLIGHT, NEEDS_DOWNLOAD, RESTARTABLE, JobState
from batchgen.store import JobRecord, Journal

log = logging.getLogger(__name__)

EXPECTED_RENDER_S = {"video": 300.0, "image": 30.0}  # the docs: video 1-5 minutes, images 5-30 s
_ORPHAN_LIMIT = 10_000
_CHARGED = IN_FLIGHT | NEEDS_DOWNLOAD | {JobState.DONE}  # states whose generation may be billed


class StopReason(StrEnum):
    NO_CREDITS = "no_credits"
    BUDGET = "budget"
    INTERRUPTED = "interrupted"
    API_UNAVAILABLE = "api_unavailable"


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


@dataclass(slots=True)
class RunOutcome:
    counts: dict[str, int]  # planned jobs by state
    stop_reason: StopReason | None = None
    fatal: str | None = None
    bad_key: bool = False  # the fatal error was a 401: fix the key, nothing to resume
    download_failures: int = 0
    requests_sent: int = 0
    leftovers: dict[str, int] = field(default_factory=dict)  # jobs no longer planned, by state


class Runner:
    """Runs one plan in one run directory. Create, then `await run()` once."""

    def __init__(self, plan: Plan, run_dir: Path, journal: Journal, client: OxenClient,
                 options: RunOptions, *, rng: random.Random | None = None, retry_invalid: bool = False) -> None:
        self._restartable = RESTARTABLE | ({JobState.INVALID} if retry_invalid else set())
        self.plan = plan
        self.run_dir = run_dir
        self.videos_dir = run_dir / VIDEOS_DIR
        self.journal = journal
        self.client = client
        self.options = options
        self._rng = rng or random.Random()
        self.jobs: dict[str, Job] = {job.key: job for job in plan.jobs}
        self._pending: deque[str] = deque()
        self._holding: set[str] = set()  # jobs holding a provider concurrency slot
        self._by_generation: dict[str, str] = {}
        self._orphans: dict[str, Completion] = {}
        self._urls: dict[str, str] = {}  # freshest result URL per job key (memory only: they expire)
        self._downloads: asyncio.Queue[str] = asyncio.Queue()
        self._active_downloads = 0
        self._run_attempts: dict[str, int] = {}
        self._retried = 0
        self._download_failures = 0
        self._assets = AssetPlacer(client, journal, upload=options.upload, inline=options.inline_assets)
        self._changed = asyncio.Event()
        self._reconcile_wanted = False  # a (re)connect asks for a full reconcile
        self._look_wake = asyncio.Event()  # wakes the reconcile loop: a reconcile wanted, or a new deadline
        self._reconcile_lock = asyncio.Lock()
        self._posting: Counter[str] = Counter()  # identical bodies whose POST has not been answered yet
        self._watch = RenderWatch(options.expected_render_s or _expected_render(plan))
        self._stream_epoch: dict[str, int] = {}  # job key -> stream connections when it was claimed
        self.stopping: StopReason | None = None
        self._started_at = time.time()
        self._stream: EventStream | None = None
        self._download_session: aiohttp.ClientSession | None = None
        self.on_change: Callable[[], None] = lambda: None
        self._counts: Counter[JobState] = Counter()
        self._leftovers: set[str] = set()
        self._displaced: set[str] = set()  # leftovers whose path a planned job owns: to superseded/
        self._prepared = False
        self._spent = Decimal(0)
        journal.on_transition = self._count_transition

    # -- the public surface -----------------------------------------------------------------

    def request_stop(self, reason: StopReason = StopReason.INTERRUPTED) -> None:
        """Stop submitting; whatever is in flight is still tracked and downloaded."""
        if self.stopping is None:
            self.stopping = reason
            log.warning("stopping submissions: %s", reason)
        self._notify()

    def stats(self) -> RunStats:
        return RunStats(
            counts={str(s): n for s, n in self._counts.items() if n}, total=len(self.jobs), spent_usd=self._spent, retried=self._retried,
            throttled_s=self.client.throttle.paused_s,
            stream_connected=(self._stream is None or self._stream.connected.is_set()
                              or not self._holding),
            stopping=self.stopping, started_at=self._started_at,
        )

    async def prepare_assets(self) -> None:
        """Make every local reference image of the work left reachable before anything is submitted
        (raises UsageError when the upload repository is missing); call once, before `run()`."""
        self._prepare()
        self._prepared = True
        assets = [asset for key in self._pending for asset in self.jobs[key].assets]
        if assets:
            await self._assets.prepare(assets)

    def spent_usd(self) -> Decimal:
        """Quoted cost of every generation that exists or may exist at the provider for this plan."""
        return self._spent

    def _count_transition(self, key: str, old: JobState, new: JobState) -> None:
        job = self.jobs.get(key)
        if job is None:
            return
        self._counts[old] -= 1
        self._counts[new] += 1
        cost = job.cost_usd or Decimal(0)
        self._spent += cost * ((new in _CHARGED) - (old in _CHARGED))

    async def run(self) -> RunOutcome:
        if not self._prepared:
            self._prepare()
        fatal: str | None = None
        bad_key = False
        if self._has_work():
            try:
                await self._run_tasks()
            except* Unauthenticated as group:
                fatal, bad_key = str(group.exceptions[0]), True
            except* InsufficientCredits as group:
                self.stopping = StopReason.NO_CREDITS
                fatal = str(group.exceptions[0])
            except* StorageError as group:
                fatal = str(group.exceptions[0])
        counts: Counter[str] = Counter()
        leftovers: Counter[str] = Counter()
        for key in self.jobs:
            (leftovers if key in self._leftovers else counts)[str(self.journal.get(key).state)] += 1
        return RunOutcome(counts=dict(counts), stop_reason=self.stopping, fatal=fatal, bad_key=bad_key,
                          download_failures=self._download_failures, requests_sent=self.client.requests_sent,
                          leftovers=dict(leftovers))

    # -- start-up: what is missing -----------------------------------------------------------

    def _prepare(self) -> None:
        self.journal.add_jobs((j.key, j.index, j.name, j.model, j.output_path) for j in self.plan.jobs)
        self.journal.mark_planned(set(self.jobs))
        self._set_aside_displaced()
        for job in self.plan.jobs:
            record = self.journal.get(job.key)
            if record.state is JobState.SUPERSEDED:
                record = self._restore(job, record)
            self._counts[record.state] += 1
            self._spent += (job.cost_usd or Decimal(0)) * (record.state in _CHARGED)
            if record.state in self._restartable:
                record = self.journal.transition(job.key, JobState.PENDING, "rerun")
            if record.state is JobState.DONE and not self._output_intact(job, record):
                record = self.journal.transition(job.key, JobState.SUCCEEDED, "output missing or changed")
            self._adopt(job, record)
        self._adopt_leftovers()

    def _set_aside_displaced(self) -> None:
        """Results of jobs the plan no longer has, at a path a planned job now owns (an edited manifest,
        or a second manifest with the same name): moved to superseded/, never overwritten or deleted.
        Ones still to be downloaded will go there directly."""
        owners = {fold(job.output_path) for job in self.plan.jobs}
        for record in self.journal.records().values():
            if record.key in self.jobs or fold(record.output_path) not in owners:
                continue
            if record.state is JobState.DONE:
                moved = move_with_sidecar(self.run_dir, result_relpath(record.output_path),
                                          superseded_relpath(record.output_path, record.key))
                if moved:
                    self.journal.transition(record.key, JobState.SUPERSEDED, "its path belongs to another job now")
                    log.warning("moved %s to %s: the manifest now gives its path to another job",
                                record.output_path, superseded_relpath(record.output_path, record.key))
                    continue
                self.journal.transition(record.key, JobState.SUCCEEDED, "output missing; goes to superseded/")
            if record.state in IN_FLIGHT | NEEDS_DOWNLOAD | {JobState.DONE}:
                self._displaced.add(record.key)

    def _restore(self, job: Job, record: JobRecord) -> JobRecord:
        """A planned job whose result was set aside by an earlier plan: put it back at its path."""
        if ensure_inside(self.run_dir, result_relpath(job.output_path)).exists():
            set_aside_unowned(self.run_dir, job.output_path)
        if move_with_sidecar(self.run_dir, superseded_relpath(record.output_path, record.key),
                             result_relpath(job.output_path)):
            return self.journal.transition(job.key, JobState.DONE, "planned again: moved back")
        return self.journal.transition(job.key, JobState.SUCCEEDED, "planned again; its file is gone")

    def _adopt_leftovers(self) -> None:
        """Generations of jobs an edited manifest no longer plans: already paid for, so they are
        still tracked and downloaded (never resubmitted); to superseded/ if a planned job owns the path."""
        for record in self.journal.records().values():
            if record.key in self.jobs or record.state not in IN_FLIGHT | NEEDS_DOWNLOAD:
                continue
            job = _leftover_job(record)
            self.jobs[job.key] = job
            self._leftovers.add(job.key)
            self._counts[record.state] += 1
            self._adopt(job, record)
        if self._leftovers:
            log.warning("%d generation(s) of jobs no longer in the manifest are still tracked and downloaded",
                        len(self._leftovers))

    def _requeue(self, key: str, *, front: bool = False) -> None:
        if key in self._leftovers:  # never submit a job the manifest no longer asks for
            return
        if front:
            self._pending.appendleft(key)
        else:
            self._pending.append(key)

    def _adopt(self, job: Job, record: JobRecord) -> None:
        if record.state is JobState.PENDING:
            self._pending.append(job.key)
        elif record.state in IN_FLIGHT:
            self._holding.add(job.key)
            if record.generation_id:
                self._by_generation[record.generation_id] = job.key
        elif record.state in NEEDS_DOWNLOAD:
            self._downloads.put_nowait(job.key)

    def _output_intact(self, job: Job, record: JobRecord) -> bool:
        """Cheap when the file is as we left it (size and mtime); a full sha256 check otherwise."""
        try:
            path = self._final_path(job)
            stat = path.lstat()
            if stat.st_size == record.size and stat.st_mtime_ns == record.mtime_ns:
                return True
            verify_file(path, job.media_type, expected_size=record.size, expected_sha256=record.sha256)
        except (OSError, UnsafePathError, DownloadCorrupt, StorageError):
            return False
        self.journal.transition(job.key, JobState.DONE, "verified unchanged", mtime_ns=stat.st_mtime_ns)
        return True

    def _has_work(self) -> bool:
        return bool(self._pending or self._holding or not self._downloads.empty())

    def _final_path(self, job: Job) -> Path:
        # Checked against the run directory, so a symlinked videos/ cannot lead writes elsewhere.
        if job.key in self._displaced:
            return ensure_inside(self.run_dir, superseded_relpath(job.output_path, job.key))
        return ensure_inside(self.run_dir, result_relpath(job.output_path))

    # -- the task group --------------------------------------------------------------------

    async def _run_tasks(self) -> None:
        stream = EventStream(self.client, on_completion=self._on_event,
                             on_connect=self._want_reconcile,
                             idle_timeout_s=self.options.timeouts.stream_idle_s)
        self._stream = stream
        timeouts = self.options.timeouts
        session_timeout = aiohttp.ClientTimeout(total=None, connect=timeouts.connect_s,
                                                sock_read=timeouts.download_read_s)
        async with aiohttp.ClientSession(timeout=session_timeout) as session:
            self._download_session = session
            async with asyncio.TaskGroup() as group:
                background = [
                    group.create_task(stream.run(), name="event-stream"),
                    group.create_task(self._reconcile_loop(), name="reconcile"),
                    *(group.create_task(self._download_worker(), name=f"download-{i}")
                      for i in range(self.options.limits.downloads)),
                ]
                await self._submit_all(group)
                await self._wait_until(self._finished)
                for task in background:
                    task.cancel()

    async def _wait_until(self, predicate: Callable[[], bool]) -> None:
        # No await between the check and clear(), so a change cannot slip in unseen.
        while not predicate():
            self._changed.clear()
            await self._changed.wait()

    def _finished(self) -> bool:
        no_more_submits = self.stopping is not None or not self._pending
        return (no_more_submits and not self._holding and self._downloads.empty()
                and self._active_downloads == 0)

    def _notify(self) -> None:
        self._changed.set()
        self.on_change()

    # -- submitting ------------------------------------------------------------------------

    async def _submit_all(self, group: asyncio.TaskGroup) -> None:
        assert self._stream is not None
        try:  # no event may fire before we listen...
            async with asyncio.timeout(self.options.timeouts.stream_idle_s):
                await self._stream.wait_connected()
        except TimeoutError:  # ...unless there is no stream to listen to: poll instead
            log.warning("the event stream is unavailable; tracking by polling every %.0fs until it is back",
                        self.options.poll_interval_s)
        ambiguous = [k for k in self._holding if self.journal.get(k).state is JobState.SUBMITTING]
        try:
            await self._reconcile_ambiguous(ambiguous, in_submit=False)
        except ApiError as exc:
            if isinstance(exc, Unauthenticated):
                raise
            log.error("cannot reconcile earlier submissions (%s); nothing new is sent until that works", exc)
            self._holding.difference_update(ambiguous)
            self.request_stop(StopReason.API_UNAVAILABLE)
            return
        while True:
            await self._wait_until(self._may_submit)
            if self.stopping is not None or self._finished():
                return
            key = self._pending.popleft()
            if self._over_budget(self.jobs[key]):
                self._pending.appendleft(key)
                self.request_stop(StopReason.BUDGET)
                return
            self._holding.add(key)
            group.create_task(self._submit(key), name=f"submit-{key[:8]}")

    def _may_submit(self) -> bool:
        if self.stopping is not None or self._finished():
            return True
        return bool(self._pending) and len(self._holding) < self.options.limits.concurrency

    def _over_budget(self, job: Job) -> bool:
        """Whether sending `job` could exceed the budget. Jobs holding a slot count as spent whatever
        their state: one dispatched but not yet journaled, or put back to pending by a 429, is still
        going to be sent."""
        budget = self.options.budget_usd
        if budget is None:
            return False
        committed = self._spent + sum((self.jobs[k].cost_usd or Decimal(0)) for k in self._holding
                                      if self.journal.get(k).state not in _CHARGED)
        return committed + (job.cost_usd or Decimal(0)) > budget

    async def _submit(self, key: str) -> None:
        job = self.jobs[key]
        try:
            body = await self._request_body(job)
        except AssetUnavailable as exc:
            self._release(key, JobState.FAILED, str(exc), error=str(exc))
            return
        self._run_attempts[key] = self._run_attempts.get(key, 0) + 1
        failures = 0
        while failures < self.client.retry_policy.request_attempts:
            await self.client.throttle.wait_clear()  # wait out a 429 pause before journaling `submitting`
            record = self.journal.transition(
                key, JobState.SUBMITTING, attempts=self.journal.get(key).attempts + 1,
                sent_request=_canonical(body), submitted_at=time.time(), generation_id=None, error=None,
            )
            try:
                outcome = await self._post(key, body, record)
            except ApiError as exc:
                if isinstance(exc, Unauthenticated):
                    raise
                # Could not even ask whether the POST took effect: leave the job `submitting`, so the
                # next run reconciles it first, and stop sending more into an API that is down.
                log.error("cannot tell whether job %s was created (%s); stopping submissions", key[:12], exc)
                self._holding.discard(key)
                self.request_stop(StopReason.API_UNAVAILABLE)
                return
            if outcome == "rate_limited":  # the shared pause already waited it out: not a failure
                continue
            if outcome != "retry":
                return
            failures += 1
            await asyncio.sleep(backoff(failures, self.client.retry_policy, self._rng))
        self._release(key, JobState.PENDING, "enqueue kept failing", error="enqueue kept failing")
        self._pending.appendleft(key)
        self.request_stop(StopReason.API_UNAVAILABLE)

    async def _post(self, key: str, body: Mapping[str, Any], record: JobRecord) -> str:
        """One enqueue: 'ok', 'done' (decided otherwise), or, when the generation surely does not
        exist, 'rate_limited' or 'retry'."""
        canonical = _canonical(body)
        self._posting[canonical] += 1
        try:
            generation_ids = await self.client.enqueue(body)
        except ApiError as exc:
            self._posted(canonical)
            return await self._after_failed_post(key, exc)
        except BaseException:
            self._posted(canonical)
            raise
        self._claim(key, generation_ids[0], JobState.QUEUED)  # claimed before an identical POST's look
        self._posted(canonical)
        return "ok"

    def _posted(self, canonical: str) -> None:
        self._posting[canonical] -= 1
        self._notify()

    async def _after_failed_post(self, key: str, exc: ApiError) -> str:
        if isinstance(exc, RateLimited | ConnectFailed):
            # Surely not created (a 429 is answered before anything is done; a refused connection sent
            # nothing): journal that now, so a crash during the wait leaves nothing to reconcile.
            self.journal.transition(key, JobState.PENDING, f"not created: {type(exc).__name__}", error=None)
            return "rate_limited" if isinstance(exc, RateLimited) else "retry"
        if isinstance(exc, InsufficientCredits):
            self._release(key, JobState.PENDING, "no credits", error=exc.detail)
            self.request_stop(StopReason.NO_CREDITS)
            return "done"
        if isinstance(exc, ApiStatusError) and not is_transient(exc):
            if isinstance(exc, Unauthenticated):
                raise exc
            self._release(key, JobState.INVALID, "rejected at enqueue", error=str(exc))
            return "done"
        log.info("enqueue of %s may or may not have happened (%s): reconciling", key[:12], exc)
        if await self._reconcile_ambiguous([key]):
            return "done"
        return "retry"

    def _claim(self, key: str, generation_id: str, state: JobState, **changes: Any) -> None:
        record = self.journal.get(key)
        self.journal.claim_generation(key, generation_id, record.attempts, state,
                                      api=self.options.api_identity, **changes)
        log.info("submitted %s %s as generation %s", key[:12], self.jobs[key].name, generation_id)
        self._by_generation[generation_id] = key
        self._stream_epoch[key] = self._stream.connections if self._stream is not None else -1
        self._look_wake.set()  # the reconcile loop counts this generation's deadline in
        orphan = self._orphans.pop(generation_id, None)
        if orphan is not None:
            self._on_completion(orphan)
        self._notify()

    async def _request_body(self, job: Job) -> dict[str, Any]:
        if not job.assets:
            return dict(job.request)
        urls = {asset.sha256: await self._assets.url(asset) for asset in job.assets}
        return resolve_request(job.request, urls)

    # -- tracking --------------------------------------------------------------------------

    def _on_event(self, completion: Completion) -> None:
        key = self._by_generation.get(completion.generation_id)
        if key is not None:  # other work on the account proves nothing about ours
            record = self.journal.get(key)
            self._watch.event_arrived(_namespace(record))
            if record.state in AT_PROVIDER and record.submitted_at is not None:
                self._watch.observe_render(time.time() - record.submitted_at)
        self._on_completion(completion)

    def _on_completion(self, completion: Completion) -> None:
        key = self._by_generation.get(completion.generation_id)
        if key is None:  # may be ours, its POST answer not read yet; keep the newest few
            self._orphans[completion.generation_id] = completion
            if len(self._orphans) > _ORPHAN_LIMIT:
                del self._orphans[next(iter(self._orphans))]
            return
        record = self.journal.get(key)
        if record.state not in AT_PROVIDER or record.generation_id != completion.generation_id:
            return  # already handled (an event and a reconcile can both report it)
        if completion.status == "succeeded":
            log.info("generation %s of %s succeeded", completion.generation_id, key[:12])
            self._release(key, JobState.SUCCEEDED, "succeeded", completed_at=time.time())
            if completion.url:
                self._urls[key] = completion.url
            self._downloads.put_nowait(key)
            self._notify()
        else:
            self._on_failure(key, completion.error)

    def _on_failure(self, key: str, error: str | None) -> None:
        verdict = classify_generation_error(error)
        log.warning("job %s %s failed (%s): %s", key[:12], self.jobs[key].name, verdict.kind, verdict.message)
        if verdict.kind is FailureKind.NO_CREDITS:
            self._release(key, JobState.PENDING, "no credits", error=verdict.message)
            self.request_stop(StopReason.NO_CREDITS)
        elif verdict.kind is FailureKind.INVALID:
            self._release(key, JobState.INVALID, "rejected by the model", error=verdict.message)
        elif verdict.kind is FailureKind.REFERENCE_REFUSED:  # not transient: no retries in this run
            self._release(key, JobState.FAILED, "reference image refused", error=verdict.message)
        elif key not in self._leftovers and self._run_attempts.get(key, 0) <= self.options.retry.generation_retries:
            self._retried += 1
            self._release(key, JobState.PENDING, "retry", error=verdict.message)
            self._requeue(key)
        else:
            self._release(key, JobState.FAILED, "attempts used up", error=verdict.message)

    def _release(self, key: str, state: JobState, detail: str, **changes: Any) -> None:
        self.journal.transition(key, state, detail, **changes)
        self._holding.discard(key)
        self._notify()

    def _apply_row(self, key: str, row: Mapping[str, Any]) -> None:
        status = row.get("status")
        record = self.journal.get(key)
        if status == "processing" and record.state is JobState.QUEUED:
            self.journal.transition(key, JobState.PROCESSING, started_at=time.time())
        elif status in ("succeeded", "failed"):
            self._on_completion(Completion(str(row["generation_id"]), str(status),
                                           url=row.get("result_url"), error=row.get("error_message")))
        elif status == "cancelled" and record.state in AT_PROVIDER:
            self._release(key, JobState.CANCELLED, "cancelled at the provider")

    def _want_reconcile(self) -> None:
        self._reconcile_wanted = True
        self._look_wake.set()

    async def _reconcile_loop(self) -> None:
        """Reconcile after every (re)connect; while connected, when an in-flight generation is overdue
        against the renders this run has seen (see `overdue`); poll while disconnected."""
        assert self._stream is not None
        while True:
            if self._stream.connected.is_set():
                due = self._watch.next_look_at(self._waiting())
                wait = None if due is None else due - time.time()
            else:
                wait = self.options.poll_interval_s
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(None if wait is None else max(0.0, wait)):
                    await self._look_wake.wait()
            self._look_wake.clear()
            if self._stream.connected.is_set() and not self._reconcile_wanted:
                due = self._watch.next_look_at(self._waiting())
                if due is None or due > time.time():
                    continue  # woken by a new generation in flight: its deadline is now counted
            self._reconcile_wanted = False
            self._watch.looked(time.time())
            try:
                await self._reconcile_in_flight()
            except ApiError as exc:
                if isinstance(exc, Unauthenticated):
                    raise
                log.info("reconcile failed (%s); will try again", exc)

    def _waiting(self) -> list[Waiting]:
        records = (self.journal.get(key) for key in self._holding)
        return [Waiting(r.submitted_at or 0.0, _namespace(r)) for r in records if r.state in AT_PROVIDER]

    async def _reconcile_in_flight(self) -> None:
        """Ask the provider about every generation we wait for: the stream may have missed it."""
        waiting = {r.generation_id: r.key for r in self.journal.records().values()
                   if r.state in AT_PROVIDER and r.generation_id and r.key in self.jobs}
        if not waiting:
            return
        connections = self._stream.connections if self._stream is not None else -1
        active: dict[str, Mapping[str, Any]] = {}
        for scope in search_scopes(self.journal.get(k).sent_body() or {} for k in waiting.values()):
            for listed in await self.client.list_queue(model=scope.model, namespace=scope.namespace):
                active[str(listed["generation_id"])] = listed
        for generation_id, key in waiting.items():
            row = active.get(generation_id)
            if row is None:  # finished, or past a cap of the lean list: ask for it alone
                try:
                    row = await self.client.get_generation(generation_id)
                except NotFound:
                    self._unknown_generation(key, generation_id)
                    continue
            if row.get("status") in ("succeeded", "failed") and self.journal.get(key).state in AT_PROVIDER:
                self._learn_from_row(key, row, stream_missed=self._stream_epoch.get(key) == connections)
            self._apply_row(key, row)
            if row.get("status") in ("queued", "processing") and self._overdue(key):
                await self._cancel_overdue(key, generation_id)

    def _learn_from_row(self, key: str, row: Mapping[str, Any], *, stream_missed: bool) -> None:
        """A look found a finished generation: learn its render time; if the stream was connected the
        whole time since it was submitted, the stream missed its event."""
        enqueued, completed = row.get("enqueued_at"), row.get("completed_at")
        if isinstance(enqueued, int | float) and isinstance(completed, int | float):
            self._watch.observe_render(float(completed) - float(enqueued))
        if stream_missed and self._stream is not None and self._stream.connected.is_set():
            if not self._watch.missed_events:
                log.warning("the event stream did not announce generation %s (nor, perhaps, others): looking "
                            "for completions sooner, at 1.5x the longest render seen", row.get("generation_id"))
            self._watch.event_missed()

    def _unknown_generation(self, key: str, generation_id: str) -> None:
        """The provider has never heard of a generation we journaled: another account or API base.
        Waiting would hang the run, and resubmitting might pay twice: fail it and say why."""
        if self.journal.get(key).generation_id != generation_id:
            return
        message = (f"the API does not know generation {generation_id} (was it created with another key "
                   f"or --api-base?); `batchgen run --retry-invalid` would submit it again")
        log.error("job %s: %s", key[:12], message)
        self._release(key, JobState.INVALID, "unknown at the provider", error=message)

    async def _cancel_overdue(self, key: str, generation_id: str) -> None:
        await self.client.cancel(generation_id)
        row = await self.client.get_generation(generation_id)  # it may have finished meanwhile
        record = self.journal.get(key)
        if record.generation_id != generation_id or record.state not in AT_PROVIDER:
            return
        if row.get("status") == "cancelled":
            self._on_failure(key, f"no result within {self.options.timeouts.generation_s:.0f}s; "
                                  "cancelled at the provider")
        else:
            self._apply_row(key, row)

    def _overdue(self, key: str) -> bool:
        limit = self.options.timeouts.generation_s
        submitted_at = self.journal.get(key).submitted_at
        return limit is not None and submitted_at is not None and time.time() - submitted_at > limit

    async def _reconcile_ambiguous(self, keys: Iterable[str], *, in_submit: bool = True) -> bool:
        """Find the provider's rows for submissions whose outcome we do not know.

        Returns True when every key was resolved from what the provider has. Looks at once (a
        cut answer: the server is done), and if anything is missing, looks again once every
        submission is two request timeouts old, since a slow server or a gateway that answered
        5xx may still be creating the generation. Looks are serialised, and wait for identical
        POSTs still in flight to be answered and claimed, so two replicas never adopt one row.
        """
        pending = [Pending(k, self.journal.get(k).sent_body() or {}, self.journal.get(k).submitted_at or 0)
                   for k in keys]
        for look in range(2):
            if not pending:
                return True
            if look:
                settled_at = max(p.submitted_at for p in pending) + 2 * self.options.timeouts.request_s
                await asyncio.sleep(max(0.0, settled_at - time.time()))
            async with self._reconcile_lock:
                await self._wait_until(partial(self._none_posting, {_canonical(p.body) for p in pending}))
                found = await self._find_rows(pending)
                for item in pending:
                    if item.key in found:
                        self._adopt_row(item.key, found[item.key])
            pending = [p for p in pending if p.key not in found]
        if pending and not in_submit:  # start-up: still nothing, so the POST never reached the provider
            for item in pending:
                self._release(item.key, JobState.PENDING, "not found at the provider")
                self._requeue(item.key, front=True)
        return not pending

    def _none_posting(self, bodies: set[str]) -> bool:
        return not any(self._posting[body] for body in bodies)

    async def _find_rows(self, pending: list[Pending]) -> dict[str, Mapping[str, Any]]:
        """Every namespace the submissions bill to, active rows and the history since they were sent."""
        rows = await self.client.find_rows(search_scopes(p.body for p in pending), earliest_match(pending))
        return match_submissions(pending, rows, self.journal.claimed_generation_ids(), self.plan.model_defaults)

    def _adopt_row(self, key: str, row: Mapping[str, Any]) -> None:
        generation_id = str(row["generation_id"])
        status = row.get("status")
        log.info("job %s was already created at the provider as %s (%s)", key[:12], generation_id, status)
        if status == "cancelled":
            self.journal.claim_generation(key, generation_id, self.journal.get(key).attempts, JobState.PENDING,
                                          api=self.options.api_identity)
            self._holding.discard(key)
            self._requeue(key, front=True)
            self._notify()
            return
        self._claim(key, generation_id, JobState.QUEUED)
        if status != "queued":
            self._apply_row(key, row)

    # -- downloading -----------------------------------------------------------------------

    async def _download_worker(self) -> None:
        while True:
            key = await self._downloads.get()
            self._active_downloads += 1
            try:
                await self._download(key)
            finally:
                self._active_downloads -= 1
                self._notify()

    async def _download(self, key: str) -> None:
        job = self.jobs[key]
        record = self.journal.get(key)
        try:
            final = self._final_path(job)  # checked now, not at plan time: a symlink may have appeared
        except UnsafePathError as exc:
            self._download_failures += 1
            self.journal.transition(key, record.state, "unsafe output path", error=str(exc))
            return
        if await asyncio.to_thread(self._make_room, job, record, final):
            return
        assert self._download_session is not None
        with_key = False  # a result URL on the API's own origin that refused us gets one try with the key
        for attempt in range(1, self.options.retry.download_attempts + 1):
            url = ""
            try:
                url = self._urls.get(key) or await self._fresh_url(record)
                result = await fetch_result(self._download_session, url, final, media_type=job.media_type,
                                            read_timeout=self.options.timeouts.download_read_s,
                                            headers=self.client.auth_for(url) if with_key else None)
                break
            except DownloadExpired:
                if not with_key and self.client.auth_for(url):
                    with_key = True  # a private repository's file, perhaps: never sent to another host
                    continue
                with_key = False
                self._urls.pop(key, None)
            except (DownloadCorrupt, DownloadError, ApiError) as exc:
                if isinstance(exc, Unauthenticated):
                    raise
                if isinstance(exc, DownloadStalled):  # the host crawls: a fresh URL may lead elsewhere
                    self._urls.pop(key, None)
                log.info("download of %s failed (%s), attempt %d", key[:12], exc, attempt)
                await asyncio.sleep(backoff(attempt, self.options.retry, self._rng))
        else:
            self._download_failures += 1
            self.journal.transition(key, record.state, "download failed",
                                    error="download failed; run again to fetch it")
            return
        await self._write_sidecar(job, final, result.sha256, result.size)
        log.info("downloaded %s to %s (%d bytes, sha256 %s)", key[:12], final,
                 result.size, result.sha256[:16])
        done = JobState.SUPERSEDED if key in self._displaced else JobState.DONE
        self.journal.transition(key, done, sha256=result.sha256, size=result.size,
                                mtime_ns=_mtime_ns(final), downloaded_at=time.time(), error=None)
        self._urls.pop(key, None)

    def _make_room(self, job: Job, record: JobRecord, final: Path) -> bool:
        """Before a result is written to `final`: if a crash came between the rename and the journal, the
        file there (with our sidecar and its sha256) is the result: True, journaled done. Any other file
        there is moved to superseded/ first, never overwritten."""
        if not (final.exists() or final.is_symlink()):
            return False
        sidecar = read_sidecar(final)
        if sidecar and sidecar.get("job_key") == job.key and sidecar.get("generation_id") == record.generation_id:
            try:
                found = verify_file(final, job.media_type, expected_size=sidecar.get("size"),
                                    expected_sha256=sidecar.get("sha256"))
            except (DownloadCorrupt, StorageError):
                found = None
            if found is not None:
                done = JobState.SUPERSEDED if job.key in self._displaced else JobState.DONE
                self.journal.transition(job.key, done, "found complete on disk", sha256=found.sha256,
                                        size=found.size, mtime_ns=_mtime_ns(final), error=None)
                return True
        if job.key not in self._displaced:
            moved_to = set_aside_unowned(self.run_dir, job.output_path)
            log.warning("kept the file found at %s in %s: job %s writes its result there", job.output_path,
                        moved_to, job.key[:12])
        return False

    async def _fresh_url(self, record: JobRecord) -> str:
        if not record.generation_id:
            raise DownloadError("no generation id to fetch a result URL for")
        row = await self.client.get_generation(record.generation_id)
        url = row.get("result_url")
        if not url:
            raise DownloadError(f"generation {record.generation_id} has no result_url")
        return str(url)

    async def _write_sidecar(self, job: Job, final: Path, sha256: str, size: int) -> None:
        fresh = self.journal.get(job.key)
        sidecar = {
            "job_key": job.key,
            "name": job.name,
            "replica": job.replica,
            "model": job.model,
            "generation_id": fresh.generation_id,
            "request": fresh.sent_body() or dict(job.request),
            "vars": dict(job.vars),
            "manifest": f"{job.location.file}:{job.location.line}",
            "submitted_at": fresh.submitted_at,
            "completed_at": fresh.completed_at,
            "downloaded_at": time.time(),
            "cost_usd": str(job.cost_usd) if job.cost_usd is not None else None,
            "api": fresh.api,
            "sha256": sha256,
            "size": size,
        }
        await asyncio.to_thread(partial(write_json, sidecar_path(final), sidecar, sort_keys=True))


def _leftover_job(record: JobRecord) -> Job:
    """Enough of a Job to track and download a journaled generation the plan no longer has."""
    return Job(
        key=record.key, index=record.idx, name=record.name, replica=0, model=record.model,
        media_type="image" if record.output_path.lower().endswith(".png") else "video",
        request=record.sent_body() or {}, output_path=record.output_path, vars={}, assets=(),
        location=Location("(an earlier version of the manifest)", None, None), cost_usd=None,
        duration_s=None,
    )


def _namespace(record: JobRecord) -> str | None:
    """The namespace a job's current submission bills to (None: the caller's own)."""
    namespace = (record.sent_body() or {}).get("target_namespace")
    return namespace if isinstance(namespace, str) and namespace else None


def _expected_render(plan: Plan) -> float:
    return max((EXPECTED_RENDER_S.get(job.media_type, 300.0) for job in plan.jobs), default=300.0)


def _mtime_ns(path: Path) -> int | None:
    try:
        return path.lstat().st_mtime_ns
    except OSError:
        return None


def _canonical(body: Mapping[str, Any]) -> str:
    return canonical_json(body)
