"""Running a batch from a manifest, as a library: exactly what `batchgen run` does, minus the terminal.

```python
import batchgen
result = batchgen.run_manifest("jobs/demo.yaml", sandbox=True)        # or: await run_manifest_async(...)
result.complete, result.run_dir, result.outcome.counts
```

It loads and plans the manifest (live model descriptions with a key), checks the budget and the upload
target, opens the run directory's session (its lock, its journal, one API), writes `manifest.yaml`,
`plan.json`, `run.log` and the results files, runs the batch and returns its outcome. Bad input raises a
`UserError` before anything is sent. Human notes (the sandbox's address, a live price that differs from
the snapshot) go to `notify` (default: the `batchgen` logger at WARNING).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
from collections.abc import Callable
from dataclasses import replace
from decimal import Decimal
from pathlib import Path
from typing import Any

from batchgen import aio, logs
from batchgen.client.api import OxenClient
from batchgen.client.endpoint import SANDBOX_TIME_SCALE, api_endpoint
from batchgen.client.models import Catalog, model_catalog
from batchgen.config import (
    DEFAULT_API_BASE,
    Limits,
    RunOptions,
    UploadTarget,
    options_from_manifest,
    usd,
)
from batchgen.errors import StorageError, UsageError
from batchgen.journal.session import Session
from batchgen.journal.spend import Spend, journal_spend
from batchgen.journal.store import Journal
from batchgen.manifest import Manifest, load_manifest
from batchgen.planning import Plan, build_plan
from batchgen.registry.pricing import MIN_UNIT_PRICE_USD, implausible_prices
from batchgen.results.review import write_outputs
from batchgen.run import live_cancel
from batchgen.run.batch_result import BatchResult, JobProblem, problems_of
from batchgen.run.billing import may_read_after, read_after_run
from batchgen.run.runner import Runner, RunOutcome, RunStats, StopReason
from batchgen.rundir.layout import prepare_run_dir, run_dir_name, write_run_files
from batchgen.sinks.oxen.run import RunDelivery
from batchgen.target import DELIVER_PATH_DEFAULT, DeliveryTarget, template_variables

__all__ = ["BatchResult", "JobProblem", "run_dir_name", "run_manifest", "run_manifest_async"]

log = logging.getLogger(__name__)

SANDBOX_UPLOAD = "sandbox/assets"
_OVERRIDES = frozenset(
    {
        "concurrency",
        "downloads",
        "retries",
        "budget_usd",
        "upload_repo",
        "inline_assets",
        "retry_invalid",
        "stream_idle_timeout_s",
        "request_timeout_s",
        "expected_render_s",
        "only",
        "deliver",
        "drain_timeout_s",
    }
)


def run_manifest(
    manifest: str | os.PathLike[str],
    *,
    sandbox: bool = False,
    api_base: str | None = None,
    api_key: str | None = None,
    output_dir: str | os.PathLike[str] = "outputs",
    **overrides: Any,
) -> BatchResult:
    """Run (or resume) a manifest to the end; see `run_manifest_async` for the arguments."""
    return aio.run(
        run_manifest_async(
            manifest, sandbox=sandbox, api_base=api_base, api_key=api_key, output_dir=output_dir, **overrides
        )
    )


async def run_manifest_async(
    manifest: str | os.PathLike[str],
    *,
    sandbox: bool = False,
    api_base: str | None = None,
    api_key: str | None = None,
    output_dir: str | os.PathLike[str] = "outputs",
    notify: Callable[[str], None] | None = None,
    progress: Callable[[Callable[[], RunStats]], None] | None = None,
    stop: asyncio.Event | None = None,
    **overrides: Any,
) -> BatchResult:
    """Run (or resume) a manifest to the end, inside an event loop that is already running.

    `api_base` and `api_key` default to $OXEN_API_BASE / $OXEN_API_KEY; `sandbox=True` runs against a
    built-in emulator instead (nothing paid; results in `<output_dir>/<name>.sandbox`). Overrides of the
    manifest's `run:` settings: concurrency, downloads, retries, budget_usd, upload_repo ("ns/repo[@branch]"),
    inline_assets, retry_invalid, stream_idle_timeout_s, request_timeout_s, expected_render_s,
    drain_timeout_s, and `only` (["KEY=VALUE", ...]: the planned jobs that match, `planning.select`).
    `progress` is called with a snapshot function after every change; setting `stop` stops submitting
    (in-flight work is still tracked and downloaded for up to drain_timeout_s, then left to the journal).
    """
    unknown = sorted(set(overrides) - _OVERRIDES)
    if unknown:
        raise TypeError(f"run_manifest() got unknown overrides {unknown}; known: {sorted(_OVERRIDES)}")
    say = notify or (lambda text: log.warning("%s", text))
    path = Path(manifest)
    loaded = load_manifest(path)  # bad input stops here: nothing sent, nothing written
    options = _options(loaded, overrides)
    base = api_base or os.environ.get("OXEN_API_BASE") or DEFAULT_API_BASE
    key = api_key or os.environ.get("OXEN_API_KEY", "")
    if not key and not sandbox:
        raise UsageError("no API key: set OXEN_API_KEY (or pass --api-key), or try --sandbox")
    run_dir = Path(output_dir) / run_dir_name(loaded.name, sandbox=sandbox)
    async with api_endpoint(None if sandbox else (base, key), say) as (api_base_used, key_used):
        options = replace(options, api_base=api_base_used, sandbox=sandbox)
        if sandbox:
            if options.upload is None and not options.inline_assets:
                options = replace(options, upload=UploadTarget.parse(SANDBOX_UPLOAD))
            if "expected_render_s" not in overrides:  # the sandbox renders at SANDBOX_TIME_SCALE of real time
                options = replace(options, expected_render_s=300.0 * SANDBOX_TIME_SCALE)
            if options.deliver is not None:  # the sandbox's emulator starts empty: its repository is made
                options = replace(options, deliver=replace(options.deliver, create=True))
        async with OxenClient(
            options.api_base, key_used, timeouts=options.timeouts, retry=options.retry
        ) as client:
            found = await model_catalog(client, loaded, run_dir=run_dir)
            plan = build_plan(loaded, found.catalog)
            for note in found.notes:
                say(note)
            chosen = _chosen(plan, overrides.get("only"))
            for note in check_can_run(chosen, options):
                say(note)
            return await _execute(
                path,
                run_dir,
                plan,
                found,
                options,
                client,
                key_used,
                say,
                progress,
                stop,
                retry_invalid=bool(overrides.get("retry_invalid")),
                only=None if chosen is plan else chosen,
            )


def _chosen(plan: Plan, only: Any) -> Plan:
    """The jobs `only` (["KEY=VALUE", ...]) chooses; the whole plan without it. Choosing none is an error."""
    from batchgen.planning.select import Selection, job_facts, nothing_matched, select_plan

    selection = Selection.parse([only] if isinstance(only, str) else only)
    chosen = select_plan(plan, selection)
    if selection is not None and not chosen.jobs:
        raise UsageError(nothing_matched(selection, map(job_facts, plan.jobs), len(plan.jobs)))
    return chosen


def check_can_run(plan: Plan, options: RunOptions) -> list[str]:
    """Usage errors that need the plan: local images with nowhere to go, a budget that cannot work.
    Returns what to say without stopping (a price too low to trust, with no budget depending on it)."""
    if options.upload is None and not options.inline_assets and any(job.assets for job in plan.jobs):
        raise UsageError(
            f"{plan.manifest_path}: jobs use local reference images, but there is nowhere to upload them: "
            "add `upload: {namespace: NS, repo: REPO}` to the manifest, pass --upload-repo NS/REPO, "
            "or pass --inline-assets to send them as data: URIs"
        )
    budget = options.budget_usd
    implausible = implausible_prices((job.model, job.cost_usd, job.duration_s) for job in plan.jobs)
    prices = "; ".join(f"{model} is priced at {price}" for model, price in sorted(implausible.items()))
    if budget is None or not plan.jobs:
        return (
            [f"warning: {prices}: the quotes and the spend count its jobs as (almost) free"] if prices else []
        )
    unpriced = sorted({job.model for job in plan.jobs if job.cost_usd is None})
    if unpriced:
        raise UsageError(
            f"a budget of ${budget} cannot be enforced: no price is known for "
            f"{', '.join(unpriced)}; drop the budget (--budget / run.budget_usd) to run anyway"
        )
    if prices:
        raise UsageError(
            f"a budget of ${budget} cannot be enforced: {prices}, below the {MIN_UNIT_PRICE_USD} USD per "
            "second or image batchgen trusts (a registry answer of 0 would let every job through); check "
            "the model's price (`batchgen plan` shows it), or drop the budget to run anyway"
        )
    cheapest = min(job.cost_usd or Decimal(0) for job in plan.jobs)
    if cheapest > budget:
        raise UsageError(
            f"the budget of ${budget} is less than the cheapest job (${cheapest}): nothing could run"
        )
    return []


async def _execute(
    manifest: Path,
    run_dir: Path,
    plan: Plan,
    found: Catalog,
    options: RunOptions,
    client: OxenClient,
    key: str,
    say: Callable[[str], None],
    progress: Callable[[Callable[[], RunStats]], None] | None,
    stop: asyncio.Event | None,
    *,
    retry_invalid: bool,
    only: Plan | None = None,
) -> BatchResult:
    real = prepare_run_dir(run_dir)
    if real is not None:
        say(f"{run_dir} leads through a symlink: the files are written to {real}")
    ran = only or plan
    with Session.writing(run_dir, plan, say) as session:  # locked; a lost journal rebuilt from the sidecars
        live_cancel.clear(run_dir)  # a request to a process that is gone is not for this run
        journal = session.journal
        delivery = RunDelivery.for_run(options, key, journal, run_dir, plan)
        try:
            await session.check_api(options.api_identity, client)
            with _run_log(run_dir, key):
                await delivery.check()  # a missing or read-only delivery target stops here: nothing sent
                chosen = None if only is None else {job.key for job in only.jobs}
                runner = Runner(
                    plan,
                    run_dir,
                    journal,
                    client,
                    options,
                    retry_invalid=retry_invalid,
                    sinks=delivery.sinks(),
                    only=chosen,
                )
                await runner.prepare_assets()  # a missing upload repository stops here: nothing submitted
                write_run_files(run_dir, manifest, plan, found.live)
                delivery.start()  # results of earlier runs not delivered yet go first
                if progress is not None:
                    snapshot = delivery.stats(runner.stats)
                    runner.on_change = delivery.on_change = lambda: progress(snapshot)
                report: Path | None = None
                try:
                    outcome = await _run_until_stopped(runner, stop)
                    if may_read_after(outcome):
                        await read_after_run(client, journal, options, stop)
                finally:
                    try:
                        report = write_outputs(run_dir, plan.jobs, journal, campaign=plan.name)
                    except (StorageError, UsageError) as exc:  # never hide the run's own outcome behind this
                        say(f"error: {exc} (the journal is intact: `batchgen report {run_dir}` tries again)")
                delivered = await delivery.finish()  # what is left, then results.csv/.jsonl, report.html
                problems = problems_of(ran, journal)
                spend = _final_spend(journal)
        finally:
            await delivery.aclose()
    left = len(plan.jobs) - len(ran.jobs)
    return BatchResult(
        run_dir, outcome, len(ran.jobs), problems, left, delivered, report, spend, options.sandbox
    )


def _final_spend(journal: Journal) -> Spend | None:
    """The run directory's spend once the billed costs are read (None if the journal cannot say)."""
    try:
        return journal_spend(journal)
    except StorageError:
        return None


async def _run_until_stopped(runner: Runner, stop: asyncio.Event | None) -> RunOutcome:
    if stop is None:
        return await runner.run()

    async def watch() -> None:
        await stop.wait()
        runner.request_stop(StopReason.INTERRUPTED)
        await asyncio.sleep(runner.options.drain_timeout_s)  # the drain is bounded: then the run ends
        runner.end_drain()

    watcher = asyncio.create_task(watch())
    try:
        return await runner.run()
    finally:
        watcher.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await watcher


@contextlib.contextmanager
def _run_log(run_dir: Path, key: str) -> Any:
    """run.log (JSON lines, the key redacted) for the length of the run."""
    logger = logging.getLogger("batchgen")
    lowered = logger.level == logging.NOTSET or logger.level > logging.INFO
    previous = logger.level
    if lowered:  # a library caller who configured nothing still gets a full run.log
        logger.setLevel(logging.INFO)
    handler = logs.add_run_log(run_dir, logs.RedactFilter([key, os.environ.get("OXEN_API_KEY", "")]))
    try:
        yield
    finally:
        logs.remove_handler(handler)
        if lowered:
            logger.setLevel(previous)


def _options(manifest: Manifest, overrides: dict[str, Any]) -> RunOptions:
    """The manifest's `run:` and `upload:` settings, with the caller's overrides on top."""
    try:
        upload_repo = overrides.get("upload_repo")
        if upload_repo:
            try:
                upload: UploadTarget | None = UploadTarget.parse(str(upload_repo))
            except ValueError as exc:
                raise ValueError(f"--upload-repo: {exc}") from None
        elif manifest.upload:
            upload = UploadTarget.from_manifest(manifest.upload)
        else:
            upload = None
        options = options_from_manifest(manifest.run or {}, upload)
        concurrency, downloads = overrides.get("concurrency"), overrides.get("downloads")
        limits = Limits(
            concurrency=options.limits.concurrency if concurrency is None else int(concurrency),
            downloads=options.limits.downloads if downloads is None else int(downloads),
        )
        retry = options.retry
        if overrides.get("retries") is not None:
            retry = replace(retry, generation_retries=int(overrides["retries"]))
        timeouts = options.timeouts
        if overrides.get("stream_idle_timeout_s") is not None:
            timeouts = replace(timeouts, stream_idle_s=float(overrides["stream_idle_timeout_s"]))
        if overrides.get("request_timeout_s") is not None:
            timeouts = replace(timeouts, request_s=float(overrides["request_timeout_s"]))
        budget = options.budget_usd if overrides.get("budget_usd") is None else usd(overrides["budget_usd"])
        options = replace(
            options,
            limits=limits,
            retry=retry,
            timeouts=timeouts,
            budget_usd=budget,
            inline_assets=bool(overrides.get("inline_assets")),
        )
        if overrides.get("expected_render_s") is not None:
            options = replace(options, expected_render_s=float(overrides["expected_render_s"]))
        if overrides.get("drain_timeout_s") is not None:
            options = replace(options, drain_timeout_s=float(overrides["drain_timeout_s"]))
        options = replace(options, deliver=_deliver_target(manifest, overrides.get("deliver")))
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return options


def _deliver_target(manifest: Manifest, flag: Any) -> DeliveryTarget | None:
    """The manifest's `deliver:`, or `--deliver NS/NAME[@BRANCH][:PATH]` (its path and `create`
    default to the manifest's `deliver:`)."""
    variables = template_variables(manifest.name, manifest.vars)
    written = manifest.deliver or {}
    if not flag:
        return DeliveryTarget.from_manifest(written, variables) if written else None
    try:
        path, create = str(written.get("path", DELIVER_PATH_DEFAULT)), written.get("create") is True
        return DeliveryTarget.parse(str(flag), variables, default_path=path, create=create)
    except ValueError as exc:
        raise ValueError(f"--deliver: {exc}") from None
