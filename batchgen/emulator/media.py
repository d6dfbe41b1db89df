"""Result files: a tiny real MP4 or PNG, made distinct per generation and optionally padded.

A blob is described, not materialised: padding is a run of zero bytes produced while streaming, so
benchmarks can serve large files without holding them in memory.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache, cached_property
from importlib import resources

from batchgen.emulator.catalog import MediaType

CHUNK = 256 * 1024
_ZEROS = bytes(CHUNK)

# Part of a blob: literal bytes, or a number of zero bytes.
Part = bytes | int


@cache
def data_file(name: str) -> bytes:
    return resources.files("batchgen.emulator").joinpath("data").joinpath(name).read_bytes()


@dataclass(frozen=True)
class ResultBlob:
    content_type: str
    extension: str
    parts: tuple[Part, ...]

    @property
    def size(self) -> int:
        return sum(part if isinstance(part, int) else len(part) for part in self.parts)

    def iter_range(self, start: int = 0, stop: int | None = None, chunk: int = CHUNK) -> Iterator[bytes]:
        """Yield the bytes in ``[start, stop)`` in pieces of at most ``chunk`` bytes."""
        stop = self.size if stop is None else stop
        offset = 0
        for part in self.parts:
            length = part if isinstance(part, int) else len(part)
            lo, hi = max(start, offset), min(stop, offset + length)
            for pos in range(lo, hi, chunk):
                end = min(hi, pos + chunk)
                yield bytes(end - pos) if isinstance(part, int) else part[pos - offset : end - offset]
            offset += length

    def read(self) -> bytes:
        return b"".join(self.iter_range())

    @cached_property
    def sha256(self) -> str:
        digest = hashlib.sha256()
        for piece in self.iter_range():
            digest.update(piece)
        return digest.hexdigest()


def _marker(generation_id: str) -> bytes:
    return f"batchgen-emulator generation_id={generation_id}\n".encode()


def _mp4(generation_id: str, size: int) -> ResultBlob:
    sample, marker = data_file("sample.mp4"), _marker(generation_id)
    padding = max(0, size - len(sample) - 8 - len(marker))
    # A trailing top-level 'free' box: players skip it, and it makes every file unique.
    header = struct.pack(">I4s", 8 + len(marker) + padding, b"free")
    return ResultBlob("video/mp4", "mp4", (sample, header + marker, padding))


def _crc_with_zeros(head: bytes, zeros: int) -> int:
    crc = zlib.crc32(head)
    for pos in range(0, zeros, CHUNK):
        crc = zlib.crc32(_ZEROS[: min(CHUNK, zeros - pos)], crc)
    return crc


def _png(generation_id: str, size: int) -> ResultBlob:
    sample, marker = data_file("sample.png"), _marker(generation_id)
    body, iend = sample[:-12], sample[-12:]
    padding = max(0, size - len(sample) - 12 - len(marker))
    # 'emId': a private, ancillary, safe-to-copy chunk that decoders ignore.
    kind = b"emId"
    crc = _crc_with_zeros(kind + marker, padding)
    head = struct.pack(">I", len(marker) + padding) + kind + marker
    return ResultBlob("image/png", "png", (body + head, padding, struct.pack(">I", crc) + iend))


def make_result(media_type: MediaType, generation_id: str, size: int = 0) -> ResultBlob:
    """The result of one generation; ``size`` pads it to that many bytes when larger than natural."""
    return _mp4(generation_id, size) if media_type == "video" else _png(generation_id, size)
