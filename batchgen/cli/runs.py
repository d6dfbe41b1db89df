"""`batchgen status`: what a run directory's journal says (and which jobs `--only` chooses in one)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.cli.common import EXIT_INCOMPLETE, EXIT_OK, add_only_flag, example
from batchgen.errors import UsageError

if TYPE_CHECKING:
    from batchgen.cli.common import Commands
    from batchgen.journal.spend import JobSpend
    from batchgen.journal.store import JobRecord


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
    from batchgen.cli.deliver import delivery_status
    from batchgen.journal.spend import describe, job_spend, journal_charges, spend_of
    from batchgen.journal.store import Journal
    from batchgen.states import SANDBOX_IDENTITY

    journal = Journal.open_existing(args.run_dir, read_only=True)  # a reader: creates and changes nothing
    try:
        records = sorted(journal.records().values(), key=lambda r: r.idx)
        api = journal.meta("api")
        delivery = delivery_status(journal, args.run_dir)
        charges, billed = journal_charges(journal)
    finally:
        journal.close()
    shares = {key: job_spend(job, billed) for key, job in charges.items()}
    chosen = chosen_keys(args.run_dir, args.only)
    if chosen is not None:
        records = [r for r in records if r.key in chosen]
    if args.json:
        for r in records:
            print(json.dumps(_status_json(r, shares[r.key])))
        return EXIT_OK
    planned = [r for r in records if r.planned]
    counts: dict[str, int] = {}
    for r in planned:
        counts[r.state] = counts.get(r.state, 0) + 1
    print(
        f"{args.run_dir}: {len(planned)} jobs · "
        + " · ".join(f"{s} {n}" for s, n in sorted(counts.items()))
        + (f"  (results from {api})" if api else "")
    )
    spent = spend_of(charges.values(), billed)
    print(f"  {describe(spent, sandbox=api == SANDBOX_IDENTITY)}")
    for line in _apart(records):
        print(line)
    _say_problems(planned, args.run_dir)
    for line in delivery:
        print(line)
    return EXIT_OK if counts.get("done", 0) == len(planned) else EXIT_INCOMPLETE


def _status_json(r: JobRecord, share: JobSpend) -> dict[str, object]:
    """One job of `status --json`: `title` is its readable name, `key` what programs go by, and
    `output_path` where its result is, relative to the run directory (as in results.* and run --json)."""
    from batchgen.rundir.layout import output_relpath

    return {
        "key": r.key,
        "index": r.idx,
        "name": r.name,
        "title": r.label,
        "state": r.state,
        "planned": r.planned,
        "output_path": output_relpath(r.output_path, r.key, superseded=r.state == "superseded"),
        "generation_id": r.generation_id,
        "api": r.api,
        "attempts": r.attempts,
        "sha256": r.sha256,
        "error": r.error,
        "kept_path": kept_path(r),
        # what its generations count for in the run directory's spend (every attempt)
        "spent_usd": str(share.total),
        "generations": share.generations,
    }


def _say_problems(planned: list[JobRecord], run_dir: Path) -> None:
    """Every job of the plan that is not done and carries an error, and what to do about unverified ones."""
    for r in planned:
        if r.state != "done" and r.error:
            print(f"  {r.state:<10} {r.label}: {r.error}")
    if any(r.state == "unverified" for r in planned):
        print(
            f"  unverified results are paid and kept, never downloaded again by themselves: "
            f"`batchgen unverified {run_dir}` to look at them, then --accept or --fetch-again"
        )


def kept_path(record: JobRecord) -> str | None:
    """Where an unverified job's bytes are kept (relative to the run directory); None for the others."""
    from batchgen.rundir.layout import unverified_relpath
    from batchgen.states import JobState

    if record.state is not JobState.UNVERIFIED:
        return None
    return unverified_relpath(record.output_path, record.key)


def _apart(records: list[JobRecord]) -> list[str]:
    """Lines about the journaled jobs the current plan does not hold (not counted in its totals)."""
    from batchgen.run.takes import is_take

    unplanned = [r for r in records if not r.planned]
    superseded = sum(1 for r in unplanned if r.state == "superseded")
    takes = sum(1 for r in unplanned if r.state != "superseded" and is_take(r.key))
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


def chosen_keys(run_dir: Path, only: list[str] | None, *, required: bool = False) -> set[str] | None:
    """The keys of the run's planned jobs (its plan.json) that `--only` chooses; None without --only.
    Choosing none is said on stderr, or is a usage error when `required`."""
    from batchgen.planning.select import Selection, json_job_facts, nothing_matched, selected_keys

    selection = Selection.parse(only)
    if selection is None:
        return None
    try:
        data = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
        jobs = [json_job_facts(job) for job in data["jobs"]]
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UsageError(f"cannot use --only: {run_dir / 'plan.json'} cannot be read ({exc})") from None
    keys = set(selected_keys(selection, jobs))
    if not keys:
        message = nothing_matched(selection, jobs, len(jobs))
        if required:
            raise UsageError(message)
        print(f"batchgen: {message}", file=sys.stderr)
    return keys
