"""`plan_manifest`: what a manifest expands to, checked, with what its run directory already holds and
where a budget stops it; nothing is sent."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen import aio
from batchgen.commands.common import note, says
from batchgen.config import DEFAULT_API_BASE, UploadTarget, options_from_manifest, usd
from batchgen.errors import UsageError
from batchgen.states import JobState

if TYPE_CHECKING:
    from batchgen.client.api import OxenClient
    from batchgen.journal.spend import Spend
    from batchgen.manifest import Manifest
    from batchgen.planning import Plan

__all__ = ["PlanSummary", "plan_manifest"]


@dataclass(frozen=True, slots=True)
class PlanSummary:
    """What `plan_manifest` found: the plan, the jobs `only` chose (the plan itself without it) and how
    (`selection`), each job's state in the run directory it would run in and what that directory has
    spent (empty, None: a new one), and where the budget stops the run (None: no budget)."""

    plan: Plan
    chosen: Plan
    selection: str | None
    states: dict[str, str]
    spend: Spend | None
    budget: str | None
    sandbox: bool = False


@says
def plan_manifest(
    manifest: str | os.PathLike[str],
    *,
    only: Sequence[str] | None = None,
    budget: str | Decimal | None = None,
    output_dir: str | os.PathLike[str] = "outputs",
    sandbox: bool = False,
    api_base: str | None = None,
    api_key: str | None = None,
    say: Callable[[str], None] = note,
) -> PlanSummary:
    """Expand and validate a manifest, submitting nothing. Without a key, `api_base` or `sandbox` nothing
    leaves the machine (the shipped model snapshots); with one, the live registry is read and the
    upload and delivery repositories are checked (read only)."""
    from batchgen.manifest import load_manifest
    from batchgen.planning.select import Selection, job_facts, nothing_matched, select_plan
    from batchgen.rundir.layout import run_dir_name

    loaded = load_manifest(Path(manifest))
    selection = Selection.parse(only)
    key = api_key or os.environ.get("OXEN_API_KEY", "")
    base = api_base or os.environ.get("OXEN_API_BASE") or DEFAULT_API_BASE
    online = sandbox or bool(key or api_base)
    run_dir = Path(output_dir) / run_dir_name(loaded.name, sandbox=sandbox)
    given = None if sandbox else (base, key)
    plan, notes = aio.run(_plan_with_models(loaded, given, run_dir, say)) if online else _plan_offline(loaded)
    for text in notes:
        say(text)
    chosen = select_plan(plan, selection)
    if selection is not None and not chosen.jobs:
        say(nothing_matched(selection, (job_facts(job) for job in plan.jobs), len(plan.jobs)))
    states, spent = _journaled(run_dir, {job.key for job in plan.jobs})
    limit = (
        usd(budget, "budget")
        if budget is not None
        else options_from_manifest(loaded.run or {}, None).budget_usd
    )
    line = None if limit is None else _budget_line(chosen, states, limit, spent)
    described = None if selection is None else selection.describe()
    return PlanSummary(plan, chosen, described, states, spent, line, sandbox)


def _plan_offline(manifest: Manifest) -> tuple[Plan, list[str]]:
    """The plan with the shipped model snapshots (no network, no event loop), and the notes to say."""
    from batchgen.client.models import offline_catalog
    from batchgen.planning import build_plan

    found = offline_catalog(manifest)
    return build_plan(manifest, found.catalog), found.notes


async def _plan_with_models(
    manifest: Manifest, given: tuple[str, str] | None, run_dir: Path, say: Callable[[str], None]
) -> tuple[Plan, list[str]]:
    """The plan with the live model descriptions (or the sandbox's: `given` None), and the notes to say;
    with a real API the upload and delivery repositories are checked too (without writing to them)."""
    from batchgen.client.api import OxenClient
    from batchgen.client.endpoint import api_endpoint
    from batchgen.client.models import model_catalog
    from batchgen.client.repos import RepoApi
    from batchgen.planning import build_plan
    from batchgen.target import DeliveryTarget, template_variables

    async with api_endpoint(given, say) as (base, key), OxenClient(base, key) as client:
        found = await model_catalog(client, manifest, run_dir=run_dir)
        plan = build_plan(manifest, found.catalog)
        if given is not None and manifest.upload and any(job.assets for job in plan.jobs):
            await _check_upload_repo(client, manifest.upload)
        if given is not None and manifest.deliver and manifest.deliver.get("create") is not True:
            variables = template_variables(manifest.name, manifest.vars)
            await RepoApi(client, DeliveryTarget.from_manifest(manifest.deliver, variables)).check(
                write_probe=False
            )
    return plan, found.notes


async def _check_upload_repo(client: OxenClient, upload: Mapping[str, object]) -> None:
    target = UploadTarget.from_manifest(upload)
    if not target.create and not await client.repo_exists(target.namespace, target.repo):
        raise UsageError(
            f"the upload repository {target.namespace}/{target.repo} does not exist: create it "
            "(https://oxen.ai/new, public, so the model can fetch the images), or add "
            "`create: true` under `upload:` to let `batchgen run` create it"
        )


def _journaled(run_dir: Path, planned: set[str]) -> tuple[dict[str, str], Spend | None]:
    """Each journaled job's state in the run directory this plan would run in, and what that directory
    has spent, counting the jobs this plan does not have as outside it (nothing when it is new)."""
    from batchgen.journal.schema import journal_problem

    if journal_problem(run_dir) is not None:  # none yet (or lost: `run` rebuilds it from the sidecars)
        return {}, None
    from batchgen.journal.session import Session
    from batchgen.journal.spend import journal_spend

    with Session.reading(run_dir) as session:
        states = {key: str(record.state) for key, record in session.journal.records().items()}
        return states, journal_spend(session.journal, planned)


def _budget_line(chosen: Plan, states: dict[str, str], limit: Decimal, spent: Spend | None) -> str:
    """Where the budget stops the run, by the scheduler's own rule (jobs in plan order, each quote
    counted before it is submitted, after what the run directory has already spent: every generation
    it made, superseded ones included)."""
    from batchgen.registry.pricing import format_usd, implausible_prices
    from batchgen.run.scheduler import forecast_budget
    from batchgen.states import BILLED

    held = {str(s) for s in BILLED | {JobState.SUPERSEDED, JobState.INVALID}}  # superseded: back as done
    unpriced = sorted({job.model for job in chosen.jobs if job.cost_usd is None})
    implausible = implausible_prices((job.model, job.cost_usd, job.duration_s) for job in chosen.jobs)
    budget = f"budget {format_usd(limit)}"
    if unpriced or implausible:
        why = ", ".join(
            [f"no price is known for {model}" for model in unpriced]
            + [f"{model} is priced at {price}" for model, price in sorted(implausible.items())]
        )
        return f"{budget} cannot be enforced: {why} (`batchgen run` refuses the budget)"
    to_run = [
        (j.key, j.cost_usd or Decimal(0)) for j in chosen.jobs if states.get(j.key, "pending") not in held
    ]
    forecast = forecast_budget(limit, to_run, spent.total if spent is not None else Decimal(0))
    already = ""
    if spent is not None and spent.total:
        outside = spent.outside_plan
        aside = f", {format_usd(outside)} of it for jobs no longer in the plan" if outside else ""
        already = f" (of which {format_usd(spent.total)} already spent by this run directory{aside})"
    if forecast.stopper is None:
        spend = format_usd(forecast.spend)
        return f"{budget} covers all {forecast.to_run} jobs to run: {spend} spent at the end{already}"
    stopper = next(job for job in chosen.jobs if job.key == forecast.stopper)
    return (
        f"{budget} stops after {forecast.admitted} of {forecast.to_run} jobs to run: "
        f"{format_usd(forecast.spend)} spent by then{already}; the next, #{stopper.index} "
        f"{stopper.label}, would bring it to {format_usd(forecast.spend + (stopper.cost_usd or Decimal(0)))}"
    )
