"""Where finished results go. Every result is first downloaded and verified into the run directory; then
each sink of the run is handed the verified file with its metadata. The local sink writes the sidecar
beside the file; another destination (an Oxen repository, in `sinks/oxen/`; object storage) is another
`ResultSink`, not an edit of the runner."""

from __future__ import annotations

import asyncio
import threading
import time
from dataclasses import dataclass
from pathlib import Path, PurePath
from typing import TYPE_CHECKING, Any, Protocol

from batchgen.isotime import iso_utc
from batchgen.rundir.layout import sidecar_path, write_sidecar

if TYPE_CHECKING:
    from batchgen.journal.store import JobRecord
    from batchgen.planning import Job


@dataclass(frozen=True, slots=True)
class VerifiedResult:
    """A finished result: its file (whole, verified, at its final path) and what is known about it."""

    key: str
    path: Path
    sha256: str
    size: int
    metadata: dict[str, Any]  # the sidecar's content: job, request, generation, timings, cost, api


class ResultSink(Protocol):
    """A destination for finished results.

    `land` runs in the download's worker thread right after the file is verified at its path, before the
    job is journaled done (keep it short and local). `deliver` runs on the event loop afterwards and may
    batch; `close` flushes what it holds. A sink that fails raises; the run reports it, and the result
    stays verified on disk (never lost).
    """

    name: str

    def land(self, result: VerifiedResult) -> None: ...

    async def deliver(self, result: VerifiedResult) -> None: ...

    async def close(self) -> None: ...


class LocalSink:
    """The run directory itself: the result is already at its path; its sidecar JSON goes beside it.

    Sidecars are written in batches (one worker-thread hop for up to `BATCH` of them, at least every
    `BATCH_S` seconds, and at close): a file per result created from many threads at once in a large
    directory costs more than the download itself. A result whose sidecar is not written yet when the
    process dies is fetched again on resume (never paid again): without its sidecar it is not trusted.
    """

    name = "local"
    BATCH = 64
    BATCH_S = 0.25

    def __init__(self) -> None:
        self._pending: list[tuple[Path, dict[str, Any]]] = []
        self._lock = threading.Lock()
        self._written_at = time.monotonic()

    def land(self, result: VerifiedResult) -> None:
        with self._lock:
            self._pending.append((sidecar_path(result.path), result.metadata))

    async def deliver(self, result: VerifiedResult) -> None:
        if len(self._pending) >= self.BATCH or time.monotonic() - self._written_at >= self.BATCH_S:
            await self.close()

    async def close(self) -> None:
        with self._lock:
            batch, self._pending = self._pending, []
        self._written_at = time.monotonic()
        if batch:
            await asyncio.to_thread(_write_all, batch)


def _write_all(batch: list[tuple[Path, dict[str, Any]]]) -> None:
    for path, metadata in batch:
        write_sidecar(path, metadata)


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
