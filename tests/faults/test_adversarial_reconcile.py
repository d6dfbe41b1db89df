"""Guarantees 60 and 63 (docs/reliability.md, "Adversarial configurations"): a machine whose clock
runs fast, and a history whose pages are smaller than asked or repeat. Each loses POST answers; none
may pay twice, and a run that cannot tell must say what failed."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any

import pytest

from batchgen.emulator import Emulator, FaultConfig, LatencyConfig
from tests.e2e.test_run import assert_all_verified
from tests.faults.conftest import Harness, journal_jobs, results, write_manifest
from tests.faults.test_real_configurations import kill_after

JOBS = 20
OLDER_ROWS = 2500


def seed_older_rows(emu: Emulator, manifest: Path, count: int = OLDER_ROWS) -> set[str]:
    """Last week's night of the same manifest on this account: `count` identical rows of its first job."""
    body = {"model": "kling-video-o3-pro-reference-to-video", "prompt": "Clip number 0, slow dolly shot"}
    body |= {"aspect_ratio": "16:9", "duration": 5}
    assert manifest.exists()
    return {g.generation_id for g in emu.seed_history(count, body, age_seconds=7 * 86400)}


def assert_paid_once(run_dir: Path, emu: Emulator, jobs: int, seeded: set[str]) -> None:
    """`assert_complete` on an account with older rows: every job done from its own new generation
    (none of the older rows adopted), and exactly `jobs` new generations, all paid once."""
    assert_all_verified(run_dir, emu, jobs)
    ids = {row["generation_id"] for row in results(run_dir)}
    assert len(ids) == jobs and not ids & seeded
    fresh = [g for g in emu.generations() if g.generation_id not in seeded]
    assert len(fresh) == emu.counters.generations_enqueued == jobs
    assert [g.status for g in fresh] == ["succeeded"] * jobs
    assert {g.generation_id for g in fresh} == ids


def cut_first_answer(emu: Emulator) -> None:
    """Exactly one lost answer: the first POST's generation is created, its answer never comes."""
    emu.set_faults(enqueue_cut_rate=1.0)
    emu.counters.listeners.append(
        lambda event, _: emu.set_faults(enqueue_cut_rate=0.0) if event == "enqueue_answered" else None
    )


def history_reads(emu: Emulator) -> int:
    return int(emu.counters.requests["GET /api/ai/generations"])


@pytest.mark.parametrize("ahead_s", [600, 3600])
async def test_a_client_clock_running_fast_pays_once_with_40pct_of_answers_lost_and_a_kill_9(
    start_emulator: Any, harness: Harness, tmp_path: Path, ahead_s: int
) -> None:
    """The machine's clock is 10 minutes (an hour) ahead of the provider's: a row of our own lost POST
    is enqueued "before" our local submit time. With 40% of POST answers lost, a kill -9 inside an
    enqueue and 2,500 identical rows of last week on the account: 20 generations for 20 jobs, none of
    last week's adopted (before the fix: 31 for 20, and 15 duplicates an hour ahead)."""
    emu = await start_emulator(
        seed=7, clock_offset_seconds=-ahead_s, faults=FaultConfig(enqueue_cut_rate=0.4)
    )
    manifest = write_manifest(tmp_path, count=JOBS)
    seeded = seed_older_rows(emu, manifest)
    run_dir = tmp_path / "out" / "e2e"
    killed = await harness.run(emu, manifest, "-j", "8", on_start=kill_after(emu, JOBS // 2))
    assert killed.code == -signal.SIGKILL
    assert journal_jobs(run_dir), "the killed run journaled nothing"
    final = await harness.run(emu, manifest, "-j", "8")
    assert final.code == 0, final.stderr
    assert emu.counters.faults["enqueue_cut"] >= 4  # answers really were lost
    assert_paid_once(run_dir, emu, JOBS, seeded)
    print(f"FIGURE clock+{ahead_s}s: {emu.counters.faults['enqueue_cut']} answers lost, {JOBS} paid")


async def test_history_pages_capped_at_10_rows_are_read_by_their_reach_not_their_count(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """A server that serves 10 rows a page whatever page_size asks, on an account with 2,500 older rows
    (251 pages), and one lost answer: the first pages already reach back past the submission, so the
    run finishes with 20 generations for 20 jobs, reading a handful of pages (before the fix: "more
    than 200 pages of history to search; refusing to guess" on every rerun)."""
    emu = await start_emulator(seed=3, history_page_size_cap=10)
    manifest = write_manifest(tmp_path, count=JOBS)
    seeded = seed_older_rows(emu, manifest)
    cut_first_answer(emu)
    result = await harness.run(emu, manifest, "-j", "4")
    assert result.code == 0, result.stderr
    assert emu.counters.faults["enqueue_cut"] == 1
    assert_paid_once(tmp_path / "out" / "e2e", emu, JOBS, seeded)
    reads = history_reads(emu)
    assert 1 <= reads <= 12, reads  # per look: one listing page of 10 rows or a few, never 200
    print(f"FIGURE capped history: {reads} history pages read for 1 lost answer")


async def test_a_history_that_ignores_page_stops_the_run_saying_so_and_pays_nothing_twice(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """A server that answers every history page with its first one, oldest first, on an account with
    2,500 older rows, and one lost answer whose generation is already finished (so no longer in the
    lean list of active rows): the row cannot be seen, so the job stays `submitting`, the run exits 1
    saying the history repeats its pages (not "the API kept failing"), and nothing is paid twice
    (before the fix: the "last" page was page 1 again, the row was not found, and the job was sent
    again)."""
    instant = LatencyConfig(queue_wait_median_seconds=0, video_render_median_seconds=0, latency_sigma=0)
    emu = await start_emulator(seed=3, history_ignores_page=True, history_newest_first=False, latency=instant)
    manifest = write_manifest(tmp_path, count=JOBS)
    seed_older_rows(emu, manifest)
    cut_first_answer(emu)
    result = await harness.run(emu, manifest, "-j", "4")
    jobs = journal_jobs(tmp_path / "out" / "e2e").values()
    claimed = {row["generation_id"] for row in jobs if row["generation_id"]}
    submitting = [row for row in jobs if row["state"] == "submitting"]
    # every generation made is one job's: the claimed ones, and the one still being looked for
    assert emu.counters.generations_enqueued == len(claimed) + len(submitting)
    assert len(submitting) == 1
    assert result.code == 1, result.stderr
    assert "it ignores `page`" in result.stderr
    assert "the API kept failing" not in result.stderr
    closing = result.stderr.strip().splitlines()[-1]
    print(f"FIGURE ignored page: {closing}")
