"""Guarantee 61: a run directory whose journal is gone (deleted, or left 0 bytes) while its results are
on disk is rebuilt from the results' sidecars, never paid for again; readers never write a journal."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pytest

from tests.faults.conftest import Harness, assert_complete, journal_jobs, write_manifest

JOBS = 30
JOURNAL = "state.sqlite"


def digests(run_dir: Path) -> dict[str, tuple[str, int]]:
    """Every result under videos/: its sha256 and mtime (a rebuilt run must leave them as they are)."""
    return {
        p.relative_to(run_dir).as_posix(): (hashlib.sha256(p.read_bytes()).hexdigest(), p.stat().st_mtime_ns)
        for p in sorted((run_dir / "videos").rglob("*.mp4"))
    }


def lose_journal(run_dir: Path, how: str) -> None:
    journal = run_dir / JOURNAL
    if how == "deleted":
        journal.unlink()
    else:
        journal.write_bytes(b"")
    assert not (run_dir / f"{JOURNAL}-wal").exists()  # the run closed it cleanly: nothing else holds it


@pytest.mark.parametrize("how", ["deleted", "emptied"])
async def test_a_lost_journal_is_rebuilt_from_the_sidecars_and_nothing_on_disk_is_paid_again(
    start_emulator: Any, harness: Harness, tmp_path: Path, how: str
) -> None:
    """30 jobs done, then state.sqlite deleted (or left 0 bytes), and one result file deleted with its
    sidecar kept: the rerun says "journal rebuilt from 30 sidecars", pays for nothing (30 generations
    in all), fetches the one missing file again from its generation, leaves the other 29 files as they
    were, and moves nothing to superseded/ (before the fix: 30 paid again, the old ones moved aside)."""
    emu = await start_emulator(seed=11)
    manifest = write_manifest(tmp_path, count=JOBS)
    run_dir = tmp_path / "out" / "e2e"
    first = await harness.run(emu, manifest, "-j", "8")
    assert first.code == 0, first.stderr
    before = digests(run_dir)
    gone = run_dir / "videos" / "clip" / "clip-7.mp4"
    gone.unlink()
    lose_journal(run_dir, how)
    rerun = await harness.run(emu, manifest, "-j", "8")
    assert rerun.code == 0, rerun.stderr
    assert (
        f"journal rebuilt from {JOBS} sidecars ({'missing' if how == 'deleted' else '0 bytes'})"
        in rerun.stderr
    )
    assert "29 results kept as done, 1 to fetch again" in rerun.stderr
    assert_complete(run_dir, emu, JOBS)  # 30 generations made in all: 0 paid again
    assert not (run_dir / "superseded").exists()
    after = digests(run_dir)
    assert {path: seen for path, seen in after.items() if path != "videos/clip/clip-7.mp4"} == {
        path: seen for path, seen in before.items() if path != "videos/clip/clip-7.mp4"
    }
    assert after["videos/clip/clip-7.mp4"][0] == before["videos/clip/clip-7.mp4"][0]
    assert {row["state"] for row in journal_jobs(run_dir).values()} == {"done"}
    status = await harness.cli("status", str(run_dir))
    assert status.code == 0 and f"{JOBS} jobs · done {JOBS}" in status.stdout


async def test_readers_of_an_emptied_journal_say_so_exit_2_and_write_nothing(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """`status` and `report` on a 0-byte journal: exit 2 with the way out (not "0 jobs", exit 0);
    `ls` lists it as one unreadable line among the others; the journal stays 0 bytes, with no -wal or
    -shm beside it (before the fix: `status` printed "0 jobs", exited 0 and wrote a schema into it)."""
    emu = await start_emulator(seed=12)
    manifest = write_manifest(tmp_path, count=3)
    other = write_manifest(tmp_path, name="other", count=2)
    for each in (manifest, other):
        assert (await harness.run(emu, each)).code == 0
    run_dir = tmp_path / "out" / "e2e"
    (run_dir / JOURNAL).write_bytes(b"")
    for command in ("status", "report"):
        result = await harness.cli(command, str(run_dir))
        assert result.code == 2, (command, result.stdout, result.stderr)
        assert "is empty (0 bytes): the journal of this run directory was lost" in result.stderr
        assert "rebuilds it from the results' sidecars" in result.stderr
        assert "Traceback" not in result.stderr
    listed = await harness.cli("ls", "out")
    assert listed.code == 0, listed.stderr
    assert f"{Path('out') / 'e2e'}: unreadable (" in listed.stdout and "0 bytes" in listed.stdout
    assert "other" in listed.stdout.splitlines()[1]  # the healthy run is listed as ever
    assert (run_dir / JOURNAL).stat().st_size == 0
    assert not [p.name for p in run_dir.iterdir() if p.name.startswith(f"{JOURNAL}-")]


async def test_a_result_without_a_readable_sidecar_refuses_the_rebuild_exit_2_nothing_sent(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """A lost journal, and one result whose sidecar no longer parses: the result cannot be told from a
    stray file, so the rerun is exit 2 naming it and the way out; nothing is enqueued, no journal is
    written; once the file is moved out, the rerun rebuilds the rest and pays for that one job only."""
    emu = await start_emulator(seed=13)
    manifest = write_manifest(tmp_path, count=6)
    run_dir = tmp_path / "out" / "e2e"
    assert (await harness.run(emu, manifest)).code == 0
    (run_dir / JOURNAL).unlink()
    sidecar = run_dir / "videos" / "clip" / "clip-2.json"
    sidecar.write_text(json.dumps({"job_key": "not a key"}))
    refused = await harness.run(emu, manifest)
    assert refused.code == 2, refused.stderr
    assert "clip/clip-2.mp4" in refused.stderr and "have no readable sidecar" in refused.stderr
    assert "move those files out of" in refused.stderr
    assert emu.counters.generations_enqueued == 6
    assert not (run_dir / JOURNAL).exists()
    (run_dir / "videos" / "clip" / "clip-2.mp4").rename(tmp_path / "clip-2.mp4")
    sidecar.unlink()
    rerun = await harness.run(emu, manifest)
    assert rerun.code == 0, rerun.stderr
    assert (
        "journal rebuilt from 5 sidecars" in rerun.stderr
        and "1 planned job(s) have nothing on disk" in rerun.stderr
    )
    assert emu.counters.generations_enqueued == 7
