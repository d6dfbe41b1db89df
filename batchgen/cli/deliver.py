"""`batchgen deliver RUN_DIR`: send a run's results to an Oxen repository, from the run directory alone,
only what is missing (`commands.deliver_run`); and the delivery lines `batchgen run` prints."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.cli.common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    add_api_flags,
    example,
    print_json,
    say,
    warn_if_key_flag,
)

if TYPE_CHECKING:
    from batchgen.cli.common import Commands
    from batchgen.commands import DeliverySummary

PROGRESS_EVERY_S = 5.0
SHOWN_REASONS = 5  # reasons shown for files not delivered, each with a count and two of its files


def add_deliver(commands: Commands) -> None:
    deliver = commands.add_parser(
        "deliver",
        help="deliver a run's results to an Oxen repository (only what is missing)",
        description="Send a run's verified results, their sidecars and its results files to an Oxen\n"
        "repository, batched into few commits. Only files not delivered yet (or changed since) are\n"
        "sent; requests a killed run left unanswered are looked up on the branch first.\n"
        "--picks and --only send only the chosen results; --for client sends only what a client\n"
        "may see (docs/delivery.md says what each mode sends, file by file).",
        epilog="exit codes:\n  0  every file is delivered\n  1  some files are not (run it again)\n"
        "  2  bad input, or the repository is missing or read-only: nothing was sent\n\n"
        + example(
            "batchgen deliver outputs/spring-campaign",
            "send what the run has not delivered yet to its deliver: repository",
            "batchgen deliver outputs/spring-campaign --to meadow/review@drafts:spring/{name}",
            "deliver the same results to another repository, branch and path",
            "batchgen deliver outputs/spring-campaign --only product=mug --for client "
            "--to meadow/review@drafts:client/{name}",
            "only the mug's results, client-safe: videos, client sidecars, results.csv and a report\n"
            "      without costs, budget, ids or internal URLs (--picks FILE: the report's picks export)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    deliver.add_argument("run_dir", type=Path, help="the run directory (OUTPUT_DIR/<name>)")
    deliver.add_argument(
        "--to",
        metavar="NS/NAME[@BRANCH][:PATH]",
        help="the repository (default: the run's `deliver:` target); PATH may use {name}",
    )
    deliver.add_argument("--create", action="store_true", help="create the repository if it does not exist")
    deliver.add_argument(
        "--picks",
        type=Path,
        metavar="FILE",
        help="only the picked results: the report's picks export (CSV), or one key or key prefix a line",
    )
    deliver.add_argument(
        "--only",
        action="append",
        metavar="KEY=VALUE",
        help="only the results of the jobs matching (repeatable)",
    )
    deliver.add_argument(
        "--for",
        dest="audience",
        choices=("team", "client"),
        help="team: the run directory's mirror; client: videos, client sidecars, a results.csv and "
        "report.html without money, ids or internal URLs (default: the run's deliver: for, else team)",
    )
    add_api_flags(deliver)
    deliver.add_argument(
        "--request-timeout", type=float, metavar="S", help="timeout of one API call (default 60)"
    )
    deliver.add_argument("-v", "--verbose", action="store_true", help="log each commit on stderr")
    deliver.add_argument("--no-progress", action="store_true", help="no progress lines")
    deliver.add_argument("--json", action="store_true", help="what was delivered, as one JSON object")
    deliver.set_defaults(handler=cmd_deliver)


def cmd_deliver(args: argparse.Namespace) -> int:
    from batchgen.commands import configure_logging, deliver_run

    configure_logging(api_key=args.api_key, verbose=args.verbose)
    warn_if_key_flag(args)
    summary = deliver_run(
        args.run_dir,
        to=args.to,
        create=args.create,
        api_base=args.api_base,
        api_key=args.api_key,
        request_timeout_s=args.request_timeout,
        progress=None if args.no_progress else _progress_lines(),
        picks=args.picks,
        only=args.only,
        for_=args.audience,
    )
    if args.json:
        print_json(summary)
    return report_delivery(summary, args.run_dir)


def _progress_lines(every_s: float = PROGRESS_EVERY_S) -> Callable[[int, int], None]:
    """A progress line (delivered/total files) at most every `every_s` seconds."""
    last = [time.monotonic()]

    def show(done: int, wanted: int) -> None:
        if time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            say(f"delivered {done}/{wanted} files so far")

    return show


def report_delivery(summary: DeliverySummary | None, run_dir: Path) -> int:
    """The delivery's lines on stderr; its exit code (0: every file delivered, 1: some are not)."""
    if summary is None:
        return EXIT_OK
    where = summary.target + (" (in the sandbox's emulator, gone when it stops)" if summary.sandbox else "")
    this_time = f"{summary.files_sent} sent now in {summary.commits} commit(s)"
    if summary.complete:
        say(f"delivered {summary.delivered}/{summary.wanted} files to {where}; {this_time}")
        return EXIT_OK
    say(
        f"delivery: {summary.delivered}/{summary.wanted} files in {where} ({this_time}); "
        f"{len(summary.missing)} not delivered" + (":" if summary.missing else "")
    )
    if summary.stopped:
        print(f"  the delivery stopped: {summary.stopped}", file=sys.stderr)
    if summary.leftover_workspaces:
        print(
            f"  {len(summary.leftover_workspaces)} workspace(s) this run directory made could not be removed "
            f"({', '.join(summary.leftover_workspaces[:3])}); the next run or `batchgen deliver` removes them",
            file=sys.stderr,
        )
    by_reason: dict[str, list[str]] = {}
    for path, why in summary.missing:
        by_reason.setdefault(why, []).append(path)
    for why, paths in sorted(by_reason.items(), key=lambda item: -len(item[1]))[:SHOWN_REASONS]:
        shown = ", ".join(paths[:2]) + (", …" if len(paths) > 2 else "")
        print(f"  {len(paths)} {why} ({shown})", file=sys.stderr)
    say(f"the results are done and kept in {run_dir}; `batchgen deliver {run_dir}` sends what is missing")
    return EXIT_INCOMPLETE
