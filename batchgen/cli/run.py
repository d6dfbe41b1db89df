"""`batchgen run`: the library's run_manifest_async, with signals, a progress display and a summary."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.cli.common import (
    EPILOG,
    EXIT_BAD_INPUT,
    EXIT_HARD_STOP,
    EXIT_INCOMPLETE,
    EXIT_OK,
    add_api_flags,
    add_only_flag,
    example,
    print_json,
    said,
    say,
    unwrap,
    warn_if_key_flag,
)

if TYPE_CHECKING:
    from batchgen import RunOutcome, RunStats
    from batchgen.cli.common import Commands


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
    # the manifest's settings these flags override: run_manifest's arguments, of the same names (dest)
    settings = [
        run.add_argument(
            "-j", "--concurrency", type=int, help="generations in flight at once (manifest run.concurrency)"
        ),
        run.add_argument("--downloads", type=int, help="downloads at once (manifest run.downloads)"),
        run.add_argument("--retries", type=int, help="extra attempts for a transiently failed generation"),
        run.add_argument(
            "--budget",
            dest="budget_usd",
            metavar="USD",
            help="stop submitting before the run directory's spend (every generation it made) would exceed this",
        ),
        run.add_argument(
            "--upload-repo",
            metavar="NS/REPO[@BRANCH]",
            help="Oxen repository for local reference images (manifest upload:)",
        ),
        run.add_argument(
            "--deliver",
            metavar="NS/NAME[@BRANCH][:PATH]",
            help="deliver results to this Oxen repository as they finish (manifest deliver:)",
        ),
        run.add_argument(
            "--retry-invalid",
            action="store_true",
            help="also retry jobs the model rejected as invalid (normally kept: fix the manifest)",
        ),
        run.add_argument(
            "--inline-assets",
            action="store_true",
            help="send local reference images as data: URIs instead of uploading them",
        ),
        run.add_argument(
            "--stream-idle-timeout",
            dest="stream_idle_timeout_s",
            type=float,
            metavar="S",
            help="reconnect the event stream after S seconds without a byte (default 45)",
        ),
        run.add_argument(
            "--request-timeout",
            dest="request_timeout_s",
            type=float,
            metavar="S",
            help="timeout of one API call (default 60)",
        ),
        run.add_argument(
            "--drain-timeout",
            dest="drain_timeout_s",
            type=float,
            metavar="S",
            help="after Ctrl-C or SIGTERM, wait at most S seconds for in-flight work (default 120); "
            "what is left stays in the journal for the rerun",
        ),
        run.add_argument(
            "--reconcile-interval",
            dest="expected_render_s",
            type=float,
            metavar="S",
            help="how long a render is expected to take before this run has seen one: it times the safety "
            "look for completions the event stream missed (default 300 for video models, 30 for image models; "
            "later looks follow the renders this run has seen)",
        ),
        run.add_argument(
            "--halt-after-failures",
            metavar="N|P%",
            help="stop submitting (and drain) once N jobs failed, or P%% of the finished ones (from 10 "
            "finished on) (manifest run.halt_after_failures)",
        ),
        run.add_argument(
            "--notify",
            action="append",
            metavar="URL|COMMAND",
            help="at the end (and when the breaker trips) POST the JSON summary to URL, or run COMMAND "
            "(split into words, no shell) with it on stdin; repeatable; replaces the manifest's notify:",
        ),
        add_only_flag(run),
    ]
    run.add_argument(
        "--json",
        action="store_true",
        help="at the end, print a JSON summary on stdout: run_dir, reason, counts, spend, failures",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log each step on stderr")
    run.add_argument("--no-progress", action="store_true", help="no progress bar or lines")
    run.set_defaults(handler=cmd_run, settings=[action.dest for action in settings])


def cmd_run(args: argparse.Namespace) -> int:
    from batchgen.commands import configure_logging, run_coroutine
    from batchgen.errors import BatchgenError, UserError

    configure_logging(api_key=args.api_key, verbose=args.verbose)
    try:
        return run_coroutine(_run(args))
    except KeyboardInterrupt:
        say("stopped at once; the journal is intact: run the same command to resume")
        if args.json:
            print_json({"reason": "hard_stop", "exit_code": EXIT_HARD_STOP})
        return EXIT_HARD_STOP
    except Exception as raw:  # main() says it on stderr and picks the exit code
        exc = unwrap(raw)
        if args.json and isinstance(exc, BatchgenError):
            code = EXIT_BAD_INPUT if isinstance(exc, UserError) else EXIT_INCOMPLETE
            reason = "bad_input" if code == EXIT_BAD_INPUT else "error"
            print_json({"reason": reason, "error": said(exc), "exit_code": code})
        raise


async def _run(args: argparse.Namespace) -> int:
    import asyncio

    from batchgen.cli.deliver import report_delivery
    from batchgen.cli.progress import Progress
    from batchgen.cli.signals import stop_signals
    from batchgen.commands import describe, run_manifest_async
    from batchgen.config import DRAIN_TIMEOUT_S

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
    with stop_signals(stop, DRAIN_TIMEOUT_S if args.drain_timeout_s is None else args.drain_timeout_s):
        result = await run_manifest_async(
            args.manifest,
            sandbox=args.sandbox,
            api_base=args.api_base,
            api_key=args.api_key,
            output_dir=args.output_dir,
            say=say,
            progress=on_progress,
            stop=stop,
            **{name: getattr(args, name) for name in args.settings},
        )
    if bar and last:
        bar[0].close(last[0])
    if result.report is not None:
        say(f"report: {result.report}")
    summarise(result.outcome, result.run_dir, result.total)
    if result.spend is not None:
        say(describe(result.spend, sandbox=result.sandbox))
    if result.left_for_later:
        say(
            f"{result.left_for_later} other planned job(s) were not chosen by --only: left as "
            "they are for a later run (`batchgen status` shows them)"
        )
    report_delivery(result.delivery, result.run_dir)
    if result.outcome.drain_timed_out:  # the last line: what the rerun picks up
        say(left_for_rerun(result.outcome.counts))
    code = EXIT_BAD_INPUT if result.outcome.bad_key else EXIT_OK if result.complete else EXIT_INCOMPLETE
    if args.json:  # one object on stdout, the last thing the run prints
        print_json({**result.summary(), "exit_code": code})
    return code


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
    from batchgen import StopReason

    if outcome.stop_detail is None:
        return None
    if outcome.stop_reason is StopReason.FAILURES:
        return (
            f"{outcome.stop_detail}; fix the cause (`batchgen status {run_dir}` shows the errors), then rerun"
        )
    return outcome.stop_detail if outcome.stop_reason is StopReason.API_UNAVAILABLE else None


def summarise(outcome: RunOutcome, run_dir: Path, total: int) -> None:
    from batchgen import StopReason

    done = outcome.counts.get("done", 0)
    summary = " · ".join(f"{state} {n}" for state, n in sorted(outcome.counts.items()))
    say(f"{run_dir}: {done}/{total} done ({summary})")
    if outcome.leftovers:
        say(
            f"also tracked {sum(outcome.leftovers.values())} generation(s) of jobs no longer in "
            f"the manifest ({outcome.leftovers.get('done', 0)} downloaded)"
        )
    if outcome.takes:
        say(
            f"also fetched {outcome.takes.get('done', 0)} of {sum(outcome.takes.values())} extra "
            "take(s): generations matching this manifest's requests that another run may also have made "
            "(*.take-*; see the warning above)"
        )
    if outcome.fatal:
        say(f"error: {outcome.fatal}")
    unverified = outcome.counts.get("unverified", 0)
    if unverified:
        say(
            f"{unverified} paid result(s) failed verification and are kept aside, not downloaded "
            f"again: `batchgen unverified {run_dir}` to look at them, then --accept or --fetch-again"
        )
    if outcome.bad_key:
        return
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
        say(f"submissions stopped: {stopped}")
    elif outcome.stop_reason is not None and outcome.stop_reason in reasons:
        say(reasons[outcome.stop_reason])
    elif invalid and done + invalid == total:
        say(
            f"{invalid} job(s) were rejected as invalid (see `batchgen status {run_dir}`): fix "
            "them in the manifest, or rerun with --retry-invalid"
        )
    elif done + unverified < total:
        say(
            "some jobs are not done (see results.csv or `batchgen status`); "
            "run the same command again to retry what is missing"
        )
