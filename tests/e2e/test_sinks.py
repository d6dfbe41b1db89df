"""Result sinks end to end, in-process against the emulator on 127.0.0.1: a caller's sink passed to
`run_manifest_async(..., sinks=[...])` is checked before the first POST, sees every verified result
(landed, then delivered) and is finished once the run's own files are written; the Oxen delivery of a
manifest's `deliver:` goes through the same lifecycle and passes the same assertions."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import pytest

import batchgen
from batchgen.config import RunOptions, Timeouts
from batchgen.emulator import Emulator
from batchgen.run import batch
from batchgen.sinks.base import ResultSink, VerifiedResult
from batchgen.sinks.oxen.selected import delivery_for
from tests.e2e.test_deliver import assert_delivered, demo

RUN_FILES = {"results.csv", "results.jsonl", "report.html"}


def posts(emu: Emulator) -> int:
    """Generation requests (POST /api/ai/queue) that reached the emulator so far."""
    return int(emu.counters.snapshot()["requests"].get("POST /api/ai/queue", 0))


class Spy(ResultSink):
    """Records what the run asks of a sink, and when (how many POSTs the emulator had seen), and hands
    each call on to `inner` when there is one."""

    def __init__(self, emu: Emulator, run_dir: Path, inner: ResultSink | None = None) -> None:
        self.name = "spy" if inner is None else inner.name
        self.emu, self.run_dir, self.inner = emu, run_dir, inner
        self.calls: list[tuple[str, int]] = []
        self.landed: list[VerifiedResult] = []
        self.delivered: list[VerifiedResult] = []
        self.files_at_finish: set[str] = set()

    async def check(self) -> None:
        self.calls.append(("check", posts(self.emu)))
        if self.inner is not None:
            await self.inner.check()

    async def run(self) -> None:
        self.calls.append(("run", posts(self.emu)))
        if self.inner is not None:
            await self.inner.run()

    def land(self, result: VerifiedResult) -> None:
        self.landed.append(result)  # in the download's worker thread: a list append is atomic
        if self.inner is not None:
            self.inner.land(result)

    async def deliver(self, result: VerifiedResult) -> None:
        self.calls.append(("deliver", posts(self.emu)))
        self.delivered.append(result)
        if self.inner is not None:
            await self.inner.deliver(result)

    async def finish(self) -> None:
        self.calls.append(("finish", posts(self.emu)))
        self.files_at_finish = {path.name for path in self.run_dir.iterdir()}
        if self.inner is not None:
            await self.inner.finish()

    def progress(self) -> tuple[int, int] | None:
        return None if self.inner is None else self.inner.progress()

    def summary(self) -> Any:
        """The inner delivery's report (the run's result carries it)."""
        return getattr(self.inner, "summary", lambda: None)()


def assert_lifecycle(spy: Spy, result: batchgen.BatchResult) -> None:
    """Checked once, before the first POST; its loop started before the first result; every verified
    result landed and delivered once, as the run directory has it; finished last, once, with the run's
    files written."""
    names = [name for name, _ in spy.calls]
    assert spy.calls[0] == ("check", 0) and names.count("check") == 1
    assert names.index("run") < names.index("deliver")
    assert names[-1] == "finish" and names.count("finish") == 1
    assert spy.files_at_finish >= RUN_FILES
    done = {job.key: job for job in result.jobs if job.state is batchgen.JobState.DONE}
    assert result.complete and len(done) == result.total > 0
    assert sorted(r.key for r in spy.landed) == sorted(r.key for r in spy.delivered) == sorted(done)
    for verified in spy.delivered:
        job = done[verified.key]
        assert verified.path == job.path and verified.sha256 == job.sha256
        assert hashlib.sha256(job.path.read_bytes()).hexdigest() == job.sha256
        assert verified.metadata["sha256"] == job.sha256 and verified.metadata["job_key"] == job.key


async def test_a_caller_s_sink_is_checked_first_sees_every_result_and_is_finished_last(
    emulator: Any, tmp_path: Path
) -> None:
    """A manifest already loaded, the settings as `options=`, a sink and an `on_result` callback: the
    sink's whole lifecycle, and the callback gets the same results."""
    emu = await emulator()
    manifest = batchgen.load_manifest(demo(tmp_path))
    run_dir = tmp_path / "out" / "demo"
    spy, seen = Spy(emu, run_dir), []
    options = RunOptions(inline_assets=True, timeouts=Timeouts(request_s=5, stream_idle_s=3))
    result = await batchgen.run_manifest_async(
        manifest,
        options=options,  # in place of the manifest's run:, upload: and deliver: (no delivery here)
        sinks=[spy],
        on_result=seen.append,
        api_base=emu.base_url,
        api_key=emu.api_key,
        output_dir=tmp_path / "out",
    )
    assert result.run_dir == run_dir and result.delivery is None
    assert_lifecycle(spy, result)
    assert seen == spy.delivered
    assert posts(emu) == result.total == 9


async def test_the_oxen_delivery_passes_the_same_lifecycle_test(
    emulator: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The manifest's `deliver:` makes a RunDelivery (`delivery_for`), driven by the same lifecycle as any sink (here
    watched through a Spy around it): checked before the first POST, every result delivered, finished
    with the run's files; and the repository has each result, its sidecar and the results files."""
    emu = await emulator()
    emu.create_repo("team", "campaigns")
    run_dir = tmp_path / "out" / "demo"
    spies: list[Spy] = []

    def spied(*args: Any, **kwargs: Any) -> Spy:
        spies.append(Spy(emu, run_dir, delivery_for(*args, **kwargs)))
        return spies[-1]

    monkeypatch.setattr(batch, "delivery_for", spied)
    shown: list[tuple[int, int] | None] = []
    result = await batchgen.run_manifest_async(
        demo(tmp_path),
        progress=lambda snapshot: shown.append(snapshot().delivered),
        api_base=emu.base_url,
        api_key=emu.api_key,
        output_dir=tmp_path / "out",
        inline_assets=True,
        request_timeout_s=5,
        stream_idle_timeout_s=3,
    )
    [spy] = spies
    assert_lifecycle(spy, result)
    assert shown and all(counts is not None for counts in shown)  # its progress is on every line
    assert result.delivery is not None and result.delivery.complete
    assert result.delivery.delivered == result.delivery.wanted == 2 * 9 + len(RUN_FILES)
    assert_delivered(emu, run_dir)
