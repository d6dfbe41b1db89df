"""`batchgen status`: what a run directory's journal says (`commands.run_status`), printed."""

from __future__ import annotations

import argparse
import json
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.cli.common import EXIT_INCOMPLETE, EXIT_OK, add_only_flag, example, say

if TYPE_CHECKING:
    from batchgen.cli.common import Commands
    from batchgen.commands import RunStatus


def add_status(commands: Commands) -> None:
    status = commands.add_parser(
        "status",
        help="summarise a run directory from its journal",
        description="Counts per state and every job's error, read from the run's journal (any time, "
        "even while the run is live); an unverified job's reason and where its bytes are kept "
        "(`batchgen unverified`). Exit 0 when every job of the plan is done, 1 otherwise.",
        epilog=example(
            "batchgen status outputs/spring-campaign --only product=tote",
            "how tonight's tote videos are doing",
            "batchgen status outputs/spring-campaign --json | jq -r 'select(.state==\"failed\") | .key'",
            "one JSON object per job (the keys of the failed ones, here)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    status.add_argument("run_dir", type=Path)
    status.add_argument("--json", action="store_true", help="one JSON object per job")
    add_only_flag(status)
    status.set_defaults(handler=cmd_status)


def cmd_status(args: argparse.Namespace) -> int:
    from batchgen.commands import describe, run_status

    status = run_status(args.run_dir, only=args.only, say=say)
    if args.json:
        for job in status.jobs:
            print(json.dumps(job))
        return EXIT_OK
    planned = [job for job in status.jobs if job["planned"]]
    counts = Counter(str(job["state"]) for job in planned)
    print(
        f"{args.run_dir}: {len(planned)} jobs · "
        + " · ".join(f"{s} {n}" for s, n in sorted(counts.items()))
        + (f"  (results from {status.api})" if status.api else "")
    )
    print(f"  {describe(status.spend, sandbox=status.sandbox)}")
    for line in [*_apart(status.jobs), *_problems(planned, args.run_dir), *_delivery_lines(status)]:
        print(line)
    return EXIT_OK if status.complete else EXIT_INCOMPLETE


def _problems(planned: list[dict[str, Any]], run_dir: Path) -> list[str]:
    """Every job of the plan that is not done and carries an error, and what to do about unverified ones."""
    lines = [
        f"  {j['state']:<10} {j['title']}: {j['error']}"
        for j in planned
        if j["state"] != "done" and j["error"]
    ]
    if any(job["state"] == "unverified" for job in planned):
        lines.append(
            f"  unverified results are paid and kept, never downloaded again by themselves: "
            f"`batchgen unverified {run_dir}` to look at them, then --accept or --fetch-again"
        )
    return lines


def _apart(jobs: list[dict[str, Any]]) -> list[str]:
    """Lines about the journaled jobs the current plan does not hold (not counted in its totals)."""
    from batchgen.commands import is_take

    unplanned = [job for job in jobs if not job["planned"]]
    superseded = sum(1 for job in unplanned if job["state"] == "superseded")
    takes = sum(1 for job in unplanned if job["state"] != "superseded" and is_take(job["key"]))
    earlier = len(unplanned) - superseded - takes
    lines = []
    if superseded:
        lines.append(
            f"  superseded {superseded}: results of an earlier manifest whose paths the current one gives to "
            "other jobs, kept in superseded/ (not counted above)"
        )
    if earlier:
        lines.append(
            f"  {earlier} job(s) of an earlier version of the manifest (not counted above; "
            "`batchgen status --json` lists them)"
        )
    if takes:
        lines.append(
            f"  {takes} extra take(s): generations matching this manifest's requests that another run "
            "may also have made, fetched beside the job's result (*.take-*; not counted above)"
        )
    return lines


def _delivery_lines(status: RunStatus) -> list[str]:
    """`batchgen status`'s lines about the run's delivery (none when it has no target)."""
    delivery = status.delivery
    if delivery is None:
        return []
    if delivery.sandbox:
        return [f"  delivered to {delivery.target} in the sandbox's emulator (gone when it stopped)"]
    lines = [
        f"  delivered {delivery.delivered}/{delivery.wanted} result files (with sidecars) to {delivery.target}"
    ]
    if delivery.failed:
        lines.append(f"  {len(delivery.failed)} failed, e.g. {delivery.failed[0]}")
    if delivery.delivered < delivery.wanted:
        lines.append(f"  `batchgen deliver {status.run_dir}` sends what is missing")
    return lines
