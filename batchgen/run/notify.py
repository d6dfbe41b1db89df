"""Telling someone how a run went (`notify:`): each target gets the run's JSON summary, a command on its
stdin (run without a shell), a webhook as the body of a POST. Bounded by the target's timeout; a
notification that fails, hangs or is refused is said as a warning and changes nothing else: not the
run, not its exit code.

Two events: `halted`, when the failure breaker trips (the run is still draining), and `finished`, when
the run ends whatever its outcome. The body is the summary `batchgen run --json` prints (without
`exit_code`, which the command line decides afterwards), plus `event` and a one-line `text` (what a
Slack-style incoming webhook shows).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import aiohttp

from batchgen.client.api import without_silent_resends
from batchgen.config import NotifyTarget
from batchgen.run.runner import Runner
from batchgen.run.scheduler import StopReason

log = logging.getLogger(__name__)


def summary_text(name: str, event: str, summary: Mapping[str, Any]) -> str:
    """The one line a person reads first: which campaign, what happened, the counts."""
    counts = summary.get("counts") or {}
    shown = ", ".join(f"{state} {n}" for state, n in sorted(counts.items())) or "no jobs"
    if event == "halted":
        return f"batchgen: {name}: halted: {summary.get('stop_detail')} ({shown}); draining what is in flight"
    jobs = summary.get("jobs")
    done = counts.get("done", 0)
    return (
        f"batchgen: {name}: {summary.get('reason')}: {done}/{jobs} done ({shown}) in {summary.get('run_dir')}"
    )


class Notifier:
    """Sends one run's notifications to its targets; `say` gets the warnings."""

    def __init__(self, targets: Sequence[NotifyTarget], name: str, say: Callable[[str], None]) -> None:
        self.targets, self.name, self.say = tuple(targets), name, say

    async def send(self, event: str, summary: Mapping[str, Any]) -> None:
        """Every target at once, each bounded by its timeout; returns when all have answered or given up."""
        if not self.targets:
            return
        body = {"event": event, "text": summary_text(self.name, event, summary), **summary}
        data = json.dumps(body, ensure_ascii=False, default=str).encode()
        async with asyncio.TaskGroup() as group:
            for target in self.targets:
                group.create_task(self._send_one(target, data))

    async def _send_one(self, target: NotifyTarget, data: bytes) -> None:
        try:
            async with asyncio.timeout(target.timeout_s):
                problem = await (
                    _post(target.webhook, data) if target.webhook else _run(target.command, data)
                )
        except TimeoutError:
            problem = f"no answer within {target.timeout_s:g} s"
        except Exception as exc:  # whatever goes wrong, a notification never changes the run
            problem = f"{type(exc).__name__}: {exc}"
        if problem is not None:
            self.say(f"warning: the notification to {target} failed ({problem}); the run is not affected")
        else:
            log.info("notified %s", target)


async def _run(argv: Sequence[str], data: bytes) -> str | None:
    """Run `argv` (no shell) with `data` on its stdin; what went wrong, or None. A command that outlives
    its timeout is killed."""
    proc = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    try:
        _, err = await proc.communicate(data)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    if proc.returncode != 0:
        said = err.decode(errors="replace").strip().splitlines()
        return f"exit status {proc.returncode}" + (f": {said[-1]}" if said else "")
    return None


async def _post(url: str, data: bytes) -> str | None:
    """POST `data` as JSON to `url`; what went wrong (a status that is not 2xx), or None."""
    headers = {"Content-Type": "application/json", "User-Agent": "batchgen"}
    async with (
        without_silent_resends(aiohttp.ClientSession()) as session,
        session.post(url, data=data, headers=headers, allow_redirects=False) as response,
    ):
        return None if 200 <= response.status < 300 else f"HTTP {response.status}"


@contextlib.asynccontextmanager
async def halt_notice(notifier: Notifier, runner: Runner, run_dir: Path) -> AsyncIterator[None]:
    """Around `runner.run()`: when its failure breaker trips, the targets hear it at once (`halted`),
    while the run drains; a notice under way when the run ends is let finish (it is bounded)."""
    breaker = runner.ctx.breaker
    if breaker is None or not notifier.targets:
        yield
        return

    async def when_tripped() -> None:
        await runner.ctx.wait_until(lambda: breaker.tripped is not None)
        stats = runner.stats()
        summary = {
            "run_dir": str(run_dir),
            "reason": str(StopReason.FAILURES),
            "jobs": stats.total,
            "counts": dict(sorted(stats.counts.items())),
            "stop_detail": breaker.tripped,
        }
        await notifier.send("halted", summary)

    failed: Exception | None = None  # the run's own error, raised as it is (not in a group)
    async with asyncio.TaskGroup() as group:
        watching = group.create_task(when_tripped(), name="halt-notice")
        try:
            yield
        except Exception as exc:
            failed = exc
        finally:
            if breaker.tripped is None or failed is not None:
                watching.cancel()
    if failed is not None:
        raise failed
