"""Reading the files a manifest names (and the manifest itself): regular files only, never past a limit."""

from __future__ import annotations

import os
import stat
from pathlib import Path

__all__ = ["Refused", "read_regular", "reason"]


class Refused(Exception):
    """A file that is not a regular file, or too large; the message completes "<the file> ..."."""


def read_regular(path: Path, limit: int, expected: str) -> bytes:
    """The content of a regular file of at most `limit` bytes; `Refused` otherwise (OSError passes).

    Checked before opening, then again on the open descriptor (the path may change in between). The
    open never blocks: O_NONBLOCK makes opening a FIFO return at once, and a FIFO is then refused.
    """
    _check_stat(os.stat(path), limit, expected)
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    with open(fd, "rb") as file:
        _check_stat(os.fstat(fd), limit, expected)
        data = file.read(limit + 1)  # never more than the limit, even from a file that grows
    if len(data) > limit:
        raise Refused(f"is more than {limit} bytes; the limit is {limit}")
    return data


def _check_stat(status: os.stat_result, limit: int, expected: str) -> None:
    if not stat.S_ISREG(status.st_mode):
        raise Refused(f"is {_file_kind(status.st_mode)}, not {expected}")
    if status.st_size > limit:
        raise Refused(f"is {status.st_size} bytes; the limit is {limit}")


def _file_kind(mode: int) -> str:
    kinds = (
        (stat.S_ISDIR, "a directory"),
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
        (stat.S_ISSOCK, "a socket"),
    )
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def reason(exc: OSError) -> str:
    """Why a file could not be read, in a few lower-case words."""
    if isinstance(exc, FileNotFoundError):
        return "not found"
    return (exc.strerror or type(exc).__name__).lower()
