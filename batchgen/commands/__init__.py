"""The library's commands: what `batchgen run`, `plan`, `status`, `cancel`, `deliver`, `unverified` and
`report` do, as functions that return records and print nothing.

```python
from batchgen import commands
commands.plan_manifest("jobs/demo.yaml", budget="10").budget       # where a $10 budget stops the run
commands.run_status("outputs/demo").complete                        # every planned job is done
commands.cancel_run("outputs/demo", only=["product=lamp"]).counts    # {"cancelled": 3, ...}
commands.deliver_run("outputs/demo", to="meadow/review@main:drafts").complete
```

The command line parses flags, calls one of these and prints the record (`--json`: the record as it
is). Every run directory is opened through its session (`journal.session`). Notes for a person (the
sandbox's address, a model's live price, a filter that chose nothing) go to `say` (default: the
`batchgen` logger at WARNING). Errors are worded for a Python caller; a `UserError` also carries the
command line's wording (`cli`). What the command line needs from deeper modules is re-exported here and
imported on first use, so `batchgen --help` and an offline `plan` stay quick.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from importlib import import_module
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen import aio
from batchgen.commands.cancel import CancelResult, cancel_run
from batchgen.commands.common import chosen_keys, note, says
from batchgen.commands.deliver import deliver_run
from batchgen.commands.plan import PlanSummary, plan_manifest
from batchgen.commands.status import DeliveryStatus, RunStatus, run_status

if TYPE_CHECKING:
    from batchgen.journal.spend import Spend, describe
    from batchgen.manifest import manifest_schema
    from batchgen.planning import format_plan, write_plan_json
    from batchgen.registry.pricing import format_usd
    from batchgen.results.listing import RunSummary, list_runs
    from batchgen.results.unverified import Unverified
    from batchgen.run.batch import run_manifest_async
    from batchgen.run.live_cancel import CancelBusy
    from batchgen.run.takes import is_take
    from batchgen.sinks.oxen.run import DeliverySummary

__all__ = [
    "CancelBusy",
    "CancelResult",
    "DeliveryStatus",
    "DeliverySummary",
    "PlanSummary",
    "RunStatus",
    "RunSummary",
    "Spend",
    "Unverified",
    "cancel_run",
    "configure_logging",
    "deliver_run",
    "describe",
    "format_plan",
    "format_usd",
    "is_take",
    "list_runs",
    "manifest_schema",
    "plan_manifest",
    "refresh_report",
    "run_coroutine",
    "run_manifest_async",
    "run_status",
    "settle_unverified",
    "write_plan_json",
]

run_coroutine = aio.run  # asyncio.run, without describing the result on the way out

#: Where each name re-exported here lives (imported on first use).
_HOMES = {
    "run_manifest_async": "batchgen.run.batch",
    **dict.fromkeys(("Spend", "describe"), "batchgen.journal.spend"),
    **dict.fromkeys(("RunSummary", "list_runs"), "batchgen.results.listing"),
    **dict.fromkeys(("format_plan", "write_plan_json"), "batchgen.planning"),
    "CancelBusy": "batchgen.run.live_cancel",
    "DeliverySummary": "batchgen.sinks.oxen.run",
    "Unverified": "batchgen.results.unverified",
    "format_usd": "batchgen.registry.pricing",
    "is_take": "batchgen.run.takes",
    "manifest_schema": "batchgen.manifest",
}


def __getattr__(name: str) -> object:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'batchgen.commands' has no attribute {name!r}")
    value = getattr(import_module(home), name)
    globals()[name] = value  # later look-ups skip this function
    return value


def configure_logging(*, api_key: str | None = None, verbose: bool = False) -> None:
    """The `batchgen` logger on stderr (above a progress bar), the keys ($OXEN_API_KEY, `api_key`) redacted."""
    from batchgen import logs

    logs.configure(secrets=[os.environ.get("OXEN_API_KEY", ""), api_key or ""], verbose=verbose)


def refresh_report(run_dir: str | os.PathLike[str]) -> Path:
    """report.html and results.* again from the run directory alone, offline; the report's path."""
    from batchgen.results.review import refresh

    return refresh(Path(run_dir))


@says
def settle_unverified(
    run_dir: str | os.PathLike[str],
    *,
    only: Sequence[str] | None = None,
    accept: bool = False,
    fetch_again: bool = False,
    say: Callable[[str], None] = note,
) -> list[Unverified]:
    """The paid results whose bytes failed verification (those `only` chooses): as they are, or accepted
    as the results (`accept`), or to be downloaded again by the next run (`fetch_again`; both refused
    while a run is live)."""
    from batchgen.journal.session import existing_run_dir
    from batchgen.results.unverified import settle

    path = existing_run_dir(run_dir)
    chosen = chosen_keys(path, only, required=accept or fetch_again, say=say)
    return settle(path, chosen, accept_them=accept, again=fetch_again)
