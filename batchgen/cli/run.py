"""`batchgen run`: the library's run_manifest_async, with signals, a progress display and a summary."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from batchgen.cli.common import (
    EPILOG,
    EXIT_BAD_INPUT,
    EXIT_HARD_STOP,
    EXIT_INCOMPLETE,
    EXIT_OK,
    add_api_flags,
    add_only_flag,
    example,
    said,
    unwrap,
    warn_if_key_flag,
)
from batchgen.cli.signals import stop_signals
from batchgen.commands import configure_logging, run_coroutine
from batchgen.config import DRAIN_TIMEOUT_S
from batchgen.errors import UsageError

if TYPE_CHECKING:
    from batchgen.cli.common import Commands
    from batchgen.commands import RunOutcome, RunStats


STOPPING = """\
stopping a run:
  Ctrl-C or SIGTERM  stop submitting; wait up to --drain-timeout (120 s) for what is in flight,
                     then exit 1 saying what the rerun picks up. A second one within 0.5 s of the
                     first is the same press (timeout -s INT, a process group's Ctrl-C).
  again, later       exit at once (130); the journal is up to date: rerun to resume
  kill -9            loses nothing either: the rerun reconciles what was being submitted
"""


def add_run(commands: Commands) -> None:
    run = commands.add_parser(
        "run",
        help="run (or resume) every job of a manifest",
        description="Plan, validate, submit under the concurrency limit, track through one event "
        "stream, and download every result. Running it again finishes only what is missing.",
        epilog=EPILOG
        + "\n"
        + STOPPING
        + "\n"
        + example(
            "batchgen run jobs/spring-campaign.yaml --only product=tote --budget 40",
            "tonight's tote videos only, up to $40 spent; a plain `batchgen run` later does the rest",
            "batchgen run jobs/demo.yaml --sandbox --json",
            "against the built-in emulator, with a JSON summary on stdout (for cron and CI)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    run.add_argument("manifest", type=Path, help="the YAML manifest")
    run.add_argument(
        "--sandbox",
        action="store_true",
        help="run against a built-in emulator of the API (no key, nothing paid)",
    )
    add_api_flags(run)
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
        "--budget",
        metavar="USD",
        help="stop submitting before the run directory's spend (every generation it made) would exceed this",
    )
    run.add_argument(
        "--upload-repo",
        metavar="NS/REPO[@BRANCH]",
        help="Oxen repository for local reference images (manifest upload:)",
    )
    run.add_argument(
        "--deliver",
        metavar="NS/NAME[@BRANCH][:PATH]",
        help="deliver results to this Oxen repository as they finish (manifest deliver:)",
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
    _add_timing_flags(run)
    _add_night_flags(run)
    add_only_flag(run)
    run.add_argument(
        "--json",
        action="store_true",
        help="at the end, print a JSON summary on stdout: run_dir, reason, counts, spend, failures",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log each step on stderr")
    run.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    run.set_defaults(handler=cmd_run)


def _add_night_flags(run: argparse.ArgumentParser) -> None:
    run.add_argument(
        "--halt-after-failures",
        metavar="N|P%",
        help="stop submitting (and drain) once N jobs failed, or P%% of the finished ones (from 10 "
        "finished on) (manifest run.halt_after_failures)",
    )
    run.add_argument(
        "--notify",
        action="append",
        metavar="URL|COMMAND",
        help="at the end (and when the breaker trips) POST the JSON summary to URL, or run COMMAND "
        "(split into words, no shell) with it on stdin; repeatable; replaces the manifest's notify:",
    )


def _add_timing_flags(run: argparse.ArgumentParser) -> None:
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
        "--drain-timeout",
        type=float,
        metavar="S",
        help="after Ctrl-C or SIGTERM, wait at most S seconds for in-flight work (default 120); "
        "what is left stays in the journal for the rerun",
    )
    run.add_argument(
        "--reconcile-interval",
        type=float,
        metavar="S",
        help="safety reconcile of in-flight generations every S seconds (default 60)",
    )


def cmd_run(args: argparse.Namespace) -> int:
    from batchgen.errors import BatchgenError, UserError

    env_key = os.environ.get("OXEN_API_KEY", "")
    configure_logging(secrets=[env_key, args.api_key or ""], verbose=args.verbose)
    try:
        return run_coroutine(_run(args))
    except KeyboardInterrupt:
        print(
            "batchgen: stopped at once; the journal is intact: run the same command to resume",
            file=sys.stderr,
        )
        _print_json(args, {"reason": "hard_stop", "exit_code": EXIT_HARD_STOP})
        return EXIT_HARD_STOP
    except Exception as raw:  # main() says it on stderr and picks the exit code
        exc = unwrap(raw)
        if isinstance(exc, BatchgenError):
            code = EXIT_BAD_INPUT if isinstance(exc, UserError) else EXIT_INCOMPLETE
            reason = "bad_input" if code == EXIT_BAD_INPUT else "error"
            _print_json(args, {"reason": reason, "error": said(exc), "exit_code": code})
        raise


def _print_json(args: argparse.Namespace, summary: dict[str, object]) -> None:
    """`--json`: one object on stdout, the last thing the run prints."""
    if args.json:
        print(json.dumps(summary, ensure_ascii=False), flush=True)


async def _run(args: argparse.Namespace) -> int:
    """`batchgen run`: the library's run_manifest_async, with signals, progress and a summary."""
    from batchgen.cli.deliver import report_delivery
    from batchgen.cli.progress import Progress
    from batchgen.commands import describe, run_manifest_async

    overrides = _overrides(args)
    bar: list[Progress] = []
    last: list[Callable[[], RunStats]] = []

    def on_progress(snapshot: Callable[[], RunStats]) -> None:
        if not last and args.api_key and not args.sandbox:
            warn_if_key_flag(args)  # once the run has started: errors before it come first, and alone
        last[:] = [snapshot]
        if args.no_progress:
            return
        if not bar:
            bar.append(Progress(snapshot().total, interval_s=10.0))
        bar[0].update(snapshot)

    stop = asyncio.Event()
    with stop_signals(stop, DRAIN_TIMEOUT_S if args.drain_timeout is None else args.drain_timeout):
        result = await run_manifest_async(
            args.manifest,
            sandbox=args.sandbox,
            api_base=args.api_base,
            api_key=args.api_key,
            output_dir=args.output_dir,
            say=lambda text: print(f"batchgen: {text}", file=sys.stderr),
            progress=on_progress,
            stop=stop,
            inline_assets=args.inline_assets,
            retry_invalid=args.retry_invalid,
            **overrides,
        )
    if bar and last:
        bar[0].close(last[0])
    if result.report is not None:
        print(f"batchgen: report: {result.report}", file=sys.stderr)
    code = summarise(result.outcome, result.run_dir, result.total)
    if result.spend is not None:
        print(f"batchgen: {describe(result.spend, sandbox=result.sandbox)}", file=sys.stderr)
    if result.left_for_later:
        print(
            f"batchgen: {result.left_for_later} other planned job(s) were not chosen by --only: left as "
            "they are for a later run (`batchgen status` shows them)",
            file=sys.stderr,
        )
    code = max(code, report_delivery(result.delivery, result.run_dir))
    if result.outcome.drain_timed_out:  # the last line: what the rerun picks up
        print(f"batchgen: {left_for_rerun(result.outcome.counts)}", file=sys.stderr)
    _print_json(args, {**result.summary(), "exit_code": code})
    return code


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    """The run settings the flags override (those given)."""
    from batchgen.config import usd

    try:
        budget = None if args.budget is None else usd(args.budget)
    except ValueError as exc:
        raise UsageError(str(exc)) from exc
    return {
        name: value
        for name, value in (
            ("concurrency", args.concurrency),
            ("downloads", args.downloads),
            ("retries", args.retries),
            ("budget_usd", budget),
            ("upload_repo", args.upload_repo),
            ("deliver", args.deliver),
            ("stream_idle_timeout_s", args.stream_idle_timeout),
            ("request_timeout_s", args.request_timeout),
            ("expected_render_s", args.reconcile_interval),
            ("drain_timeout_s", args.drain_timeout),
            ("halt_after_failures", args.halt_after_failures),
            ("notify", args.notify),
            ("only", args.only),
        )
        if value is not None
    }


def left_for_rerun(counts: dict[str, int]) -> str:
    """What a drain that ran out of time left in the journal, and that the rerun picks it up."""
    in_flight = sum(counts.get(state, 0) for state in ("submitting", "queued", "processing"))
    to_download = counts.get("succeeded", 0)
    return (
        f"the drain ran out of time: {in_flight} generation(s) in flight and {to_download} result(s) to "
        "download are left in the journal; run the same command again to pick them up (nothing is paid twice)"
    )


def _stopped_with_detail(outcome: RunOutcome, run_dir: Path) -> str | None:
    """Why submissions stopped, when the detail says more than the reason (an API that kept failing,
    the failure breaker's figure)."""
    from batchgen.commands import StopReason

    if outcome.stop_detail is None:
        return None
    if outcome.stop_reason is StopReason.FAILURES:
        return (
            f"{outcome.stop_detail}; fix the cause (`batchgen status {run_dir}` shows the errors), then rerun"
        )
    return outcome.stop_detail if outcome.stop_reason is StopReason.API_UNAVAILABLE else None


def summarise(outcome: RunOutcome, run_dir: Path, total: int) -> int:
    from batchgen.commands import StopReason

    done = outcome.counts.get("done", 0)
    summary = " · ".join(f"{state} {n}" for state, n in sorted(outcome.counts.items()))
    print(f"batchgen: {run_dir}: {done}/{total} done ({summary})", file=sys.stderr)
    if outcome.leftovers:
        print(
            f"batchgen: also tracked {sum(outcome.leftovers.values())} generation(s) of jobs no longer in "
            f"the manifest ({outcome.leftovers.get('done', 0)} downloaded)",
            file=sys.stderr,
        )
    if outcome.takes:
        print(
            f"batchgen: also fetched {outcome.takes.get('done', 0)} of {sum(outcome.takes.values())} extra "
            "take(s): generations matching this manifest's requests that another run may also have made "
            "(*.take-*; see the warning above)",
            file=sys.stderr,
        )
    if outcome.fatal:
        print(f"batchgen: error: {outcome.fatal}", file=sys.stderr)
    unverified = outcome.counts.get("unverified", 0)
    if unverified:
        print(
            f"batchgen: {unverified} paid result(s) failed verification and are kept aside, not downloaded "
            f"again: `batchgen unverified {run_dir}` to look at them, then --accept or --fetch-again",
            file=sys.stderr,
        )
    if outcome.bad_key:
        return EXIT_BAD_INPUT
    reasons = {
        StopReason.NO_CREDITS: "the account ran out of credits: submissions stopped, in-flight work was "
        "kept. Add credits and run the same command again.",
        StopReason.BUDGET: "the budget was reached: submissions stopped. Raise --budget (or run.budget_usd) "
        "and run again to continue.",
        StopReason.INTERRUPTED: "interrupted: run the same command again to resume.",
        StopReason.API_UNAVAILABLE: "the API kept failing: run the same command again to resume.",
        StopReason.CANCELLED: "cancelled (`batchgen cancel`): submissions stopped and in-flight generations "
        "were cancelled; `batchgen run` resubmits the cancelled jobs as new, paid generations.",
    }
    invalid = outcome.counts.get("invalid", 0)
    stopped = _stopped_with_detail(outcome, run_dir)
    if stopped:
        print(f"batchgen: submissions stopped: {stopped}", file=sys.stderr)
    elif outcome.stop_reason is not None and outcome.stop_reason in reasons:
        print(f"batchgen: {reasons[outcome.stop_reason]}", file=sys.stderr)
    elif invalid and done + invalid == total:
        print(
            f"batchgen: {invalid} job(s) were rejected as invalid (see `batchgen status {run_dir}`): fix "
            "them in the manifest, or rerun with --retry-invalid",
            file=sys.stderr,
        )
    elif done + unverified < total:
        print(
            "batchgen: some jobs are not done (see results.csv or `batchgen status`); "
            "run the same command again to retry what is missing",
            file=sys.stderr,
        )
    return EXIT_OK if done == total and not outcome.fatal else EXIT_INCOMPLETE
