"""`batchgen ls [OUTPUT_DIR]`: every run directory with its counts, spend, last activity, and whether it
was a sandbox run or is live now. Reads only; never waits for a live run."""

from __future__ import annotations

import argparse
import json
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.cli.common import EXIT_OK, example
from batchgen.errors import UsageError

if TYPE_CHECKING:
    from batchgen.cli.common import Commands
    from batchgen.commands import RunSummary


def add_ls(commands: Commands) -> None:
    ls = commands.add_parser(
        "ls",
        help="list the run directories under OUTPUT_DIR: counts, spend, last activity, sandbox, live",
        description="Every run directory under OUTPUT_DIR (default: outputs), from its journal, read "
        "without a lock: jobs of the latest plan by state, what the run directory has spent (every "
        "generation it made, superseded ones included: billed where the history was read, else "
        "quoted), the latest journaled change, whether it ran in the sandbox (nothing paid), and "
        "whether a process runs it now.",
        epilog=example("batchgen ls outputs --json", "one JSON object per run directory"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    ls.add_argument("output_dir", type=Path, nargs="?", default=Path("outputs"))
    ls.add_argument("--json", action="store_true", help="one JSON object per run directory")
    ls.set_defaults(handler=cmd_ls)


def cmd_ls(args: argparse.Namespace) -> int:
    from batchgen.commands import list_runs

    if not args.output_dir.is_dir():
        raise UsageError(f"{args.output_dir} is not a directory (the output directory of `batchgen run -o`)")
    runs = list_runs(args.output_dir)
    if args.json:
        for run in runs:
            print(json.dumps(as_json(run), ensure_ascii=False))
        return EXIT_OK
    if not runs:
        print(f"no run directories in {args.output_dir}")
        return EXIT_OK
    readable = [run for run in runs if not run.error]
    if readable:
        _print_table(readable)
    for run in runs:
        if run.error:
            print(f"{run.run_dir}: unreadable ({run.error})")
    return EXIT_OK


def _print_table(runs: list[RunSummary]) -> None:
    rows = [["RUN DIR", "CAMPAIGN", "JOBS", "STATES", "SPENT", "LAST ACTIVITY", "SANDBOX", "LIVE"]]
    rows += [_row(run) for run in runs]
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    right = {2, 4}  # numbers
    for row in rows:
        cells = [
            cell.rjust(w) if i in right else cell.ljust(w)
            for i, (cell, w) in enumerate(zip(row, widths, strict=True))
        ]
        print("  ".join(cells).rstrip())


def _row(run: RunSummary) -> list[str]:
    from batchgen.commands import format_usd

    states = " · ".join(f"{s} {n}" for s, n in run.counts.items()) or "-"
    live = "-" if run.live_pid is None else (f"pid {run.live_pid}" if run.live_pid else "yes")
    return [
        str(run.run_dir),
        run.campaign,
        str(run.jobs),
        states,
        "sandbox: nothing paid" if run.spend is None else format_usd(run.spend.total),
        _iso(run.last_activity) or "-",
        "yes" if run.sandbox else "no",
        live,
    ]


def _iso(at: float | None) -> str | None:
    return None if at is None else datetime.fromtimestamp(at).astimezone().isoformat(timespec="seconds")


def as_json(run: RunSummary) -> dict[str, object]:
    return {
        "run_dir": str(run.run_dir),
        "campaign": run.campaign,
        "jobs": run.jobs,
        "counts": run.counts,
        "spent_usd": None if run.spend is None else str(run.spend.total),
        "committed_usd": None if run.spend is None else str(run.spend.total),  # the same, by its old name
        "spend": None if run.spend is None else run.spend.as_json(),
        "last_activity": _iso(run.last_activity),
        "sandbox": run.sandbox,
        "live": run.live_pid is not None,
        "pid": run.live_pid or None,
        "error": run.error,
    }
