"""Guarantees 50-51: a paid result whose bytes fail verification is never stranded silently.

The emulator serves one result, every time, as a well-framed answer a quarter short of the file (its
Content-Length and body agree, but the MP4's boxes do not tile the bytes). The job ends `unverified`
after exactly `MAX_UNVERIFIED_DOWNLOADS` downloads, the last bytes kept in the run directory, the reason
in `status`, `run --json`, the results and the report; a rerun says so and downloads nothing; and
`batchgen unverified` accepts the kept bytes or has the next run fetch them again.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from batchgen.emulator import Emulator
from batchgen.emulator.media import ResultBlob
from batchgen.results.unverified import MAX_UNVERIFIED_DOWNLOADS
from batchgen.rundir.lock import RunLock
from tests.faults.conftest import Harness, WrappedBlob, journal_jobs, results, write_manifest
from tests.faults.test_downloads import downloads, gid_of

BAD_PROMPT = "Clip number 3, slow dolly shot"  # write_manifest's job n=3


class AlwaysShort(WrappedBlob):
    """Every answer stops a quarter short of the real file, with a Content-Length that says so: a
    complete-looking download whose MP4 boxes do not tile it."""

    @property
    def size(self) -> int:
        return self._blob.size * 3 // 4

    def iter_range(self, start: int = 0, stop: int | None = None, chunk: int = 256 * 1024) -> Iterator[bytes]:
        yield from self._blob.iter_range(start, min(self.size, self.size if stop is None else stop), chunk)

    def read(self) -> bytes:
        return b"".join(self.iter_range())


def serve_one_result_short(emu: Emulator) -> dict[str, AlwaysShort]:
    """Wrap the result of the job with BAD_PROMPT on its first download request; returns {gid: blob}."""
    wrapped: dict[str, AlwaysShort] = {}

    def wrap(event: str, detail: Any) -> None:
        if event == "request" and "/files/" in detail.path:
            gid = emu.state.results.get(detail.path)
            if gid is None or gid in wrapped:
                return
            gen = emu.generation(gid)
            if gen.request.get("prompt") == BAD_PROMPT and isinstance(gen.result, ResultBlob):
                wrapped[gid] = AlwaysShort(gen.result)
                gen.result = wrapped[gid]  # type: ignore[assignment]

    emu.counters.listeners.append(wrap)
    return wrapped


def fetched(emu: Emulator, gid: str) -> int:
    """Whole answers (200) to downloads of generation `gid`'s result."""
    return Counter(gid_of(r) for r in downloads(emu) if r.status == 200)[gid]


async def run_until_unverified(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> tuple[Emulator, Path, Path, str, dict[str, Any]]:
    """6 jobs, one of whose results always fails verification: the first run, checked."""
    emu = await start_emulator(seed=21, result_size_bytes=64 * 1024)
    wrapped = serve_one_result_short(emu)
    manifest = write_manifest(tmp_path, count=6)
    first = await harness.run(emu, manifest, "--json")
    run_dir = tmp_path / "out" / "e2e"
    assert first.code == 1, first.stderr
    (gid,) = wrapped
    assert fetched(emu, gid) == MAX_UNVERIFIED_DOWNLOADS == 2  # bounded: not 6, not a night of them
    summary = json.loads(first.stdout)
    assert summary["reason"] == "unverified" and summary["counts"] == {"done": 5, "unverified": 1}
    (failure,) = summary["failures"]
    assert failure["state"] == "unverified" and "MP4 box" in failure["error"]
    assert (failure["title"], failure["output_path"]) == ("clip · 3", "videos/clip/clip-3.mp4")
    assert "batchgen unverified out/e2e" in first.stderr and "is unverified" in first.stderr
    return emu, manifest, run_dir, gid, failure


async def test_a_result_that_always_fails_verification_ends_unverified_kept_and_said_everywhere(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """2 downloads, then `unverified`: the bytes kept (the last download's, whole), the reason in
    status, results, the report and run --json; a rerun downloads nothing and says why."""
    emu, manifest, run_dir, gid, failure = await run_until_unverified(start_emulator, harness, tmp_path)
    key = failure["key"]
    kept = run_dir / failure["kept_path"]
    assert failure["kept_path"] == f"unverified/{key[:12]}/clip-3.mp4"
    served = emu.generation(gid).result.read()  # what the emulator sent: the short bytes
    short = emu.generation(gid).result
    assert isinstance(short, AlwaysShort) and len(served) == short._blob.size * 3 // 4
    assert kept.read_bytes() == served
    sidecar = json.loads(kept.with_suffix(".json").read_text())
    assert sidecar["verified"] is False and "MP4 box" in sidecar["problem"]
    assert sidecar["sha256"] == hashlib.sha256(served).hexdigest()
    assert not (run_dir / "videos" / "clip" / "clip-3.mp4").exists()
    assert not [p for p in run_dir.rglob("*") if p.name.endswith((".part", ".tmp"))]

    row = next(r for r in results(run_dir) if r["key"] == key)
    assert row["state"] == "unverified" and row["kept_path"] == failure["kept_path"]
    assert re.search(r"failed verification each time: an MP4 box .* kept at unverified/", row["error"])
    report = (run_dir / "report.html").read_text()
    card = next(c for c in report_cards(report) if c["key"] == key)
    assert card["state"] == "unverified" and card["href"] is None and card["kept"] == failure["kept_path"]

    status = await harness.cli("status", "out/e2e")
    assert status.code == 1
    assert "unverified clip · 3: downloaded 2 times, failed verification" in status.stdout
    assert "`batchgen unverified out/e2e` to look at them" in status.stdout
    as_json = await harness.cli("status", "out/e2e", "--json")
    (line,) = [json.loads(x) for x in as_json.stdout.splitlines() if json.loads(x)["key"] == key]
    assert line["state"] == "unverified" and line["kept_path"] == failure["kept_path"]

    rerun = await harness.run(emu, manifest)
    assert rerun.code == 1
    assert "job clip · 3 is unverified, not downloaded again" in rerun.stderr
    assert fetched(emu, gid) == 2  # the rerun downloaded nothing
    assert emu.counters.generations_enqueued == 6  # and paid nothing again


def report_cards(html: str) -> list[dict[str, Any]]:
    """The cards embedded in report.html."""
    data = html.split('<script type="application/json" id="batchgen-data">', 1)[1].split("</script>", 1)[0]
    cards: list[dict[str, Any]] = json.loads(data)["cards"]
    return cards


async def test_accepting_the_kept_bytes_makes_the_job_done_and_a_rerun_keeps_them(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """`batchgen unverified --accept`: refused while a run holds the lock (exit 2, nothing changed);
    then the kept bytes move to the result's path, the sidecar says verified false and accepted by the
    user, the job is done, and a rerun neither downloads nor verifies them away (exit 0)."""
    emu, manifest, run_dir, gid, failure = await run_until_unverified(start_emulator, harness, tmp_path)
    listed = await harness.cli("unverified", "out/e2e")
    assert listed.code == 0
    size = len(emu.generation(gid).result.read())
    assert f"  clip · 3: {failure['kept_path']} ({size:,} bytes)" in listed.stdout
    assert "MP4 box" in listed.stdout
    as_json = json.loads((await harness.cli("unverified", "out/e2e", "--json")).stdout)
    assert (as_json["title"], as_json["output_path"]) == ("clip · 3", "videos/clip/clip-3.mp4")

    with RunLock(run_dir):
        locked = await harness.cli("unverified", "out/e2e", "--accept")
    assert locked.code == 2 and "in use by batchgen" in locked.stderr
    assert (run_dir / failure["kept_path"]).is_file()

    accepted = await harness.cli("unverified", "out/e2e", "--accept", "--only", "n=3")
    assert accepted.code == 0, accepted.stderr
    assert "now at videos/clip/clip-3.mp4" in accepted.stdout
    video = run_dir / "videos" / "clip" / "clip-3.mp4"
    assert video.read_bytes() == emu.generation(gid).result.read()
    sidecar = json.loads(video.with_suffix(".json").read_text())
    assert sidecar["verified"] is False and sidecar["accepted_by_user"] is True
    assert journal_jobs(run_dir)[failure["key"]]["state"] == "done"

    video.touch()  # a changed mtime makes a rerun check the file again: by sha256 only, as accepted
    rerun = await harness.run(emu, manifest)
    assert rerun.code == 0, rerun.stderr
    assert fetched(emu, gid) == 2 and emu.counters.generations_enqueued == 6
    assert [r["state"] for r in results(run_dir)] == ["done"] * 6


async def test_fetch_again_downloads_it_in_the_next_run_and_keeps_the_earlier_bytes(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """`batchgen unverified --fetch-again`: the kept bytes move aside (never deleted) and the next run
    downloads the result again (the source fixed meanwhile): verified, done, nothing paid again."""
    emu, manifest, run_dir, gid, failure = await run_until_unverified(start_emulator, harness, tmp_path)
    short = emu.generation(gid).result
    assert isinstance(short, AlwaysShort)
    emu.generation(gid).result = short._blob  # the provider serves the whole file now

    again = await harness.cli("unverified", "out/e2e", "--fetch-again")
    assert again.code == 0, again.stderr
    assert "1 result(s) will be downloaded again by the next `batchgen run`" in again.stdout
    (earlier,) = (run_dir / "unverified" / failure["key"][:12]).glob("earlier-*/clip-3.mp4")
    assert earlier.read_bytes() == short.read()
    assert journal_jobs(run_dir)[failure["key"]]["state"] == "succeeded"

    rerun = await harness.run(emu, manifest)
    assert rerun.code == 0, rerun.stderr
    assert fetched(emu, gid) == 3  # one more download, verified at once
    video = run_dir / "videos" / "clip" / "clip-3.mp4"
    assert hashlib.sha256(video.read_bytes()).hexdigest() == emu.result_sha256(gid)
    assert emu.counters.generations_enqueued == 6
    assert earlier.is_file()  # batchgen never deletes kept bytes
