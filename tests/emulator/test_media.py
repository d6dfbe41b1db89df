"""Result blobs: sizes, ranges, hashes; optionally checked with ffprobe when it is installed."""

from __future__ import annotations

import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from batchgen.emulator.media import data_file, make_result


@pytest.mark.parametrize("media_type", ["video", "image"])
@pytest.mark.parametrize("size", [0, 5_000, 1_000_000])
def test_blob_size_ranges_and_hash(media_type: str, size: int) -> None:
    """The blob has the padded size, its ranges slice its bytes, and sha256 hashes exactly those bytes."""
    blob = make_result(media_type, "gen-1", size)  # type: ignore[arg-type]
    data = blob.read()
    sample = data_file("sample.mp4" if media_type == "video" else "sample.png")
    overhead = 8 if media_type == "video" else 12  # MP4 box header; PNG chunk length+type+CRC
    natural = len(sample) + overhead + len(b"batchgen-emulator generation_id=gen-1\n")
    assert len(data) == blob.size == (size or natural)
    assert b"".join(blob.iter_range(17, 4_321, chunk=1000)) == data[17:4_321]
    assert blob.sha256 == hashlib.sha256(data).hexdigest()


def test_blobs_differ_per_generation() -> None:
    """Two generation ids give two different files of the same size."""
    first, second = make_result("video", "a" * 36), make_result("video", "b" * 36)
    assert first.size == second.size and first.read() != second.read()


@pytest.mark.skipif(shutil.which("ffprobe") is None, reason="ffprobe not installed")
@pytest.mark.parametrize("size", [0, 200_000])
def test_padded_mp4_still_parses(tmp_path: Path, size: int) -> None:
    """ffprobe reads the (padded) MP4 as a 1 s H.264 video."""
    target = tmp_path / "result.mp4"
    target.write_bytes(make_result("video", "gen-1", size).read())
    probe = subprocess.run(
        [
            "ffprobe",
            "-v",
            "error",
            "-show_entries",
            "stream=codec_name:format=duration",
            "-of",
            "default=nw=1",
            str(target),
        ],
        capture_output=True,
        text=True,
        check=True,
    )
    assert "codec_name=h264" in probe.stdout
    assert "duration=1.000000" in probe.stdout
