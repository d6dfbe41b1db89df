"""The run-directory lock: one process runs a run directory at a time (an exclusive `flock` on
`<run>/.lock`, released by the OS when the process dies), and anyone can ask, without waiting and without
writing, whether a process holds it (`lock_holder`)."""

from __future__ import annotations

import fcntl
import os
import stat
import time
from pathlib import Path

from batchgen.errors import RunLocked, StorageError

__all__ = ["LOCK_NAME", "RunLock", "lock_holder"]

LOCK_NAME = ".lock"


class RunLock:
    """An exclusive lock on a run directory, released by the OS if the process dies."""

    def __init__(self, run_dir: Path) -> None:
        self._path = run_dir / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> None:
        try:
            fd = os.open(self._path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StorageError(f"cannot create the lock file {self._path}: {exc}") from exc
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # a FIFO or device named .lock: never batchgen's
            os.close(fd)
            raise StorageError(f"{self._path} is not a regular file: remove it (batchgen makes its own)")
        try:
            _lock_soon(fd)
        except BlockingIOError:
            holder = os.read(fd, 64).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise RunLocked(
                f"{self._path.parent} is in use by batchgen (pid {holder}); wait for it to finish "
                "or stop it first"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


_LOCK_TRIES = 4  # `lock_holder` may hold a shared lock for an instant: try again before refusing


def _lock_soon(fd: int) -> None:
    for attempt in range(_LOCK_TRIES):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if attempt == _LOCK_TRIES - 1:
                raise
            time.sleep(0.02)


def lock_holder(run_dir: Path) -> int | None:
    """The pid of the process holding the run directory's lock (0 if it wrote none, or nonsense), or
    None when no process holds it. Never blocks (a FIFO named `.lock` is opened non-blocking and
    refused) and never creates the lock file; a pid recorded by a process that is gone is answered
    without touching the lock. Raises StorageError when `.lock` is not a regular file."""
    path = run_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise StorageError(f"{path} is not a regular file, so not batchgen's lock")
        text = os.read(fd, 64).decode(errors="replace").strip()
        pid = int(text) if text.isdigit() and len(text) <= _PID_DIGITS else 0
        if pid and not _alive(pid):
            return None
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return pid
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


_PID_DIGITS = 9  # pids are far below 10**9 on every POSIX system; more digits is not a pid


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process: alive
        return True
    except (OverflowError, ValueError):  # not a pid at all: nobody to ask
        return False
    return True
