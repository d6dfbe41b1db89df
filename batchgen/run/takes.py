"""Extra takes: generations on the account that match a request of this run, that its journal does not
know, and that it cannot rule out as its own. Two runs of one manifest (a cron job and a person, two
machines on one key) send identical requests, and identical requests cannot be told apart by their
echo; a run whose answer was lost may adopt the other run's row while its own is left to nobody. So a
run fetches every such row too, as an extra take beside the job's result: a duplicate file on disk is
acceptable, a paid generation fetched by nobody is not. (A marker in the request would tell them apart,
but would reach the model and break "same manifest, same requests".)

An extra take is journaled as a job of its own, never planned and never submitted (a leftover to the
scheduler): key `<job key>+take-<generation id>`, file `<stem>.take-<generation id>.<ext>` beside the
job's, its own sidecar.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from batchgen.journal.store import JobRecord
from batchgen.states import AT_PROVIDER, JobState

if TYPE_CHECKING:  # only types: `status` reads `is_take` without loading the run machinery
    from batchgen.planning import Job
    from batchgen.run.context import RunContext
    from batchgen.run.tracker import Tracker

log = logging.getLogger(__name__)

__all__ = ["TAKE_MARK", "adopt_extra_takes", "is_take", "take_job"]

TAKE_MARK = "+take-"
_UNSAFE = re.compile(r"[^A-Za-z0-9-]")
_STATES = {"queued": JobState.QUEUED, "processing": JobState.PROCESSING, "succeeded": JobState.SUCCEEDED}


def is_take(key: str) -> bool:
    return TAKE_MARK in key


def take_job(job: Job, generation_id: str) -> Job:
    """The extra take of `job` made by `generation_id`: its own key and file, beside the job's."""
    safe = _UNSAFE.sub("", generation_id)[:64] or "unknown"
    stem, dot, suffix = job.output_path.rpartition(".")
    path = f"{stem}.take-{safe}.{suffix}" if dot and "/" not in suffix else f"{job.output_path}.take-{safe}"
    title = f"{job.label} · extra take {safe[:8]}"  # a readable name of its own (batchgen.naming)
    return replace(job, key=f"{job.key}{TAKE_MARK}{safe}", output_path=path, cost_usd=None, title=title)


def adopt_extra_takes(
    ctx: RunContext, tracker: Tracker, rows: Mapping[str, Iterable[Mapping[str, Any]]]
) -> int:
    """Journal and track (or download) each row listed under the key of the job it matches; returns
    how many were taken. Failed and cancelled rows are left alone: nobody paid for them."""
    taken = 0
    for key, found in rows.items():
        for row in found:
            if _adopt(ctx, tracker, key, row):
                taken += 1
    if taken and not ctx.takes_said:
        ctx.takes_said = True
        log.warning(
            "%d generation(s) on this account match requests of this run but are not in its journal: "
            "another run of this manifest may be live on this account (a cron job, a second machine). "
            "Identical requests cannot be told apart, so they are fetched too, as extra takes beside "
            "the job's result (*.take-<generation id>.*): no paid generation is left behind, but each run "
            "pays for every job it submits. To split one manifest across machines, give each its own "
            "--only (say --only replica=0 on one and --only replica=1 on the other)",
            taken,
        )
    return taken


def _adopt(ctx: RunContext, tracker: Tracker, key: str, row: Mapping[str, Any]) -> bool:
    from batchgen.logs import job_key  # here: `status` imports this module, and needs no logging setup

    state, generation_id = _STATES.get(str(row.get("status"))), str(row.get("generation_id"))
    take = take_job(ctx.jobs[key], generation_id)
    if state is None or take.key in ctx.journal or generation_id in ctx.journal.claimed_generation_ids():
        return False
    source = ctx.record(key)
    ctx.journal.restore(
        [
            JobRecord(
                key=take.key,
                idx=take.index,
                name=f"{take.name} (extra take)",
                model=take.model,
                output_path=take.output_path,
                state=state,
                attempts=1,
                generation_id=generation_id,
                sent_request=source.sent_request,
                submitted_at=source.submitted_at,
                server_submitted_at=source.server_submitted_at,
                updated_at=time.time(),
                api=ctx.options.api_identity,
                planned=False,
                title=take.title,
            )
        ]
    )
    ctx.jobs[take.key] = take
    ctx.state.leftovers.add(take.key)  # never submitted, never counted as a job of the plan
    ctx.counts[state] += 1
    ctx.by_generation[generation_id] = take.key
    log.info(
        "extra take %s of job %s: generation %s (%s)",
        take.output_path,
        ctx.label(key),
        generation_id,
        state,
        extra=job_key(take.key),
    )
    if state in AT_PROVIDER:
        ctx.state.slots.take(take.key)  # held until it finishes, so the run waits for it
        tracker.track(take.key, generation_id)
    else:
        url = row.get("result_url")
        if isinstance(url, str) and url:
            ctx.urls[take.key] = url
        ctx.downloads.put_nowait(take.key)
    ctx.notify()
    return True
