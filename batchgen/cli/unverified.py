"""`batchgen unverified RUN_DIR`: paid results whose bytes failed verification, kept aside; list them,
accept them as they are (`--accept`), or have the next run download them again (`--fetch-again`)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.cli.common import EXIT_INCOMPLETE, EXIT_OK, add_only_flag, example, say
from batchgen.errors import UsageError

if TYPE_CHECKING:
    from batchgen.cli.common import Commands
    from batchgen.commands import Unverified


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
    from batchgen.commands import settle_unverified

    run_dir: Path = args.run_dir
    changing = args.accept or args.fetch_again
    if changing and args.json:
        raise UsageError("--json lists; it does not go with --accept or --fetch-again")
    found = settle_unverified(
        run_dir,
        only=args.only,
        accept=args.accept,
        fetch_again=args.fetch_again,
        say=say,
    )
    if args.json:
        for one in found:
            print(json.dumps({**one.job.as_json(), "kept": one.kept}))
    elif not found:
        print(f"{run_dir}: no unverified result{' among those chosen' if changing and args.only else ''}")
    elif not changing:
        _list(run_dir, found)
    else:
        return _changed(run_dir, found, accept=args.accept)
    return EXIT_OK


def _list(run_dir: Path, found: list[Unverified]) -> None:
    print(
        f"{run_dir}: {len(found)} unverified result(s): paid and downloaded, failed verification, kept aside"
    )
    for one in found:
        job = one.job
        size = "gone" if not one.kept else f"{job.size:,} bytes" if job.size else "kept"
        print(f"  {job.title}: {job.kept_path} ({size})")
        print(f"      {job.reason}")
    print(
        f"Look at them (any player, ffprobe), then `batchgen unverified {run_dir} --accept` keeps them as "
        "the results, or `--fetch-again` has the next `batchgen run` download them again; --only chooses"
    )


def _changed(run_dir: Path, found: list[Unverified], *, accept: bool) -> int:
    for one in found:
        label = one.job.title
        if one.error is None:
            aside = f"; the kept bytes moved to {one.moved_to}" if one.moved_to else ""
            print(
                f"  {label}: accepted, now at {one.moved_to}"
                if accept
                else f"  {label}: to be downloaded again{aside}"
            )
        elif not one.kept:
            say(
                f"error: {label}: {one.error}: `batchgen unverified {run_dir} --fetch-again --only "
                f"key={one.job.key[:12]}` downloads it again"
            )
        else:
            say(f"error: {label}: {one.error}")
    failed = sum(one.error is not None for one in found)
    if accept:
        print(f"accepted {len(found) - failed} unverified result(s) as they are")
    else:
        print(f"{len(found) - failed} result(s) will be downloaded again by the next `batchgen run`")
    return EXIT_INCOMPLETE if failed else EXIT_OK
