"""`run_with_sinks`, the one lifecycle of every result sink, without a network: the order of its
steps, each sink's own work as a task of one TaskGroup, and errors raised as themselves."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from batchgen.errors import UsageError
from batchgen.sinks.base import ResultCallback, ResultSink, VerifiedResult, run_with_sinks


class Recorder(ResultSink):
    """Says in `steps` what it was asked, in order; its `run` sets `running`, then waits until it is
    cancelled."""

    def __init__(self, name: str, steps: list[str], *, refuse: bool = False) -> None:
        self.name, self.steps, self.refuse = name, steps, refuse
        self.running = asyncio.Event()

    async def check(self) -> None:
        self.steps.append(f"{self.name}.check")
        if self.refuse:
            raise UsageError(f"{self.name} refuses")

    async def run(self) -> None:
        self.steps.append(f"{self.name}.run")
        self.running.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            self.steps.append(f"{self.name}.cancelled")
            raise

    async def finish(self) -> None:
        self.steps.append(f"{self.name}.finish")


async def test_checks_come_first_then_prepare_then_the_work_with_each_sink_running_then_finish() -> None:
    """Every check before `prepare`; the sinks' loops started before the work goes far; each finished
    in order after it; the loops cancelled last; the work's value returned."""
    steps: list[str] = []

    async def prepare() -> None:
        steps.append("prepare")

    sinks = [Recorder("a", steps), Recorder("b", steps)]

    async def work() -> str:
        for sink in sinks:
            await sink.running.wait()  # the sinks' loops run beside the work
        steps.append("work")
        return "outcome"

    assert await run_with_sinks(sinks, work, prepare=prepare) == "outcome"
    assert steps == [
        "a.check", "b.check", "prepare", "a.run", "b.run", "work",
        "a.finish", "b.finish", "a.cancelled", "b.cancelled",
    ]  # fmt: skip


async def test_a_refused_check_stops_before_anything_is_prepared_or_run() -> None:
    """A sink that refuses at its check (a missing repository) raises UsageError: nothing is
    prepared, no sink runs, the work never starts."""
    steps: list[str] = []

    async def work() -> None:
        steps.append("work")

    async def prepare() -> None:
        steps.append("prepare")

    with pytest.raises(UsageError, match="b refuses"):
        await run_with_sinks([Recorder("a", steps), Recorder("b", steps, refuse=True)], work, prepare=prepare)
    assert steps == ["a.check", "b.check"]


async def test_an_error_of_the_work_is_raised_as_itself_and_no_sink_is_finished() -> None:
    """The work fails: its own exception comes out (not an ExceptionGroup), no sink is finished, and
    every sink's task is cancelled."""
    steps: list[str] = []

    sink = Recorder("a", steps)

    async def work() -> None:
        await sink.running.wait()
        raise UsageError("the upload repository is missing")

    with pytest.raises(UsageError, match="upload repository"):
        await run_with_sinks([sink], work)
    assert steps == ["a.check", "a.run", "a.cancelled"]


async def test_on_result_is_a_sink_that_calls_the_function_with_each_result() -> None:
    """`ResultCallback` (run_manifest's `on_result`) hands each delivered result to the function."""
    seen: list[VerifiedResult] = []
    result = VerifiedResult("k", Path("videos/a.mp4"), "0" * 64, 3, {})
    sink = ResultCallback(seen.append)
    sink.land(result)  # nothing in the worker thread
    await sink.deliver(result)
    assert seen == [result] and sink.progress() is None
