"""Is a file a whole, valid result? Signatures, the file's own structure where the format records its
length (MP4 boxes, PNG/JPEG/GIF trailers, the WebP RIFF size), size and sha256. Used when a download
lands and when a resume checks a file finished earlier. No network here."""

from __future__ import annotations

import errno
import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

from batchgen.errors import DownloadCorrupt, StorageError
from batchgen.media import image_type

logger = logging.getLogger(__name__)


MEDIA_TYPES = frozenset({"image", "video"})


HEAD_BYTES = 16


_HASH_BLOCK = 1024 * 1024


# Box types a QuickTime/MP4 file can start with; Oxen's results start with `ftyp`.
_MP4_FIRST_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"})


_PNG_IEND = b"\x00\x00\x00\x00IEND\xaeB`\x82"  # the last chunk of every PNG, CRC included


#: Top-level MP4 boxes walked before giving up (a real file has a handful, a fragmented one a few
#: thousand): bounds the reads a hostile file can cause at commit.
MAX_MP4_BOXES = 100_000


@dataclass(frozen=True, slots=True)
class Downloaded:
    """A verified result file."""

    path: Path
    size: int
    sha256: str


def storage_error(action: str, path: Path, exc: OSError) -> StorageError:
    if exc.errno == errno.ELOOP:
        return StorageError(f"refusing to write through a symlink at {path}")
    reason = exc.strerror or type(exc).__name__
    return StorageError(f"cannot {action} {path}: {reason} (errno {exc.errno})")


def open_no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW, 0o666)


def refuse_symlink(path: Path) -> None:
    if path.is_symlink():
        raise StorageError(f"refusing to write through a symlink at {path}")


def hash_file(path: Path) -> tuple[int, hashlib._Hash, bytes]:
    """Size, sha256 state and first bytes of a regular file, read without following a symlink."""
    hasher, size, head = hashlib.sha256(), 0, b""
    with open(path, "rb", opener=open_no_follow) as file:
        while block := file.read(_HASH_BLOCK):
            if not head:
                head = block[:HEAD_BYTES]
            hasher.update(block)
            size += len(block)
    return size, hasher, head


def discard(path: Path) -> None:
    try:
        path.unlink(missing_ok=True)
    except OSError as exc:
        logger.warning("download.discard-failed path=%s error=%s", path, exc)


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def signature_problem(head: bytes, size: int, media_type: str) -> str | None:
    """Why the file is not a plausible `media_type` result, or None when it is."""
    if size == 0:
        return "the file is empty"
    if media_type == "video" and not _looks_like_mp4(head, size):
        return f"not an MP4 file (starts with {head[:8]!r})"
    if media_type == "image" and image_type(head) is None:
        return f"not a PNG, JPEG, WebP or GIF image (starts with {head[:8]!r})"
    return None


def _looks_like_mp4(head: bytes, size: int) -> bool:
    """A first box with a known top-level type and a size that fits (0: to end of file, 1: 64-bit)."""
    box_size = int.from_bytes(head[:4], "big")
    return len(head) >= 8 and head[4:8] in _MP4_FIRST_BOXES and (box_size in (0, 1) or 8 <= box_size <= size)


def structure_problem_of(path: Path, size: int, head: bytes, media_type: str) -> str | None:
    with open(path, "rb", buffering=0, opener=open_no_follow) as file:
        return structure_problem(file, size, head, media_type)


def structure_problem(file: BinaryIO, size: int, head: bytes, media_type: str) -> str | None:
    """Why the file's own structure says it is cut short (or padded), or None; a few small reads.

    This is what catches a body that matched a Content-Length shorter than the real file.
    """
    if media_type == "video":
        return _mp4_problem(file, size)
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return (
            None if _tail(file, size, 12) == _PNG_IEND else "a PNG without its final IEND chunk (cut short?)"
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
    path: Path,
    media_type: str,
    *,
    expected_size: int | None = None,
    expected_sha256: str | None = None,
    structure: bool = True,
) -> Downloaded:
    """Size, sha256 and signature of an existing result file; `DownloadCorrupt` when it is not valid.

    Used on resume to confirm a file finished by an earlier run. A missing file is `DownloadCorrupt`
    too (fetch it again); an unreadable one or a symlink is `StorageError`. `structure=False` skips the
    signature and structure checks (bytes the user accepted unverified: only their sha256 counts).
    """
    if media_type not in MEDIA_TYPES:
        raise ValueError(f"media_type must be one of {sorted(MEDIA_TYPES)}, not {media_type!r}")
    refuse_symlink(path)
    try:
        size, hasher, head = hash_file(path)
    except FileNotFoundError as exc:
        raise DownloadCorrupt(f"{path}: the file does not exist") from exc
    except OSError as exc:
        raise storage_error("read", path, exc) from exc
    digest = hasher.hexdigest()
    problem = signature_problem(head, size, media_type) if structure else None
    if problem is None and structure:
        try:
            problem = structure_problem_of(path, size, head, media_type)
        except OSError as exc:
            raise storage_error("read", path, exc) from exc
    if problem is None and expected_size is not None and size != expected_size:
        problem = f"{size} bytes, expected {expected_size}"
    if problem is None and expected_sha256 is not None and digest != expected_sha256.lower():
        problem = f"sha256 {digest}, expected {expected_sha256}"
    if problem:
        raise DownloadCorrupt(f"{path}: {problem}")
    return Downloaded(path=path, size=size, sha256=digest)
