"""The command line: argparse, --help texts, exit codes, one clear message per error."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import signal
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen import __version__
from batchgen.config import DEFAULT_API_BASE, SANDBOX_IDENTITY, RunOptions, UploadTarget
from batchgen.errors import BatchgenError, UsageError, UserError

if TYPE_CHECKING:  # the commands import what they need when they run: `batchgen --help` stays fast
    from batchgen.api import OxenClient
    from batchgen.manifest import Manifest
    from batchgen.planning import Plan
    from batchgen.runner import RunOutcome, RunStats

    Commands = argparse._SubParsersAction[argparse.ArgumentParser]

EXIT_OK = 0
EXIT_INCOMPLETE = 1
EXIT_BAD_INPUT = 2
EXIT_HARD_STOP = 130


EPILOG = """\
exit codes:
  0  every job is done
  1  some jobs failed or were left (run the same command again to resume)
  2  bad input or usage: nothing was submitted
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="batchgen",
        description="Run large batches of Oxen.ai video and image generations from a YAML manifest: "
        "nothing lost, nothing paid for twice, and a rerun finishes only what is missing.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"batchgen {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_run(commands)
    _add_plan(commands)
    _add_status(commands)
    _add_cancel(commands)
    schema = commands.add_parser("schema", help="print the manifest's JSON Schema (for editors)")
    schema.set_defaults(handler=_cmd_schema)
    _add_emulator(commands)
    return parser


def _add_api_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--api-base",
        default=None,
        metavar="URL",
        help=f"API origin (default {DEFAULT_API_BASE}, or $OXEN_API_BASE)",
    )
    parser.add_argument(
        "--api-key",
        default=None,
        metavar="KEY",
        help="API key (default $OXEN_API_KEY; prefer the variable: flags show in `ps`)",
    )


def _add_run(commands: Commands) -> None:
    run = commands.add_parser(
        "run",
        help="run (or resume) every job of a manifest",
        description="Plan, validate, submit under the concurrency limit, track through one event "
        "stream, and download every result. Running it again finishes only what is missing.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("manifest", type=Path, help="the YAML manifest")
    run.add_argument(
        "--sandbox",
        action="store_true",
        help="run against a built-in emulator of the API (no key, nothing paid)",
    )
    _add_api_flags(run)
    run.add_argument(
        "-o",
        "--output-dir",
        type=Path,
        default=Path("outputs"),
        help="the run directory is OUTPUT_DIR/<manifest name> (default: outputs)",
    )
    run.add_argument(
        "-j", "--concurrency", type=int, help="generations in flight at once (manifest run.concurrency)"
    )
    run.add_argument("--downloads", type=int, help="downloads at once (manifest run.downloads)")
    run.add_argument("--retries", type=int, help="extra attempts for a transiently failed generation")
    run.add_argument(
        "--budget", metavar="USD", help="stop submitting before the quoted spend would exceed this"
    )
    run.add_argument(
        "--upload-repo",
        metavar="NS/REPO[@BRANCH]",
        help="Oxen repository for local reference images (manifest upload:)",
    )
    run.add_argument(
        "--retry-invalid",
        action="store_true",
        help="also retry jobs the model rejected as invalid (normally kept: fix the manifest)",
    )
    run.add_argument(
        "--inline-assets",
        action="store_true",
        help="send local reference images as data: URIs instead of uploading them",
    )
    run.add_argument(
        "--stream-idle-timeout",
        type=float,
        metavar="S",
        help="reconnect the event stream after S seconds without a byte (default 45)",
    )
    run.add_argument(
        "--request-timeout", type=float, metavar="S", help="timeout of one API call (default 60)"
    )
    run.add_argument(
        "--reconcile-interval",
        type=float,
        metavar="S",
        help="safety reconcile of in-flight generations every S seconds (default 60)",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log each step on stderr")
    run.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    run.set_defaults(handler=_cmd_run)


def _add_plan(commands: Commands) -> None:
    plan = commands.add_parser(
        "plan",
        help="show the jobs, cost quote and validation errors; sends nothing",
        description="Expand and validate a manifest offline. Exit 0 when valid, 2 otherwise.",
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
    plan.add_argument("--sandbox", action="store_true", help="look models up in the built-in emulator")
    _add_api_flags(plan)
    plan.set_defaults(handler=_cmd_plan)


def _add_status(commands: Commands) -> None:
    status = commands.add_parser("status", help="summarise a run directory from its journal")
    status.add_argument("run_dir", type=Path)
    status.add_argument("--json", action="store_true", help="one JSON object per job")
    status.set_defaults(handler=_cmd_status)


def _add_cancel(commands: Commands) -> None:
    cancel = commands.add_parser("cancel", help="cancel a run's in-flight generations at the provider")
    cancel.add_argument("run_dir", type=Path)
    _add_api_flags(cancel)
    cancel.set_defaults(handler=_cmd_cancel)


def _add_emulator(commands: Commands) -> None:
    from batchgen.emulator import cli as emulator_cli

    emulator = commands.add_parser(
        "emulator",
        help="run the local emulator of the Oxen API in the foreground",
        description="A local emulator of Oxen's hosted inference API, for demos and tests.",
    )
    emulator_cli.add_arguments(emulator)
    emulator.set_defaults(handler=emulator_cli.run)


# -- commands ---------------------------------------------------------------------------------


def _cmd_schema(args: argparse.Namespace) -> int:
    from batchgen.manifest import manifest_schema

    print(json.dumps(manifest_schema(), indent=2))
    return EXIT_OK


def _cmd_plan(args: argparse.Namespace) -> int:
    from batchgen.manifest import load_manifest
    from batchgen.planning import format_plan, plan_to_json
    from batchgen.store import Journal

    manifest = load_manifest(args.manifest)
    key = args.api_key or os.environ.get("OXEN_API_KEY", "")
    online = args.sandbox or bool(key or args.api_base)
    endpoint = None if args.sandbox else _Endpoint(_api_base(args), key)
    from batchgen.batch import run_dir_name

    run_dir = args.output_dir / run_dir_name(manifest.name, sandbox=args.sandbox)
    plan, notes = asyncio.run(_plan_with_models(manifest, endpoint if online else _OFFLINE, run_dir))
    for note in notes:
        print(f"batchgen: {note}", file=sys.stderr)
    done: frozenset[str] = frozenset()
    if (run_dir / "state.sqlite").is_file():
        journal = Journal.open_existing(run_dir)
        done = frozenset(k for k, r in journal.records().items() if r.state == "done")
        journal.close()
    if args.json:
        print(json.dumps(plan_to_json(plan), indent=2, ensure_ascii=False))
    else:
        print(format_plan(plan, done_keys=done))
    return EXIT_OK


async def _plan_with_models(
    manifest: Manifest, endpoint: _Endpoint | object | None, run_dir: Path
) -> tuple[Plan, list[str]]:
    """The plan, and the lines to tell about the model descriptions it was made with. Online, the
    upload repository is checked too (without writing to it)."""
    from batchgen.api import OxenClient
    from batchgen.batch import api_endpoint
    from batchgen.planning import build_plan
    from batchgen.registry.live import model_catalog

    if endpoint is _OFFLINE:
        found = await model_catalog(None, manifest)
        return build_plan(manifest, found.catalog), found.notes
    assert endpoint is None or isinstance(endpoint, _Endpoint)
    say = lambda text: print(f"batchgen: {text}", file=sys.stderr)  # noqa: E731
    given = None if endpoint is None else (endpoint.api_base, endpoint.api_key)
    async with api_endpoint(given, say) as (api_base, api_key), OxenClient(api_base, api_key) as client:
        found = await model_catalog(client, manifest, run_dir=run_dir)
        plan = build_plan(manifest, found.catalog)
        if endpoint is not None and manifest.upload and any(job.assets for job in plan.jobs):
            await _check_upload_repo(client, manifest.upload)
        return plan, found.notes


async def _check_upload_repo(client: OxenClient, upload: Mapping[str, object]) -> None:

    target = UploadTarget.from_manifest(upload)
    if not target.create and not await client.repo_exists(target.namespace, target.repo):
        raise UsageError(
            f"the upload repository {target.namespace}/{target.repo} does not exist: create it "
            "(https://oxen.ai/new, public, so the model can fetch the images), or add "
            "`create: true` under `upload:` to let `batchgen run` create it"
        )


def _cmd_status(args: argparse.Namespace) -> int:
    from batchgen.store import Journal

    journal = Journal.open_existing(args.run_dir)
    try:
        records = sorted(journal.records().values(), key=lambda r: r.idx)
        api = journal.meta("api")
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
    return EXIT_OK if counts.get("done", 0) == len(planned) else EXIT_INCOMPLETE


def _cmd_cancel(args: argparse.Namespace) -> int:
    return asyncio.run(_cancel(args))


async def _cancel(args: argparse.Namespace) -> int:
    from batchgen.api import OxenClient
    from batchgen.batch import check_api_identity
    from batchgen.cancel import cancel_in_flight
    from batchgen.store import Journal, RunLock

    api_base, key = _api_settings(args, sandbox=False)
    journal = Journal.open_existing(args.run_dir)  # before the lock: never litter a plain folder
    try:
        if journal.meta("api") == SANDBOX_IDENTITY:
            raise UsageError(
                f"{args.run_dir} was run in the sandbox: its generations lived only in the "
                "sandbox's emulator, which stopped with the run; there is nothing to cancel"
            )
        _warn_if_key_flag(args)
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


# -- run ----------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Endpoint:
    api_base: str
    api_key: str


_OFFLINE = object()


def _cmd_run(args: argparse.Namespace) -> int:
    from batchgen import logs

    env_key = os.environ.get("OXEN_API_KEY", "")
    logs.configure(secrets=[env_key, args.api_key or ""], verbose=args.verbose)
    try:
        return asyncio.run(_run(args))
    except KeyboardInterrupt:
        print(
            "batchgen: stopped at once; the journal is intact: run the same command to resume",
            file=sys.stderr,
        )
        return EXIT_HARD_STOP


async def _run(args: argparse.Namespace) -> int:
    """`batchgen run`: the library's run_manifest_async, with signals, progress and a summary."""
    from batchgen.batch import run_manifest_async, usd
    from batchgen.progress import Progress

    try:
        budget = None if args.budget is None else usd(args.budget)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    overrides = {
        name: value
        for name, value in (
            ("concurrency", args.concurrency),
            ("downloads", args.downloads),
            ("retries", args.retries),
            ("budget_usd", budget),
            ("upload_repo", args.upload_repo),
            ("stream_idle_timeout_s", args.stream_idle_timeout),
            ("request_timeout_s", args.request_timeout),
            ("expected_render_s", args.reconcile_interval),
        )
        if value is not None
    }
    bar: list[Progress] = []
    last: list[Callable[[], RunStats]] = []

    def on_progress(snapshot: Callable[[], RunStats]) -> None:
        if not last and args.api_key and not args.sandbox:
            _warn_if_key_flag(args)  # once the run has started: errors before it come first, and alone
        last[:] = [snapshot]
        if args.no_progress:
            return
        if not bar:
            bar.append(Progress(snapshot().total, interval_s=10.0))
        bar[0].update(snapshot)

    stop = asyncio.Event()
    with _signals(stop):
        result = await run_manifest_async(
            args.manifest,
            sandbox=args.sandbox,
            api_base=args.api_base,
            api_key=args.api_key,
            output_dir=args.output_dir,
            notify=lambda text: print(f"batchgen: {text}", file=sys.stderr),
            progress=on_progress,
            stop=stop,
            inline_assets=args.inline_assets,
            retry_invalid=args.retry_invalid,
            **overrides,
        )
    if bar and last:
        bar[0].close(last[0])
    return _summarise(result.outcome, result.run_dir, result.total)


@contextlib.contextmanager
def _signals(stop: asyncio.Event) -> Iterator[None]:
    """First Ctrl-C (or SIGTERM): stop submitting and drain. Second: stop at once."""
    presses = 0
    main_task = asyncio.current_task()
    loop = asyncio.get_running_loop()

    def on_signal() -> None:
        nonlocal presses
        presses += 1
        if presses == 1:
            print(
                "\nbatchgen: stopping: no new submissions; waiting for in-flight generations to finish "
                "and download (Ctrl-C again to exit now; rerun to resume)",
                file=sys.stderr,
            )
            stop.set()
        elif main_task is not None:
            main_task.cancel()

    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, on_signal)
    try:
        yield
    except asyncio.CancelledError:
        raise KeyboardInterrupt from None
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _summarise(outcome: RunOutcome, run_dir: Path, total: int) -> int:
    from batchgen.runner import StopReason

    done = outcome.counts.get("done", 0)
    summary = " · ".join(f"{state} {n}" for state, n in sorted(outcome.counts.items()))
    print(f"batchgen: {run_dir}: {done}/{total} done ({summary})", file=sys.stderr)
    if outcome.leftovers:
        print(
            f"batchgen: also tracked {sum(outcome.leftovers.values())} generation(s) of jobs no longer in "
            f"the manifest ({outcome.leftovers.get('done', 0)} downloaded)",
            file=sys.stderr,
        )
    if outcome.fatal:
        print(f"batchgen: error: {outcome.fatal}", file=sys.stderr)
    if outcome.bad_key:
        return EXIT_BAD_INPUT
    reasons = {
        StopReason.NO_CREDITS: "the account ran out of credits: submissions stopped, in-flight work was "
        "kept. Add credits and run the same command again.",
        StopReason.BUDGET: "the budget was reached: submissions stopped. Raise --budget (or run.budget_usd) "
        "and run again to continue.",
        StopReason.INTERRUPTED: "interrupted: run the same command again to resume.",
        StopReason.API_UNAVAILABLE: "the API kept failing: run the same command again to resume.",
    }
    invalid = outcome.counts.get("invalid", 0)
    if outcome.stop_reason is not None and outcome.stop_reason in reasons:
        print(f"batchgen: {reasons[outcome.stop_reason]}", file=sys.stderr)
    elif invalid and done + invalid == total:
        print(
            f"batchgen: {invalid} job(s) were rejected as invalid (see `batchgen status {run_dir}`): fix "
            "them in the manifest, or rerun with --retry-invalid",
            file=sys.stderr,
        )
    elif done < total:
        print(
            "batchgen: some jobs are not done (see results.csv or `batchgen status`); "
            "run the same command again to retry what is missing",
            file=sys.stderr,
        )
    return EXIT_OK if done == total and not outcome.fatal else EXIT_INCOMPLETE


# -- shared helpers -----------------------------------------------------------------------------


def _warn_if_key_flag(args: argparse.Namespace) -> None:
    if getattr(args, "api_key", None):
        print(
            "batchgen: warning: a key given with --api-key shows in `ps` and in shell history; "
            "prefer the OXEN_API_KEY variable",
            file=sys.stderr,
        )


def _api_base(args: argparse.Namespace) -> str:
    return str(args.api_base or os.environ.get("OXEN_API_BASE") or DEFAULT_API_BASE)


def _api_settings(args: argparse.Namespace, *, sandbox: bool) -> tuple[str, str]:
    api_base = _api_base(args)
    key = args.api_key or os.environ.get("OXEN_API_KEY", "")

    if not key and not sandbox:
        raise UsageError("no API key: set OXEN_API_KEY (or pass --api-key), or try --sandbox")
    return api_base, key


def _unwrap(exc: BaseException) -> BaseException:
    """The error to show for a task group's failure: its first non-cancellation error."""
    while isinstance(exc, BaseExceptionGroup):
        errors = [e for e in exc.exceptions if not isinstance(e, asyncio.CancelledError)]
        exc = (errors or list(exc.exceptions))[0]
    return exc


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_BAD_INPUT
    try:
        code: int = args.handler(args)
        return code
    except BaseException as raw:
        exc = _unwrap(raw)
        if isinstance(exc, UserError):
            print(f"batchgen: error: {exc}", file=sys.stderr)
            return EXIT_BAD_INPUT
        if isinstance(exc, BatchgenError):
            print(f"batchgen: error: {exc}", file=sys.stderr)
            return EXIT_INCOMPLETE
        if isinstance(exc, KeyboardInterrupt):
            return EXIT_HARD_STOP
        raise
