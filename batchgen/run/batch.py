"""Running a batch from a manifest, as a library: exactly what `batchgen run` does, minus the terminal.

```python
import batchgen
result = batchgen.run_manifest("jobs/demo.yaml", sandbox=True)        # or: await run_manifest_async(...)
result.complete, result.run_dir, result.outcome.counts, result.jobs
```

It loads and plans the manifest (a path, or a `Manifest` already loaded; live model descriptions with a
key), checks the budget and the upload target, opens the run directory's session (its lock, its journal,
one API), writes `manifest.yaml`, `plan.json`, `run.log` and the results files, runs the batch and
returns its outcome. Results go to the run directory, then to every sink: the manifest's `deliver:`
repository and the caller's `sinks=`, whose lifecycle `run_with_sinks` drives. Bad input raises a
`UserError` before anything is sent. Human notes (the sandbox's address, a live price that differs from
the snapshot) go to `say` (default: the `batchgen` logger at WARNING; `notify=` is its old, deprecated
name). The manifest's `notify:` targets hear how the run went (`run.notify`).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import os
import warnings
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, replace
from decimal import Decimal
from pathlib import Path
from typing import Any, ParamSpec, TypeVar

from batchgen import aio, logs
from batchgen.aio import no_gc_pauses
from batchgen.client.api import OxenClient
from batchgen.client.endpoint import SANDBOX_TIME_SCALE, api_endpoint, credentials
from batchgen.client.models import Catalog, model_catalog
from batchgen.config import (
    FailureThreshold,
    NotifyTarget,
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
from batchgen.results.review import write_outputs_unless_current
from batchgen.run import live_cancel
from batchgen.run.batch_result import BatchResult, JobResult, job_results
from batchgen.run.billing import read_after_run
from batchgen.run.notify import Notifier, halt_notice
from batchgen.run.runner import Progress, Runner, RunOutcome
from batchgen.rundir.layout import prepare_run_dir, run_dir_name, write_run_files
from batchgen.sinks.base import ResultCallback, ResultSink, VerifiedResult, run_with_sinks
from batchgen.sinks.oxen.selected import delivery_for
from batchgen.target import DELIVER_PATH_DEFAULT, DeliveryTarget, template_variables

__all__ = ["BatchResult", "JobResult", "run_dir_name", "run_manifest", "run_manifest_async"]

log = logging.getLogger(__name__)
P = ParamSpec("P")
T = TypeVar("T")

SANDBOX_UPLOAD = "sandbox/assets"
#: Overrides of one setting: name -> (the part of RunOptions holding it, or None: RunOptions itself;
#: the field; its type).
_SETTINGS: dict[str, tuple[str | None, str, Callable[[Any], Any]]] = {
    "concurrency": ("limits", "concurrency", int),
    "downloads": ("limits", "downloads", int),
    "retries": ("retry", "generation_retries", int),
    "stream_idle_timeout_s": ("timeouts", "stream_idle_s", float),
    "request_timeout_s": ("timeouts", "request_s", float),
    "budget_usd": (None, "budget_usd", usd),
    "expected_render_s": (None, "expected_render_s", float),
    "drain_timeout_s": (None, "drain_timeout_s", float),
    "halt_after_failures": (None, "halt_after_failures", FailureThreshold.parse),
}
_OVERRIDES = frozenset(
    {*_SETTINGS, "upload_repo", "inline_assets", "retry_invalid", "only", "deliver", "notify"}
)


@dataclass(frozen=True, slots=True)
class _Run:
    """One run, planned: what `_execute` needs."""

    run_dir: Path
    plan: Plan
    chosen: Plan  # the jobs this run works on: the plan's, or those `only` chose
    found: Catalog
    options: RunOptions
    client: OxenClient
    key: str
    say: Callable[[str], None]
    sinks: tuple[ResultSink, ...]
    progress: Progress | None
    stop: asyncio.Event | None


async def run_manifest_async(
    manifest: str | os.PathLike[str] | Manifest,
    *,
    options: RunOptions | None = None,
    sinks: Sequence[ResultSink] = (),
    on_result: Callable[[VerifiedResult], None] | None = None,
    sandbox: bool = False,
    api_base: str | None = None,
    api_key: str | None = None,
    output_dir: str | os.PathLike[str] = "outputs",
    say: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    stop: asyncio.Event | None = None,
    **overrides: Any,
) -> BatchResult:
    """Run (or resume) a manifest to the end, inside an event loop that is already running.

    `options` replaces the manifest's `run:`, `upload:` and `deliver:` settings; the overrides change
    single ones (of `options`, or of the manifest's): concurrency, downloads, retries, budget_usd,
    upload_repo ("ns/repo[@branch]"), inline_assets, retry_invalid, stream_idle_timeout_s,
    request_timeout_s, expected_render_s, drain_timeout_s, deliver, halt_after_failures (25 or "10%"),
    notify (["https://hook", "mail -s subject me@example.com", ...]: in place of the manifest's), and
    `only` (["KEY=VALUE", ...]: the planned jobs that match, `planning.select`). `api_base` and `api_key` default to $OXEN_API_BASE /
    $OXEN_API_KEY; `sandbox=True` runs against a built-in emulator instead (nothing paid; results in
    `<output_dir>/<name>.sandbox`). `sinks` get every verified result after the run directory (and the
    manifest's delivery), `on_result` is called with each. `progress` is called with a snapshot function
    after changes; setting `stop` stops submitting (in-flight work is still tracked and downloaded for up
    to drain_timeout_s, then left to the journal).
    """
    if "notify" in overrides and callable(overrides["notify"]):  # its old name, before `notify:` targets
        warnings.warn("run_manifest's notify= is now say=", DeprecationWarning, stacklevel=2)
        say = say or overrides.pop("notify")
    unknown = sorted(set(overrides) - _OVERRIDES)
    if unknown:
        raise TypeError(f"run_manifest() got unknown overrides {unknown}; known: {sorted(_OVERRIDES)}")
    say = say or (lambda text: log.warning("%s", text))
    with no_gc_pauses():
        loaded = (
            manifest if isinstance(manifest, Manifest) else load_manifest(Path(manifest))
        )  # bad input stops
    settings = _options(loaded, overrides, options)
    run_dir = Path(output_dir) / run_dir_name(loaded.name, sandbox=sandbox)
    extra = (*sinks, *([] if on_result is None else [ResultCallback(on_result)]))
    async with api_endpoint(None if sandbox else credentials(api_base, api_key), say) as (base, key):
        settings = _for_endpoint(settings, base, sandbox=sandbox)
        async with OxenClient(base, key, timeouts=settings.timeouts, retry=settings.retry) as client:
            found = await model_catalog(client, loaded, run_dir=run_dir)
            plan = build_plan(loaded, found.catalog)
            for note in found.notes:
                say(note)
            chosen = _chosen(plan, overrides.get("only"))
            for note in check_can_run(chosen, settings):
                say(note)
            run = _Run(run_dir, plan, chosen, found, settings, client, key, say, extra, progress, stop)
            return await _execute(run, retry_invalid=bool(overrides.get("retry_invalid")))


def _blocking(coroutine: Callable[P, Coroutine[Any, Any, T]], name: str, doc: str) -> Callable[P, T]:
    """`coroutine` as a function for synchronous code (`aio.run`), with its signature (mypy, `help()`)."""

    def blocking(*args: P.args, **kwargs: P.kwargs) -> T:
        return aio.run(coroutine(*args, **kwargs))

    functools.update_wrapper(blocking, coroutine)
    blocking.__name__ = blocking.__qualname__ = name
    blocking.__doc__ = doc
    return blocking


run_manifest = _blocking(
    run_manifest_async,
    "run_manifest",
    "Run (or resume) a manifest to the end, from synchronous code; the arguments are `run_manifest_async`'s.",
)


def _for_endpoint(options: RunOptions, api_base: str, *, sandbox: bool) -> RunOptions:
    """The options against the API in use; in the sandbox, its own defaults where nothing was said."""
    options = replace(options, api_base=api_base, sandbox=sandbox)
    if not sandbox:
        return options
    if options.upload is None and not options.inline_assets:
        options = replace(options, upload=UploadTarget.parse(SANDBOX_UPLOAD))
    if options.expected_render_s is None:  # the sandbox renders at SANDBOX_TIME_SCALE of real time
        options = replace(options, expected_render_s=300.0 * SANDBOX_TIME_SCALE)
    if options.deliver is not None:  # the sandbox's emulator starts empty: its repository is made
        options = replace(options, deliver=replace(options.deliver, create=True))
    return options


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
        why = (
            f"{plan.manifest_path}: jobs use local reference images, but there is nowhere to upload them: "
            "add `upload: {namespace: NS, repo: REPO}` to the manifest, pass "
        )
        raise UsageError(
            why + "upload_repo='NS/REPO', or inline_assets=True to send them as data: URIs",
            cli=why + "--upload-repo NS/REPO, or pass --inline-assets to send them as data: URIs",
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
        why = f"a budget of ${budget} cannot be enforced: no price is known for {', '.join(unpriced)}"
        raise UsageError(
            f"{why}; drop the budget (budget_usd / run.budget_usd) to run anyway",
            cli=f"{why}; drop the budget (--budget / run.budget_usd) to run anyway",
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


async def _execute(run: _Run, *, retry_invalid: bool) -> BatchResult:
    real = prepare_run_dir(run.run_dir)
    if real is not None:
        run.say(f"{run.run_dir} leads through a symlink: the files are written to {real}")
    # locked; a lost journal rebuilt from the sidecars; one API per run directory
    with Session.writing(run.run_dir, run.plan, run.say) as session:
        live_cancel.clear(run.run_dir)  # a request to a process that is gone is not for this run
        await session.check_api(run.options.api_identity, run.client)
        with _run_log(run.run_dir, run.key):
            return await _run_with_sinks(run, session.journal, retry_invalid)


async def _run_with_sinks(run: _Run, journal: Journal, retry_invalid: bool) -> BatchResult:
    """The runner, with the delivery (when the manifest has a target) and the caller's sinks around it:
    each sink checked before anything is paid for, then the run, its billing and its files, then each
    sink finished (`run_with_sinks`)."""
    plan, options = run.plan, run.options
    target, run_dir = options.deliver, run.run_dir
    delivery = [] if target is None else [delivery_for(target, options, run.key, journal, run_dir, plan.name)]
    sinks = (*delivery, *run.sinks)
    only = None if run.chosen is plan else {job.key for job in run.chosen.jobs}
    runner = Runner(
        plan,
        run.run_dir,
        journal,
        run.client,
        options,
        retry_invalid=retry_invalid,
        sinks=sinks,
        only=only,
        progress=run.progress,
    )

    async def prepare() -> None:
        await runner.prepare_assets()  # a missing upload repository stops here: nothing submitted
        write_run_files(run.run_dir, plan.manifest_path, plan, run.found.live)

    async def work() -> tuple[RunOutcome, Path | None]:
        try:
            async with halt_notice(notifier, runner, run.run_dir):
                outcome = await runner.run(run.stop)
            await read_after_run(outcome, run.client, journal, options, run.stop)
        finally:
            report = _write_outputs(run, journal)
        return outcome, report

    notifier = Notifier(options.notify, plan.name, run.say)
    # a missing or read-only delivery target stops at its check: nothing sent
    outcome, report = await run_with_sinks(sinks, work, prepare=prepare)
    result = BatchResult(
        run.run_dir,
        outcome,
        job_results(run.chosen, journal, run.run_dir),
        len(plan.jobs) - len(run.chosen.jobs),
        delivery[0].summary() if delivery else None,
        report,
        _final_spend(journal),
        options.sandbox,
    )
    await notifier.send("finished", result.summary())
    return result


def _write_outputs(run: _Run, journal: Journal) -> Path | None:
    """results.csv/.jsonl and report.html (its path); a failure is said, never hiding the run's outcome."""
    try:
        return write_outputs_unless_current(run.run_dir, run.plan.jobs, journal, campaign=run.plan.name)
    except (StorageError, UsageError) as exc:
        run.say(f"error: {exc} (the journal is intact: `batchgen report {run.run_dir}` tries again)")
        return None


def _final_spend(journal: Journal) -> Spend | None:
    """The run directory's spend once the billed costs are read (None if the journal cannot say)."""
    try:
        return journal_spend(journal)
    except StorageError:
        return None


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


def _options(manifest: Manifest, overrides: Mapping[str, Any], given: RunOptions | None) -> RunOptions:
    """`given`, else the manifest's `run:`, `upload:` and `deliver:`; the caller's overrides on top."""
    try:
        if given is None:
            upload = UploadTarget.from_manifest(manifest.upload) if manifest.upload else None
            given = replace(
                options_from_manifest(manifest.run or {}, upload),
                deliver=_deliver_target(manifest, None),
                notify=tuple(map(NotifyTarget.from_manifest, manifest.notify)),
            )
        return _overridden(given, manifest, overrides)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc


def _overridden(options: RunOptions, manifest: Manifest, overrides: Mapping[str, Any]) -> RunOptions:
    """`options` with each override given (not None) on top."""
    for name, (part, field, kind) in _SETTINGS.items():
        if overrides.get(name) is not None:
            value = kind(overrides[name])
            changed = value if part is None else replace(getattr(options, part), **{field: value})
            options = replace(options, **{field if part is None else part: changed})
    if overrides.get("inline_assets"):
        options = replace(options, inline_assets=True)
    if overrides.get("upload_repo"):
        try:
            options = replace(options, upload=UploadTarget.parse(str(overrides["upload_repo"])))
        except ValueError as exc:
            raise UsageError(f"upload_repo: {exc}", cli=f"--upload-repo: {exc}") from None
    if overrides.get("deliver"):
        options = replace(options, deliver=_deliver_target(manifest, overrides["deliver"]))
    if overrides.get("notify"):
        given = overrides["notify"]
        targets = [given] if isinstance(given, str | NotifyTarget) else given
        options = replace(
            options, notify=tuple(NotifyTarget.parse(str(t)) if isinstance(t, str) else t for t in targets)
        )
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
        raise UsageError(f"deliver: {exc}", cli=f"--deliver: {exc}") from None
