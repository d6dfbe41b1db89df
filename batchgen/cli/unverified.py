"""`batchgen unverified RUN_DIR`: paid results whose bytes failed verification, kept aside; list them,
accept them as they are (`--accept`), or have the next run download them again (`--fetch-again`)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.cli.common import EXIT_INCOMPLETE, EXIT_OK, add_only_flag, example
from batchgen.errors import StorageError, UsageError

if TYPE_CHECKING:
    from batchgen.cli.common import Commands
    from batchgen.journal.store import Journal
    from batchgen.results.unverified import UnverifiedJob


DESCRIPTION = """\
A result downloaded whole twice whose bytes failed verification both times (a bad signature, MP4
boxes that do not tile the file, fewer bytes than announced) is kept at unverified/<key12>/<file>,
and its job is `unverified`: paid, never deleted, never downloaded again by itself.

Without a flag this lists them (name, key, kept path, size, reason). Look at the kept bytes with
any player or ffprobe, then:
  --accept       they become the result (moved to the result's path, done; the sidecar says
                 "verified": false, "accepted_by_user": true)
  --fetch-again  the next `batchgen run` downloads it again (the kept bytes move to
                 unverified/<key12>/earlier-<time>/, never deleted)
Both change the journal: not while a run holds the run directory (exit 2). Exit 0, or 1 when a
chosen job could not be changed.
"""


def add_unverified(commands: Commands) -> None:
    unverified = commands.add_parser(
        "unverified",
        help="paid results whose bytes failed verification: list, --accept or --fetch-again",
        description=DESCRIPTION,
        epilog=example(
            "batchgen unverified outputs/spring-campaign",
            "what failed verification, and why",
            "batchgen unverified outputs/spring-campaign --fetch-again --only key=6498b9987d1b",
            "that one is downloaded again by the next `batchgen run` (nothing is paid again)",
        ),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    unverified.add_argument("run_dir", type=Path)
    action = unverified.add_mutually_exclusive_group()
    action.add_argument(
        "--accept", action="store_true", help="keep the chosen kept bytes as the results (marked unverified)"
    )
    action.add_argument(
        "--fetch-again",
        action="store_true",
        help="the next `batchgen run` downloads the chosen results again (a fresh budget of tries)",
    )
    add_only_flag(unverified)
    unverified.add_argument("--json", action="store_true", help="list: one JSON object per job")
    unverified.set_defaults(handler=cmd_unverified)


def cmd_unverified(args: argparse.Namespace) -> int:
    from batchgen.cli.runs import chosen_keys
    from batchgen.journal.store import JOURNAL_NAME

    run_dir: Path = args.run_dir
    if not (run_dir / JOURNAL_NAME).is_file():
        raise UsageError(f"{run_dir} is not a batchgen run directory (no {JOURNAL_NAME})")
    changing = args.accept or args.fetch_again
    if changing and args.json:
        raise UsageError("--json lists; it does not go with --accept or --fetch-again")
    chosen = chosen_keys(run_dir, args.only, required=changing)
    if not changing:
        return _list(run_dir, chosen, as_json=args.json)
    from batchgen.rundir.lock import RunLock

    with RunLock(run_dir):  # RunLocked (exit 2) while a run holds it: it alone changes its journal
        return _change(run_dir, chosen, accept=args.accept)


def _list(run_dir: Path, chosen: set[str] | None, *, as_json: bool) -> int:
    from batchgen.results.unverified import kept_exists

    jobs = _read(run_dir, chosen)
    if as_json:
        for job in jobs:
            print(json.dumps({**job.as_json(), "kept": kept_exists(run_dir, job)}))
        return EXIT_OK
    if not jobs:
        print(f"{run_dir}: no unverified result")
        return EXIT_OK
    print(
        f"{run_dir}: {len(jobs)} unverified result(s): paid and downloaded, failed verification, kept aside"
    )
    for job in jobs:
        size = "gone" if not kept_exists(run_dir, job) else f"{job.size:,} bytes" if job.size else "kept"
        print(f"  {job.title}: {job.kept_path} ({size})")
        print(f"      {job.reason}")
    print(
        f"Look at them (any player, ffprobe), then `batchgen unverified {run_dir} --accept` keeps them as "
        "the results, or `--fetch-again` has the next `batchgen run` download them again; --only chooses"
    )
    return EXIT_OK


def _read(run_dir: Path, chosen: set[str] | None) -> list[UnverifiedJob]:
    from batchgen.journal.store import Journal
    from batchgen.results.unverified import unverified_jobs

    journal = Journal.open_existing(run_dir)
    try:
        return unverified_jobs(journal, chosen)
    finally:
        journal.close()


def _change(run_dir: Path, chosen: set[str] | None, *, accept: bool) -> int:
    from batchgen.journal.store import Journal
    from batchgen.results.unverified import unverified_jobs

    journal = Journal.open_existing(run_dir)
    try:
        jobs = unverified_jobs(journal, chosen)
        if not jobs:
            print(f"{run_dir}: no unverified result{' among those chosen' if chosen is not None else ''}")
            return EXIT_OK
        failed = sum(not _change_one(run_dir, journal, job, accept=accept) for job in jobs)
    finally:
        journal.close()
    if accept:
        print(f"accepted {len(jobs) - failed} unverified result(s) as they are")
    else:
        print(f"{len(jobs) - failed} result(s) will be downloaded again by the next `batchgen run`")
    return EXIT_INCOMPLETE if failed else EXIT_OK


def _change_one(run_dir: Path, journal: Journal, job: UnverifiedJob, *, accept: bool) -> bool:
    from batchgen.results import unverified

    label = job.title
    try:
        if accept:
            print(f"  {label}: accepted, now at {unverified.accept(run_dir, journal, job)}")
        else:
            moved = unverified.fetch_again(run_dir, journal, job)
            aside = f"; the kept bytes moved to {moved}" if moved else ""
            print(f"  {label}: to be downloaded again{aside}")
    except FileNotFoundError:
        print(
            f"batchgen: error: {label}: its kept bytes are no longer at {job.kept_path}: "
            f"`batchgen unverified {run_dir} --fetch-again --only key={job.key[:12]}` downloads it again",
            file=sys.stderr,
        )
        return False
    except (StorageError, ValueError) as exc:
        print(f"batchgen: error: {label}: {exc}", file=sys.stderr)
        return False
    return True
