"""`batchgen cancel RUN_DIR`: cancel a run's in-flight generations at the provider.

While the run is live (a process holds its lock), that process is asked to do it (`run.live_cancel`): it
stops submitting, cancels, keeps tracking and downloading what had already finished, and exits; this
command waits for that, bounded by --timeout. Otherwise (no run, or its process is gone) the journal is
worked through here, under the lock, as before. Two at once take turns (`run.live_cancel.cancel_turn`):
the second waits for the first, then reports what it cancelled itself.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen import aio
from batchgen.cli.common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    add_api_flags,
    add_only_flag,
    api_settings,
    example,
    warn_if_key_flag,
)
from batchgen.cli.runs import chosen_keys
from batchgen.config import SANDBOX_IDENTITY, RunOptions
from batchgen.errors import RunLocked, UsageError

if TYPE_CHECKING:
    from batchgen.cli.common import Commands

_POLL_S = 0.1


def add_cancel(commands: Commands) -> None:
    cancel = commands.add_parser(
        "cancel",
        help="cancel a run's in-flight generations at the provider (a live run is asked to stop)",
        description="Cancel what is still rendering. A live run is asked to stop submitting and cancel "
        "(it downloads what had already finished, then exits; this waits for it, up to --timeout). "
        "A generation that finished meanwhile is kept. The next `batchgen run` submits the cancelled jobs "
        "again, as new, paid generations.",
        epilog=example(
            "batchgen cancel outputs/spring-campaign --only product=tote",
            "cancel the tote videos still rendering, whether or not the run is still going",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    cancel.add_argument("run_dir", type=Path)
    add_only_flag(cancel)
    cancel.add_argument(
        "--timeout",
        type=float,
        default=120.0,
        metavar="S",
        help="how long to wait for a live run to cancel and exit (default 120)",
    )
    add_api_flags(cancel)
    cancel.set_defaults(handler=cmd_cancel)


def cmd_cancel(args: argparse.Namespace) -> int:
    from batchgen.journal.store import JOURNAL_NAME

    run_dir: Path = args.run_dir
    if not (run_dir / JOURNAL_NAME).is_file():  # before the lock: never litter a plain folder
        raise UsageError(f"{run_dir} is not a batchgen run directory (no {JOURNAL_NAME})")
    chosen = chosen_keys(run_dir, args.only, required=True)
    from batchgen.run.live_cancel import CancelBusy, cancel_turn

    def waiting(pid: str) -> None:
        print(
            f"batchgen: another `batchgen cancel` (pid {pid}) is under way on {run_dir}; waiting for it "
            "to finish first (up to --timeout)",
            file=sys.stderr,
        )

    try:
        with cancel_turn(run_dir, args.timeout, waiting):
            try:
                return _offline_under_lock(args, chosen)
            except RunLocked:
                return _ask_the_live_run(args, chosen)
    except CancelBusy as exc:
        print(f"batchgen: error: {exc}; try again once it is done", file=sys.stderr)
        return EXIT_INCOMPLETE


def _offline_under_lock(args: argparse.Namespace, chosen: set[str] | None) -> int:
    """No process runs it: take the lock (RunLocked if one does) and cancel from the journal."""
    from batchgen.run import live_cancel
    from batchgen.rundir.lock import RunLock

    with RunLock(args.run_dir):
        live_cancel.clear(args.run_dir)  # a request nobody carried out is not for later runs
        return aio.run(_cancel_offline(args, chosen))


def _ask_the_live_run(args: argparse.Namespace, chosen: set[str] | None) -> int:
    from batchgen.run import live_cancel
    from batchgen.rundir.lock import lock_holder

    run_dir: Path = args.run_dir
    pid = lock_holder(run_dir)
    if pid is None:  # it ended in between
        return _offline_under_lock(args, chosen)
    request = live_cancel.write_request(run_dir, chosen)
    ask = (
        "to stop submitting and cancel its in-flight generations"
        if chosen is None
        else f"to take the {len(chosen)} chosen job(s) out of the run and cancel those in flight"
    )
    print(f"batchgen: the run is live (pid {pid}): asking it {ask}", file=sys.stderr)
    deadline = time.monotonic() + args.timeout
    counts = None
    while time.monotonic() < deadline:
        counts = counts or live_cancel.read_result(run_dir, request)
        if (counts is not None and chosen is not None) or lock_holder(run_dir) is None:
            break  # with --only the run goes on with the rest: the answer is all there is to wait for
        time.sleep(_POLL_S)
    counts = counts or live_cancel.read_result(run_dir, request)
    running = lock_holder(run_dir) is not None
    if counts is None and not running:  # it exited before it saw the request: do it here, as usual
        return _offline_under_lock(args, chosen)
    if counts is None:
        print(
            f"batchgen: error: the run (pid {pid}) did not answer within {args.timeout:.0f}s; the request "
            "stands and is carried out when it gets to it (`batchgen status` shows the cancelled jobs)",
            file=sys.stderr,
        )
        return EXIT_INCOMPLETE
    _report(counts)
    if running:
        print(
            f"batchgen: the run (pid {pid}) goes on with what was not cancelled; it exits by itself",
            file=sys.stderr,
        )
    return EXIT_OK


async def _cancel_offline(args: argparse.Namespace, chosen: set[str] | None) -> int:
    """No process runs it: cancel from the journal, under the lock (the caller holds it)."""
    from batchgen.client.api import OxenClient
    from batchgen.journal.store import Journal
    from batchgen.run.batch import check_api_identity
    from batchgen.run.cancel import cancel_in_flight
    from batchgen.states import AT_PROVIDER, JobState

    journal = Journal.open_existing(args.run_dir)
    try:
        waiting = [
            r
            for r in journal.records().values()
            if (chosen is None or r.key in chosen)
            and (r.state in AT_PROVIDER or r.state is JobState.SUBMITTING)
        ]
        if not waiting:
            print("nothing is in flight: there is nothing to cancel")
            return EXIT_OK
        if journal.meta("api") == SANDBOX_IDENTITY:
            raise UsageError(
                f"{args.run_dir} was run in the sandbox: its generations lived only in the "
                "sandbox's emulator, which stopped with the run; there is nothing to cancel"
            )
        api_base, key = api_settings(args, sandbox=False)
        warn_if_key_flag(args)
        async with OxenClient(api_base, key) as client:
            options = RunOptions(api_base=api_base)
            await check_api_identity(journal, args.run_dir, options, client)
            counts = await cancel_in_flight(
                journal, client, _planned_defaults(args.run_dir), api=options.api_identity, keys=chosen
            )
    finally:
        journal.close()
    _report(counts)
    return EXIT_OK


def _report(counts: dict[str, int]) -> None:
    print(
        f"cancelled {counts.get('cancelled', 0)} in-flight generation(s)"
        + "".join(
            f"; {n} had already succeeded (kept: `batchgen run` downloads them)"
            if state == "succeeded"
            else f"; {n} had already failed"
            if state == "failed"
            else f"; {n} {state}"
            for state, n in sorted(counts.items())
            if state != "cancelled"
        )
    )
    print("`batchgen run` resubmits the cancelled jobs (a new, paid generation each) and finishes the rest")


def _planned_defaults(run_dir: Path) -> dict[str, dict[str, object]]:
    """The per-model echoed defaults recorded in the run's plan.json (empty when unreadable)."""
    try:
        data = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    defaults = data.get("model_defaults") if isinstance(data, dict) else None
    return defaults if isinstance(defaults, dict) else {}
