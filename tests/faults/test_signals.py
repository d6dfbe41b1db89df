"""Guarantees 52-53: stop signals as process managers send them, and a drain bounded in time.

Two SIGINTs a few milliseconds apart (coreutils `timeout -s INT`, a process group's Ctrl-C) are one
press: the run drains, it does not stop at once. SIGTERM drains like a first Ctrl-C. A drain while the
API answers nothing but 503 (and cuts the event stream) ends after `--drain-timeout`, saying what the
rerun picks up, instead of reconnecting and reconciling forever.
"""

from __future__ import annotations

import asyncio
import json
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from batchgen.emulator import Emulator
from tests.faults.conftest import Harness, journal_jobs, write_manifest


def after_enqueues(emu: Emulator, count: int) -> asyncio.Event:
    """Set once the emulator has answered its `count`-th enqueue (the run has that many in flight)."""
    answered = asyncio.Event()

    def listen(event: str, _: Any) -> None:
        if event == "enqueue_answered" and emu.counters.generations_enqueued >= count:
            answered.set()

    emu.counters.listeners.append(listen)
    return answered


def states(run_dir: Path) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in journal_jobs(run_dir).values():
        counts[row["state"]] = counts.get(row["state"], 0) + 1
    return counts


@pytest.mark.parametrize(
    "signals",
    [
        pytest.param((signal.SIGINT, signal.SIGINT), id="two-SIGINTs-5ms-apart"),
        pytest.param((signal.SIGTERM,), id="one-SIGTERM"),
        pytest.param((signal.SIGTERM, signal.SIGTERM), id="two-SIGTERMs-5ms-apart"),
    ],
)
async def test_signals_a_few_ms_apart_are_one_press_and_sigterm_drains(
    start_emulator: Any, harness: Harness, tmp_path: Path, signals: tuple[signal.Signals, ...]
) -> None:
    """8 jobs, 4 in flight when the signals come 5 ms apart: one drain (one "stopping" line, no hard
    stop), the 4 in flight finish and are downloaded, nothing more is submitted, exit 1, and the
    rerun pays for the other 4 only."""
    emu = await start_emulator(seed=31, time_scale=0.01)  # renders of a second or two: drained in time
    in_flight = after_enqueues(emu, 4)
    manifest = write_manifest(tmp_path, count=8)

    async def press(proc: asyncio.subprocess.Process) -> None:
        await in_flight.wait()
        for number, sig in enumerate(signals):
            if number:
                await asyncio.sleep(0.005)  # the fault itself: the second signal 5 ms after the first
            proc.send_signal(sig)

    ran = await harness.run(emu, manifest, "-j", "4", "--json", "-v", on_start=press)
    assert ran.code == 1, ran.stderr
    assert ran.stderr.count("stopping: no new submissions") == 1
    if len(signals) == 2:  # the second one did arrive, and was taken for the same press
        assert f"{signals[1].name} " in ran.stderr and "after the first: the same press" in ran.stderr
    assert f"batchgen: {signals[0].name}: stopping" in ran.stderr
    assert "stopped at once" not in ran.stderr
    summary = json.loads(ran.stdout)
    assert summary["reason"] == "interrupted" and summary["drain_timed_out"] is False
    run_dir = tmp_path / "out" / "e2e"
    assert states(run_dir) == {"done": 4, "pending": 4}
    assert emu.counters.generations_enqueued == 4  # nothing submitted after the press

    rerun = await harness.run(emu, manifest, "-j", "4")
    assert rerun.code == 0, rerun.stderr
    assert emu.counters.generations_enqueued == 8


async def test_a_second_sigint_after_half_a_second_still_stops_at_once(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """The same-press window is short: a Ctrl-C 0.6 s after the first stops the run at once (130),
    with the journal intact (4 generations in flight, recorded)."""
    emu = await start_emulator(seed=32, time_scale=1.0)  # renders of minutes: still draining
    in_flight = after_enqueues(emu, 4)
    manifest = write_manifest(tmp_path, count=8)

    async def press_twice(proc: asyncio.subprocess.Process) -> None:
        await in_flight.wait()
        proc.send_signal(signal.SIGINT)
        await asyncio.sleep(0.6)  # the fault itself: a second, deliberate press
        proc.send_signal(signal.SIGINT)

    ran = await harness.run(emu, manifest, "-j", "4", on_start=press_twice)
    assert ran.code == 130, ran.stderr
    assert "stopped at once; the journal is intact" in ran.stderr
    left = states(tmp_path / "out" / "e2e")
    assert left["pending"] == 4 and left.get("queued", 0) + left.get("processing", 0) == 4


@pytest.mark.parametrize("unreachable", ["answers-503", "stopped"])
async def test_a_drain_while_the_api_is_unreachable_ends_after_the_drain_timeout(
    start_emulator: Any, harness: Harness, tmp_path: Path, unreachable: str
) -> None:
    """4 renders of minutes in flight, then the API answers every request 503 (its event stream cut
    every 0.2 s), or stops altogether; a SIGTERM's drain gives up after --drain-timeout 2 (not 52
    minutes of reconnects): exit 1, the last line says the 4 in flight are left for the rerun, and the
    journal keeps them."""
    emu = await start_emulator(seed=33, time_scale=1.0)
    in_flight = after_enqueues(emu, 4)
    manifest = write_manifest(tmp_path, count=4)
    signalled: list[float] = []

    async def break_the_api_then_stop(proc: asyncio.subprocess.Process) -> None:
        await in_flight.wait()
        if unreachable == "stopped":
            await emu.stop()  # connections refused from here on
        else:
            emu.set_faults(server_error_rate=1.0, sse_cut_every_seconds=0.2)
        proc.send_signal(signal.SIGTERM)
        signalled.append(time.monotonic())

    ran = await harness.run(
        emu, manifest, "-j", "4", "--drain-timeout", "2", on_start=break_the_api_then_stop, limit_s=30
    )
    took = time.monotonic() - signalled[0]
    assert ran.code == 1, ran.stderr
    assert 2 <= took < 12, f"the drain took {took:.1f} s"
    last = ran.stderr.strip().splitlines()[-1]
    assert last == (
        "batchgen: the drain ran out of time: 4 generation(s) in flight and 0 result(s) to download are "
        "left in the journal; run the same command again to pick them up (nothing is paid twice)"
    )
    run_dir = tmp_path / "out" / "e2e"
    assert sum(n for s, n in states(run_dir).items() if s in ("queued", "processing")) == 4
    print(f"FIGURE drain, API {unreachable}: exit {took:.1f} s after SIGTERM (--drain-timeout 2)")
