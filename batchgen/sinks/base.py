"""Where finished results go besides the run directory, and the one lifecycle every destination follows
(`ResultSink`, driven by `run_with_sinks`): another destination (an Oxen repository, in `sinks/oxen/`;
object storage; a caller's callback) is another class here, not an edit of the runner."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from batchgen.isotime import iso_utc

if TYPE_CHECKING:
    from batchgen.journal.store import JobRecord
    from batchgen.planning import Job

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class VerifiedResult:
    """A finished result: its file (whole, verified, at its final path) and what is known about it."""

    key: str
    path: Path
    sha256: str
    size: int
    metadata: dict[str, Any]  # the sidecar's content: job, request, generation, timings, cost, api


class ResultSink(Protocol):
    """A destination for finished results, driven by `run_with_sinks` (inherit from this protocol to
    take its do-nothing defaults). `check` runs before anything is paid for (raise UsageError: nothing
    is sent); `run`, the sink's own work, is a task of the run's TaskGroup until after `finish`. `land`
    runs in the download's worker thread right after the file is verified at its path, before the job
    is journaled done (keep it short and local); `deliver` runs on the event loop afterwards and may
    batch. `finish` comes once the run is over and its own files (results.csv, results.jsonl,
    report.html) are written: deliver what is left. `progress` is the stats the run reports (files
    delivered, files to deliver so far; None: nothing to count), cheap enough for every progress line.
    A sink that fails raises; the run reports it, and the result stays verified on disk (never lost).
    """

    name: str

    async def check(self) -> None:
        return None

    async def run(self) -> None:
        return None

    def land(self, result: VerifiedResult) -> None:
        return None

    async def deliver(self, result: VerifiedResult) -> None:
        return None

    async def finish(self) -> None:
        return None

    def progress(self) -> tuple[int, int] | None:
        return None


@dataclass(frozen=True, slots=True)
class ResultCallback(ResultSink):
    """`run_manifest(on_result=...)`: the caller's function, called on the event loop with each result."""

    callback: Callable[[VerifiedResult], None]
    name: str = "on_result"

    async def deliver(self, result: VerifiedResult) -> None:
        self.callback(result)


async def run_with_sinks(
    sinks: Sequence[ResultSink],
    work: Callable[[], Awaitable[T]],
    *,
    prepare: Callable[[], Awaitable[None]] | None = None,
) -> T:
    """Drive every sink's lifecycle around `work` (the run, its billing and its own files): each sink's
    `check`, then `prepare` (what must be ready before any sink starts), then `work` with each sink's
    `run` as a task of one TaskGroup, then each sink's `finish`, in order. An error of `work` or of a
    `finish` is raised as itself once the sinks' tasks are cancelled."""
    for sink in sinks:
        await sink.check()
    if prepare is not None:
        await prepare()
    failure: Exception | None = None
    async with asyncio.TaskGroup() as group:
        tasks = [group.create_task(sink.run(), name=f"sink-{sink.name}") for sink in sinks]
        try:
            done = await work()
            for sink in sinks:
                await sink.finish()
        except Exception as exc:  # not wrapped in the group's ExceptionGroup: callers catch it by type
            failure = exc
        for task in tasks:
            task.cancel()
    if failure is not None:
        raise failure
    return done


def result_metadata(
    job: Job, record: JobRecord, sha256: str, size: int, downloaded_at: float | None
) -> dict[str, Any]:
    """A result's sidecar: the job, the exact request sent, the generation, timings, cost, API, bytes."""
    return {
        "job_key": job.key,
        "name": job.name,
        "title": job.title or record.label,  # its readable name, for people
        "replica": job.replica,
        "model": job.model,
        "generation_id": record.generation_id,
        "request": record.sent_body() or dict(job.request),
        "vars": dict(job.vars),
        # the file name only: a sidecar travels (into a shared repository) and a local path is nobody's
        # business there; the run directory's manifest.yaml is the copy that was run
        "manifest": f"{PurePath(job.location.file).name}:{job.location.line}",
        "submitted_at": record.submitted_at,
        "completed_at": record.completed_at,
        "downloaded_at": downloaded_at,
        # the same moments as ISO-8601 UTC, for people (the epoch seconds above are for programs)
        "submitted_at_iso": iso_utc(record.submitted_at),
        "completed_at_iso": iso_utc(record.completed_at),
        "downloaded_at_iso": iso_utc(downloaded_at),
        "cost_usd": str(job.cost_usd) if job.cost_usd is not None else None,
        "api": record.api,
        "sha256": sha256,
        "size": size,
    }
