"""Result downloads: a presigned URL becomes a verified file at its final path, or nothing does.

Owns the `<final>.part` protocol. Bytes stream into the `.part` in bounded chunks and are hashed on
the way. A cut connection is resumed with `Range`; so is a `.part` left by an earlier call; so is an
attempt that receives too little over a sliding window (a server dripping bytes keeps a socket
alive forever otherwise). The result is checked (length, file signature, and the file's own
structure where the format records its length: MP4 boxes, PNG/JPEG/GIF trailers, the WebP RIFF
size), fsynced, and renamed onto the final path atomically. A partial or corrupt file never appears
at the final path.

Errors (see `batchgen.errors`): `DownloadExpired` (refresh the URL, call again; the `.part` is kept),
`DownloadStalled` (every attempt was too slow: get a fresh URL, call again; the `.part` is kept),
`DownloadError` (transient, call again later; the `.part` is kept), `DownloadCorrupt` (the `.part`
is deleted), `StorageError` (the disk refused). Messages never carry a URL's query string, because
presigned tokens are secrets.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import hashlib
import logging
import os
import re
from collections import deque
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO, Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiofiles
import aiohttp
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from batchgen.errors import DownloadCorrupt, DownloadError, DownloadExpired, DownloadStalled, StorageError
from batchgen.media import image_type
from batchgen.rundir import part_path

__all__ = [
    "MAX_MP4_BOXES",
    "MIN_RATE_BYTES",
    "MIN_RATE_WINDOW_S",
    "Downloaded",
    "RateGuard",
    "fetch_result",
    "part_path_for",
    "redact_url",
    "verify_file",
]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")

MEDIA_TYPES = frozenset({"image", "video"})
_EXPIRED_STATUSES = frozenset({401, 403, 404, 410})
# ServerDisconnectedError and sock_read timeouts are ClientConnectionErrors; TimeoutError is a guard.
_CUT_ERRORS = (aiohttp.ClientPayloadError, aiohttp.ClientConnectionError, TimeoutError)
_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.ASCII)
_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)", re.ASCII)
_HEAD_BYTES = 16
_HASH_BLOCK = 1024 * 1024
# Box types a QuickTime/MP4 file can start with; Oxen's results start with `ftyp`.
_MP4_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"})
_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the last chunk of every PNG, CRC included

#: An attempt that receives fewer than this many bytes within any `MIN_RATE_WINDOW_S` seconds is
#: stalled and resumed: aiohttp's read timeout only catches total silence, and a server sending one
#: byte every few seconds would hold the download forever. 32 KiB in 30 s is ~1 KiB/s: any real
#: link does better; only a dying or hostile server does worse.
MIN_RATE_BYTES = 32 * 1024
MIN_RATE_WINDOW_S = 30.0
#: Top-level MP4 boxes walked before giving up (a real file has a handful, a fragmented one a few
#: thousand): bounds the reads a hostile file can cause at commit.
MAX_MP4_BOXES = 100_000


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A verified result file."""

    path: Path
    size: int
    sha256: str


def part_path_for(final_path: Path) -> Path:
    """Where the download of `final_path` is written until it is verified: the name plus `.part`."""
    return part_path(final_path)


def redact_url(url: str) -> str:
    """`url` without query string, fragment or credentials, fit for messages and logs."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparsable URL>"
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit((parts.scheme, host, parts.path, "", ""))


class _Retry(Exception):
    """This attempt ended early (a cut, or a restart from zero): try again if the budget allows."""


class _Stalled(_Retry):
    """This attempt received too little within the rate window."""


class RateGuard:
    """The deadline by which an attempt must have received `min_bytes` more, over a sliding window.

    An attempt is stalled at time t when the bytes that arrived in (t - window_s, t] total fewer than
    `min_bytes`, never before one full window from the start of the attempt (its request included,
    so dripped headers stall too). `deadline()` is the first such t if nothing more arrives.
    """

    def __init__(self, min_bytes: int, window_s: float, now: float) -> None:
        self._min_bytes = min_bytes
        self._window_s = window_s
        self._first_deadline = now + window_s
        # The latest arrivals (time, size) that together make up min_bytes, and their total: older
        # ones can no longer decide anything, so memory stays bounded.
        self._arrivals: deque[tuple[float, int]] = deque()
        self._recent = 0

    def add(self, size: int, now: float) -> None:
        self._arrivals.append((now, size))
        self._recent += size
        while self._recent - self._arrivals[0][1] >= self._min_bytes:
            self._recent -= self._arrivals.popleft()[1]

    def deadline(self) -> float:
        if self._recent < self._min_bytes:
            return self._first_deadline
        return max(self._first_deadline, self._arrivals[0][0] + self._window_s)

    def describe(self) -> str:
        return f"fewer than {self._min_bytes} bytes in {self._window_s:g} s"


class _Part:
    """The `.part` file's content so far: size, running sha256, first bytes, expected total size."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self.hasher = hashlib.sha256()
        self.head = b""
        self.total: int | None = None

    def restart(self) -> None:
        """Forget everything: the next write truncates the file."""
        self.size, self.hasher, self.head, self.total = 0, hashlib.sha256(), b"", None

    def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        self.hasher.update(chunk)
        if len(self.head) < _HEAD_BYTES:
            self.head += chunk[: _HEAD_BYTES - len(self.head)]

    @property
    def complete(self) -> bool:
        return self.total is None or self.size >= self.total


async def fetch_result(
    session: aiohttp.ClientSession,
    url: str,
    final_path: Path,
    *,
    media_type: str = "video",
    chunk_size: int = 1024 * 1024,
    read_timeout: float = 60.0,
    max_resumes: int = 5,
    headers: Mapping[str, str] | None = None,
    min_rate_bytes: int = MIN_RATE_BYTES,
    min_rate_window_s: float = MIN_RATE_WINDOW_S,
) -> Downloaded:
    """Download `url` to `final_path` (via its `.part`), verified, resuming cuts up to `max_resumes` times.

    `session` must carry no credentials: result URLs are presigned, and the API key must never reach
    a download host. `headers` are extra request headers (the caller adds Authorization only for a URL
    on the API's own origin). `read_timeout` bounds each read, not the whole download. An attempt that
    receives fewer than `min_rate_bytes` within any `min_rate_window_s` seconds is ended and resumed
    like a cut; when the last resume ends that way too, `DownloadStalled` is raised.
    """
    _check_arguments(session, media_type, chunk_size, read_timeout, max_resumes)
    if min_rate_bytes <= 0 or min_rate_window_s <= 0:
        raise ValueError("min_rate_bytes and min_rate_window_s must be > 0")
    part = await asyncio.to_thread(_prepare, final_path)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=read_timeout, sock_read=read_timeout)
    safe_url = redact_url(url)
    loop = asyncio.get_running_loop()
    failures = 0
    while True:
        offset = part.size
        guard = RateGuard(min_rate_bytes, min_rate_window_s, loop.time())
        try:
            await _attempt(session, url, part, chunk_size=chunk_size, client_timeout=timeout, guard=guard,
                           extra=headers)
            if part.complete:
                break
            if part.size == offset:
                raise _Retry(f"the response ended at byte {offset} of {part.total}")
            # A complete response that stops short of the end: the server serves ranges in pieces.
            # That is progress, not a failure, so it does not use up a resume.
        except _Retry as retry:
            failures += 1
            if failures > max_resumes:
                _give_up(retry, failures, safe_url, part)
            logger.debug("download.resume path=%s offset=%d reason=%s", part.path, part.size, retry)
    return await asyncio.to_thread(_commit, part, final_path, media_type)


def _give_up(retry: _Retry, failures: int, safe_url: str, part: _Part) -> None:
    kept = f"{part.size} bytes kept in {part.path} to resume from"
    if isinstance(retry, _Stalled):
        raise DownloadStalled(
            f"GET {safe_url}: gave up after {failures} attempts that were too slow ({retry}); "
            f"fetch a fresh URL and try again; {kept}"
        )
    raise DownloadError(
        f"GET {safe_url}: gave up after {failures} interrupted attempts ({retry}); {kept}"
    ) from retry.__cause__


def _check_arguments(
    session: aiohttp.ClientSession, media_type: str, chunk_size: int, read_timeout: float, max_resumes: int
) -> None:
    if "Authorization" in session.headers or session.auth is not None:
        raise RuntimeError("fetch_result() needs a session without credentials: URLs are presigned")
    if media_type not in MEDIA_TYPES:
        raise ValueError(f"media_type must be one of {sorted(MEDIA_TYPES)}, not {media_type!r}")
    if chunk_size <= 0 or read_timeout <= 0 or max_resumes < 0:
        raise ValueError("chunk_size and read_timeout must be > 0 and max_resumes >= 0")


async def _before(guard: RateGuard, awaitable: Awaitable[_T]) -> _T:
    """Await `awaitable`, or raise `_Stalled` when the guard's deadline passes first."""
    limit = asyncio.timeout_at(guard.deadline())
    try:
        async with limit:
            return await awaitable
    except TimeoutError:
        if limit.expired():
            raise _Stalled(guard.describe()) from None
        raise  # aiohttp's own read timeout: a cut


async def _attempt(
    session: aiohttp.ClientSession,
    url: str,
    part: _Part,
    *,
    chunk_size: int,
    client_timeout: aiohttp.ClientTimeout,
    guard: RateGuard,
    extra: Mapping[str, str] | None = None,
) -> None:
    """One GET from `part.size` on (Range) or from zero; `_Retry` when the connection is lost or stalls."""
    headers = {**(extra or {}), "Accept-Encoding": "identity"}
    if part.size:
        headers["Range"] = f"bytes={part.size}-"
    try:
        request = session.get(
            url, headers=headers, timeout=client_timeout, read_bufsize=chunk_size, auto_decompress=False
        )
        async with await _before(guard, request) as resp:
            if _start(resp, part, redact_url(url)):
                await _stream_body(resp, part, chunk_size, guard)
    except _CUT_ERRORS as exc:
        raise _Retry(f"connection lost: {type(exc).__name__}") from exc
    except aiohttp.ClientError as exc:
        # str(exc) may quote the full URL (token included), so only the class name is shown.
        raise DownloadError(f"GET {redact_url(url)} failed: {type(exc).__name__}") from exc


def _start(resp: aiohttp.ClientResponse, part: _Part, safe_url: str) -> bool:
    """Check the status and set `part` up for the body; False when there is no body to read."""
    status = resp.status
    if status in _EXPIRED_STATUSES:
        raise DownloadExpired(
            f"GET {safe_url} -> HTTP {status}: the presigned URL was refused; fetch a new one"
        )
    if status == 429 or status >= 500:
        raise DownloadError(f"GET {safe_url} -> HTTP {status} {resp.reason or ''}".rstrip())
    if status == 200:
        if part.size:
            logger.debug("download.restart path=%s reason=range-ignored", part.path)
        part.restart()
        part.total = resp.content_length
        return True
    if status == 206:
        _start_partial(resp, part)
        return True
    if status == 416:
        return _range_not_satisfiable(resp, part, safe_url)
    raise DownloadError(f"GET {safe_url} -> unexpected HTTP {status}")


def _start_partial(resp: aiohttp.ClientResponse, part: _Part) -> None:
    match = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
    if match is None or int(match[1]) != part.size:
        part.restart()
        raise _Retry(f"Content-Range {resp.headers.get('Content-Range')!r} does not start at the offset")
    if match[3] != "*":
        part.total = int(match[3])
    elif resp.content_length is not None:
        part.total = part.size + resp.content_length


def _range_not_satisfiable(resp: aiohttp.ClientResponse, part: _Part, safe_url: str) -> bool:
    match = _UNSATISFIED_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
    if part.size and match is not None and int(match[1]) == part.size:
        part.total = part.size  # the .part already holds the whole file (a crash before the rename)
        return False
    if not part.size:
        raise DownloadError(f"GET {safe_url} -> HTTP 416 without a Range request")
    part.restart()
    raise _Retry("range not satisfiable")


async def _stream_body(resp: aiohttp.ClientResponse, part: _Part, chunk_size: int, guard: RateGuard) -> None:
    file = await _open_part(part)
    loop = asyncio.get_running_loop()
    try:
        # Only the reads are under the rate deadline: a write cancelled midway would leave the file
        # longer than part.size.
        while chunk := await _before(guard, resp.content.read(chunk_size)):
            guard.add(len(chunk), loop.time())
            await _storage_call(file.write(chunk), "write", part.path)
            part.add(chunk)
        if part.complete:
            await _storage_call(file.flush(), "flush", part.path)
            await _storage_call(asyncio.to_thread(os.fsync, file.fileno()), "fsync", part.path)
    except BaseException as exc:
        if isinstance(exc, Exception):
            # A resume later in this call trusts part.size, so a close that loses bytes must not pass.
            await _storage_call(file.close(), "close", part.path)
        else:
            # Cancelled: never replace the cancellation. The next call re-reads the .part from disk.
            with contextlib.suppress(OSError):
                await file.close()
        raise
    await _storage_call(file.close(), "close", part.path)


async def _open_part(part: _Part) -> AsyncBufferedIOBase:
    mode: Literal["ab", "wb"] = "ab" if part.size else "wb"
    try:
        return await aiofiles.open(part.path, mode, opener=_open_no_follow)
    except OSError as exc:
        raise _storage_error("open", part.path, exc) from exc


async def _storage_call(awaitable: Awaitable[_T], action: str, path: Path) -> _T:
    try:
        return await awaitable
    except OSError as exc:
        raise _storage_error(action, path, exc) from exc


def _storage_error(action: str, path: Path, exc: OSError) -> StorageError:
    if exc.errno == errno.ELOOP:
        return StorageError(f"refusing to write through a symlink at {path}")
    reason = exc.strerror or type(exc).__name__
    return StorageError(f"cannot {action} {path}: {reason} (errno {exc.errno})")


def _open_no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW, 0o666)


def _refuse_symlink(path: Path) -> None:
    if path.is_symlink():
        raise StorageError(f"refusing to write through a symlink at {path}")


def _prepare(final_path: Path) -> _Part:
    """Refuse symlinks, create the directory, and take over an existing `.part` (sync, run in a thread)."""
    part = _Part(part_path_for(final_path))
    _refuse_symlink(final_path)
    _refuse_symlink(part.path)
    try:
        final_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _storage_error("create the directory for", final_path, exc) from exc
    try:
        part.size, part.hasher, part.head = _hash_file(part.path)
    except FileNotFoundError:
        return part
    except OSError as exc:
        raise _storage_error("read", part.path, exc) from exc
    logger.debug("download.found-part path=%s size=%d", part.path, part.size)
    return part


def _hash_file(path: Path) -> tuple[int, hashlib._Hash, bytes]:
    """Size, sha256 state and first bytes of a regular file, read without following a symlink."""
    hasher, size, head = hashlib.sha256(), 0, b""
    with open(path, "rb", opener=_open_no_follow) as file:
        while block := file.read(_HASH_BLOCK):
            if not head:
                head = block[:_HEAD_BYTES]
            hasher.update(block)
            size += len(block)
    return size, hasher, head


def _commit(part: _Part, final_path: Path, media_type: str) -> Downloaded:
    """Verify the `.part`, then atomically make it the final file (sync, run in a thread)."""
    problem = _problem(part.head, part.size, media_type)
    if part.total is not None and part.size != part.total:
        problem = f"{part.size} bytes but the server announced {part.total}"
    if not problem:
        try:
            problem = _structure_problem(part.path, part.size, part.head, media_type)
        except OSError as exc:
            raise _storage_error("read", part.path, exc) from exc
    if problem:
        _discard(part.path)
        raise DownloadCorrupt(f"{final_path}: {problem}; the download was discarded")
    _refuse_symlink(final_path)
    try:
        os.replace(part.path, final_path)
        _fsync_directory(final_path.parent)
    except OSError as exc:
        raise _storage_error("move the download to", final_path, exc) from exc
    return Downloaded(path=final_path, size=part.size, sha256=part.hasher.hexdigest())


def _discard(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("download.discard-failed path=%s error=%s", path, exc)


def _fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _problem(head: bytes, size: int, media_type: str) -> str | None:
    """Why the file is not a plausible `media_type` result, or None when it is."""
    if size == 0:
        return "the file is empty"
    if media_type == "video" and not _looks_like_mp4(head, size):
        return f"not an MP4 file (starts with {head[:8]!r})"
    if media_type == "image" and not _looks_like_image(head):
        return f"not a PNG, JPEG, WebP or GIF image (starts with {head[:8]!r})"
    return None


def _looks_like_mp4(head: bytes, size: int) -> bool:
    """A first box with a known top-level type and a size that fits (0: to end of file, 1: 64-bit)."""
    box_size = int.from_bytes(head[:4], "big")
    return len(head) >= 8 and head[4:8] in _MP4_FIRST_BOXES and (box_size in (0, 1) or 8 <= box_size <= size)


def _looks_like_image(head: bytes) -> bool:
    return image_type(head) is not None


def _structure_problem(path: Path, size: int, head: bytes, media_type: str) -> str | None:
    """Why the file's own structure says it is cut short (or padded), or None; a few small reads.

    This is what catches a body that matched a Content-Length shorter than the real file.
    """
    with open(path, "rb", buffering=0, opener=_open_no_follow) as file:
        if media_type == "video":
            return _mp4_problem(file, size)
        if head.startswith(b"\x89PNG\r\n\x1a\n"):
            return (
                None
                if _tail(file, size, 12) == _PNG_IEND
                else "a PNG without its final IEND chunk (cut short?)"
            )
        if head.startswith(b"\xff\xd8\xff"):
            return (
                None
                if _tail(file, size, 2) == b"\xff\xd9"
                else "a JPEG without its end-of-image marker (cut short?)"
            )
        if head.startswith((b"GIF87a", b"GIF89a")):
            return None if _tail(file, size, 1) == b"\x3b" else "a GIF without its trailer byte (cut short?)"
        riff_size = int.from_bytes(head[4:8], "little") + 8
        return None if riff_size == size else f"a WebP of {size} bytes whose RIFF header says {riff_size}"


def _tail(file: BinaryIO, size: int, count: int) -> bytes:
    file.seek(max(0, size - count))
    return file.read(count)


def _mp4_problem(file: BinaryIO, size: int) -> str | None:
    """The top-level boxes must tile the file exactly: 32-bit sizes, 64-bit `largesize` (size 1),
    and size 0 meaning "to the end of the file"."""
    offset = 0
    for _ in range(MAX_MP4_BOXES):
        if offset == size:
            return None
        file.seek(offset)
        header = file.read(16)
        if len(header) < 8:
            return f"an MP4 with {size - offset} stray bytes after its last box at byte {offset}"
        box_size, kind = int.from_bytes(header[:4], "big"), header[4:8]
        if box_size == 0:
            return None
        if box_size == 1:
            box_size = int.from_bytes(header[8:16], "big") if len(header) == 16 else 0
            if box_size < 16:
                return f"an MP4 box {kind!r} at byte {offset} with an impossible 64-bit size"
        elif box_size < 8:
            return f"an MP4 box {kind!r} at byte {offset} with an impossible size {box_size}"
        if offset + box_size > size:
            return (
                f"an MP4 box {kind!r} at byte {offset} needs {box_size} bytes but the file has "
                f"{size - offset} left (cut short?)"
            )
        offset += box_size
    return f"an MP4 with more than {MAX_MP4_BOXES} top-level boxes"


def verify_file(
    path: Path, media_type: str, *, expected_size: int | None = None, expected_sha256: str | None = None
) -> Downloaded:
    """Size, sha256 and signature of an existing result file; `DownloadCorrupt` when it is not valid.

    Used on resume to confirm a file finished by an earlier run. A missing file is `DownloadCorrupt`
    too (fetch it again); an unreadable one or a symlink is `StorageError`.
    """
    if media_type not in MEDIA_TYPES:
        raise ValueError(f"media_type must be one of {sorted(MEDIA_TYPES)}, not {media_type!r}")
    _refuse_symlink(path)
    try:
        size, hasher, head = _hash_file(path)
    except FileNotFoundError as exc:
        raise DownloadCorrupt(f"{path}: the file does not exist") from exc
    except OSError as exc:
        raise _storage_error("read", path, exc) from exc
    digest = hasher.hexdigest()
    problem = _problem(head, size, media_type)
    if problem is None:
        try:
            problem = _structure_problem(path, size, head, media_type)
        except OSError as exc:
            raise _storage_error("read", path, exc) from exc
    if problem is None and expected_size is not None and size != expected_size:
        problem = f"{size} bytes, expected {expected_size}"
    if problem is None and expected_sha256 is not None and digest != expected_sha256.lower():
        problem = f"sha256 {digest}, expected {expected_sha256}"
    if problem:
        raise DownloadCorrupt(f"{path}: {problem}")
    return Downloaded(path=path, size=size, sha256=digest)
