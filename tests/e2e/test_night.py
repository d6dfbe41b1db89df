"""A night that reports itself, end to end: the real CLI against the emulator on 127.0.0.1, `notify:`
targets (a command, a local webhook) and the failure breaker (`run.halt_after_failures`)."""

from __future__ import annotations

import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from batchgen.emulator import FaultConfig
from tests.e2e.conftest import api_args, run_cli
from tests.e2e.test_run import enqueues, write_manifest

#: A notify command: writes its stdin to the file named by its argument.
RECORDER = "import sys, pathlib; pathlib.Path(sys.argv[1]).write_bytes(sys.stdin.buffer.read())\n"


class Hook:
    """A webhook on 127.0.0.1 that records each JSON body and answers `status`."""

    def __init__(self, status: int = 204) -> None:
        self.status = status
        self.bodies: list[Any] = []
        self.url = ""

    async def handle(self, request: web.Request) -> web.Response:
        self.bodies.append(await request.json())
        return web.Response(status=self.status)


@pytest.fixture
async def webhook() -> AsyncIterator[Any]:
    """A factory: `await webhook(status)` starts a recording webhook; all are stopped at the end."""
    runners: list[web.AppRunner] = []

    async def start(status: int = 204) -> Hook:
        hook = Hook(status)
        app = web.Application()
        app.router.add_post("/hook", hook.handle)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        runners.append(runner)
        port = runner.addresses[0][1]
        hook.url = f"http://127.0.0.1:{port}/hook"
        return hook

    yield start
    for runner in runners:
        await runner.cleanup()


def recorder(tmp_path: Path, name: str) -> tuple[list[str], Path]:
    """A notify command (argv) that writes its stdin to the file returned."""
    script = tmp_path / "record.py"
    script.write_text(RECORDER)
    return [sys.executable, str(script), str(tmp_path / name)], tmp_path / name


async def test_the_command_and_the_webhook_get_the_run_summary(
    emulator: Any, webhook: Any, tmp_path: Path
) -> None:
    """At the end, a notify command gets the `run --json` summary on its stdin and a webhook as its
    POST body (plus `event: finished` and a one-line `text`); the exit code is the run's."""
    emu, hook = await emulator(), await webhook()
    argv, written = recorder(tmp_path, "stdin.json")
    manifest = write_manifest(tmp_path, count=3, notify=[{"command": argv}, {"webhook": hook.url}])
    result = await run_cli("run", str(manifest), "-o", "out", "--json", *api_args(emu), cwd=tmp_path)
    assert result.code == 0, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    expected = {key: value for key, value in summary.items() if key != "exit_code"}
    from_command = json.loads(written.read_text())
    assert len(hook.bodies) == 1
    for body in (from_command, hook.bodies[0]):
        assert body.pop("event") == "finished"
        assert body.pop("text").startswith("batchgen: e2e: complete: 3/3 done")
        assert body == expected
    assert "notification" not in result.stderr


async def test_a_failing_or_hanging_notifier_warns_and_leaves_the_exit_code(
    emulator: Any, webhook: Any, tmp_path: Path
) -> None:
    """A command that exits 3, one that hangs past its timeout and a webhook answering 500 are each
    said as a warning; the run still exits 0 and in about the timeout, not the hang."""
    emu, hook = await emulator(), await webhook(500)
    failing = [sys.executable, "-c", "import sys; sys.stdin.read(); sys.exit('mailbox full')"]
    hanging = [sys.executable, "-c", "import time; time.sleep(60)"]
    notify = [
        {"command": failing},
        {"command": hanging, "timeout_s": 1},
        {"webhook": hook.url},
    ]
    manifest = write_manifest(tmp_path, count=2, notify=notify)
    result = await run_cli("run", str(manifest), "-o", "out", *api_args(emu), cwd=tmp_path, limit_s=30)
    assert result.code == 0, result.stderr
    warnings = [line for line in result.stderr.splitlines() if "the notification to" in line]
    assert len(warnings) == 3, result.stderr
    assert any("exit status 1: mailbox full" in line for line in warnings)
    assert any("no answer within 1 s" in line for line in warnings)
    assert any("HTTP 500" in line for line in warnings)
    assert len(hook.bodies) == 1  # the webhook was asked once (and said no)


async def test_the_breaker_stops_a_failing_run_and_says_why(
    emulator: Any, webhook: Any, tmp_path: Path
) -> None:
    """Every generation fails: with `halt_after_failures: 3` and one job in flight at a time, the run
    submits exactly 3 jobs, leaves the rest pending, exits 1 with reason `failures` and the figure, and
    the webhook hears `halted` (while draining) then `finished`."""
    emu = await emulator(faults=FaultConfig(generation_failure_rate=1.0))
    hook = await webhook()
    manifest = write_manifest(
        tmp_path, count=20, run={"halt_after_failures": 3, "retries": 0}, notify={"webhook": hook.url}
    )
    result = await run_cli(
        "run", str(manifest), "-o", "out", "--json", *api_args(emu, "-j", "1"), cwd=tmp_path
    )
    assert result.code == 1, result.stderr
    assert enqueues(emu) == 3
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["reason"] == "failures"
    assert summary["counts"] == {"failed": 3, "pending": 17}
    assert summary["stop_detail"] == "3 job(s) failed, the limit of 3 (run.halt_after_failures)"
    assert "submissions stopped: 3 job(s) failed" in result.stderr
    assert [body["event"] for body in hook.bodies] == ["halted", "finished"]
    assert hook.bodies[0]["stop_detail"] == summary["stop_detail"]


async def test_a_percentage_waits_for_ten_finished_jobs(emulator: Any, tmp_path: Path) -> None:
    """`--halt-after-failures 10%` with every generation failing: nothing stops before 10 jobs have
    finished, then the run stops at once: 10 failed, no more than the 2 in flight beside them
    submitted, the rest pending."""
    emu = await emulator(faults=FaultConfig(generation_failure_rate=1.0))
    manifest = write_manifest(tmp_path, count=30, run={"retries": 0})
    flags = api_args(emu, "-j", "2", "--halt-after-failures", "10%")
    result = await run_cli("run", str(manifest), "-o", "out", "--json", *flags, cwd=tmp_path)
    assert result.code == 1, result.stderr
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    assert summary["reason"] == "failures"
    assert summary["stop_detail"].startswith("10 of 10 finished jobs failed (100%)")
    assert 10 <= enqueues(emu) <= 11
    assert summary["counts"]["failed"] == enqueues(emu)
    assert summary["counts"]["pending"] == 30 - enqueues(emu)
