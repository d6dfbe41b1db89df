"""run/notify.py on its own: what a target gets, and the halt notice around a run (no network)."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from batchgen.config import FailureThreshold, NotifyTarget
from batchgen.run.breaker import FailureBreaker
from batchgen.run.notify import Notifier, halt_notice, summary_text
from batchgen.states import JobState

RECORD = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())"


class FakeContext:
    """What halt_notice reads of a runner's context: the breaker and wait_until."""

    def __init__(self) -> None:
        self.breaker = FailureBreaker(FailureThreshold(count=1))
        self.changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], bool]) -> None:
        while not predicate():
            self.changed.clear()
            await self.changed.wait()


def fake_runner() -> Any:
    ctx = FakeContext()
    return SimpleNamespace(
        ctx=ctx, stats=lambda: SimpleNamespace(total=4, counts={"failed": 1, "pending": 3})
    )


async def test_a_command_gets_the_summary_with_the_event_and_a_line(tmp_path: Path) -> None:
    """The command's stdin is the summary plus `event` and `text`; no warning is said."""
    out = tmp_path / "body.json"
    said: list[str] = []
    notifier = Notifier(
        [NotifyTarget(command=(sys.executable, "-c", RECORD, str(out)))], "spring", said.append
    )
    summary = {"run_dir": "outputs/spring", "reason": "complete", "jobs": 2, "counts": {"done": 2}}
    await notifier.send("finished", summary)
    body = json.loads(out.read_text())
    assert body == {"event": "finished", "text": summary_text("spring", "finished", summary), **summary}
    assert body["text"] == "batchgen: spring: complete: 2/2 done (done 2) in outputs/spring"
    assert said == []


async def test_an_unreachable_webhook_and_a_missing_program_are_warnings() -> None:
    """A refused connection and a program that does not exist are said, each once; send returns."""
    said: list[str] = []
    targets = [
        NotifyTarget(webhook="http://127.0.0.1:9/hook", timeout_s=5),
        NotifyTarget(command=("no-such-program-18",)),
    ]
    await Notifier(targets, "n", said.append).send("finished", {"counts": {}})
    assert len(said) == 2 and all("the run is not affected" in line for line in said)


async def test_the_halt_notice_tells_once_tripped_and_lets_the_run_raise_as_it_is(tmp_path: Path) -> None:
    """Tripped during the run: the targets get `halted` with the figure; not tripped: nothing is sent
    and the watcher ends with the run; an error of the run comes out as itself, not in a group."""
    out = tmp_path / "halt.json"
    notifier = Notifier([NotifyTarget(command=(sys.executable, "-c", RECORD, str(out)))], "n", lambda _: None)
    runner = fake_runner()
    async with halt_notice(notifier, runner, tmp_path):
        detail = runner.ctx.breaker.finished("a", JobState.PROCESSING, JobState.FAILED)
        runner.ctx.changed.set()  # the watcher wakes; the notice is sent before the block is left
    body = json.loads(out.read_text())
    assert (body["event"], body["reason"], body["stop_detail"]) == ("halted", "failures", detail)
    assert body["counts"] == {"failed": 1, "pending": 3}

    out.unlink()
    async with halt_notice(notifier, fake_runner(), tmp_path):
        pass
    assert not out.exists()
    with pytest.raises(ValueError, match="the run's own"):
        async with halt_notice(notifier, fake_runner(), tmp_path):
            raise ValueError("the run's own")
