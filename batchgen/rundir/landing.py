"""Landing a result: bytes received become a verified file at its final path, atomically, or nothing
does. Owns the `<final>.part` protocol on disk.

Small results stay in memory until complete, then land in one worker-thread hop (write, fsync, verify,
rename, and whatever the caller adds, such as the sidecar). Larger ones, and an existing `.part` to
resume, go to a writer thread that writes and hashes as the bytes arrive, fed through a bounded queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import io
import logging
import os
import queue
import stat
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

from batchgen.errors import DownloadCorrupt, StorageError, UnverifiedKept
from batchgen.rundir.layout import part_path
from batchgen.rundir.verify import (
    HEAD_BYTES,
    Downloaded,
    discard,
    fsync_directory,
    hash_file,
    open_no_follow,
    refuse_symlink,
    signature_problem,
    storage_error,
    structure_problem,
    structure_problem_of,
)

logger = logging.getLogger(__name__)


#: Results up to this size are held in memory until complete and land in one worker-thread hop; larger
#: ones stream to disk through a writer thread as they arrive (memory per download stays bounded).
SMALL_BYTES = 4 * 1024 * 1024


_QUEUED_CHUNKS = 8  # chunks waiting for the writer thread, at most (the reader waits beyond that)


class Part:
    """What the `.part` has received so far: size, first bytes, expected total, and where the bytes are
    (in memory up to `SMALL_BYTES`, else a `_DiskWriter`: see the module's docstring)."""

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
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
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

    async def commit(
        self,
        final: Path,
        media_type: str,
        land: Land | None,
        dirs: DirectorySync | None,
        keep: Path | None = None,
    ) -> Downloaded:
        """Verify and land the bytes at `final`; bytes that fail verification are deleted
        (`DownloadCorrupt`), or with `keep`, moved there (`UnverifiedKept`)."""
        target = _Target(final, media_type, land, dirs, keep)
        if self.writer is not None:
            return await self.writer.commit(self, target)
        return await asyncio.to_thread(_land_bytes, b"".join(self.chunks), self.path, target, self.total)

    async def keep(self) -> None:
        """Giving up: what arrived so far goes to the `.part`, for a later call to resume from."""
        if self.writer is None and self.chunks:
            data = b"".join(self.chunks)
            try:
                await asyncio.to_thread(_write_part, self.path, data)
            except OSError as exc:
                raise storage_error("write", self.path, exc) from exc

    async def abandon(self) -> None:
        """Stop the writer thread (the `.part` stays as written, for a later call to resume)."""
        if self.writer is not None:
            await self.writer.close()


Land = Callable[["Downloaded"], None]


@dataclass(frozen=True, slots=True)
class _Target:
    """Where verified bytes go (`final`, then `land` and `dirs`), and bad ones (`keep`, or deleted)."""

    final: Path
    media_type: str
    land: Land | None
    dirs: DirectorySync | None
    keep: Path | None = None


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
                fsync_directory(directory)


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

    async def commit(self, part: Part, target: _Target) -> Downloaded:
        result: asyncio.Future[Downloaded] = self._loop.create_future()
        self.send(("commit", part.total, target, result))
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
            self.error = storage_error("write", self.path, exc)
            self._loop.call_soon_threadsafe(self._room.release)
            self._drain()
        finally:
            if file is not None:
                with contextlib.suppress(OSError):
                    file.close()
            self._loop.call_soon_threadsafe(_resolve, self._done, None, None)

    def _commit(
        self, file: BinaryIO, total: int | None, target: _Target, result: asyncio.Future[Downloaded]
    ) -> None:
        try:
            file.flush()
            os.fsync(file.fileno())
            file.close()
            with open(self.path, "rb", buffering=0, opener=open_no_follow) as check:
                head = check.read(HEAD_BYTES)
            done = _finish(self.path, target, self.written, total, head, self.hasher, None)
            self._loop.call_soon_threadsafe(_resolve, result, done, None)
        except BaseException as exc:  # handed to the awaiting coroutine
            with contextlib.suppress(OSError):
                file.close()
            error = storage_error("write", self.path, exc) if isinstance(exc, OSError) else exc
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
    return open(path, "ab" if append else "wb", opener=open_no_follow)


def _write_part(path: Path, data: bytes) -> None:
    with _open_part_file(path, append=False) as file:
        file.write(data)


def _land_bytes(data: bytes, part: Path, target: _Target, total: int | None) -> Downloaded:
    """A small result in one hop: write the `.part`, fsync, verify, rename, land (sync, in a thread)."""
    try:
        with _open_part_file(part, append=False) as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
    except OSError as exc:
        raise storage_error("write", part, exc) from exc
    return _finish(part, target, len(data), total, data[:HEAD_BYTES], hashlib.sha256(data), data)


def _finish(
    part: Path,
    target: _Target,
    size: int,
    total: int | None,
    head: bytes,
    hasher: hashlib._Hash,
    data: bytes | None,
) -> Downloaded:
    """Verify the written `.part`, then atomically make it the final file and land it (sync, in a thread)."""
    final, media_type = target.final, target.media_type
    problem = signature_problem(head, size, media_type)
    if total is not None and size != total:
        problem = f"{size} bytes but the server announced {total}"
    if not problem:
        try:
            problem = (
                structure_problem(io.BytesIO(data), size, head, media_type)
                if data is not None
                else structure_problem_of(part, size, head, media_type)
            )
        except OSError as exc:
            raise storage_error("read", part, exc) from exc
    if problem:
        if target.keep is not None:
            raise _keep_aside(part, target.keep, problem, size, hasher.hexdigest())
        discard(part)
        raise DownloadCorrupt(f"{final}: {problem}; the download was discarded", problem)
    refuse_symlink(final)
    try:
        os.replace(part, final)
        if target.dirs is None:
            fsync_directory(final.parent)
        else:
            target.dirs.add(final.parent)
    except OSError as exc:
        raise storage_error("move the download to", final, exc) from exc
    done = Downloaded(path=final, size=size, sha256=hasher.hexdigest())
    if target.land is not None:
        target.land(done)
    return done


def _keep_aside(part: Path, keep: Path, problem: str, size: int, sha256: str) -> UnverifiedKept:
    """Bytes that failed verification for the last time: paid for, so moved to `keep` (already
    fsynced as the `.part`; the rename is synced too), never deleted."""
    try:
        keep.parent.mkdir(parents=True, exist_ok=True)
        refuse_symlink(keep)
        os.replace(part, keep)
        fsync_directory(keep.parent)
    except OSError as exc:
        raise storage_error("keep the unverified download at", keep, exc) from exc
    return UnverifiedKept(
        f"{keep}: {problem}; kept there, unverified", problem, path=keep, size=size, sha256=sha256
    )


async def prepare_part(final_path: Path) -> Part:
    """A fresh `Part`, or one that takes over the `.part` an earlier call left (hashed in a thread).
    The directory is made before any request (in a thread, only when it does not exist yet)."""
    part = Part(part_path(final_path))
    if lstat_kind(final_path.parent) != "dir":
        await asyncio.to_thread(_make_directory, final_path)
    if lstat_kind(final_path) == "link":
        raise StorageError(f"refusing to write through a symlink at {final_path}")
    kind = lstat_kind(part.path)
    if kind is None:
        return part
    if kind == "link":
        raise StorageError(f"refusing to write through a symlink at {part.path}")
    try:
        part.size, hasher, part.head = await asyncio.to_thread(hash_file, part.path)
    except OSError as exc:
        raise storage_error("read", part.path, exc) from exc
    part.writer = _DiskWriter(part.path, append=True, hasher=hasher)
    part.writer.written = part.size
    logger.debug("download.found-part path=%s size=%d", part.path, part.size)
    return part


def lstat_kind(path: Path) -> str | None:
    """ "dir", "file", "link" or None (absent, or a file on the way): one lstat, fine on the event loop."""
    try:
        mode = os.lstat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    return "link" if stat.S_ISLNK(mode) else "dir" if stat.S_ISDIR(mode) else "file"


def _make_directory(final_path: Path) -> None:
    try:
        final_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise storage_error("create the directory for", final_path, exc) from exc
