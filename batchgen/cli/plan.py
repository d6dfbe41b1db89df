"""`batchgen plan` and `batchgen schema`: what a manifest expands to, checked, without sending anything."""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen import aio
from batchgen.cli.common import (
    EXIT_OK,
    OFFLINE,
    Endpoint,
    add_api_flags,
    add_only_flag,
    api_base_of,
    example,
)
from batchgen.config import UploadTarget
from batchgen.errors import UsageError

if TYPE_CHECKING:
    from batchgen.cli.common import Commands
    from batchgen.client.api import OxenClient
    from batchgen.journal.spend import Spend
    from batchgen.manifest import Manifest
    from batchgen.planning import Plan


def add_plan(commands: Commands) -> None:
    plan = commands.add_parser(
        "plan",
        help="show the jobs, cost quote and validation errors; submits nothing",
        description="Expand and validate a manifest. Exit 0 when valid, 2 otherwise. Offline (no key) "
        "nothing leaves the machine: models are checked against the snapshots shipped with batchgen. "
        "With OXEN_API_KEY (or --api-base, --sandbox) it reads the live model registry "
        "(GET /api/ai/models/{id}) and checks that the upload repository exists; it never submits.",
        epilog=example(
            "batchgen plan jobs/spring-campaign.yaml --only product=tote --budget 10",
            "the tote jobs, their quote, and where a $10 budget stops them",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    plan.add_argument("manifest", type=Path)
    plan.add_argument("--json", action="store_true", help="print the whole plan as JSON")
    plan.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        default=Path("outputs"),
        help="where runs live, to count jobs already done (default: outputs)",
    )
    add_only_flag(plan)
    plan.add_argument(
        "--budget", metavar="USD", help="say where this budget stops the run (default: run.budget_usd)"
    )
    plan.add_argument("--sandbox", action="store_true", help="look models up in the built-in emulator")
    add_api_flags(plan)
    plan.set_defaults(handler=cmd_plan)


def add_schema(commands: Commands) -> None:
    schema = commands.add_parser(
        "schema",
        help="print the manifest's JSON Schema (for editors)",
        epilog=example("batchgen schema > manifest.schema.json", "for an editor's YAML language server"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    schema.set_defaults(handler=cmd_schema)


def cmd_schema(args: argparse.Namespace) -> int:
    from batchgen.manifest import manifest_schema

    print(json.dumps(manifest_schema(), indent=2))
    return EXIT_OK


def cmd_plan(args: argparse.Namespace) -> int:
    from batchgen.journal.spend import describe
    from batchgen.manifest import load_manifest
    from batchgen.planning import format_plan, write_plan_json
    from batchgen.planning.select import Selection, job_facts, nothing_matched, select_plan
    from batchgen.rundir.layout import run_dir_name

    manifest = load_manifest(args.manifest)
    selection = Selection.parse(args.only)
    key = args.api_key or os.environ.get("OXEN_API_KEY", "")
    online = args.sandbox or bool(key or args.api_base)
    endpoint = None if args.sandbox else Endpoint(api_base_of(args), key)
    run_dir = args.output_dir / run_dir_name(manifest.name, sandbox=args.sandbox)
    plan, notes = aio.run(_plan_with_models(manifest, endpoint if online else OFFLINE, run_dir))
    for note in notes:
        print(f"batchgen: {note}", file=sys.stderr)
    chosen = select_plan(plan, selection)
    if selection is not None and not chosen.jobs:
        facts = (job_facts(job) for job in plan.jobs)
        print(f"batchgen: {nothing_matched(selection, facts, len(plan.jobs))}", file=sys.stderr)
    states, spent = _journaled(run_dir, {job.key for job in plan.jobs})
    if args.json:
        write_plan_json(chosen, sys.stdout.write)
        return EXIT_OK
    done = frozenset(k for k, state in states.items() if state == "done")
    print(format_plan(chosen, done_keys=done))
    if selection is not None:
        print(f"  chosen by {selection.describe()}: {len(chosen.jobs)} of {len(plan.jobs)} planned jobs")
    if spent is not None and spent.generations:
        print(f"  {describe(spent, sandbox=args.sandbox)}")
    limit = _budget(args, manifest)
    if limit is not None:
        print(budget_line(plan, chosen, states, limit, spent))
    return EXIT_OK


def _journaled(run_dir: Path, planned: set[str]) -> tuple[dict[str, str], Spend | None]:
    """Each journaled job's state in the run directory this plan would run in, and what that directory
    has spent, counting the jobs this plan does not have as outside it (nothing when it is new)."""
    from batchgen.journal.schema import journal_problem
    from batchgen.journal.spend import journal_spend
    from batchgen.journal.store import Journal

    if journal_problem(run_dir) is not None:  # none yet (or lost: `run` rebuilds it from the sidecars)
        return {}, None
    journal = Journal.open_existing(run_dir, read_only=True)
    try:
        states = {key: str(record.state) for key, record in journal.records().items()}
        return states, journal_spend(journal, planned)
    finally:
        journal.close()


def _budget(args: argparse.Namespace, manifest: Manifest) -> Decimal | None:
    from batchgen.config import options_from_manifest, usd

    try:
        if args.budget is not None:
            return usd(args.budget)
        return options_from_manifest(manifest.run or {}, None).budget_usd
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def budget_line(
    plan: Plan, chosen: Plan, states: Mapping[str, str], limit: Decimal, spent: Spend | None = None
) -> str:
    """Where the budget stops the run, by the scheduler's own rule (jobs in plan order, each quote
    counted before it is submitted, after what the run directory has already spent: every generation
    it made, superseded ones included)."""
    from batchgen.registry.pricing import format_usd, implausible_prices
    from batchgen.run.scheduler import forecast_budget
    from batchgen.states import BILLED, JobState

    held = {str(s) for s in BILLED | {JobState.SUPERSEDED}}  # superseded ones come back as done
    unpriced = sorted({job.model for job in chosen.jobs if job.cost_usd is None})
    implausible = implausible_prices((job.model, job.cost_usd, job.duration_s) for job in chosen.jobs)
    if unpriced or implausible:
        why = ", ".join(
            [f"no price is known for {model}" for model in unpriced]
            + [f"{model} is priced at {price}" for model, price in sorted(implausible.items())]
        )
        return f"  budget {format_usd(limit)} cannot be enforced: {why} (`batchgen run` refuses the budget)"
    to_run = [
        (job.key, job.cost_usd or Decimal(0))
        for job in chosen.jobs
        if states.get(job.key, "pending") not in held | {str(JobState.INVALID)}
    ]
    forecast = forecast_budget(limit, to_run, spent.total if spent is not None else Decimal(0))
    already = ""
    if spent is not None and spent.total:
        outside = spent.outside_plan
        aside = f", {format_usd(outside)} of it for jobs no longer in the plan" if outside else ""
        already = f" (of which {format_usd(spent.total)} already spent by this run directory{aside})"
    if forecast.stopper is None:
        return (
            f"  budget {format_usd(limit)} covers all {forecast.to_run} jobs to run: "
            f"{format_usd(forecast.spend)} spent at the end{already}"
        )
    stopper = next(job for job in chosen.jobs if job.key == forecast.stopper)
    return (
        f"  budget {format_usd(limit)} stops after {forecast.admitted} of {forecast.to_run} jobs to run: "
        f"{format_usd(forecast.spend)} spent by then{already}; the next, #{stopper.index} "
        f"{stopper.label}, would bring it to {format_usd(forecast.spend + (stopper.cost_usd or Decimal(0)))}"
    )


async def _plan_with_models(
    manifest: Manifest, endpoint: Endpoint | object | None, run_dir: Path
) -> tuple[Plan, list[str]]:
    """The plan, and the lines to tell about the model descriptions it was made with. Online, the
    upload and delivery repositories are checked too (without writing to them)."""
    from batchgen.client.api import OxenClient
    from batchgen.client.endpoint import api_endpoint
    from batchgen.client.models import model_catalog
    from batchgen.planning import build_plan

    if endpoint is OFFLINE:
        found = await model_catalog(None, manifest)
        return build_plan(manifest, found.catalog), found.notes
    assert endpoint is None or isinstance(endpoint, Endpoint)
    say = lambda text: print(f"batchgen: {text}", file=sys.stderr)  # noqa: E731
    given = None if endpoint is None else (endpoint.api_base, endpoint.api_key)
    async with api_endpoint(given, say) as (api_base, api_key), OxenClient(api_base, api_key) as client:
        found = await model_catalog(client, manifest, run_dir=run_dir)
        plan = build_plan(manifest, found.catalog)
        if endpoint is not None and manifest.upload and any(job.assets for job in plan.jobs):
            await _check_upload_repo(client, manifest.upload)
        if endpoint is not None and manifest.deliver and manifest.deliver.get("create") is not True:
            await _check_delivery_repo(client, manifest)
        return plan, found.notes


async def _check_delivery_repo(client: OxenClient, manifest: Manifest) -> None:
    """The delivery repository and branch exist (reads only: `plan` writes nothing)."""
    from batchgen.client.repos import RepoApi
    from batchgen.target import DeliveryTarget, template_variables

    assert manifest.deliver is not None
    target = DeliveryTarget.from_manifest(manifest.deliver, template_variables(manifest.name, manifest.vars))
    await RepoApi(client, target).check(write_probe=False)


async def _check_upload_repo(client: OxenClient, upload: Mapping[str, object]) -> None:

    target = UploadTarget.from_manifest(upload)
    if not target.create and not await client.repo_exists(target.namespace, target.repo):
        raise UsageError(
            f"the upload repository {target.namespace}/{target.repo} does not exist: create it "
            "(https://oxen.ai/new, public, so the model can fetch the images), or add "
            "`create: true` under `upload:` to let `batchgen run` create it"
        )
