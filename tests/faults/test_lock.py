"""Guarantee 11: two runners on one run directory: the second refuses at once, the first is unharmed."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from tests.faults.conftest import Harness, assert_complete, write_manifest

JOBS = 40


async def test_a_second_runner_on_the_same_run_dir_exits_2_and_the_first_finishes_40_of_40(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """While a run is submitting, the same command again exits 2 naming the lock holder's pid and
    sends no enqueue; the first run ends 40/40 with exactly 40 generations."""
    emu = await start_emulator(time_scale=0.003)
    manifest = write_manifest(tmp_path, count=JOBS)
    first_enqueue = asyncio.Event()
    emu.counters.listeners.append(lambda event, _: first_enqueue.set() if event == "enqueued" else None)
    first_pid: list[int] = []

    async def remember(proc: asyncio.subprocess.Process) -> None:
        first_pid.append(proc.pid)

    first = asyncio.create_task(harness.run(emu, manifest, "-j", "8", on_start=remember))
    async with asyncio.timeout(30):
        await first_enqueue.wait()  # the first runner holds the lock and is submitting
    run_dir = tmp_path / "out" / "e2e"
    written = {name: (run_dir / name).stat().st_mtime_ns for name in ("manifest.yaml", "plan.json")}
    second = await harness.run(emu, manifest, "-j", "8")
    assert {name: (run_dir / name).stat().st_mtime_ns for name in written} == written  # untouched
    assert (run_dir / ".lock").read_text() == str(first_pid[0])
    enqueues_by_first_so_far = emu.counters.generations_enqueued
    assert second.code == 2, second.stderr
    assert "in use by batchgen" in second.stderr and f"pid {first_pid[0]}" in second.stderr
    assert not first.done()  # the second one came and went while the first was still running
    result = await first
    assert result.code == 0, result.stderr
    assert enqueues_by_first_so_far >= 1
    assert_complete(run_dir, emu, JOBS)  # 40 generations: the second sent none
