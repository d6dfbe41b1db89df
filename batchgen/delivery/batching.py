"""What goes into one upload request, and what its commit says (pure: no I/O).

An upload (`PUT .../file/{branch}/{dir}` with `files[]` parts) puts files into one directory as one
commit, so files are grouped by directory, in the order they arrived, and cut at MAX_BATCH_FILES
files or MAX_BATCH_BYTES bytes (one larger file goes alone). Every commit message carries a token
(`[batchgen:1a2b3c4d5e6f]`) unique to the request, so that a request whose answer was lost can be
found in the branch's history instead of being sent again.
"""

from __future__ import annotations

import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass

__all__ = [
    "MAX_BATCH_BYTES",
    "MAX_BATCH_FILES",
    "Batch",
    "Outgoing",
    "commit_message",
    "plan_batches",
    "token_of",
    "upload_timeout_s",
]

MAX_BATCH_FILES = 100  # parts per request
MAX_BATCH_BYTES = 32 * 1024 * 1024  # body per request (the hub's limit is not documented)
MIN_UPLOAD_BYTES_PER_S = 256 * 1024  # an upload slower than this times out
_TOKEN = re.compile(r"\[batchgen:([0-9a-f]{12})\]")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One file to deliver: where it is in the run directory, where it goes in the repository."""

    local: str  # relative to the run directory: videos/hero/16x9.mp4
    repo_path: str
    size: int
    sha256: str | None = None  # known in advance (a result's, from the journal), else hashed when read
    data: bytes | None = None  # held in memory already (a sidecar made from its metadata)
    result: bool = False  # a result (not a sidecar or a run file): counted as one in commit messages

    @property
    def directory(self) -> str:
        return posixpath.dirname(self.repo_path)

    @property
    def name(self) -> str:
        return posixpath.basename(self.repo_path)


@dataclass(frozen=True, slots=True)
class Batch:
    """Files of one directory, sent as one request (one commit)."""

    directory: str
    items: tuple[Outgoing, ...]

    @property
    def size(self) -> int:
        return sum(item.size for item in self.items)

    @property
    def results(self) -> int:
        return sum(1 for item in self.items if item.result)

    def halves(self) -> tuple[Batch, Batch]:
        """The batch cut in two, to find which file a refused request was refused for."""
        middle = len(self.items) // 2
        return Batch(self.directory, self.items[:middle]), Batch(self.directory, self.items[middle:])


def plan_batches(
    items: Iterable[Outgoing], *, max_files: int = MAX_BATCH_FILES, max_bytes: int = MAX_BATCH_BYTES
) -> list[Batch]:
    """Group `items` by directory (directories in order of their first file), cut at the limits.
    A later item with the same repository path replaces an earlier one."""
    by_path = {item.repo_path: item for item in items}
    by_directory: dict[str, list[Outgoing]] = {}
    for item in by_path.values():
        by_directory.setdefault(item.directory, []).append(item)
    batches: list[Batch] = []
    for directory, files in by_directory.items():
        current: list[Outgoing] = []
        size = 0
        for item in files:
            if current and (len(current) >= max_files or size + item.size > max_bytes):
                batches.append(Batch(directory, tuple(current)))
                current, size = [], 0
            current.append(item)
            size += item.size
        if current:
            batches.append(Batch(directory, tuple(current)))
    return batches


def commit_message(campaign: str, batch: Batch, token: str, jobs_done: tuple[int, int] | None = None) -> str:
    """Names the campaign, what the commit holds, and the request's token."""
    files = len(batch.items)
    if batch.results:
        what = f"{_count(batch.results, 'result')} ({_count(files, 'file')}) in {batch.directory}"
    else:
        what = ", ".join(item.name for item in batch.items[:5]) + (
            f" and {files - 5} more" if files > 5 else ""
        )
    done = f"; {jobs_done[0]}/{jobs_done[1]} jobs done" if jobs_done is not None else ""
    return f"batchgen {campaign}: {what}{done} [batchgen:{token}]"


def token_of(message: object) -> str | None:
    """The request token in a commit message (None for commits batchgen did not make)."""
    if not isinstance(message, str):
        return None
    found = _TOKEN.search(message)
    return found.group(1) if found else None


def upload_timeout_s(size: int, request_s: float) -> float:
    """How long one upload of `size` bytes may take: the request timeout plus the bytes at a slow rate."""
    return request_s + size / MIN_UPLOAD_BYTES_PER_S


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
