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
import io
import logging
import os
import queue
import re
import stat
import threading
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, TypeVar
from urllib.parse import urlsplit, urlunsplit

import aiohttp

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
#: Results up to this size are held in memory until complete and land in one worker-thread hop; larger
#: ones stream to disk through a writer thread as they arrive (memory per download stays bounded).
SMALL_BYTES = 4 * 1024 * 1024
_QUEUED_CHUNKS = 8  # chunks waiting for the writer thread, at most (the reader waits beyond that)


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
    """What the `.part` has received so far: size, first bytes, expected total, and where the bytes are.

    Small results stay in memory until they are complete, then land in one worker-thread hop (write,
    fsync, verify, rename, and whatever `land` adds, such as the sidecar). A result that grows past
    `SMALL_BYTES`, or an existing `.part` to resume, goes to a `_DiskWriter`: one thread that writes and
    hashes while the event loop reads on, fed through a bounded queue.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = 0
        self.head = b""
        self.total: int | None = None
        self.chunks: list[bytes] = []  # memory mode
        self.writer: _DiskWriter | None = None  # disk mode

    def restart(self) -> None:
        """Forget everything: the next bytes start the file afresh."""
        self.size, self.head, self.total, self.chunks = 0, b"", None, []
        if self.writer is not None:
            self.writer.send(("truncate",))

    async def add(self, chunk: bytes) -> None:
        self.size += len(chunk)
        if len(self.head) < _HEAD_BYTES:
            self.head += chunk[: _HEAD_BYTES - len(self.head)]
        if self.writer is None and self.size > SMALL_BYTES:
            self.writer = _DiskWriter(self.path, append=False)
            for held in self.chunks:
                await self.writer.write(held)
            self.chunks = []
        if self.writer is not None:
            await self.writer.write(chunk)
        else:
            self.chunks.append(chunk)

    @property
    def complete(self) -> bool:
        return self.total is None or self.size >= self.total

    async def commit(self, final: Path, media_type: str, land: Land | None,
                     dirs: DirectorySync | None) -> Downloaded:
        if self.writer is not None:
            return await self.writer.commit(self, final, media_type, land, dirs)
        data = b"".join(self.chunks)
        return await asyncio.to_thread(_land_bytes, data, self.path, final, media_type, self.total, land, dirs)

    async def keep(self) -> None:
        """Giving up: what arrived so far goes to the `.part`, for a later call to resume from."""
        if self.writer is None and self.chunks:
            data = b"".join(self.chunks)
            try:
                await asyncio.to_thread(_write_part, self.path, data)
            except OSError as exc:
                raise _storage_error("write", self.path, exc) from exc

    async def abandon(self) -> None:
        """Stop the writer thread (the `.part` stays as written, for a later call to resume)."""
        if self.writer is not None:
            await self.writer.close()


Land = Callable[["Downloaded"], None]


class DirectorySync:
    """Directories whose new entries (renamed results) still need an fsync: collected across results
    and synced together (`flush`), instead of one directory fsync per file. Thread-safe."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._dirty: set[Path] = set()

    def add(self, directory: Path) -> None:
        with self._lock:
            self._dirty.add(directory)

    def flush(self) -> None:
        with self._lock:
            dirty, self._dirty = self._dirty, set()
        for directory in dirty:
            with contextlib.suppress(FileNotFoundError):
                _fsync_directory(directory)


class _DiskWriter:
    """One thread that appends to the `.part` and hashes as it goes; at most `_QUEUED_CHUNKS` chunks wait."""

    def __init__(self, path: Path, *, append: bool, hasher: hashlib._Hash | None = None) -> None:
        self._loop = asyncio.get_running_loop()
        self._room = asyncio.Semaphore(_QUEUED_CHUNKS)
        self._queue: queue.SimpleQueue[tuple[Any, ...]] = queue.SimpleQueue()
        self._done: asyncio.Future[None] = self._loop.create_future()
        self._closed = False
        self.path, self.hasher, self.written = path, hasher or hashlib.sha256(), 0
        self.error: BaseException | None = None
        threading.Thread(target=self._run, args=(append,), name=f"write-{path.name}", daemon=True).start()

    def send(self, command: tuple[Any, ...]) -> None:
        self._queue.put(command)

    async def write(self, chunk: bytes) -> None:
        await self._room.acquire()
        if self.error is not None:
            raise self.error
        self.send(("write", chunk))

    async def commit(self, part: _Part, final: Path, media_type: str, land: Land | None,
                     dirs: DirectorySync | None) -> Downloaded:
        result: asyncio.Future[Downloaded] = self._loop.create_future()
        self.send(("commit", part.total, final, media_type, land, dirs, result))
        return await result

    async def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.send(("stop",))
        await asyncio.shield(self._done)

    def _run(self, append: bool) -> None:
        file: BinaryIO | None = None
        try:
            file = _open_part_file(self.path, append=append)
            while True:
                command = self._queue.get()
                if command[0] == "write":
                    file.write(command[1])
                    self.hasher.update(command[1])
                    self.written += len(command[1])
                    self._loop.call_soon_threadsafe(self._room.release)
                elif command[0] == "truncate":
                    file.seek(0)
                    file.truncate()
                    self.hasher, self.written = hashlib.sha256(), 0
                elif command[0] == "commit":
                    self._commit(file, *command[1:])
                    file = None
                    self._drain()
                    return
                elif command[0] == "stop":
                    return
        except OSError as exc:
            self.error = _storage_error("write", self.path, exc)
            self._loop.call_soon_threadsafe(self._room.release)
            self._drain()
        finally:
            if file is not None:
                with contextlib.suppress(OSError):
                    file.close()
            self._loop.call_soon_threadsafe(_resolve, self._done, None, None)

    def _commit(self, file: BinaryIO, total: int | None, final: Path, media_type: str, land: Land | None,
                dirs: DirectorySync | None, result: asyncio.Future[Downloaded]) -> None:
        try:
            file.flush()
            os.fsync(file.fileno())
            file.close()
            with open(self.path, "rb", buffering=0, opener=_open_no_follow) as check:
                head = check.read(_HEAD_BYTES)
            done = _finish(self.path, final, media_type, self.written, total, head, self.hasher, None, land, dirs)
            self._loop.call_soon_threadsafe(_resolve, result, done, None)
        except BaseException as exc:  # handed to the awaiting coroutine
            with contextlib.suppress(OSError):
                file.close()
            error = _storage_error("write", self.path, exc) if isinstance(exc, OSError) else exc
            self._loop.call_soon_threadsafe(_resolve, result, None, error)

    def _drain(self) -> None:
        """After a commit or a storage error: answer what is still queued until told to stop."""
        while True:
            command = self._queue.get()
            if command[0] == "write":
                self._loop.call_soon_threadsafe(self._room.release)
            elif command[0] == "commit":
                self._loop.call_soon_threadsafe(_resolve, command[-1], None, self.error)
            elif command[0] == "stop":
                return


def _resolve(future: asyncio.Future[Any], value: Any, error: BaseException | None) -> None:
    if future.done():
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(value)


def _open_part_file(path: Path, *, append: bool) -> BinaryIO:
    return open(path, "ab" if append else "wb", opener=_open_no_follow)


def _write_part(path: Path, data: bytes) -> None:
    with _open_part_file(path, append=False) as file:
        file.write(data)


def _land_bytes(data: bytes, part: Path, final: Path, media_type: str, total: int | None, land: Land | None,
                dirs: DirectorySync | None) -> Downloaded:
    """A small result in one hop: write the `.part`, fsync, verify, rename, land (sync, in a thread)."""
    try:
        with _open_part_file(part, append=False) as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except OSError as exc:
        raise _storage_error("write", part, exc) from exc
    return _finish(part, final, media_type, len(data), total, data[:_HEAD_BYTES], hashlib.sha256(data), data,
                   land, dirs)


def _finish(part: Path, final: Path, media_type: str, size: int, total: int | None, head: bytes,
            hasher: hashlib._Hash, data: bytes | None, land: Land | None,
            dirs: DirectorySync | None) -> Downloaded:
    """Verify the written `.part`, then atomically make it the final file and land it (sync, in a thread)."""
    problem = _problem(head, size, media_type)
    if total is not None and size != total:
        problem = f"{size} bytes but the server announced {total}"
    if not problem:
        try:
            problem = (_structure_problem(io.BytesIO(data), size, head, media_type) if data is not None
                       else _structure_problem_of(part, size, head, media_type))
        except OSError as exc:
            raise _storage_error("read", part, exc) from exc
    if problem:
        _discard(part)
        raise DownloadCorrupt(f"{final}: {problem}; the download was discarded")
    _refuse_symlink(final)
    try:
        os.replace(part, final)
        if dirs is None:
            _fsync_directory(final.parent)
        else:
            dirs.add(final.parent)
    except OSError as exc:
        raise _storage_error("move the download to", final, exc) from exc
    done = Downloaded(path=final, size=size, sha256=hasher.hexdigest())
    if land is not None:
        land(done)
    return done


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
    land: Land | None = None,
    dirs: DirectorySync | None = None,
) -> Downloaded:
    """Download `url` to `final_path` (via its `.part`), verified, resuming cuts up to `max_resumes` times.

    `session` must carry no credentials: result URLs are presigned, and the API key must never reach
    a download host. `headers` are extra request headers (the caller adds Authorization only for a URL
    on the API's own origin). `read_timeout` bounds each read, not the whole download. An attempt that
    receives fewer than `min_rate_bytes` within any `min_rate_window_s` seconds is ended and resumed
    like a cut; when the last resume ends that way too, `DownloadStalled` is raised. `land` runs in the
    worker thread right after the rename (the caller's sidecar, say); with `dirs`, the directory fsync
    is left to `dirs.flush()` (batched across results) instead of done per file.
    """
    _check_arguments(session, media_type, chunk_size, read_timeout, max_resumes)
    if min_rate_bytes <= 0 or min_rate_window_s <= 0:
        raise ValueError("min_rate_bytes and min_rate_window_s must be > 0")
    part = await _prepare(final_path)
    try:
        await _receive(session, url, part, chunk_size=chunk_size, read_timeout=read_timeout,
                       max_resumes=max_resumes, headers=headers, min_rate=(min_rate_bytes, min_rate_window_s))
        return await part.commit(final_path, media_type, land, dirs)
    finally:
        await part.abandon()


async def _receive(session: aiohttp.ClientSession, url: str, part: _Part, *, chunk_size: int,
                   read_timeout: float, max_resumes: int, headers: Mapping[str, str] | None,
                   min_rate: tuple[int, float]) -> None:
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=read_timeout, sock_read=read_timeout)
    safe_url = redact_url(url)
    loop = asyncio.get_running_loop()
    failures = 0
    while True:
        offset = part.size
        guard = RateGuard(*min_rate, loop.time())
        try:
            await _attempt(session, url, part, chunk_size=chunk_size, client_timeout=timeout, guard=guard,
                           extra=headers)
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
                _give_up(retry, failures, safe_url, part)
            logger.debug("download.resume path=%s offset=%d reason=%s", part.path, part.size, retry)


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
    loop = asyncio.get_running_loop()
    # Only the reads are under the rate deadline: a chunk handed over is kept whole.
    while chunk := await _before(guard, resp.content.read(chunk_size)):
        guard.add(len(chunk), loop.time())
        await part.add(chunk)


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


async def _prepare(final_path: Path) -> _Part:
    """A fresh `_Part`, or one that takes over the `.part` an earlier call left (hashed in a thread).
    The directory is made before any request (in a thread, only when it does not exist yet)."""
    part = _Part(part_path_for(final_path))
    if _lstat_kind(final_path.parent) != "dir":
        await asyncio.to_thread(_make_directory, final_path)
    if _lstat_kind(final_path) == "link":
        raise StorageError(f"refusing to write through a symlink at {final_path}")
    kind = _lstat_kind(part.path)
    if kind is None:
        return part
    if kind == "link":
        raise StorageError(f"refusing to write through a symlink at {part.path}")
    try:
        part.size, hasher, part.head = await asyncio.to_thread(_hash_file, part.path)
    except OSError as exc:
        raise _storage_error("read", part.path, exc) from exc
    part.writer = _DiskWriter(part.path, append=True, hasher=hasher)
    part.writer.written = part.size
    logger.debug("download.found-part path=%s size=%d", part.path, part.size)
    return part


def _lstat_kind(path: Path) -> str | None:
    """"dir", "file", "link" or None (absent, or a file on the way): one lstat, fine on the event loop."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    return "link" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "file"


def _make_directory(final_path: Path) -> None:
    try:
        final_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _storage_error("create the directory for", final_path, exc) from exc


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


def _structure_problem_of(path: Path, size: int, head: bytes, media_type: str) -> str | None:
    with open(path, "rb", buffering=0, opener=_open_no_follow) as file:
        return _structure_problem(file, size, head, media_type)


def _structure_problem(file: BinaryIO, size: int, head: bytes, media_type: str) -> str | None:
    """Why the file's own structure says it is cut short (or padded), or None; a few small reads.

    This is what catches a body that matched a Content-Length shorter than the real file.
    """
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
            problem = _structure_problem_of(path, size, head, media_type)
        except OSError as exc:
            raise _storage_error("read", path, exc) from exc
    if problem is None and expected_size is not None and size != expected_size:
        problem = f"{size} bytes, expected {expected_size}"
    if problem is None and expected_sha256 is not None and digest != expected_sha256.lower():
        problem = f"sha256 {digest}, expected {expected_sha256}"
    if problem:
        raise DownloadCorrupt(f"{path}: {problem}")
    return Downloaded(path=path, size=size, sha256=digest)
