"""Guarantee 6: a result reaches its final path whole and verified, or not at all.

Cut downloads resume with `Range` from the bytes already in the `.part` file; refused (expired)
presigned URLs are replaced by a fresh one from `GET /api/ai/queue/{id}`; a body without a valid
file signature is discarded and fetched again, never kept.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from batchgen.emulator import Emulator, FaultConfig
from batchgen.emulator.counters import LoggedRequest
from batchgen.emulator.media import ResultBlob
from tests.faults.conftest import Harness, WrappedBlob, assert_complete, results, write_manifest

RESULT_BYTES = 256 * 1024
_GID = re.compile(r"/([0-9a-f-]{36})\.mp4$")


def downloads(emu: Emulator) -> list[LoggedRequest]:
    return [
        r
        for r in emu.counters.request_log or []
        if r.route.startswith("GET /api/repos/") and "/files/" in r.route
    ]


def gid_of(request: LoggedRequest) -> str:
    match = _GID.search(request.path)
    assert match is not None, request.path
    return match.group(1)


async def test_truncated_downloads_resume_with_range_0_bytes_fetched_twice(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """30% of downloads (arriving at 640 KiB/s) send half the body and close: each resumes with Range
    at the byte it stopped at, so the emulator serves exactly the files' total size; 20/20 done."""
    # Paced in 64 KiB pieces, 0.1 s apart, so the runner has read every byte sent before the cut:
    # what this measures is the resume, not bytes lost inside aiohttp's buffer (see reliability.md).
    faults = FaultConfig(download_truncate_rate=0.3, download_bytes_per_second=640 * 1024)
    emu = await start_emulator(seed=6, result_size_bytes=RESULT_BYTES, faults=faults)
    manifest = write_manifest(tmp_path, count=20)
    result = await harness.run(emu, manifest, "-j", "16", "--downloads", "8")
    assert result.code == 0, result.stderr
    assert_complete(tmp_path / "out" / "e2e", emu, 20)
    truncated = emu.counters.faults["download_truncated"]
    assert truncated >= 4
    ranged = [r for r in downloads(emu) if r.range]
    assert len(ranged) == truncated  # one resume per cut, never a restart from byte 0
    assert all(re.fullmatch(r"bytes=[1-9]\d*-", r.range or "") for r in ranged)
    assert emu.counters.bytes_served == 20 * RESULT_BYTES  # 0 bytes served twice
    print(
        f"FIGURE truncated: {truncated} cuts, {len(ranged)} Range resumes, {emu.counters.bytes_served} bytes"
    )


async def test_expired_result_urls_are_refreshed_40_of_40_done(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """Result URLs live 0.15 s and downloads queue behind one slow worker: every refused (expired)
    URL is replaced through GET /api/ai/queue/{id}; 40/40 done, 0 duplicates."""
    emu = await start_emulator(
        seed=7,
        url_ttl_seconds=0.15,
        result_size_bytes=RESULT_BYTES,
        faults=FaultConfig(download_bytes_per_second=8 * 1024 * 1024),
    )
    manifest = write_manifest(tmp_path, count=40)
    result = await harness.run(emu, manifest, "-j", "16", "--downloads", "1")
    assert result.code == 0, result.stderr
    assert_complete(tmp_path / "out" / "e2e", emu, 40)
    refused = [r for r in downloads(emu) if r.status == 403]
    assert len(refused) >= 5  # the URLs really expired
    refreshed = Counter(
        r.path.rsplit("/", 1)[1]
        for r in emu.counters.request_log or []
        if r.route == "GET /api/ai/queue/{generation_id}"
    )
    assert all(refreshed[gid_of(r)] >= 1 for r in refused)
    print(f"FIGURE expired: {len(refused)} URLs refused as expired, all refreshed")


async def test_answers_with_a_short_content_length_are_never_kept_20_of_20_done(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """Every result's first download is a complete-looking answer whose Content-Length (and body)
    stop a quarter short of the file: the MP4 box check discards each one and it is fetched again;
    20/20 final files match the emulator's sha256 (0 short files kept)."""
    emu = await start_emulator(seed=11, result_size_bytes=RESULT_BYTES)
    seen: set[str] = set()

    def shorten_first(event: str, detail: Any) -> None:
        if event == "request" and "/files/" in detail.path:  # runs just before this download's dice roll
            emu.set_faults(download_short_length_rate=0.0 if detail.path in seen else 1.0)
            seen.add(detail.path)

    emu.counters.listeners.append(shorten_first)
    manifest = write_manifest(tmp_path, count=20)
    result = await harness.run(emu, manifest, "-j", "16", "--downloads", "8")
    assert result.code == 0, result.stderr
    assert_complete(tmp_path / "out" / "e2e", emu, 20)  # every kept file has the emulator's sha256
    assert emu.counters.faults["download_short_length"] == 20
    fetched = Counter(gid_of(r) for r in downloads(emu) if r.status == 200)
    assert sorted(fetched.values()) == [2] * 20  # each short answer discarded, fetched again once
    print("FIGURE short length: 20 short answers discarded and fetched again, 0 kept")


class CorruptFirst(WrappedBlob):
    """Serves a result whose first 8 bytes are garbage on its first full download, then the real one."""

    def __init__(self, blob: ResultBlob) -> None:
        super().__init__(blob)
        self.served_bad = 0

    def iter_range(self, start: int = 0, stop: int | None = None, chunk: int = 256 * 1024) -> Iterator[bytes]:
        corrupt = start == 0 and not self.served_bad
        if corrupt:
            self.served_bad += 1
        for piece in self._blob.iter_range(start, stop, chunk):
            if corrupt:
                piece, corrupt = b"NOT-MP4!" + piece[8:], False
            yield piece


async def test_a_download_with_a_bad_signature_is_fetched_again_never_kept(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """A third of the results arrive the first time with a broken MP4 signature: each is discarded
    and downloaded again; 30/30 final files match the emulator's sha256 (0 corrupt kept)."""
    emu = await start_emulator(seed=9)
    tapped: dict[str, CorruptFirst] = {}

    def corrupt_some(event: str, detail: Any) -> None:
        if event == "request" and "/files/" in detail.path:
            gid = emu.state.results.get(detail.path)
            if gid is not None and gid not in tapped and int(gid[:2], 16) % 3 == 0:
                gen = emu.generation(gid)
                assert isinstance(gen.result, ResultBlob)
                tapped[gid] = CorruptFirst(gen.result)
                gen.result = tapped[gid]  # type: ignore[assignment]

    emu.counters.listeners.append(corrupt_some)
    manifest = write_manifest(tmp_path, count=30)
    result = await harness.run(emu, manifest, "-j", "16")
    assert result.code == 0, result.stderr
    assert_complete(tmp_path / "out" / "e2e", emu, 30)  # every kept file has the emulator's sha256
    corrupted = [gid for gid, blob in tapped.items() if blob.served_bad]
    assert len(corrupted) >= 5
    fetched = Counter(gid_of(r) for r in downloads(emu) if r.status == 200)
    assert all(fetched[gid] >= 2 for gid in corrupted)
    print(f"FIGURE corrupt: {len(corrupted)} bad bodies discarded and fetched again")


async def test_a_done_file_corrupted_on_disk_is_fetched_again_on_rerun_0_new_generations(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """After a finished run, 3 result files are overwritten in place with same-size garbage: the
    rerun fetches them again (without paying again) and all 10 end verified."""
    emu = await start_emulator(seed=10)
    manifest = write_manifest(tmp_path, count=10)
    assert (await harness.run(emu, manifest)).code == 0
    run_dir = tmp_path / "out" / "e2e"
    for row in results(run_dir)[:3]:
        video = run_dir / row["output_path"]
        video.write_bytes(b"\0" * video.stat().st_size)
    rerun = await harness.run(emu, manifest)
    assert rerun.code == 0, rerun.stderr
    assert_complete(run_dir, emu, 10)  # sha256 of every file matches, still 10 generations
