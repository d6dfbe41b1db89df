"""`batchgen report RUN_DIR`: results.csv/.jsonl and report.html again, from the run directory alone."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from batchgen.cli.common import EXIT_OK, say

if TYPE_CHECKING:
    from batchgen.cli.common import Commands

EXAMPLES = """\
examples:
  batchgen report outputs/spring-campaign          # rewrite results.* and report.html from the journal
  batchgen report outputs/demo.sandbox --open      # ... and open the report in the default browser

A run writes these files at its end; this command makes them for a run that was killed, or is
still going (a snapshot), and reads nothing from the network. The report is one self-contained
file: open it from disk, or hand over the run directory as it is (the videos are linked relatively).
"""


def add_report(commands: Commands) -> None:
    report = commands.add_parser(
        "report",
        help="write report.html (the contact sheet) and results.* for a run directory",
        description="Write RUN_DIR/report.html, a contact sheet of the current plan's jobs (video, "
        "variables, prompt, cost, state, errors; filters, sort, picks exported as CSV), and rewrite "
        "RUN_DIR/results.csv and results.jsonl from the journal. Offline.",
        epilog=EXAMPLES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    report.add_argument("run_dir", type=Path, metavar="RUN_DIR", help="a run directory (holds plan.json)")
    report.add_argument(
        "--open", action="store_true", help="open the report in the default web browser ($BROWSER)"
    )
    report.set_defaults(handler=cmd_report)


def cmd_report(args: argparse.Namespace) -> int:
    from batchgen.commands import refresh_report

    path = refresh_report(args.run_dir)
    print(path)
    if args.open:
        import webbrowser

        if not webbrowser.open(path.resolve().as_uri()):
            say(f"no web browser to open; open {path} yourself")
    return EXIT_OK
