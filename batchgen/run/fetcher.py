"""Fetching results: download workers that turn a succeeded generation into a verified file at its path,
its sidecar beside it, then hand it to the run's sinks. What to do when a download fails is decided
here, from the policy in the run's options: refresh an expired URL, try the API's own origin once with
the key, back off; and after `MAX_UNVERIFIED_DOWNLOADS` whole downloads whose bytes fail verification,
keep the last bytes in unverified/ and journal the job `unverified` (paid: never deleted, never fetched
again by itself)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
import time
from collections import Counter
from collections.abc import Sequence
from functools import partial
from pathlib import Path
from typing import Any

import aiohttp

from batchgen.client.download import fetch_result
from batchgen.errors import (
    ApiError,
    DownloadCorrupt,
    DownloadError,
    DownloadExpired,
    DownloadStalled,
    StorageError,
    UnverifiedKept,
)
from batchgen.journal.store import JobRecord
from batchgen.logs import job_key
from batchgen.planning import Job
from batchgen.results.unverified import MAX_UNVERIFIED_DOWNLOADS, unverified_reason, verify_result
from batchgen.retry import attempts
from batchgen.run.context import RunContext
from batchgen.rundir.landing import DirectorySync, Land, lstat_kind
from batchgen.rundir.layout import (
    UnsafePathError,
    read_sidecar,
    set_aside_kept,
    set_aside_unowned,
    sidecar_path,
    unverified_relpath,
    write_sidecar,
)
from batchgen.rundir.verify import Downloaded
from batchgen.sinks.base import ResultSink, VerifiedResult, result_metadata
from batchgen.states import JobState

log = logging.getLogger(__name__)

DIRECTORY_SYNC_S = 1.0  # renamed results' directories are fsynced together, at least this often


class Sidecars:
    """Result sidecars, written in batches (a file per result made from many threads at once costs more
    than the download): up to BATCH at a time, at least every BATCH_S seconds, and at the end. A result
    whose sidecar was not written when the process died is fetched again on resume (never paid again)."""

    BATCH = 64
    BATCH_S = 0.25

    def __init__(self) -> None:
        self._pending: list[tuple[Path, dict[str, Any]]] = []
        self._lock = threading.Lock()  # `add` runs in the downloads' worker threads
        self._written_at = time.monotonic()

    def add(self, result: VerifiedResult) -> None:
        with self._lock:
            self._pending.append((sidecar_path(result.path), result.metadata))

    async def write(self, *, when_due: bool = False) -> None:
        due = len(self._pending) >= self.BATCH or time.monotonic() - self._written_at >= self.BATCH_S
        if when_due and not due:
            return
        with self._lock:
            batch, self._pending = self._pending, []
        self._written_at = time.monotonic()
        if batch:
            await asyncio.to_thread(_write_sidecars, batch)


class Fetcher:
    """The download workers and what they share: the run's download queue (`ctx.downloads`), one HTTP
    session (open while the fetcher is, `async with`), the batched sidecars and the directory syncs."""

    def __init__(self, ctx: RunContext, sinks: Sequence[ResultSink]) -> None:
        self.ctx = ctx
        self.sinks = tuple(sinks)
        self.active = 0
        self.failures = 0
        self.corrupt: Counter[str] = Counter()  # whole downloads per job whose bytes failed verification
        self.session: aiohttp.ClientSession | None = None
        self.sidecars = Sidecars()
        self.dirs = DirectorySync()  # directory fsyncs of renamed results, done together
        self._synced_at = time.monotonic()

    async def __aenter__(self) -> Fetcher:
        timeouts = self.ctx.options.timeouts
        timeout = aiohttp.ClientTimeout(
            total=None, connect=timeouts.connect_s, sock_read=timeouts.download_read_s
        )
        self.session = aiohttp.ClientSession(timeout=timeout)
        return self

    async def __aexit__(self, *exc: object) -> None:
        """Unless the run broke off: the last directory syncs and sidecars. Then the session closes."""
        try:
            if exc[0] is None:
                await asyncio.to_thread(self.dirs.flush)
                await self.sidecars.write()
        finally:
            if self.session is not None:
                await self.session.close()

    def busy(self) -> bool:
        return self.active > 0 or not self.ctx.downloads.empty()

    async def worker(self) -> None:
        while True:
            key = await self.ctx.downloads.get()
            self.active += 1
            try:
                await self.fetch(key)
            finally:
                self.active -= 1
                self.ctx.notify()

    async def fetch(self, key: str) -> None:
        ctx = self.ctx
        job, record = ctx.jobs[key], ctx.record(key)
        try:
            final = ctx.final_path(job)  # checked now, not at plan time: a symlink may have appeared
            keep = ctx.checked(unverified_relpath(job.output_path, key))  # for bytes that fail every time
        except UnsafePathError as exc:
            self.failures += 1
            ctx.journal.transition(key, record.state, "unsafe output path", error=str(exc))
            return
        found = await asyncio.to_thread(self._make_room, job, record, final) if lstat_kind(final) else None
        if found is not None:  # journaled here, on the event loop's thread: the journal is not thread-safe
            self._done(job, final, found.sha256, found.size, "found complete on disk")
            return
        landed: list[VerifiedResult] = []
        try:
            await self._download(job, record, final, keep, partial(self._land, job, ctx.record(key), landed))
        except UnverifiedKept as kept:
            await self._keep_unverified(job, ctx.record(key), kept)
            return
        except DownloadError as exc:
            self.failures += 1
            log.warning("could not download the result of %s: %s", job.label, exc, extra=job_key(key))
            error = f"download failed ({exc}); run again to fetch it (nothing is paid again)"
            ctx.journal.transition(key, record.state, "download failed", error=error)
            return
        if landed:
            await self._deliver(job, final, landed[0])

    def _land(self, job: Job, record: JobRecord, landed: list[VerifiedResult], done: Downloaded) -> None:
        """In the download's worker thread, right after the rename: the sidecar, and the sinks' local part."""
        verified = VerifiedResult(
            job.key,
            done.path,
            done.sha256,
            done.size,
            result_metadata(job, record, done.sha256, done.size, time.time()),
        )
        self.sidecars.add(verified)
        for sink in self.sinks:
            sink.land(verified)
        landed.append(verified)

    async def _download(self, job: Job, record: JobRecord, final: Path, keep: Path, land: Land) -> Downloaded:
        """Download until verified, within the run's budget of tries: DownloadError when they are used
        up, UnverifiedKept when the last whole download allowed failed verification (bytes in `keep`)."""
        ctx, key, policy = self.ctx, job.key, self.ctx.options.retry
        assert self.session is not None
        tries = attempts(
            policy,
            limit=policy.download_attempts,
            on=_retried,
            what=f"the download of {job.label}",
            sleep=asyncio.sleep,
            rng=ctx.rng,
            extra=job_key(key),
        )
        with_key = False  # a result URL on the API's own origin that refused us gets one try with the key
        async for attempt in tries:
            with attempt:
                url = ""
                last_chance = self.corrupt[key] + 1 >= MAX_UNVERIFIED_DOWNLOADS
                try:
                    if last_chance and lstat_kind(keep):  # left by a crash: moved aside, never overwritten
                        await asyncio.to_thread(set_aside_kept, ctx.run_dir, job.output_path, key)
                    url = ctx.urls.get(key) or await self._fresh_url(record)
                    return await fetch_result(
                        self.session,
                        url,
                        final,
                        media_type=job.media_type,
                        read_timeout=ctx.options.timeouts.download_read_s,
                        max_resumes=policy.download_resumes,
                        headers=ctx.client.auth_for(url) if with_key else None,
                        land=land,
                        dirs=self.dirs,
                        keep_corrupt=keep if last_chance else None,
                    )
                except DownloadExpired:
                    # a private repository's file, perhaps (the key is never sent to another host)
                    with_key = not with_key and bool(ctx.client.auth_for(url))
                    if not with_key:
                        ctx.urls.pop(key, None)
                    raise
                except UnverifiedKept:
                    raise
                except DownloadCorrupt:
                    self.corrupt[key] += 1
                    raise
                except DownloadStalled:  # the host crawls: a fresh URL may lead elsewhere
                    ctx.urls.pop(key, None)
                    raise
        raise DownloadError(f"{policy.download_attempts} attempts failed, the last with: {tries.error}")

    async def _keep_unverified(self, job: Job, record: JobRecord, kept: UnverifiedKept) -> None:
        """The last download allowed failed verification too: the job is `unverified`, its bytes kept
        (with a sidecar saying why) for the user to look at, accept or fetch again."""
        ctx = self.ctx
        self.failures += 1
        where = unverified_relpath(job.output_path, job.key)
        metadata = {
            **result_metadata(job, record, kept.sha256, kept.size, time.time()),
            "verified": False,
            "problem": kept.problem,
        }
        await asyncio.to_thread(write_sidecar, sidecar_path(kept.path), metadata)
        reason = unverified_reason(kept.problem, where, self.corrupt[job.key] + 1)
        ctx.journal.transition(
            job.key,
            JobState.UNVERIFIED,
            "bytes failed verification",
            error=reason,
            sha256=kept.sha256,
            size=kept.size,
            downloaded_at=time.time(),
        )
        ctx.urls.pop(job.key, None)
        log.error(
            "job %s is unverified: %s. Not downloaded again: `batchgen unverified %s` to look at it, "
            "then --accept or --fetch-again",
            job.label,
            reason,
            ctx.run_dir,
            extra=job_key(job.key),
        )

    async def _deliver(self, job: Job, final: Path, verified: VerifiedResult) -> None:
        ctx = self.ctx
        await self.sidecars.write(when_due=True)
        for sink in self.sinks:
            await sink.deliver(verified)
        log.debug(
            "downloaded %s to %s (%d bytes, sha256 %s)",
            job.label,
            final,
            verified.size,
            verified.sha256[:16],
            extra=job_key(job.key),
        )
        self._done(job, final, verified.sha256, verified.size, None, downloaded_at=time.time())
        ctx.urls.pop(job.key, None)
        if time.monotonic() - self._synced_at > DIRECTORY_SYNC_S or self.ctx.downloads.empty():
            self._synced_at = time.monotonic()
            await asyncio.to_thread(self.dirs.flush)

    def _done(self, job: Job, final: Path, sha256: str, size: int, detail: str | None, **more: Any) -> None:
        """Journal the job done (superseded, when its result goes to superseded/): whole at `final`."""
        state = JobState.SUPERSEDED if job.key in self.ctx.displaced else JobState.DONE
        self.ctx.journal.transition(
            job.key, state, detail, sha256=sha256, size=size, mtime_ns=_mtime_ns(final), error=None, **more
        )

    async def _fresh_url(self, record: JobRecord) -> str:
        if not record.generation_id:
            raise DownloadError("no generation id to fetch a result URL for")
        row = await self.ctx.client.get_generation(record.generation_id)
        url = row.get("result_url")
        if not url:
            raise DownloadError(f"generation {record.generation_id} has no result_url")
        return str(url)

    def _make_room(self, job: Job, record: JobRecord, final: Path) -> Downloaded | None:
        """Before a result is written to `final` (in a worker thread): if a crash came between the rename
        and the journal, the file there (with our sidecar and its sha256) is the result, returned. Any
        other file there is moved to superseded/ first, never overwritten."""
        if not (final.exists() or final.is_symlink()):
            return None
        sidecar = read_sidecar(final)
        if (
            sidecar
            and sidecar.get("job_key") == job.key
            and sidecar.get("generation_id") == record.generation_id
        ):
            with contextlib.suppress(DownloadCorrupt, StorageError):
                return verify_result(
                    final, job.media_type, sidecar, sidecar.get("size"), sidecar.get("sha256")
                )
        if job.key not in self.ctx.displaced:
            moved_to = set_aside_unowned(self.ctx.run_dir, job.output_path)
            log.warning(
                "kept the file found at %s in %s: job %s writes its result there",
                job.output_path,
                moved_to,
                job.label,
                extra=job_key(job.key),
            )
        return None


def _retried(error: Exception) -> bool | float:
    """What the download loop tries again: an expired URL at once (refreshed, or with the key), any
    other failed download or API call after the backoff; bytes kept as unverified never."""
    if isinstance(error, DownloadExpired):
        return 0.0
    return isinstance(error, DownloadError | ApiError) and not isinstance(error, UnverifiedKept)


def _mtime_ns(path: Path) -> int | None:
    try:
        return path.lstat().st_mtime_ns
    except OSError:
        return None


def _write_sidecars(batch: list[tuple[Path, dict[str, Any]]]) -> None:
    for path, metadata in batch:
        write_sidecar(path, metadata)
