"""`cancel_run`: cancel a run's in-flight generations at the provider.

While the run is live (a process holds its lock), that process is asked to do it (`run.live_cancel`): it
stops submitting, cancels, keeps tracking and downloading what had already finished, and exits; this
waits for that, bounded by a timeout. Otherwise (no run, or its process is gone) the journal is worked
through here, under the lock. Two at once take turns (`live_cancel.cancel_turn`): the second waits for
the first, then reports what it cancelled itself.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen import aio
from batchgen.commands.common import chosen_keys, note, says
from batchgen.config import api_origin
from batchgen.errors import RunLocked
from batchgen.rundir.layout import read_plan_json
from batchgen.states import AT_PROVIDER, JobState

if TYPE_CHECKING:
    from batchgen.journal.session import Session

__all__ = ["CancelResult", "cancel_run"]

_POLL_S = 0.1


@dataclass(frozen=True, slots=True)
class CancelResult:
    """What a cancel did: how many in-flight generations ended in each provider status (`cancelled`, or
    already `succeeded`/`failed`; empty: nothing was in flight), and which live run was asked (None:
    done here) and whether it goes on with what was not cancelled. `counts` is None when the live run
    did not answer in time: the request stands, and it carries it out when it gets to it."""

    run_dir: Path
    counts: dict[str, int] | None
    live_pid: int | None = None
    still_running: bool = False


@says
def cancel_run(
    run_dir: str | os.PathLike[str],
    *,
    only: Sequence[str] | None = None,
    timeout_s: float = 120.0,
    api_base: str | None = None,
    api_key: str | None = None,
    say: Callable[[str], None] = note,
    on_turn_wait: Callable[[str], None] | None = None,
) -> CancelResult:
    """Cancel a run's in-flight generations at the provider (those `only` chooses). A live run is asked to
    do it and waited for, up to `timeout_s`; otherwise it is done here, under the lock, with the API
    (`api_base`, `api_key`: default $OXEN_API_BASE, $OXEN_API_KEY). Two at once take turns
    (`on_turn_wait(pid)` while another goes first; CancelBusy when it does not finish in time)."""
    from batchgen.journal.session import existing_run_dir
    from batchgen.run.live_cancel import cancel_turn

    path = existing_run_dir(run_dir)  # before the turn file and the lock
    chosen = chosen_keys(path, only, required=True)
    with cancel_turn(path, timeout_s, on_turn_wait or (lambda pid: None)):
        try:
            return _cancel_here(path, chosen, api_base, api_key)
        except RunLocked:
            live = _ask_the_live_run(path, chosen, timeout_s, say)
            return live or _cancel_here(path, chosen, api_base, api_key)


def _cancel_here(
    path: Path, chosen: set[str] | None, api_base: str | None, api_key: str | None
) -> CancelResult:
    """No process runs it: cancel from the journal, under the lock (RunLocked if a process holds it)."""
    from batchgen.journal.session import Session
    from batchgen.run import live_cancel

    with Session.writing(path) as session:
        live_cancel.clear(path)  # a request nobody carried out is not for later runs
        return aio.run(_cancel_offline(session, chosen, api_base, api_key))


async def _cancel_offline(
    session: Session, chosen: set[str] | None, api_base: str | None, api_key: str | None
) -> CancelResult:
    from batchgen.client.api import OxenClient
    from batchgen.client.endpoint import credentials
    from batchgen.run.cancel import cancel_in_flight

    journal = session.journal
    waiting = [
        r
        for r in journal.records().values()
        if (chosen is None or r.key in chosen) and (r.state in AT_PROVIDER or r.state is JobState.SUBMITTING)
    ]
    if not waiting:
        return CancelResult(session.run_dir, {})
    session.refuse_sandbox(
        "its generations lived only in the sandbox's emulator, which stopped with the run; there is "
        "nothing to cancel"
    )
    base, key = credentials(api_base, api_key)
    identity = api_origin(base)
    async with OxenClient(base, key) as client:
        await session.check_api(identity, client)
        defaults = _plan_defaults(session.run_dir)
        counts = await cancel_in_flight(journal, client, defaults, api=identity, keys=chosen)
    return CancelResult(session.run_dir, counts)


def _ask_the_live_run(
    path: Path, chosen: set[str] | None, timeout_s: float, say: Callable[[str], None]
) -> CancelResult | None:
    """Ask the live run to cancel, and wait for its answer (and, without `only`, for it to exit). None
    when it ended before it saw the request: the caller cancels here."""
    from batchgen.run import live_cancel
    from batchgen.rundir.lock import lock_holder

    pid = lock_holder(path)
    if pid is None:  # it ended in between
        return None
    request = live_cancel.write_request(path, chosen)
    ask = (
        "to stop submitting and cancel its in-flight generations"
        if chosen is None
        else f"to take the {len(chosen)} chosen job(s) out of the run and cancel those in flight"
    )
    say(f"the run is live (pid {pid}): asking it {ask}")
    deadline = time.monotonic() + timeout_s
    counts = None
    while time.monotonic() < deadline:
        counts = counts or live_cancel.read_result(path, request)
        if (counts is not None and chosen is not None) or lock_holder(path) is None:
            break  # with `only` the run goes on with the rest: the answer is all there is to wait for
        time.sleep(_POLL_S)
    counts = counts or live_cancel.read_result(path, request)
    running = lock_holder(path) is not None
    if counts is None and not running:  # it exited before it saw the request
        return None
    return CancelResult(path, counts, pid, running)


def _plan_defaults(run_dir: Path) -> dict[str, dict[str, object]]:
    """The per-model echoed defaults recorded in the run's plan.json (empty when unreadable)."""
    try:
        defaults = read_plan_json(run_dir).get("model_defaults")
    except (OSError, ValueError, AttributeError):
        return {}
    return defaults if isinstance(defaults, dict) else {}
