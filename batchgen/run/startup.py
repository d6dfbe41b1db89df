"""Start-up of a run: what is missing. Journals the plan's jobs, puts displaced results aside (and set-aside
ones back), checks finished files, and sorts every job into to-submit, at-the-provider or to-download."""

from __future__ import annotations

import logging
import os
from pathlib import Path

from batchgen.errors import DownloadCorrupt, StorageError
from batchgen.journal.spend import journal_spend
from batchgen.journal.store import JobRecord, PlanRow
from batchgen.logs import job_key
from batchgen.manifest import Location
from batchgen.planning import Job
from batchgen.planning.paths import fold
from batchgen.results.unverified import verify_result
from batchgen.run import scheduler
from batchgen.run.context import RunContext
from batchgen.run.takes import is_take
from batchgen.rundir.layout import (
    UnsafePathError,
    ensure_inside,
    move_with_sidecar,
    read_sidecar,
    result_relpath,
    set_aside_unowned,
    superseded_relpath,
    write_sidecar,
)
from batchgen.sinks.base import result_metadata
from batchgen.states import IN_FLIGHT, NEEDS_DOWNLOAD, RESTARTABLE, JobState

log = logging.getLogger(__name__)


def prepare(ctx: RunContext, *, retry_invalid: bool = False) -> list[str]:
    """Bring the journal and the run directory in line with the plan; returns the keys to download."""
    restartable = RESTARTABLE | ({JobState.INVALID} if retry_invalid else set())
    journal = ctx.journal
    journal.plan_jobs(
        PlanRow(j.key, j.index, j.name, j.model, j.output_path, _quote(j), j.label) for j in ctx.plan.jobs
    )
    _set_aside_displaced(ctx)
    downloads: list[str] = []
    for job in ctx.plan.jobs:
        record = journal.get(job.key)
        if job.key not in ctx.jobs:  # not chosen by --only: left for a later run (its spend still counts)
            continue
        ctx.counts[record.state] += 1  # counted as found; the changes below update it through the journal
        if record.state is JobState.SUPERSEDED:
            record = _restore(ctx, job, record)
        if record.state in restartable:
            record = journal.transition(job.key, JobState.PENDING, "rerun")
        if record.state is JobState.DONE and not _output_intact(ctx, job, record):
            record = journal.transition(job.key, JobState.SUCCEEDED, "output missing or changed")
        record = _forget_earlier_sandbox_session(ctx, record)  # last: whatever above left to download
        _adopt(ctx, job, record, downloads)
    _adopt_leftovers(ctx, downloads)
    _say_unverified(ctx)
    if ctx.forgotten:
        log.warning(
            "%d generation(s) of an earlier sandbox session are gone with its emulator: their jobs are "
            "submitted again (nothing is paid in the sandbox)",
            ctx.forgotten,
        )
    journal.flush()  # files were moved to match: the journal says so before anything else happens
    _start_budget(ctx)
    return downloads


def _quote(job: Job) -> str | None:
    return None if job.cost_usd is None else str(job.cost_usd)


def _start_budget(ctx: RunContext) -> None:
    """The budget starts from what the run directory has spent (superseded results, earlier attempts
    and jobs no longer planned included); a chosen job left `submitting` holds its quote until the
    reconcile says whether its POST created a generation."""
    holding = {
        key: ctx.state.cost(key)
        for key in ctx.jobs
        if key not in ctx.state.leftovers and ctx.journal.get(key).state is JobState.SUBMITTING
    }
    ctx.state.budget.start(journal_spend(ctx.journal).total, holding)


#: Up to this many unverified jobs get a line each when a run starts; more get one line with a count.
SAY_EACH_UNVERIFIED = 3


def _say_unverified(ctx: RunContext) -> None:
    """An unverified result is never downloaded again by itself: a rerun says so, and what to do."""
    found = [r for r in map(ctx.record, ctx.jobs) if r.state is JobState.UNVERIFIED]
    how = f"`batchgen unverified {ctx.run_dir}` to look at the kept bytes, then --accept or --fetch-again"
    if len(found) > SAY_EACH_UNVERIFIED:
        log.warning("%d jobs are unverified (paid; bytes kept, not downloaded again): %s", len(found), how)
        return
    for record in found:
        log.warning(
            "job %s is unverified, not downloaded again (%s): %s",
            record.label,
            record.error,
            how,
            extra=job_key(record.key),
        )


def _forget_earlier_sandbox_session(ctx: RunContext, record: JobRecord) -> JobRecord:
    """The sandbox starts a fresh emulator for every session: a generation an earlier session left in
    flight, or finished but not downloaded, exists nowhere now. Nothing was paid, so the job goes back
    to pending instead of waiting for it or failing it as unknown. Never done outside the sandbox."""
    if not ctx.options.sandbox or record.state not in IN_FLIGHT | NEEDS_DOWNLOAD:
        return record
    ctx.forgotten += 1
    return ctx.journal.transition(
        record.key, JobState.PENDING, "the sandbox session that made it is over", generation_id=None
    )


def _adopt(ctx: RunContext, job: Job, record: JobRecord, downloads: list[str]) -> None:
    if record.state is JobState.PENDING:
        scheduler.requeue(ctx.state, job.key)
    elif record.state in IN_FLIGHT:
        ctx.state.slots.take(job.key)
        if record.generation_id:
            ctx.by_generation[record.generation_id] = job.key
    elif record.state in NEEDS_DOWNLOAD:
        downloads.append(job.key)


def _set_aside_displaced(ctx: RunContext) -> None:
    """Results of jobs the plan no longer has, at a path a planned job now owns (an edited manifest,
    or a second manifest with the same name): moved to superseded/, never overwritten or deleted.
    Ones still to be downloaded will go there directly."""
    owners = {fold(job.output_path) for job in ctx.plan.jobs}
    for record in ctx.journal.records().values():
        if record.key in ctx.planned or fold(record.output_path) not in owners:
            continue
        if record.state is JobState.DONE:
            aside = superseded_relpath(record.output_path, record.key)
            if move_with_sidecar(ctx.run_dir, result_relpath(record.output_path), aside):
                ctx.journal.transition(record.key, JobState.SUPERSEDED, "its path belongs to another job now")
                log.warning(
                    "moved %s to %s: the manifest now gives its path to another job",
                    record.output_path,
                    aside,
                )
                continue
            ctx.journal.transition(record.key, JobState.SUCCEEDED, "output missing; goes to superseded/")
        if record.state in IN_FLIGHT | NEEDS_DOWNLOAD | {JobState.DONE}:
            ctx.displaced.add(record.key)


def _restore(ctx: RunContext, job: Job, record: JobRecord) -> JobRecord:
    """A planned job whose result was set aside by an earlier plan: put it back at its path."""
    if ensure_inside(ctx.run_dir, result_relpath(job.output_path)).exists():
        set_aside_unowned(ctx.run_dir, job.output_path)
    if move_with_sidecar(
        ctx.run_dir, superseded_relpath(record.output_path, record.key), result_relpath(job.output_path)
    ):
        return ctx.journal.transition(job.key, JobState.DONE, "planned again: moved back")
    return ctx.journal.transition(job.key, JobState.SUCCEEDED, "planned again; its file is gone")


def _adopt_leftovers(ctx: RunContext, downloads: list[str]) -> None:
    """Generations of jobs an edited manifest no longer plans: already paid for, so they are still
    tracked and downloaded (never resubmitted); to superseded/ if a planned job owns the path."""
    for record in ctx.journal.records().values():
        if record.key in ctx.planned or record.state not in IN_FLIGHT | NEEDS_DOWNLOAD:
            continue
        if _forget_earlier_sandbox_session(ctx, record).state is JobState.PENDING:
            continue  # no longer planned, and nothing to wait for
        job = leftover_job(record)
        ctx.jobs[job.key] = job
        ctx.state.leftovers.add(job.key)
        ctx.counts[record.state] += 1
        _adopt(ctx, job, record, downloads)
    takes = sum(1 for key in ctx.state.leftovers if is_take(key))
    if len(ctx.state.leftovers) > takes:
        log.warning(
            "%d generation(s) of jobs no longer in the manifest are still tracked and downloaded",
            len(ctx.state.leftovers) - takes,
        )
    if takes:
        log.warning("%d extra take(s) an earlier session found are still tracked and downloaded", takes)


def _output_intact(ctx: RunContext, job: Job, record: JobRecord) -> bool:
    """Cheap when the file is as we left it (size and mtime); a full sha256 check otherwise. (Plain
    strings for the stats: a rerun does this for every finished job before anything else.)"""
    try:
        path = ctx.final_path(job)
        name = os.fspath(path)
        stat = os.lstat(name)
        if stat.st_size != record.size or stat.st_mtime_ns != record.mtime_ns:
            verify_result(path, job.media_type, read_sidecar(path), record.size, record.sha256)
            ctx.journal.transition(job.key, JobState.DONE, "verified unchanged", mtime_ns=stat.st_mtime_ns)
        _ensure_sidecar(job, record, os.path.splitext(name)[0] + ".json")
    except (OSError, UnsafePathError, DownloadCorrupt, StorageError):
        return False
    return True


def _ensure_sidecar(job: Job, record: JobRecord, sidecar: str) -> None:
    """Sidecars are written in batches after their results, in place: one the process did not live to
    write, or was killed while writing (left empty: its open truncated it, its one write never came),
    is written now, from the journal."""
    try:
        whole = os.lstat(sidecar).st_size > 0
    except FileNotFoundError:
        whole = False
    if not whole and record.sha256 is not None and record.size is not None:
        write_sidecar(
            Path(sidecar), result_metadata(job, record, record.sha256, record.size, record.downloaded_at)
        )


def leftover_job(record: JobRecord) -> Job:
    """Enough of a Job to track and download a journaled generation the plan no longer has."""
    return Job(
        key=record.key,
        index=record.idx,
        name=record.name,
        title=record.title or "",
        replica=0,
        model=record.model,
        media_type="image" if record.output_path.lower().endswith(".png") else "video",
        request=record.sent_body() or {},
        output_path=record.output_path,
        vars={},
        assets=(),
        location=Location("(an earlier version of the manifest)", None, None),
        cost_usd=None,
        duration_s=None,
    )
