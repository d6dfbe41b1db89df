"""Running a batch from a manifest, as a library: exactly what `batchgen run` does, minus the terminal.

```python
import batchgen
result = batchgen.run_manifest("jobs/demo.yaml", sandbox=True)        # or: await run_manifest_async(...)
result.complete, result.run_dir, result.outcome.counts
```

It loads and plans the manifest (live model descriptions with a key), checks the budget and the upload
target, takes the run directory's lock, refuses a run directory of another API, writes `manifest.yaml`,
`plan.json`, `run.log` and the results files, runs the batch and returns its outcome. Bad input raises a
`UserError` before anything is sent. Human notes (the sandbox's address, a live price that differs from
the snapshot) go to `notify` (default: the `batchgen` logger at WARNING).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from batchgen import logs
from batchgen.api import OxenClient
from batchgen.billing import BILLING_DEADLINE_S, read_billed_costs
from batchgen.config import (
    DEFAULT_API_BASE,
    SANDBOX_IDENTITY,
    Limits,
    RunOptions,
    UploadTarget,
    options_from_manifest,
)
from batchgen.errors import NotFound, StorageError, UsageError
from batchgen.manifest import Manifest, load_manifest
from batchgen.planning import Plan, build_plan
from batchgen.registry.live import Catalog, model_catalog
from batchgen.review import write_outputs
from batchgen.rundir import prepare_run_dir, write_run_files
from batchgen.runner import Runner, RunOutcome, RunStats, StopReason
from batchgen.store import Journal, RunLock

__all__ = ["BatchResult", "run_dir_name", "run_manifest", "run_manifest_async"]

log = logging.getLogger(__name__)

SANDBOX_TIME_SCALE = 0.01  # a two-minute render takes about a second in the sandbox
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
    }
)


@dataclass(frozen=True, slots=True)
class BatchResult:
    """What a run did: where, the runner's outcome, and how many jobs the plan has."""

    run_dir: Path
    outcome: RunOutcome
    total: int
    report: Path | None = None  # report.html, the contact sheet (None if it could not be written)

    @property
    def complete(self) -> bool:
        """Every job of the plan is done and nothing went wrong."""
        return self.outcome.counts.get("done", 0) == self.total and not self.outcome.fatal


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
    return asyncio.run(
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
    inline_assets, retry_invalid, stream_idle_timeout_s, request_timeout_s, expected_render_s. `progress`
    is called with a snapshot function after every change; setting `stop` stops submitting (in-flight work
    is still tracked and downloaded).
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
        async with OxenClient(
            options.api_base, key_used, timeouts=options.timeouts, retry=options.retry
        ) as client:
            found = await model_catalog(client, loaded, run_dir=run_dir)
            plan = build_plan(loaded, found.catalog)
            for note in found.notes:
                say(note)
            check_can_run(plan, options)
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
            )


def run_dir_name(name: str, *, sandbox: bool) -> str:
    """Sandbox runs live apart (`<name>.sandbox`): a placeholder clip must never pass for a real result."""
    return f"{name}.sandbox" if sandbox else name


def check_can_run(plan: Plan, options: RunOptions) -> None:
    """Usage errors that need the plan: local images with nowhere to go, a budget that cannot work."""
    if options.upload is None and not options.inline_assets and any(job.assets for job in plan.jobs):
        raise UsageError(
            f"{plan.manifest_path}: jobs use local reference images, but there is nowhere to upload them: "
            "add `upload: {namespace: NS, repo: REPO}` to the manifest, pass --upload-repo NS/REPO, "
            "or pass --inline-assets to send them as data: URIs"
        )
    budget = options.budget_usd
    if budget is None or not plan.jobs:
        return
    unpriced = sorted({job.model for job in plan.jobs if job.cost_usd is None})
    if unpriced:
        raise UsageError(
            f"a budget of ${budget} cannot be enforced: no price is known for "
            f"{', '.join(unpriced)}; drop the budget (--budget / run.budget_usd) to run anyway"
        )
    cheapest = min(job.cost_usd or Decimal(0) for job in plan.jobs)
    if cheapest > budget:
        raise UsageError(
            f"the budget of ${budget} is less than the cheapest job (${cheapest}): nothing could run"
        )


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
) -> BatchResult:
    real = prepare_run_dir(run_dir)
    if real is not None:
        say(f"{run_dir} leads through a symlink: the files are written to {real}")
    with RunLock(run_dir):
        journal = Journal.open(run_dir)
        try:
            await check_api_identity(journal, run_dir, options, client)
            with _run_log(run_dir, key):
                runner = Runner(plan, run_dir, journal, client, options, retry_invalid=retry_invalid)
                await runner.prepare_assets()  # a missing upload repository stops here: nothing submitted
                write_run_files(run_dir, manifest, plan, found.live)
                if progress is not None:
                    runner.on_change = lambda: progress(runner.stats)
                report: Path | None = None
                try:
                    outcome = await _run_until_stopped(runner, stop)
                    if _may_read_billing(outcome):
                        await _read_billing(client, journal, plan, options, stop)
                finally:
                    try:
                        report = write_outputs(run_dir, plan.jobs, journal)
                    except (StorageError, UsageError) as exc:  # never hide the run's own outcome behind this
                        say(f"error: {exc} (the journal is intact: `batchgen report {run_dir}` tries again)")
        finally:
            journal.close()
    return BatchResult(run_dir, outcome, len(plan.jobs), report)


def _may_read_billing(outcome: RunOutcome) -> bool:
    """Read the billed costs after a run that ended as planned: not after a fatal error (a refused
    key, no credits, a full disk), an API that kept failing, or a Ctrl-C (the next run reads them)."""
    return outcome.fatal is None and outcome.stop_reason not in (
        StopReason.INTERRUPTED,
        StopReason.API_UNAVAILABLE,
    )


async def _read_billing(
    client: OxenClient, journal: Journal, plan: Plan, options: RunOptions, stop: asyncio.Event | None
) -> None:
    """The billed costs of the run's finished generations (bounded; a Ctrl-C ends it at once)."""
    deadline = min(BILLING_DEADLINE_S, 2 * options.timeouts.request_s)
    reading = asyncio.ensure_future(
        read_billed_costs(client, journal, (job.key for job in plan.jobs), deadline_s=deadline)
    )
    stopped = asyncio.ensure_future(stop.wait() if stop is not None else asyncio.Event().wait())
    try:
        await asyncio.wait((reading, stopped), return_when=asyncio.FIRST_COMPLETED)
    finally:
        for task in (reading, stopped):
            task.cancel()
        outcome, _ = await asyncio.gather(reading, stopped, return_exceptions=True)
    if isinstance(outcome, Exception):  # read_billed_costs says its own failures; this is anything else
        log.warning("billed costs were not read from the history (%s)", outcome)


async def _run_until_stopped(runner: Runner, stop: asyncio.Event | None) -> RunOutcome:
    if stop is None:
        return await runner.run()

    async def watch() -> None:
        await stop.wait()
        runner.request_stop(StopReason.INTERRUPTED)

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


async def check_api_identity(
    journal: Journal, run_dir: Path, options: RunOptions, client: OxenClient
) -> None:
    """A run directory holds the results of one API: the sandbox's placeholders, or one origin's real
    generations. Mixing them would deliver a placeholder as a result, or lose track of paid work."""
    identity = options.api_identity
    recorded = journal.meta("api")
    with_generation = [r for r in journal.records().values() if r.generation_id]
    foreign = sorted({r.api for r in with_generation if r.api and r.api != identity})
    legacy = [r for r in with_generation if not r.api]
    if not foreign and legacy and identity != SANDBOX_IDENTITY:
        # Journals from before the API was recorded: ask the API about a few of their generations.
        for record in legacy[:3]:
            try:
                await client.get_generation(str(record.generation_id))
            except NotFound:
                foreign = ["an unknown API (its generations are not known here)"]
                break
        else:
            journal.stamp_api([r.key for r in legacy], identity)
    elif legacy:
        foreign = ["an unknown API (made before batchgen recorded which)"]
    if recorded and recorded != identity and not foreign and with_generation:
        foreign = [recorded]
    if foreign:
        where = " and ".join(foreign)
        fix = (
            "run without --sandbox to continue it"
            if foreign == [SANDBOX_IDENTITY]
            else f"run it against {foreign[0]} again to continue it"
            if "://" in foreign[0]
            else ""
        )
        raise UsageError(
            f"{run_dir} holds results from {where}, and this run is against {identity}: they must never "
            f"be mixed (a sandbox placeholder is not a result; another API does not know these generations). "
            f"Use another --output-dir{', or ' + fix if fix else ''}"
        )
    if recorded != identity:
        journal.set_meta("api", identity)


@contextlib.asynccontextmanager
async def api_endpoint(
    given: tuple[str, str] | None, say: Callable[[str], None]
) -> AsyncIterator[tuple[str, str]]:
    """The API to talk to: the one given, or a built-in emulator for the length of a sandbox run."""
    if given is not None:
        yield given
        return
    from batchgen.emulator import EmulatorConfig, run_emulator

    # A fresh seed each time: generation ids never repeat across sandbox sessions, as on the real service.
    config = EmulatorConfig(
        time_scale=SANDBOX_TIME_SCALE, auto_create_repos=True, seed=secrets.randbelow(2**31)
    )
    async with run_emulator(config) as emulator:
        say(f"sandbox: using the built-in emulator at {emulator.base_url} (nothing is paid)")
        yield emulator.base_url, emulator.api_key


def _options(manifest: Manifest, overrides: dict[str, Any]) -> RunOptions:
    """The manifest's `run:` and `upload:` settings, with the caller's overrides on top."""
    try:
        upload_repo = overrides.get("upload_repo")
        if upload_repo:
            upload: UploadTarget | None = UploadTarget.parse(str(upload_repo))
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
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return options


def usd(value: Any) -> Decimal:
    """A budget in USD: a positive, finite amount such as 150 or "49.90"."""
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise ValueError(f"--budget must be an amount in USD such as 150 or 49.90, got {value!r}") from None
    if not amount.is_finite() or amount <= 0:
        raise ValueError(f"--budget must be a positive amount in USD, got {value!r}")
    return amount
