"""What goes into one commit and into each request that stages it, and what the commit says (pure).

A delivery commits through a workspace (docs/oxen-repositories.md): files are staged into it, a few
small ones per request (`file` parts of a multipart POST, as Oxen's own client sends them), each
file over LARGE_FILE_BYTES through the chunked version upload, then the workspace is committed as
one commit, whatever directories the files are in. So a commit takes files in the order they
arrived, cut at MAX_BATCH_FILES files or MAX_BATCH_BYTES bytes. Every commit message carries a token
(`[batchgen:1a2b3c4d5e6f]`) unique to the commit, and the workspace is named after it, so that a
commit whose answer was lost can be found in the branch's history instead of being made again.
"""

from __future__ import annotations

import math
import posixpath
import re
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "LARGE_FILE_BYTES",
    "MAX_BATCH_BYTES",
    "MAX_BATCH_FILES",
    "STAGE_REQUEST_BYTES",
    "Batch",
    "Outgoing",
    "Stage",
    "commit_message",
    "plan_batches",
    "plan_stages",
    "split_for_url",
    "token_of",
    "upload_timeout_s",
    "workspace_id",
]

MAX_BATCH_FILES = 100  # files per commit
MAX_BATCH_BYTES = 512 * 1024 * 1024  # bytes per commit: what a commit that must be redone costs
# Oxen's client (liboxen `stream_segment_size`) sends each file over 10 MiB through the chunked
# version upload, in 10 MiB chunks, and smaller ones in multipart requests of about that size.
LARGE_FILE_BYTES = 10 * 1024 * 1024
STAGE_REQUEST_BYTES = 10 * 1024 * 1024
MIN_UPLOAD_BYTES_PER_S = 256 * 1024  # an upload slower than this times out
WORKSPACE_PREFIX = "batchgen-"
_TOKEN = re.compile(r"\[batchgen:([0-9a-f]{12})\]\s*$")  # the message's end: a path may look alike
_URL_SAFE_SEGMENT = re.compile(r"[A-Za-z0-9._-]+")


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One file to deliver: where it is in the run directory, where it goes in the repository."""

    local: str  # relative to the run directory: videos/hero/16x9.mp4
    repo_path: str
    size: int
    sha256: str | None = None  # known in advance (a result's, from the journal), else hashed when read
    data: bytes | None = None  # held in memory already (a sidecar made from its metadata)
    result: bool = False  # a result (not a sidecar or a run file): counted as one in commit messages
    source: Path | None = None  # read from here instead (a reference image, outside any run directory)

    @property
    def directory(self) -> str:
        return posixpath.dirname(self.repo_path)

    @property
    def name(self) -> str:
        return posixpath.basename(self.repo_path)


@dataclass(frozen=True, slots=True)
class Batch:
    """Files committed together (one workspace, one commit)."""

    items: tuple[Outgoing, ...]

    @property
    def size(self) -> int:
        return sum(item.size for item in self.items)

    @property
    def results(self) -> int:
        return sum(1 for item in self.items if item.result)

    @property
    def directory(self) -> str:
        """The deepest directory holding every file (for the commit message)."""
        directories = [item.directory for item in self.items]
        return posixpath.commonpath(directories) if all(directories) else ""


@dataclass(frozen=True, slots=True)
class Stage:
    """Files staged by one request: `directory` goes in the URL, each file's `filename` under it."""

    directory: str
    items: tuple[Outgoing, ...]

    def filename(self, item: Outgoing) -> str:
        return item.repo_path[len(self.directory) + 1 :] if self.directory else item.repo_path


def plan_batches(
    items: Iterable[Outgoing], *, max_files: int = MAX_BATCH_FILES, max_bytes: int = MAX_BATCH_BYTES
) -> list[Batch]:
    """`items` in order, cut at the limits (a file larger than `max_bytes` goes alone). A later item
    with the same repository path replaces an earlier one."""
    by_path = {item.repo_path: item for item in items}
    return [Batch(cut) for cut in _cut(by_path.values(), max_bytes=max_bytes, max_files=max_files)]


def _cut(
    items: Iterable[Outgoing], *, max_bytes: int, max_files: float = math.inf
) -> list[tuple[Outgoing, ...]]:
    """`items` in order, cut before a file that would pass `max_files` or `max_bytes` (so a file
    larger than `max_bytes` goes alone)."""
    cuts: list[list[Outgoing]] = []
    size = 0
    for item in items:
        if not cuts or len(cuts[-1]) >= max_files or size + item.size > max_bytes:
            cuts.append([])
            size = 0
        cuts[-1].append(item)
        size += item.size
    return [tuple(cut) for cut in cuts]


def split_for_url(repo_path: str) -> tuple[str, str]:
    """(directory for the URL, filename under it): the leading directories whose names need no
    escaping go in the URL; the rest of the path travels in the part's filename, which the server
    takes as sent (it keeps %2F, %2B and %25 in a URL literally, so no escaped name goes there)."""
    segments = repo_path.split("/")[:-1]
    safe = 0
    while (
        safe < len(segments)
        and _URL_SAFE_SEGMENT.fullmatch(segments[safe])
        and segments[safe] not in (".", "..")
    ):
        safe += 1
    directory = "/".join(segments[:safe])
    return directory, repo_path[len(directory) + 1 :] if directory else repo_path


def plan_stages(
    items: Iterable[Outgoing],
    *,
    request_bytes: int = STAGE_REQUEST_BYTES,
    large_bytes: int = LARGE_FILE_BYTES,
) -> tuple[list[Stage], list[Outgoing]]:
    """The staging requests of a commit's small files (grouped by URL directory, each request up to
    `request_bytes`), and its large files (each sent through the chunked version upload)."""
    by_directory: dict[str, list[Outgoing]] = {}
    large: list[Outgoing] = []
    for item in items:
        if item.size > large_bytes:
            large.append(item)
        else:
            by_directory.setdefault(split_for_url(item.repo_path)[0], []).append(item)
    stages = [
        Stage(directory, cut)
        for directory, files in by_directory.items()
        for cut in _cut(files, max_bytes=request_bytes)
    ]
    return stages, large


def workspace_id(token: str) -> str:
    """The workspace a commit is staged in: named after its token, so the journal's `sending` row
    (written before the workspace is created) names it, and no two commits, runs or output trees
    share one (the token is random; creating a workspace is get-or-create)."""
    return f"{WORKSPACE_PREFIX}{token}"


def commit_message(campaign: str, batch: Batch, token: str, jobs_done: tuple[int, int] | None = None) -> str:
    """Names the campaign, what the commit holds, and the commit's token."""
    files = len(batch.items)
    if batch.results:
        where = f" in {batch.directory}" if batch.directory else ""
        what = f"{_count(batch.results, 'result')} ({_count(files, 'file')}){where}"
    else:
        what = ", ".join(item.name for item in batch.items[:5]) + (
            f" and {files - 5} more" if files > 5 else ""
        )
    done = f"; {jobs_done[0]}/{jobs_done[1]} jobs done" if jobs_done is not None else ""
    return f"batchgen {campaign}: {what}{done} [batchgen:{token}]"


def token_of(message: object) -> str | None:
    """The commit token in a commit message (None for commits batchgen did not make)."""
    if not isinstance(message, str):
        return None
    found = _TOKEN.search(message)
    return found.group(1) if found else None


def upload_timeout_s(size: int, request_s: float) -> float:
    """How long one upload of `size` bytes may take: the request timeout plus the bytes at a slow rate."""
    return request_s + size / MIN_UPLOAD_BYTES_PER_S


def _count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"
