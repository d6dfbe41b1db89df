"""Result downloads over HTTP: a presigned URL becomes a verified file at its final path (via `rundir.landing`).

A cut connection is resumed with `Range`; so is a `.part` left by an earlier call; so is an attempt
that receives too little over a sliding window (a server dripping bytes keeps a socket alive forever
otherwise). What lands is checked by `rundir.verify`: a partial or corrupt file never appears at the final
path.

Errors (see `batchgen.errors`): `DownloadExpired` (refresh the URL, call again; the `.part` is kept),
`DownloadStalled` (every attempt was too slow: get a fresh URL, call again; the `.part` is kept),
`DownloadError` (transient, call again later; the `.part` is kept), `DownloadCorrupt` (the `.part`
is deleted), `UnverifiedKept` (a `DownloadCorrupt` whose bytes were moved where the caller asked),
`StorageError` (the disk refused). Messages never carry a URL's query string, because
presigned tokens are secrets.
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections import deque
from collections.abc import Awaitable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp

from batchgen.client.api import mapped_errors
from batchgen.config import RetryPolicy
from batchgen.errors import ApiError, DownloadError, DownloadExpired, DownloadStalled, TransportError
from batchgen.rundir.landing import DirectorySync, Land, Part, prepare_part
from batchgen.rundir.verify import MEDIA_TYPES, Downloaded

__all__ = ["MIN_RATE_BYTES", "MIN_RATE_WINDOW_S", "RateGuard", "fetch_result", "redact_url"]

logger = logging.getLogger(__name__)
_T = TypeVar("_T")


_EXPIRED_STATUSES = frozenset({401, 403, 404, 410})


_CONTENT_RANGE = re.compile(r"bytes\s+(\d+)-(\d+)/(\d+|\*)", re.ASCII)


_UNSATISFIED_RANGE = re.compile(r"bytes\s+\*/(\d+)", re.ASCII)


#: An attempt that receives fewer than this many bytes within any `MIN_RATE_WINDOW_S` seconds is
#: stalled and resumed: aiohttp's read timeout only catches total silence, and a server sending one
#: byte every few seconds would hold the download forever. 32 KiB in 30 s is ~1 KiB/s: any real
#: link does better; only a dying or hostile server does worse.
MIN_RATE_BYTES = 32 * 1024


MIN_RATE_WINDOW_S = 30.0


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


async def fetch_result(
    session: aiohttp.ClientSession,
    url: str,
    final_path: Path,
    *,
    media_type: str = "video",
    chunk_size: int = 1024 * 1024,
    read_timeout: float = 60.0,
    max_resumes: int = RetryPolicy().download_resumes,
    headers: Mapping[str, str] | None = None,
    min_rate_bytes: int = MIN_RATE_BYTES,
    min_rate_window_s: float = MIN_RATE_WINDOW_S,
    land: Land | None = None,
    dirs: DirectorySync | None = None,
    keep_corrupt: Path | None = None,
) -> Downloaded:
    """Download `url` to `final_path` (via its `.part`), verified, resuming cuts up to `max_resumes` times.

    `session` must carry no credentials: result URLs are presigned, and the API key must never reach
    a download host. `headers` are extra request headers (the caller adds Authorization only for a URL
    on the API's own origin). `read_timeout` bounds each read, not the whole download. An attempt that
    receives fewer than `min_rate_bytes` within any `min_rate_window_s` seconds is ended and resumed
    like a cut; when the last resume ends that way too, `DownloadStalled` is raised. `land` runs in the
    worker thread right after the rename (the caller's sidecar, say); with `dirs`, the directory fsync
    is left to `dirs.flush()` (batched across results) instead of done per file. Bytes that arrive
    whole but fail verification are deleted (`DownloadCorrupt`), or with `keep_corrupt`, moved there
    (`UnverifiedKept`): the caller's last try of a paid result keeps what it got.
    """
    if "Authorization" in session.headers or session.auth is not None:
        raise RuntimeError("fetch_result() needs a session without credentials: URLs are presigned")
    if media_type not in MEDIA_TYPES:
        raise ValueError(f"media_type must be one of {sorted(MEDIA_TYPES)}, not {media_type!r}")
    if chunk_size <= 0 or read_timeout <= 0 or max_resumes < 0:
        raise ValueError("chunk_size and read_timeout must be > 0 and max_resumes >= 0")
    if min_rate_bytes <= 0 or min_rate_window_s <= 0:
        raise ValueError("min_rate_bytes and min_rate_window_s must be > 0")
    part = await prepare_part(final_path)
    try:
        await _receive(
            session,
            url,
            part,
            chunk_size=chunk_size,
            read_timeout=read_timeout,
            max_resumes=max_resumes,
            headers=headers,
            min_rate=(min_rate_bytes, min_rate_window_s),
        )
        return await part.commit(final_path, media_type, land, dirs, keep_corrupt)
    finally:
        await part.abandon()


async def _receive(
    session: aiohttp.ClientSession,
    url: str,
    part: Part,
    *,
    chunk_size: int,
    read_timeout: float,
    max_resumes: int,
    headers: Mapping[str, str] | None,
    min_rate: tuple[int, float],
) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=read_timeout, sock_read=read_timeout)
    loop = asyncio.get_running_loop()
    failures = 0
    while True:
        offset = part.size
        guard = RateGuard(*min_rate, loop.time())
        try:
            await _attempt(
                session, url, part, chunk_size=chunk_size, client_timeout=timeout, guard=guard, extra=headers
            )
            if part.complete:
                return
            if part.size == offset:
                raise _Retry(f"the response ended at byte {offset} of {part.total}")
            # A complete response that stops short of the end: the server serves ranges in pieces.
            # That is progress, not a failure, so it does not use up a resume.
        except _Retry as retry:
            failures += 1
            if failures > max_resumes:
                await part.keep()
                _give_up(retry, failures, redact_url(url), part)
            logger.debug("download.resume path=%s offset=%d reason=%s", part.path, part.size, retry)


def _give_up(retry: _Retry, failures: int, safe_url: str, part: Part) -> None:
    kept = f"{part.size} bytes kept in {part.path} to resume from"
    if isinstance(retry, _Stalled):
        raise DownloadStalled(
            f"GET {safe_url}: gave up after {failures} attempts that were too slow ({retry}); "
            f"fetch a fresh URL and try again; {kept}"
        )
    raise DownloadError(
        f"GET {safe_url}: gave up after {failures} interrupted attempts ({retry}); {kept}"
    ) from retry.__cause__


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
    part: Part,
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
        with mapped_errors("GET", redact_url(url)):
            request = session.get(
                url, headers=headers, timeout=client_timeout, read_bufsize=chunk_size, auto_decompress=False
            )
            async with await _before(guard, request) as resp:
                if _start(resp, part, url):
                    await _stream_body(resp, part, chunk_size, guard)
    except TransportError as exc:  # cut, refused or timed out (sock_read): resumed
        raise _Retry(f"connection lost: {type(exc.__cause__).__name__}") from exc.__cause__
    except ApiError as exc:
        raise DownloadError(
            f"GET {redact_url(url)} failed: {type(exc.__cause__).__name__}"
        ) from exc.__cause__


def _start(resp: aiohttp.ClientResponse, part: Part, url: str) -> bool:
    """Check the status and set `part` up for the body; False when there is no body to read."""
    status = resp.status
    if status in _EXPIRED_STATUSES:
        raise DownloadExpired(
            f"GET {redact_url(url)} -> HTTP {status}: the presigned URL was refused; fetch a new one"
        )
    if status == 429 or status >= 500:
        raise DownloadError(f"GET {redact_url(url)} -> HTTP {status} {resp.reason or ''}".rstrip())
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
        return _range_not_satisfiable(resp, part, redact_url(url))
    raise DownloadError(f"GET {redact_url(url)} -> unexpected HTTP {status}")


def _start_partial(resp: aiohttp.ClientResponse, part: Part) -> None:
    match = _CONTENT_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
    if match is None or int(match[1]) != part.size:
        part.restart()
        raise _Retry(f"Content-Range {resp.headers.get('Content-Range')!r} does not start at the offset")
    if match[3] != "*":
        part.total = int(match[3])
    elif resp.content_length is not None:
        part.total = part.size + resp.content_length


def _range_not_satisfiable(resp: aiohttp.ClientResponse, part: Part, safe_url: str) -> bool:
    match = _UNSATISFIED_RANGE.fullmatch(resp.headers.get("Content-Range", "").strip())
    if part.size and match is not None and int(match[1]) == part.size:
        part.total = part.size  # the .part already holds the whole file (a crash before the rename)
        return False
    if not part.size:
        raise DownloadError(f"GET {safe_url} -> HTTP 416 without a Range request")
    part.restart()
    raise _Retry("range not satisfiable")


async def _stream_body(resp: aiohttp.ClientResponse, part: Part, chunk_size: int, guard: RateGuard) -> None:
    loop = asyncio.get_running_loop()
    # Only the reads are under the rate deadline: a chunk handed over is kept whole.
    while chunk := await _before(guard, resp.content.read(chunk_size)):
        guard.add(len(chunk), loop.time())
        await part.add(chunk)
