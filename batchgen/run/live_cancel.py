"""Cancelling a live run: `batchgen cancel RUN_DIR` asks the process that holds the run's lock, and that
process cancels its own in-flight generations (it alone may change its journal while it runs).

The request is a file in the run directory, `.cancel-request.json` ({"id", "keys"}: the jobs to cancel,
null for all), written atomically by `cancel` only while the lock is held. The running process looks
for it every `POLL_S` (one `open`), takes the chosen jobs out of its queue (for all: stops submitting),
cancels each chosen generation at the provider (one that finished meanwhile is kept and downloaded),
waits for submissions already under way to be answered and cancels those too, then writes
`.cancel-result.json` ({"id", "counts"}) and goes on tracking and downloading the rest (and, after
`cancel --only`, submitting the jobs not chosen) until it exits. Both files are removed when a run takes
the lock, so a request left by a process that is gone never cancels a later run.

A file rather than a signal: a library caller's process has no handler for one, and a signal that
arrived after the handler was gone would kill the process instead of asking it.

One `batchgen cancel` at a time per run directory (`cancel_turn`: an flock on `.cancel-turn`): a second
one waits for the first to finish, then does its own work, so it never overwrites the first's request,
never removes its answer, and never takes the first's lock for a live run.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import secrets
import time
from collections import Counter
from collections.abc import Callable, Collection, Iterator
from pathlib import Path
from typing import Any

from batchgen.errors import ApiError, StorageError
from batchgen.logs import job_key
from batchgen.run import scheduler
from batchgen.run.context import RunContext
from batchgen.run.scheduler import StopReason
from batchgen.run.tracker import Tracker
from batchgen.rundir.layout import read_json, write_json
from batchgen.states import AT_PROVIDER, JobState

__all__ = [
    "REQUEST_NAME",
    "RESULT_NAME",
    "TURN_NAME",
    "CancelBusy",
    "CancelWatcher",
    "cancel_turn",
    "clear",
    "read_result",
    "write_request",
]

log = logging.getLogger(__name__)

REQUEST_NAME = ".cancel-request.json"
RESULT_NAME = ".cancel-result.json"
TURN_NAME = ".cancel-turn"
POLL_S = 0.2
_AT_ONCE = 8  # cancel calls in flight at once
_TURN_POLL_S = 0.05


def write_request(run_dir: Path, keys: Collection[str] | None) -> str:
    """Ask the live run to cancel `keys` (None: everything in flight); returns the request's id."""
    request_id = secrets.token_hex(8)
    write_json(run_dir / REQUEST_NAME, {"id": request_id, "keys": None if keys is None else sorted(keys)})
    return request_id


def read_result(run_dir: Path, request_id: str) -> dict[str, int] | None:
    """What the live run cancelled for request `request_id`, once it has said so."""
    data = read_json(run_dir / RESULT_NAME)
    if data is None or data.get("id") != request_id or not isinstance(data.get("counts"), dict):
        return None
    return {str(k): int(v) for k, v in data["counts"].items()}


def clear(run_dir: Path) -> None:
    """Forget requests and answers of earlier processes (called by whoever has just taken the lock)."""
    for name in (REQUEST_NAME, RESULT_NAME):
        with contextlib.suppress(OSError):
            (run_dir / name).unlink()


class CancelBusy(TimeoutError):
    """Another `batchgen cancel` kept the run directory's cancel turn for longer than we could wait."""


@contextlib.contextmanager
def cancel_turn(run_dir: Path, timeout_s: float, on_wait: Callable[[str], None]) -> Iterator[None]:
    """Hold the run directory's cancel turn for the block: wait (up to `timeout_s`, then CancelBusy)
    while another `batchgen cancel` holds it, telling `on_wait` once who it is (its pid). The OS lets
    the turn go when its holder exits, however it exits."""
    try:
        fd = os.open(run_dir / TURN_NAME, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise StorageError(f"cannot create {run_dir / TURN_NAME}: {exc.strerror or exc}") from exc
    try:
        deadline, told = time.monotonic() + timeout_s, False
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if not told:
                    on_wait(os.pread(fd, 32, 0).decode(errors="replace").strip() or "?")
                    told = True
                if time.monotonic() >= deadline:
                    raise CancelBusy(
                        f"another `batchgen cancel` still held {run_dir} after {timeout_s:g}s"
                    ) from None
                time.sleep(_TURN_POLL_S)
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)


class CancelWatcher:
    """Carries out cancel requests for the length of a run: `run()` is a task of the run's group. The
    run is not finished while `busy` (a request being carried out has not been answered yet)."""

    def __init__(self, ctx: RunContext, tracker: Tracker) -> None:
        self.ctx, self.tracker = ctx, tracker
        self.busy = False

    async def run(self) -> None:
        path = self.ctx.run_dir / REQUEST_NAME
        while True:
            await asyncio.sleep(POLL_S)
            request = read_json(path)  # one failed open when there is none
            if request is not None:
                self.busy = True
                try:
                    await self._carry_out(request)
                finally:
                    self.busy = False
                    self.ctx.notify()

    async def _carry_out(self, request: dict[str, Any]) -> None:
        ctx = self.ctx
        keys = request.get("keys")
        if isinstance(keys, list):
            chosen = {str(k) for k in keys} & set(ctx.jobs)
            log.warning("cancel requested (`batchgen cancel --only`) for %d job(s) of this run", len(chosen))
        else:
            chosen = set(ctx.jobs)
            log.warning(
                "cancel requested (`batchgen cancel`): stopping submissions, cancelling in-flight work"
            )
            ctx.stop(StopReason.CANCELLED)
        counts = await cancel_live(ctx, self.tracker, chosen)
        with contextlib.suppress(OSError):  # carried out: removed, so it is not carried out twice
            (ctx.run_dir / REQUEST_NAME).unlink()
        write_json(ctx.run_dir / RESULT_NAME, {"id": request.get("id"), "counts": counts})


async def cancel_live(ctx: RunContext, tracker: Tracker, chosen: set[str]) -> dict[str, int]:
    """Take the chosen jobs out of this run (none of them is submitted again by it) and cancel their
    generations at the provider, including those whose POST is under way (once it is answered).
    Returns how many ended in each provider status."""
    scheduler.withdraw(ctx.state, chosen)
    ctx.notify()
    counts: Counter[str] = Counter()
    asked: set[str] = set()  # generation ids already cancelled
    gate = asyncio.Semaphore(_AT_ONCE)

    async def cancel_one(key: str, generation_id: str) -> None:
        async with gate:
            status = await _cancel_generation(ctx, tracker, key, generation_id)
        if status is not None:
            counts[status] += 1

    while True:
        todo = []
        coming = False
        for key in chosen:
            if key not in ctx.state.slots.held:
                continue
            record = ctx.record(key)
            if record.state in AT_PROVIDER and record.generation_id and record.generation_id not in asked:
                todo.append((key, record.generation_id))
                asked.add(record.generation_id)
            elif record.state in (JobState.PENDING, JobState.SUBMITTING):
                coming = True  # dispatched, or its POST not answered yet: cancelled once it has an id
        if todo:
            async with asyncio.TaskGroup() as group:
                for key, generation_id in todo:
                    group.create_task(cancel_one(key, generation_id))
        elif not coming:
            return dict(counts)
        else:
            ctx.changed.clear()
            await ctx.changed.wait()


async def _cancel_generation(ctx: RunContext, tracker: Tracker, key: str, generation_id: str) -> str | None:
    """Cancel one generation and journal what it really is now (a finished one is kept)."""
    try:
        await ctx.client.cancel(generation_id)
        row = await ctx.client.get_generation(generation_id)
    except ApiError as exc:
        log.error(
            "could not cancel generation %s of job %s: %s",
            generation_id,
            ctx.label(key),
            exc,
            extra=job_key(key),
        )
        return "not cancelled (API error)"
    record = ctx.record(key)
    if record.generation_id == generation_id and record.state in AT_PROVIDER:
        tracker.apply_row(key, row)  # cancelled: released as cancelled; finished: kept, downloaded
    status = row.get("status")
    return str(status) if status in ("cancelled", "succeeded", "failed") else f"still {status}"
