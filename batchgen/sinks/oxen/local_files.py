"""Reading what a delivery sends from the run directory (blocking: called in a worker thread), each
file checked against the sha256 the journal recorded when it was verified, never a path outside the
run directory."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import xxhash

from batchgen.rundir.layout import UnsafePathError, ensure_inside
from batchgen.sinks.oxen.batching import Outgoing

PIECE = 1 << 20


class Unreadable(Exception):
    """A file that cannot be sent: unreadable, gone, or changed since it was verified."""


@dataclass(frozen=True, slots=True)
class Hashed:
    path: Path
    size: int
    sha256: str
    version: str  # Oxen's version id of these bytes (liboxen `hash_file_contents`): XXH3-128 as `{:x}`


def local_path(run_dir: Path, item: Outgoing) -> Path:
    if item.source is not None:
        return item.source
    try:
        return ensure_inside(run_dir, item.local)
    except UnsafePathError as exc:
        raise Unreadable(f"cannot read {item.local}: {exc}") from None


def read_checked(run_dir: Path, item: Outgoing) -> bytes:
    """The bytes of a small file, checked against its sha256 when one is known."""
    if item.data is not None:
        return item.data
    path = local_path(run_dir, item)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise Unreadable(f"cannot read {item.local}: {exc.strerror or exc}") from None
    if item.sha256 is not None and hashlib.sha256(data).hexdigest() != item.sha256:
        raise Unreadable(f"{item.local} changed on disk since it was verified: not sent")
    return data


def hash_checked(run_dir: Path, item: Outgoing) -> Hashed:
    """A large file's size, sha256 (checked) and version id, read a piece at a time."""
    path = local_path(run_dir, item)
    sha, xxh, size = hashlib.sha256(), xxhash.xxh3_128(), 0
    try:
        with path.open("rb") as handle:
            while piece := handle.read(PIECE):
                sha.update(piece)
                xxh.update(piece)
                size += len(piece)
    except OSError as exc:
        raise Unreadable(f"cannot read {item.local}: {exc.strerror or exc}") from None
    if item.sha256 is not None and sha.hexdigest() != item.sha256:
        raise Unreadable(f"{item.local} changed on disk since it was verified: not sent")
    return Hashed(path, size, sha.hexdigest(), format(xxh.intdigest(), "x"))
