"""`batchgen deliver RUN_DIR`: send a run's results to an Oxen repository, from the run directory alone,
only what is missing; and the delivery lines `batchgen run` and `batchgen status` print."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.cli.common import (
    EXIT_INCOMPLETE,
    EXIT_OK,
    add_api_flags,
    api_settings,
    example,
    warn_if_key_flag,
)
from batchgen.config import SANDBOX_IDENTITY
from batchgen.errors import UsageError

if TYPE_CHECKING:
    from batchgen.cli.common import Commands
    from batchgen.journal.store import Journal
    from batchgen.sinks.oxen.run import DeliverySummary
    from batchgen.target import DeliveryTarget

PROGRESS_EVERY_S = 5.0
SHOWN_REASONS = 5  # reasons shown for files not delivered, each with a count and two of its files


def add_deliver(commands: Commands) -> None:
    deliver = commands.add_parser(
        "deliver",
        help="deliver a run's results to an Oxen repository (only what is missing)",
        description="Send a run's verified results, their sidecars and its results files to an Oxen\n"
        "repository, batched into few commits. Only files not delivered yet (or changed since) are\n"
        "sent; requests a killed run left unanswered are looked up on the branch first.",
        epilog="exit codes:\n  0  every file is delivered\n  1  some files are not (run it again)\n"
        "  2  bad input, or the repository is missing or read-only: nothing was sent\n\n"
        + example(
            "batchgen deliver outputs/spring-campaign",
            "send what the run has not delivered yet to its deliver: repository",
            "batchgen deliver outputs/spring-campaign --to meadow/review@drafts:spring/{name}",
            "deliver the same results to another repository, branch and path",
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
    add_api_flags(deliver)
    deliver.add_argument(
        "--request-timeout", type=float, metavar="S", help="timeout of one API call (default 60)"
    )
    deliver.add_argument("-v", "--verbose", action="store_true", help="log each commit on stderr")
    deliver.add_argument("--no-progress", action="store_true", help="no progress lines")
    deliver.set_defaults(handler=cmd_deliver)


def cmd_deliver(args: argparse.Namespace) -> int:
    from batchgen import logs

    logs.configure(secrets=[os.environ.get("OXEN_API_KEY", ""), args.api_key or ""], verbose=args.verbose)
    return asyncio.run(_deliver(args))


async def _deliver(args: argparse.Namespace) -> int:
    from dataclasses import replace

    from batchgen.client.api import OxenClient
    from batchgen.config import RunOptions
    from batchgen.journal.store import Journal, RunLock
    from batchgen.run.batch import check_api_identity
    from batchgen.sinks.base import run_with_sinks
    from batchgen.sinks.oxen.run import RunDelivery

    api_base, key = api_settings(args, sandbox=False)
    journal = Journal.open_existing(args.run_dir)  # before the lock: never litter a plain folder
    try:
        if journal.meta("api") == SANDBOX_IDENTITY:
            raise UsageError(
                f"{args.run_dir} was run in the sandbox: its results are placeholders, never delivered "
                "to a real repository (its deliveries went to the sandbox's emulator)"
            )
        target, campaign = _target(args, journal)
        warn_if_key_flag(args)
        options = RunOptions(api_base=api_base, deliver=target)
        if args.request_timeout is not None:
            options = replace(options, timeouts=replace(options.timeouts, request_s=args.request_timeout))
        with RunLock(args.run_dir):
            async with OxenClient(api_base, key, timeouts=options.timeouts) as client:
                await check_api_identity(journal, args.run_dir, options, client)
            show = (lambda progress: None) if args.no_progress else _progress_lines()
            delivery = RunDelivery(
                target, options, key, journal, args.run_dir, campaign, linger_s=0, on_change=show
            )
            await run_with_sinks([delivery], lambda: asyncio.sleep(0))  # no run: what is missing, then finish
            summary = delivery.summary()
    finally:
        journal.close()
    return report_delivery(summary, args.run_dir)


def _progress_lines(every_s: float = PROGRESS_EVERY_S) -> Callable[[tuple[int, int]], None]:
    """A progress line (delivered/total files) at most every `every_s` seconds."""
    last = [time.monotonic()]

    def show(progress: tuple[int, int]) -> None:
        if time.monotonic() - last[0] >= every_s:
            last[0] = time.monotonic()
            print(
                f"batchgen: delivered {progress[0]}/{progress[1]} files so far", file=sys.stderr, flush=True
            )

    return show


def _target(args: argparse.Namespace, journal: Journal) -> tuple[DeliveryTarget, str]:
    """The target and the campaign's name: `--to`, else what the run recorded."""
    from batchgen.sinks.oxen.run import META_KEY
    from batchgen.target import DeliveryTarget, parse_repo

    recorded = _recorded(journal.meta(META_KEY))
    campaign = str(recorded.get("name") or _plan_name(args.run_dir) or args.run_dir.name)
    if args.to:
        try:
            return DeliveryTarget.parse(args.to, {"name": campaign}, create=args.create), campaign
        except ValueError as exc:
            raise UsageError(f"--to: {exc}") from None
    if not recorded:
        raise UsageError(
            f"{args.run_dir} has no delivery target (its manifest has no `deliver:`): pass "
            "--to NAMESPACE/NAME[@BRANCH][:PATH]"
        )
    try:
        namespace, repo = parse_repo(str(recorded["repo"]))
    except ValueError as exc:
        raise UsageError(
            f"the delivery target {args.run_dir} recorded is not usable ({exc}): pass "
            "--to NAMESPACE/NAME[@BRANCH][:PATH]"
        ) from None
    target = DeliveryTarget(
        namespace=namespace,
        repo=repo,
        branch=str(recorded["branch"]),
        path=str(recorded["path"]),
        create=args.create or recorded.get("create") is True,
    )
    return target, campaign


def _recorded(raw: str | None) -> dict[str, object]:
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) and {"repo", "branch", "path"} <= value.keys() else {}


def _plan_name(run_dir: Path) -> str | None:
    try:
        data = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    name = data.get("name") if isinstance(data, dict) else None
    return name if isinstance(name, str) else None


def report_delivery(summary: DeliverySummary | None, run_dir: Path) -> int:
    """The delivery's lines on stderr; its exit code (0: every file delivered, 1: some are not)."""
    if summary is None:
        return EXIT_OK
    where = summary.target + (" (in the sandbox's emulator, gone when it stops)" if summary.sandbox else "")
    this_time = f"{summary.files_sent} sent now in {summary.commits} commit(s)"
    if summary.complete:
        line = f"batchgen: delivered {summary.delivered}/{summary.wanted} files to {where}; {this_time}"
        print(line, file=sys.stderr)
        return EXIT_OK
    print(
        f"batchgen: delivery: {summary.delivered}/{summary.wanted} files in {where} ({this_time}); "
        f"{len(summary.missing)} not delivered" + (":" if summary.missing else ""),
        file=sys.stderr,
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
    print(
        f"batchgen: the results are done and kept in {run_dir}; `batchgen deliver {run_dir}` sends what "
        "is missing",
        file=sys.stderr,
    )
    return EXIT_INCOMPLETE


def delivery_status(journal: Journal, run_dir: Path) -> list[str]:
    """`batchgen status`'s lines about the run's delivery (none when it has no target)."""
    from batchgen.journal.deliveries import DELIVERED, FAILED, DeliveryLedger
    from batchgen.sinks.oxen.run import META_KEY
    from batchgen.sinks.oxen.wanted import done_results
    from batchgen.target import DeliveryTarget

    recorded, api = _recorded(journal.meta(META_KEY)), journal.meta("api")
    if not recorded:
        return []
    namespace, _, repo = str(recorded["repo"]).partition("/")  # as recorded: shown, not checked
    target = DeliveryTarget(
        namespace=namespace, repo=repo, branch=str(recorded["branch"]), path=str(recorded["path"])
    )
    if not api or api == SANDBOX_IDENTITY:
        return [f"  delivered to {target.describe()} in the sandbox's emulator (gone when it stopped)"]
    ledger = DeliveryLedger(journal, target.ledger_key(api))
    wanted = done_results(target, journal.records().values())
    delivered, failed = 0, []
    for item in wanted:
        row = ledger.get(item.repo_path)
        if row is not None and row.state == DELIVERED and item.sha256 in (None, row.sha256):
            delivered += 1
        elif row is not None and row.state == FAILED:
            failed.append(f"{item.repo_path}: {row.error}")
    lines = [f"  delivered {delivered}/{len(wanted)} result files (with sidecars) to {target.describe()}"]
    if failed:
        lines.append(f"  {len(failed)} failed, e.g. {failed[0]}")
    if delivered < len(wanted):
        lines.append(f"  `batchgen deliver {run_dir}` sends what is missing")
    return lines
