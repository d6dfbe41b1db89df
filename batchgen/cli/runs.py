"""Commands on run directories: `status` (what the journal says) and `cancel` (stop what is rendering)."""

from __future__ import annotations

import argparse
import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.cli.common import EXIT_INCOMPLETE, EXIT_OK, add_api_flags, api_settings, warn_if_key_flag
from batchgen.config import SANDBOX_IDENTITY, RunOptions
from batchgen.errors import UsageError

if TYPE_CHECKING:
    from batchgen.cli.common import Commands


def add_status(commands: Commands) -> None:
    status = commands.add_parser("status", help="summarise a run directory from its journal")
    status.add_argument("run_dir", type=Path)
    status.add_argument("--json", action="store_true", help="one JSON object per job")
    status.set_defaults(handler=cmd_status)


def add_cancel(commands: Commands) -> None:
    cancel = commands.add_parser("cancel", help="cancel a run's in-flight generations at the provider")
    cancel.add_argument("run_dir", type=Path)
    add_api_flags(cancel)
    cancel.set_defaults(handler=cmd_cancel)


def cmd_status(args: argparse.Namespace) -> int:
    from batchgen.cli.deliver import delivery_status
    from batchgen.store import Journal

    journal = Journal.open_existing(args.run_dir)
    try:
        records = sorted(journal.records().values(), key=lambda r: r.idx)
        api = journal.meta("api")
        delivery = delivery_status(journal, args.run_dir)
    finally:
        journal.close()
    if args.json:
        for r in records:
            print(
                json.dumps(
                    {
                        "key": r.key,
                        "index": r.idx,
                        "name": r.name,
                        "state": r.state,
                        "planned": r.planned,
                        "output_path": r.output_path,
                        "generation_id": r.generation_id,
                        "api": r.api,
                        "attempts": r.attempts,
                        "sha256": r.sha256,
                        "error": r.error,
                    }
                )
            )
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
    superseded = sum(1 for r in records if not r.planned and r.state == "superseded")
    earlier = sum(1 for r in records if not r.planned and r.state != "superseded")
    if superseded:
        print(
            f"  superseded {superseded}: results of an earlier manifest whose paths the current one gives to "
            "other jobs, kept in superseded/ (not counted above)"
        )
    if earlier:
        print(
            f"  {earlier} job(s) of an earlier version of the manifest (not counted above; "
            "`batchgen status --json` lists them)"
        )
    for r in planned:
        if r.state != "done" and r.error:
            print(f"  {r.state:<10} {r.name} [{r.key[:12]}]: {r.error}")
    for line in delivery:
        print(line)
    return EXIT_OK if counts.get("done", 0) == len(planned) else EXIT_INCOMPLETE


def cmd_cancel(args: argparse.Namespace) -> int:
    return asyncio.run(_cancel(args))


async def _cancel(args: argparse.Namespace) -> int:
    from batchgen.api import OxenClient
    from batchgen.batch import check_api_identity
    from batchgen.cancel import cancel_in_flight
    from batchgen.store import Journal, RunLock

    api_base, key = api_settings(args, sandbox=False)
    journal = Journal.open_existing(args.run_dir)  # before the lock: never litter a plain folder
    try:
        if journal.meta("api") == SANDBOX_IDENTITY:
            raise UsageError(
                f"{args.run_dir} was run in the sandbox: its generations lived only in the "
                "sandbox's emulator, which stopped with the run; there is nothing to cancel"
            )
        warn_if_key_flag(args)
        with RunLock(args.run_dir):
            async with OxenClient(api_base, key) as client:
                options = RunOptions(api_base=api_base)
                await check_api_identity(journal, args.run_dir, options, client)
                counts = await cancel_in_flight(
                    journal, client, _planned_defaults(args.run_dir), api=options.api_identity
                )
    finally:
        journal.close()
    print(
        f"cancelled {counts.get('cancelled', 0)} in-flight generation(s)"
        + "".join(
            f"; {n} had already {state} (kept: `batchgen run` downloads them)"
            for state, n in sorted(counts.items())
            if state != "cancelled"
        )
    )
    print("`batchgen run` resubmits the cancelled jobs (a new, paid generation each) and finishes the rest")
    return EXIT_OK


def _planned_defaults(run_dir: Path) -> dict[str, dict[str, object]]:
    """The per-model echoed defaults recorded in the run's plan.json (empty when unreadable)."""
    try:
        data = json.loads((run_dir / "plan.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    defaults = data.get("model_defaults") if isinstance(data, dict) else None
    return defaults if isinstance(defaults, dict) else {}
