"""Result downloads: a presigned URL becomes a verified file at its final path, or nothing does.

Owns the `<final>.part` protocol. Bytes stream into the `.part` in bounded chunks and are hashed on
the way. A cut connection is resumed with `Range`; so is a `.part` left by an earlier call. The
result is checked (length, file signature), fsynced, and renamed onto the final path atomically.
A partial or corrupt file never appears at the final path.

Errors (see `batchgen.errors`): `DownloadExpired` (refresh the URL, call again; the `.part` is kept),
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
from collections.abc import Awaitable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiofiles
import aiohttp
from aiofiles.threadpool.binary import AsyncBufferedIOBase

from batchgen.errors import DownloadCorrupt, DownloadError, DownloadExpired, StorageError

__all__ = ["Downloaded", "fetch_result", "part_path_for", "redact_url", "verify_file"]

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


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A verified result file."""

    path: Path
    size: int
    sha256: str


def part_path_for(final_path: Path) -> Path:
    """Where the download of `final_path` is written until it is verified: the name plus `.part`."""
    return final_path.with_name(final_path.name + ".part")


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
) -> Downloaded:
    """Download `url` to `final_path` (via its `.part`), verified, resuming cuts up to `max_resumes` times.

    `session` must carry no credentials: result URLs are presigned, and the API key must never reach
    a download host. `headers` are extra request headers (the caller adds Authorization only for a URL
    on the API's own origin). `read_timeout` bounds each read, not the whole download.
    """
    _check_arguments(session, media_type, chunk_size, read_timeout, max_resumes)
    part = await asyncio.to_thread(_prepare, final_path)
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=read_timeout, sock_read=read_timeout)
    safe_url = redact_url(url)
    failures = 0
    while True:
        offset = part.size
        try:
            await _attempt(session, url, part, chunk_size=chunk_size, client_timeout=timeout, extra=headers)
            if part.complete:
                break
            if part.size == offset:
                raise _Retry(f"the response ended at byte {offset} of {part.total}")
            # A complete response that stops short of the end: the server serves ranges in pieces.
            # That is progress, not a failure, so it does not use up a resume.
        except _Retry as retry:
            failures += 1
            if failures > max_resumes:
                raise DownloadError(
                    f"GET {safe_url}: gave up after {failures} interrupted attempts ({retry}); "
                    f"{part.size} bytes kept in {part.path} to resume from"
                ) from retry.__cause__
            logger.debug("download.resume path=%s offset=%d reason=%s", part.path, part.size, retry)
    return await asyncio.to_thread(_commit, part, final_path, media_type)


def _check_arguments(
    session: aiohttp.ClientSession, media_type: str, chunk_size: int, read_timeout: float, max_resumes: int
) -> None:
    if "Authorization" in session.headers or session.auth is not None:
        raise RuntimeError("fetch_result() needs a session without credentials: URLs are presigned")
    if media_type not in MEDIA_TYPES:
        raise ValueError(f"media_type must be one of {sorted(MEDIA_TYPES)}, not {media_type!r}")
    if chunk_size <= 0 or read_timeout <= 0 or max_resumes < 0:
        raise ValueError("chunk_size and read_timeout must be > 0 and max_resumes >= 0")


async def _attempt(
    session: aiohttp.ClientSession,
    url: str,
    part: _Part,
    *,
    chunk_size: int,
    client_timeout: aiohttp.ClientTimeout,
    extra: Mapping[str, str] | None = None,
) -> None:
    """One GET from `part.size` on (Range) or from zero; `_Retry` when the connection is lost."""
    headers = {**(extra or {}), "Accept-Encoding": "identity"}
    if part.size:
        headers["Range"] = f"bytes={part.size}-"
    try:
        async with session.get(
            url, headers=headers, timeout=client_timeout, read_bufsize=chunk_size, auto_decompress=False
        ) as resp:
            if _start(resp, part, redact_url(url)):
                await _stream_body(resp, part, chunk_size)
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


async def _stream_body(resp: aiohttp.ClientResponse, part: _Part, chunk_size: int) -> None:
    file = await _open_part(part)
    try:
        async for chunk in resp.content.iter_chunked(chunk_size):
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
    return head.startswith((b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"GIF87a", b"GIF89a")) or (
        head[:4] == b"RIFF" and head[8:12] == b"WEBP"
    )


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
    if problem is None and expected_size is not None and size != expected_size:
        problem = f"{size} bytes, expected {expected_size}"
    if problem is None and expected_sha256 is not None and digest != expected_sha256.lower():
        problem = f"sha256 {digest}, expected {expected_sha256}"
    if problem:
        raise DownloadCorrupt(f"{path}: {problem}")
    return Downloaded(path=path, size=size, sha256=digest)
