"""Paid results whose bytes failed verification: kept aside, never deleted, and the user's way out.

A download that arrives whole but fails verification (a bad signature, MP4 boxes that do not tile the
file, fewer bytes than announced) is fetched again; after `MAX_UNVERIFIED_DOWNLOADS` such downloads the
fetcher keeps the last bytes at `unverified/<key12>/<file name>` (with a sidecar saying why) and the
job becomes `unverified`: paid, never submitted or downloaded again by itself. This module lists those
jobs and carries out what the user decides (`batchgen unverified RUN_DIR`):

- `accept`: the kept bytes become the result (moved to the result's path, journaled done; the sidecar
  says `"verified": false, "accepted_by_user": true`, and later runs check them by sha256 only);
- `fetch_again`: the job goes back to `succeeded`, so the next `batchgen run` downloads it again with a
  fresh budget of tries (the kept bytes move aside to `unverified/<key12>/earlier-<time>/`).

Both take the run directory's lock (`settle`): a live run alone changes its journal.
"""

from __future__ import annotations

import os
import time
from collections.abc import Collection
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from batchgen.errors import StorageError
from batchgen.journal.session import Session
from batchgen.journal.store import JobRecord, Journal
from batchgen.rundir.layout import (
    ensure_inside,
    move_with_sidecar,
    read_sidecar,
    result_relpath,
    set_aside_kept,
    set_aside_unowned,
    sidecar_path,
    superseded_relpath,
    unverified_relpath,
    write_sidecar,
)
from batchgen.rundir.verify import Downloaded, hash_file, verify_file
from batchgen.states import JobState

__all__ = [
    "MAX_UNVERIFIED_DOWNLOADS",
    "Unverified",
    "UnverifiedJob",
    "accept",
    "fetch_again",
    "settle",
    "unverified_jobs",
    "unverified_reason",
    "verify_result",
]

#: Whole downloads of one result whose bytes fail verification before the job becomes `unverified`
#: (per run; cuts and stalls resume and do not count). Two, so one bad answer on the way is forgiven,
#: and a result that is bad at the source costs two downloads, not a night of them.
MAX_UNVERIFIED_DOWNLOADS = 2


@dataclass(frozen=True, slots=True)
class UnverifiedJob:
    """A job in the `unverified` state, as the journal and the run directory say."""

    key: str
    name: str
    title: str  # its readable name (`hero · mug · 9:16 · take 2`), for people
    output_path: str  # its result's path under videos/
    kept_path: str  # where its bytes are kept, relative to the run directory
    reason: str  # the journal's error: the verifier's words and where the bytes are
    size: int | None  # of the kept bytes, as downloaded
    planned: bool

    @classmethod
    def of(cls, record: JobRecord) -> UnverifiedJob:
        return cls(
            key=record.key,
            name=record.name,
            title=record.label,
            output_path=record.output_path,
            kept_path=unverified_relpath(record.output_path, record.key),
            reason=record.error or "its bytes failed verification",
            size=record.size,
            planned=record.planned,
        )

    def as_json(self) -> dict[str, Any]:
        # its output_path relative to the run directory, as everywhere
        return {**asdict(self), "output_path": result_relpath(self.output_path)}


def unverified_reason(problem: str, kept_path: str, downloads: int = MAX_UNVERIFIED_DOWNLOADS) -> str:
    """The journal's error for an unverified job: what the verifier said, and where the bytes are."""
    return f"downloaded {downloads} times, failed verification each time: {problem}; kept at {kept_path}"


def unverified_jobs(journal: Journal, chosen: Collection[str] | None = None) -> list[UnverifiedJob]:
    """The journal's unverified jobs (of `chosen` keys, when given), in plan order."""
    records = sorted(journal.records().values(), key=lambda r: r.idx)
    return [
        UnverifiedJob.of(r)
        for r in records
        if r.state is JobState.UNVERIFIED and (chosen is None or r.key in chosen)
    ]


def verify_result(
    path: Path, media_type: str, sidecar: dict[str, Any] | None, size: Any, sha256: Any
) -> Downloaded:
    """`verify_file` of a finished result against its size and sha256; bytes the user accepted without
    verification (their sidecar says so) are checked against these only: their structure is known to fail."""
    accepted = bool(sidecar and sidecar.get("accepted_by_user") is True and sidecar.get("verified") is False)
    return verify_file(path, media_type, expected_size=size, expected_sha256=sha256, structure=not accepted)


def accept(run_dir: Path, journal: Journal, job: UnverifiedJob) -> str:
    """Make the kept bytes the job's result: moved to its path (a file found there is set aside first,
    never overwritten), the sidecar rewritten, the job journaled done. Returns the new path. Raises
    FileNotFoundError when the kept bytes are gone; StorageError when the disk refuses."""
    kept = ensure_inside(run_dir, job.kept_path)
    if not kept.is_file():
        raise FileNotFoundError(f"{job.kept_path} is not there any more")
    size, hasher, _ = hash_file(kept)  # what is accepted is what is there now (perhaps repaired)
    if job.planned:
        destination, state = result_relpath(job.output_path), JobState.DONE
        set_aside_unowned(run_dir, job.output_path)
    else:  # a job of an earlier manifest: kept beside the other results it no longer plans
        destination, state = superseded_relpath(job.output_path, job.key), JobState.SUPERSEDED
    move_with_sidecar(run_dir, job.kept_path, destination)
    final = ensure_inside(run_dir, destination)
    record = journal.get(job.key)
    sidecar = read_sidecar(final) or _minimal_sidecar(record)
    sidecar.update(
        sha256=hasher.hexdigest(),
        size=size,
        verified=False,
        accepted_by_user=True,
        accepted_at=time.time(),
    )
    write_sidecar(sidecar_path(final), sidecar)
    journal.transition(
        job.key,
        state,
        "accepted unverified by the user",
        sha256=hasher.hexdigest(),
        size=size,
        mtime_ns=final.lstat().st_mtime_ns,
        error=None,
    )
    journal.flush()
    return destination


def fetch_again(run_dir: Path, journal: Journal, job: UnverifiedJob) -> str | None:
    """Back to `succeeded`: the next run downloads the result again, with a fresh budget of tries. The
    kept bytes move aside (returned: where to; None when they were gone), never deleted."""
    moved = set_aside_kept(run_dir, job.output_path, job.key)
    journal.transition(
        job.key,
        JobState.SUCCEEDED,
        "fetch again: asked by the user",
        sha256=None,
        size=None,
        mtime_ns=None,
        error=None,
    )
    journal.flush()
    return moved


def _minimal_sidecar(record: JobRecord) -> dict[str, Any]:
    """A sidecar from the journal alone, for kept bytes whose own sidecar is missing."""
    return {
        "job_key": record.key,
        "name": record.name,
        "model": record.model,
        "generation_id": record.generation_id,
        "request": record.sent_body(),
        "api": record.api,
        "submitted_at": record.submitted_at,
        "completed_at": record.completed_at,
    }


def kept_exists(run_dir: Path, job: UnverifiedJob) -> bool:
    """Are the kept bytes still where the journal says?"""
    try:
        return os.path.isfile(ensure_inside(run_dir, job.kept_path))
    except ValueError:
        return False


@dataclass(frozen=True, slots=True)
class Unverified:
    """An unverified job, and what `settle` did with it."""

    job: UnverifiedJob
    kept: bool  # its kept bytes are (or were, before the change) where the journal says
    moved_to: str | None = None  # accepted: the result's path; fetched again: where the kept bytes went
    error: str | None = None  # why it could not be changed (None: it was, or nothing was asked)


def settle(
    run_dir: Path, chosen: Collection[str] | None, *, accept_them: bool, again: bool
) -> list[Unverified]:
    """The run directory's unverified jobs (of `chosen`), as they are (read-only), or accepted as they
    are or to be fetched again (under the lock: RunLocked while a run holds it)."""
    if not (accept_them or again):
        with Session.reading(run_dir) as session:
            return [
                Unverified(job, kept_exists(run_dir, job)) for job in unverified_jobs(session.journal, chosen)
            ]
    done = []
    with Session.writing(run_dir) as session:
        for job in unverified_jobs(session.journal, chosen):
            kept = kept_exists(run_dir, job)
            try:
                moved = (
                    accept(run_dir, session.journal, job)
                    if accept_them
                    else fetch_again(run_dir, session.journal, job)
                )
                done.append(Unverified(job, kept, moved))
            except FileNotFoundError:
                done.append(Unverified(job, False, error=f"its kept bytes are no longer at {job.kept_path}"))
            except (StorageError, ValueError) as exc:
                done.append(Unverified(job, kept, error=str(exc)))
    return done
