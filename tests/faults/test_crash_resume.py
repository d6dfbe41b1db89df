"""Guarantee 1: `kill -9` at any moment, then rerun: every job done once, nothing paid twice.

One 200-job batch is killed (SIGKILL) again and again, each time at a moment drawn from a seeded
RNG, then rerun until it exits 0. The moments:

- `post_sent`: inside the emulator's enqueue handler, after the generation was created and before
  the answer is written: the runner has journaled `submitting` and will never hear the answer.
- `journal_write`: a random 0-5 ms after an enqueue answer was written to the socket: the window in
  which the runner parses it and commits the claim of the generation id to the journal.
- `mid_download`: downloads are throttled; the kill comes once a result has been half served, so a
  `.part` file is left behind to be resumed.
- `random`: a random delay after the process started (startup, submission, tracking, downloads).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import sqlite3
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from batchgen.emulator import Emulator
from batchgen.emulator.counters import LoggedRequest
from batchgen.emulator.media import ResultBlob
from tests.faults.conftest import (
    Harness,
    WrappedBlob,
    assert_complete,
    journal_jobs,
    replica_manifest,
    write_manifest,
)

JOBS = 200
KILLS = 12
KINDS = ("post_sent", "journal_write", "mid_download", "random")
RESULT_BYTES = 64 * 1024
SLOW_DOWNLOAD_BPS = 320 * 1024  # two 32 KiB chunks per result, 0.1 s apart


class TappedBlob(WrappedBlob):
    """A result blob that calls `on_half` once half of a full download has been written."""

    def __init__(self, blob: ResultBlob, on_half: Callable[[], None]) -> None:
        super().__init__(blob)
        self._on_half = on_half

    def iter_range(self, start: int = 0, stop: int | None = None, chunk: int = 256 * 1024) -> Iterator[bytes]:
        served = 0
        for piece in self._blob.iter_range(start, stop, chunk):
            if served >= self.size // 2:  # resumed after the earlier pieces were written (and paced)
                self._on_half()
            yield piece
            served += len(piece)


@dataclass
class Trial:
    """One run of the CLI with its kill armed."""

    kind: str
    rng: random.Random
    emu: Emulator
    proc: asyncio.subprocess.Process | None = None
    fired_at: str = ""
    answered: list[str] = field(default_factory=list)  # journal_write: the ids in the answer

    def kill(self, why: str) -> None:
        if self.proc is not None and self.proc.returncode is None and not self.fired_at:
            self.fired_at = why
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()  # SIGKILL: no cleanup of any kind

    def listener(self) -> Callable[[str, Any], None]:
        loop = asyncio.get_running_loop()
        target = self.rng.randint(1, 12)
        delay = self.rng.uniform(0, 0.005)
        seen = 0

        def on_event(event: str, detail: Any) -> None:
            nonlocal seen
            if self.kind == "post_sent" and event == "enqueued":
                seen += 1
                if seen == target:
                    self.kill(f"inside the handler of enqueue #{seen}, before its answer")
            elif self.kind == "journal_write" and event == "enqueue_answered":
                seen += 1
                if seen == target:
                    self.answered = list(detail)
                    loop.call_later(delay, self.kill, f"{delay * 1000:.1f} ms after answer #{seen}")
            elif self.kind == "mid_download" and event == "request" and "/files/" in detail.path:
                self._tap(detail)

        return on_event

    def _tap(self, request: LoggedRequest) -> None:
        gid = self.emu.state.results.get(request.path)
        if gid is None or request.range:
            return
        gen = self.emu.generation(gid)
        if isinstance(gen.result, ResultBlob):
            gen.result = TappedBlob(gen.result, lambda: self.kill(f"half-way through {gid}"))  # type: ignore[assignment]

    async def started(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        if self.kind == "random":
            delay = self.rng.uniform(0.4, 1.0)
            asyncio.get_running_loop().call_later(delay, self.kill, f"{delay:.2f} s after start")


def untap(emu: Emulator) -> None:
    for gen in emu.generations():
        if isinstance(gen.result, TappedBlob):
            gen.result = gen.result._blob


@dataclass(frozen=True)
class Killed:
    """What one trial did, and what the journal and disk held right after."""

    kind: str
    moment: str  # empty when the run ended before its kill moment came
    code: int
    states: Counter[str]
    parts: int  # .part files left in the run directory


async def crash_trials(
    harness: Harness, emu: Emulator, seed: int, run: Callable[..., Awaitable[Any]]
) -> list[Killed]:
    log: list[Killed] = []
    for i in range(KILLS):
        trial = Trial(KINDS[i % len(KINDS)], random.Random(seed * 1000 + i), emu)
        if trial.kind == "mid_download":
            emu.set_faults(download_bytes_per_second=SLOW_DOWNLOAD_BPS)
        listener = trial.listener()
        emu.counters.listeners.append(listener)
        try:
            result = await run(on_start=trial.started)
        finally:
            emu.counters.listeners.remove(listener)
            emu.set_faults(download_bytes_per_second=None)
            untap(emu)
        run_dir = harness.root / "out" / "e2e"
        rows = journal_jobs(run_dir).values()
        states = Counter(row["state"] for row in rows)
        parts = len(list(run_dir.rglob("*.part")))
        moment = trial.fired_at
        if trial.answered and moment:  # did the kill land before or after the claim was committed?
            claimed = any(row["generation_id"] in trial.answered for row in rows)
            moment += ", claim committed" if claimed else ", claim not committed"
        log.append(Killed(trial.kind, moment, result.code, states, parts))
    return log


@pytest.mark.slow
@pytest.mark.parametrize(("seed", "shape"), [(1, "distinct"), (2, "replicas")])
async def test_kill_9_at_12_moments_of_a_200_job_batch_then_resume_0_duplicates(
    start_emulator: Any, harness: Harness, tmp_path: Path, seed: int, shape: str
) -> None:
    """12 seeded SIGKILLs (after a POST, around the journal write, mid-download, at random), then
    reruns: 200/200 done once, 200 generations enqueued (0 duplicates), every sha256 matches.
    `replicas`: 4 prompts x 50 replicas, whose requests are identical."""
    emu = await start_emulator(
        seed=seed, time_scale=0.002, account_concurrency=16, result_size_bytes=RESULT_BYTES
    )
    if shape == "distinct":
        manifest = write_manifest(tmp_path, count=JOBS)
    else:
        manifest = replica_manifest(tmp_path, prompts=4, replicas=JOBS // 4)

    async def run(**kw: Any) -> Any:
        return await harness.run(
            emu, manifest, "-j", "16", "--downloads", "4", "--request-timeout", "2", **kw
        )

    log = await crash_trials(harness, emu, seed, run)
    killed = [k for k in log if k.code == -9]
    assert len(killed) >= 10, log
    assert {k.kind for k in killed} == set(KINDS), log
    # The hard cases were really hit: a POST whose answer never came, a download cut half-way.
    assert all(k.states["submitting"] >= 1 for k in killed if k.kind == "post_sent"), log
    # A result this small is held in memory until complete (download.SMALL_BYTES), so a kill half-way
    # leaves nothing on disk to resume, only to fetch again; larger ones leave a .part (test_download).
    assert all("half-way" in k.moment for k in killed if k.kind == "mid_download"), log

    for _ in range(3):  # rerun until done; each rerun finishes only what is missing
        final = await run()
        if final.code == 0:
            break
    assert final.code == 0, final.stderr
    run_dir = tmp_path / "out" / "e2e"
    assert_complete(run_dir, emu, JOBS)  # 0 duplicate paid generations, all files verified
    assert all(row["state"] == "done" for row in journal_jobs(run_dir).values())
    with contextlib.closing(sqlite3.connect(run_dir / "state.sqlite")) as conn:
        done_twice = conn.execute(
            "SELECT job_key, COUNT(*) FROM transitions WHERE to_state = 'done'"
            " GROUP BY job_key HAVING COUNT(*) > 1"
        ).fetchall()
        history = [
            conn.execute(
                "SELECT from_state, to_state, detail FROM transitions WHERE job_key = ? ORDER BY seq", (key,)
            ).fetchall()
            for key, _ in done_twice
        ]
    assert done_twice == [], history  # no file was fetched again after it was done
    print(
        f"FIGURE crash[{shape}]: {len(killed)} kills ({', '.join(k.moment for k in killed)}); "
        f"{emu.counters.generations_enqueued} generations for {JOBS} jobs"
    )


async def test_a_sidecar_left_empty_by_a_kill_is_written_again_on_rerun_nothing_paid(
    start_emulator: Any, harness: Harness, tmp_path: Path
) -> None:
    """Sidecars are written in place: a kill between the open that truncates one and its write leaves
    it empty. The rerun writes it again from the journal; its result is not fetched or paid again."""
    emu = await start_emulator()
    manifest = write_manifest(tmp_path, count=3)
    assert (await harness.run(emu, manifest)).code == 0
    run_dir = tmp_path / "out" / "e2e"
    sidecar = next((run_dir / "videos").rglob("*.json"))
    whole = json.loads(sidecar.read_text())
    sidecar.write_bytes(b"")  # what a kill -9 inside write_sidecar leaves
    downloads = emu.counters.downloads
    assert (await harness.run(emu, manifest)).code == 0
    again = json.loads(sidecar.read_text())  # written from the journal: its download time is the journal's
    assert abs(again.pop("downloaded_at") - whole.pop("downloaded_at")) < 1
    assert {k: v for k, v in again.items() if k != "downloaded_at_iso"} == {
        k: v for k, v in whole.items() if k != "downloaded_at_iso"
    }
    assert emu.counters.downloads == downloads
    assert_complete(run_dir, emu, 3)
