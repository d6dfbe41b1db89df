"""A run directory whose journal is gone (deleted, or left 0 bytes) while its results are on disk: the
journal's jobs are rebuilt from the results' sidecars, so nothing already paid for is paid again.

Each result under `videos/` carries a sidecar (`<stem>.json`: job key, generation id, sha256, request,
times, API). A result whose bytes still hash to its sidecar's sha256 is journaled `done`; one whose
bytes changed, or whose sidecar is there without it, is journaled `succeeded` with its generation id (it
is fetched again from the provider, free); a result without a usable sidecar cannot be told from a
stray file, so the run is refused (exit 2) with the way out, before anything is written or sent.
The run's session (`journal.session`) opens the new journal and restores the rows into it.
"""

from __future__ import annotations

import logging
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from batchgen.errors import DownloadCorrupt, StorageError, UsageError
from batchgen.journal.store import JOURNAL_NAME, JobRecord
from batchgen.planning import Job, Plan, canonical_json
from batchgen.rundir.layout import VIDEOS_DIR, read_sidecar
from batchgen.rundir.verify import verify_file
from batchgen.states import JobState

log = logging.getLogger(__name__)

__all__ = ["Recovered", "journal_lost", "recover_lost_journal", "set_aside_stale_files"]

_KEY = re.compile(r"[0-9a-f]{16,128}(\+take-[A-Za-z0-9-]{1,64})?")  # a job's, or an extra take's
_SHA256 = re.compile(r"[0-9a-f]{64}")
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".gif", ".webp"})
_NOT_RESULTS = (".json", ".part", ".tmp")


@dataclass
class Recovered:
    """The journal rows rebuilt from a run directory's sidecars."""

    records: list[JobRecord] = field(default_factory=list)
    planned_missing: int = 0  # planned jobs with no result (nor sidecar) on disk: submitted as new

    def summary(self, how: str) -> str:
        kept = sum(1 for r in self.records if r.state is JobState.DONE)
        again = len(self.records) - kept
        text = f"journal rebuilt from {len(self.records)} sidecars ({how}): {kept} results kept as done"
        if again:
            text += f", {again} to fetch again from the provider (not paid again)"
        if self.planned_missing:
            text += (
                f"; {self.planned_missing} planned job(s) have nothing on disk and are submitted "
                "(one that was still rendering when the journal was lost is paid again)"
            )
        return text


def set_aside_stale_files(run_dir: Path) -> None:
    """A `-wal`/`-shm` left beside a lost journal belongs to it, not to the new one: renamed (kept)."""
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    for suffix in ("-wal", "-shm"):
        stale = run_dir / f"{JOURNAL_NAME}{suffix}"
        if os.path.lexists(stale):
            try:
                stale.rename(stale.with_name(f"{stale.name}.lost-{stamp}"))
            except OSError as exc:
                raise StorageError(f"cannot move {stale} aside: {exc.strerror or exc}") from exc


def journal_lost(run_dir: Path) -> str | None:
    """How the journal is gone ("missing", "0 bytes"), or None when there is one to open."""
    path = run_dir / JOURNAL_NAME
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return "missing"
    except OSError:
        return None  # opening it reports the real problem
    return "0 bytes" if size == 0 else None


def recover_lost_journal(run_dir: Path, plan: Plan) -> tuple[Recovered, str] | None:
    """When the journal is gone and `videos/` holds results, the rows to journal and how it was lost;
    None when there is nothing to rebuild. Raises UsageError when a result cannot be attributed.
    Writes nothing: the caller opens the journal and restores the rows in one transaction."""
    how = journal_lost(run_dir)
    videos = run_dir / VIDEOS_DIR
    if how is None or not videos.is_dir():
        if how is not None and (run_dir / "plan.json").exists():
            log.warning(
                "%s has a plan.json but its journal is %s and no result is on disk: the run starts "
                "afresh (a generation still rendering when the journal was lost is paid again)",
                run_dir,
                how,
            )
        return None
    recovered, unreadable = _scan(videos, plan)
    if unreadable:
        shown = ", ".join(unreadable[:5]) + (
            f" and {len(unreadable) - 5} more" if len(unreadable) > 5 else ""
        )
        raise UsageError(
            f"{run_dir / JOURNAL_NAME} is {how}, and {len(unreadable)} result(s) under {videos} have no "
            f"readable sidecar to rebuild it from: {shown}. Nothing was sent. Restore {JOURNAL_NAME} from "
            f"a backup, or move those files out of {videos} (their jobs are then made, and paid, again)"
        )
    if not recovered.records:
        return None
    journaled = {r.key for r in recovered.records}
    recovered.planned_missing = sum(1 for job in plan.jobs if job.key not in journaled)
    return recovered, how


def _scan(videos: Path, plan: Plan) -> tuple[Recovered, list[str]]:
    jobs = {job.key: job for job in plan.jobs}
    found: dict[str, JobRecord] = {}
    unreadable: list[str] = []
    for result in _results(videos):
        relative = result.relative_to(videos).as_posix()
        facts = _facts(read_sidecar(result) or {})
        if facts is None:
            unreadable.append(relative)
            continue
        record = _record(facts, result, relative, jobs.get(facts["key"]), len(jobs) + len(found))
        if facts["key"] not in found or record.output_path == relative:
            found[facts["key"]] = record
    for key, job in jobs.items():  # a sidecar whose result is gone: the generation is fetched again
        if key in found:
            continue
        path = videos / job.output_path
        facts = _facts(read_sidecar(path) or {})
        if facts is not None and facts["key"] == key and not os.path.lexists(path):
            found[key] = _row(facts, job, job.output_path, JobState.SUCCEEDED, None, None)
    return Recovered(list(found.values())), unreadable


def _results(videos: Path) -> list[Path]:
    """Every regular file under `videos/` that is not a sidecar or a partial download (no symlink
    is followed)."""
    found = []
    for folder, dirs, files in os.walk(videos):
        dirs.sort()
        for name in sorted(files):
            path = Path(folder) / name
            wanted = not name.endswith(_NOT_RESULTS) and not name.startswith(".")
            if wanted and path.is_file() and not path.is_symlink():
                found.append(path)
    return found


def _facts(sidecar: dict[str, Any]) -> dict[str, Any] | None:
    """What a sidecar must hold to journal its result from it; None when it does not."""
    key, generation_id, sha256 = sidecar.get("job_key"), sidecar.get("generation_id"), sidecar.get("sha256")
    if not (isinstance(key, str) and _KEY.fullmatch(key)):
        return None
    if not (isinstance(generation_id, str) and generation_id and isinstance(sha256, str)):
        return None
    if not _SHA256.fullmatch(sha256):
        return None
    request = sidecar.get("request")
    return {
        "key": key,
        "generation_id": generation_id,
        "sha256": sha256,
        "name": str(sidecar.get("name") or "(rebuilt)"),
        "title": sidecar.get("title") if isinstance(sidecar.get("title"), str) else None,
        "model": str(sidecar.get("model") or "?"),
        "request": canonical_json(request) if isinstance(request, dict) else None,
        "api": sidecar.get("api") if isinstance(sidecar.get("api"), str) else None,
        **{name: _time(sidecar.get(name)) for name in ("submitted_at", "completed_at", "downloaded_at")},
    }


def _time(value: Any) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def _record(facts: dict[str, Any], result: Path, relative: str, job: Job | None, index: int) -> JobRecord:
    """A result with a readable sidecar: `done` if its bytes are still what the sidecar says."""
    media = job.media_type if job else ("image" if result.suffix.lower() in _IMAGE_SUFFIXES else "video")
    try:
        verified = verify_file(result, media, expected_sha256=facts["sha256"])
        stat = result.stat()
    except (DownloadCorrupt, StorageError, OSError):
        return _row(facts, job, relative, JobState.SUCCEEDED, None, None, index=index)
    return _row(facts, job, relative, JobState.DONE, verified.size, stat.st_mtime_ns, index=index)


def _row(
    facts: dict[str, Any],
    job: Job | None,
    relative: str,
    state: JobState,
    size: int | None,
    mtime_ns: int | None,
    *,
    index: int = 0,
) -> JobRecord:
    return JobRecord(
        key=facts["key"],
        idx=job.index if job else index,
        name=job.name if job else facts["name"],
        model=job.model if job else facts["model"],
        output_path=relative,
        state=state,
        attempts=1,
        generation_id=facts["generation_id"],
        sent_request=facts["request"],
        submitted_at=facts["submitted_at"],
        completed_at=facts["completed_at"],
        downloaded_at=facts["downloaded_at"] if state is JobState.DONE else None,
        sha256=facts["sha256"] if state is JobState.DONE else None,
        size=size,
        mtime_ns=mtime_ns,
        updated_at=time.time(),
        api=facts["api"],
        planned=job is not None,
        title=job.title if job and job.title else facts["title"],
    )
