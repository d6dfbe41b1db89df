"""`batchgen cancel RUN_DIR`: cancel a run's in-flight generations at the provider (`commands.cancel_run`:
a live run is asked to do it, and waited for up to --timeout), and say what was cancelled."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.cli.common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    add_api_flags,
    add_only_flag,
    example,
    print_json,
    say,
    warn_if_key_flag,
)

if TYPE_CHECKING:
    from batchgen.cli.common import Commands


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
    cancel.add_argument("--json", action="store_true", help="what was cancelled, as one JSON object")
    cancel.set_defaults(handler=cmd_cancel)


def cmd_cancel(args: argparse.Namespace) -> int:
    from batchgen.commands import CancelBusy, cancel_run

    run_dir: Path = args.run_dir

    def waiting(pid: str) -> None:
        say(
            f"another `batchgen cancel` (pid {pid}) is under way on {run_dir}; waiting for it to finish "
            "first (up to --timeout)"
        )

    warn_if_key_flag(args)
    try:
        result = cancel_run(
            run_dir,
            only=args.only,
            timeout_s=args.timeout,
            api_base=args.api_base,
            api_key=args.api_key,
            say=say,
            on_turn_wait=waiting,
        )
    except CancelBusy as exc:
        say(f"error: {exc}; try again once it is done")
        return EXIT_INCOMPLETE
    if args.json:
        print_json(result)
    if result.counts is None:
        say(
            f"error: the run (pid {result.live_pid}) did not answer within {args.timeout:.0f}s; the request "
            "stands and is carried out when it gets to it (`batchgen status` shows the cancelled jobs)"
        )
        return EXIT_INCOMPLETE
    if not args.json:
        _report(result.counts, live=result.live_pid is not None)
    if result.still_running:
        say(f"the run (pid {result.live_pid}) goes on with what was not cancelled; it exits by itself")
    return EXIT_OK


def _report(counts: dict[str, int], *, live: bool) -> None:
    if not counts and not live:
        print("nothing is in flight: there is nothing to cancel")
        return
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
